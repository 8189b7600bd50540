"""The facade that wires config, store, MESH transport and pipeline together."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from . import pipeline
from .config import Config, load
from .errors import ConfigError, MeshbridgeError, PayloadError
from .mesh import MeshMailbox
from .pipeline import PollReport
from .store import Row, Store

log = logging.getLogger("meshbridge")

__all__ = ["Bridge", "PollReport"]


class Bridge:
    """One meshbridge: a config, its store and a MESH session per mailbox."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.store = Store(config.store.path)
        self._mailboxes: dict[str, MeshMailbox] = {}

    @classmethod
    def from_file(cls, path: str | os.PathLike[str] | None = None) -> Bridge:
        return cls(load(path))

    def close(self) -> None:
        for mailbox in self._mailboxes.values():
            mailbox.close()
        self._mailboxes.clear()
        self.store.close()

    def __enter__(self) -> Bridge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def mailbox(self, mailbox_id: str) -> MeshMailbox:
        if mailbox_id not in self.config.mailboxes:
            raise ConfigError(str(self.config.file), "mailboxes", f"mailbox {mailbox_id!r} is not configured")
        if mailbox_id not in self._mailboxes:
            self._mailboxes[mailbox_id] = MeshMailbox(self.config.mesh, self.config.mailboxes[mailbox_id])
        return self._mailboxes[mailbox_id]

    # -- outbound -------------------------------------------------------------------------

    def send(
        self,
        path: str | os.PathLike[str],
        *,
        route: str | None = None,
        sender: str | None = None,
        to: str | None = None,
        workflow_id: str | None = None,
        payload_type: str | None = None,
    ) -> Row:
        """Store a payload durably and send it. Returns the message row.

        A MESH rejection or outage leaves the message stored (``failed`` or ``accepted``) and
        raises :class:`~meshbridge.TransportError`; ``poll`` retries ``accepted`` ones.
        """
        if route:
            r = self.config.route(route)
            if r.direction != "outbound":
                raise ConfigError(str(self.config.file), "routes", f"route {route!r} is not outbound")
            sender, to, workflow_id = r.mailbox, r.to, r.workflow_id
            payload_type = payload_type or r.payload_type
            subject, content_type = r.subject, r.content_type
        else:
            if not (sender and to and workflow_id):
                raise ConfigError(str(self.config.file), "", "give a route, or a sender, a recipient and a workflow id")
            subject = content_type = None
        self.mailbox(sender)  # refuse an unknown sender before storing anything
        file = Path(path)
        try:
            with file.open("rb") as source:
                if file.stat().st_size == 0:
                    raise PayloadError(f"{file}: payload is empty (MESH refuses empty messages)")
                message = pipeline.accept(
                    self.store,
                    source,
                    route=route,
                    mailbox=sender,
                    to=to,
                    workflow_id=workflow_id,  # type: ignore[union-attr]
                    payload_type=payload_type or "auto",
                    filename=file.name,
                    subject=subject,
                    content_type=content_type,
                )
        except OSError as exc:
            raise PayloadError(f"cannot read {file}: {exc.strerror}") from None
        pipeline.transmit(self.store, self.mailbox(sender), message)
        return self.store.get(message["id"])

    def flush(self, report: PollReport | None = None) -> PollReport:
        """Send every stored message still waiting (``accepted``)."""
        report = report or PollReport()
        for message in self.store.messages(state="accepted", direction="out"):
            try:
                if pipeline.transmit(self.store, self.mailbox(message["mailbox"]), message):
                    report.sent.append(message["id"])
            except MeshbridgeError as exc:
                report.problems.append(f"send {message['id']}: {exc}")
        return report

    # -- inbound --------------------------------------------------------------------------

    def poll(self, mailbox: str | None = None, *, track: bool = True) -> PollReport:
        """One pass: flush sends, collect every inbox, deliver, apply REPORTs, refresh tracking."""
        ids = [mailbox] if mailbox else list(self.config.mailboxes)
        for mailbox_id in ids:
            self.mailbox(mailbox_id)
        report = self.flush()
        for mailbox_id in ids:
            self._collect(mailbox_id, report)
        self._finish_inbound(report)
        if track:
            self.track(report)
        return report

    def _collect(self, mailbox_id: str, report: PollReport) -> None:
        mesh = self.mailbox(mailbox_id)
        try:
            for mesh_id in mesh.inbox():
                try:
                    message = pipeline.receive(self.store, mesh, mesh_id)
                    report.received.append(message["id"])
                except MeshbridgeError as exc:
                    report.problems.append(f"collect {mesh_id} for {mailbox_id}: {exc}")
        except MeshbridgeError as exc:
            report.problems.append(str(exc))

    def _finish_inbound(self, report: PollReport) -> None:
        """Everything collected but not yet routed: REPORTs applied, DATA delivered."""
        for message in self.store.messages(state="mesh-acked", direction="in"):
            try:
                if message["message_type"] == "REPORT":
                    linked = pipeline.apply_report(self.store, message)
                    if linked:
                        report.undeliverable.append(linked["id"])
                    else:
                        report.problems.append(
                            f"MESH report {message['mesh_message_id']} names {message['linked_message_id']}, "
                            "which this store did not send"
                        )
                elif pipeline.route_and_deliver(self.store, self.config, message) == "delivered":
                    report.delivered.append(message["id"])
                else:
                    report.unrouted.append(message["id"])
            except MeshbridgeError as exc:
                report.problems.append(f"deliver {message['id']}: {exc}")

    def track(self, report: PollReport | None = None, *, force: bool = False) -> PollReport:
        """Refresh MESH tracking of sent messages (rarely: ``[mesh] tracking_interval``)."""
        report = report or PollReport()
        interval = self.config.mesh.tracking_interval
        for message in self.store.messages(state="sent", direction="out"):
            if not (force or pipeline.tracking_due(message, interval)):
                continue
            try:
                pipeline.track(self.store, self.mailbox(message["mailbox"]), message)
                report.tracked.append(message["id"])
            except MeshbridgeError as exc:
                report.problems.append(f"track {message['id']}: {exc}")
        return report

    # -- reading --------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        return {"counts": self.store.counts(), "overdue": self.store.overdue_count()}

    def messages(self, **filters: Any) -> list[Row]:
        return self.store.messages(**filters)

    def show(self, message_id: str) -> tuple[Row, list[Row]]:
        message = self.store.get(message_id)
        return message, self.store.events(message["id"])
