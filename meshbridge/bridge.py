"""The facade that wires config, store, MESH transport and pipeline together."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from . import acks, domain_acks, pipeline, retries, steps
from .acks import Acknowledgements
from .config import Config, Route, load
from .destinations import FolderBatch
from .errors import (
    ConfigError,
    DeliveryInterrupted,
    DiskFull,
    InvalidRequest,
    MeshAuthRefused,
    MeshbridgeError,
    MeshRejected,
    PayloadError,
    PayloadRejected,
    RetryRefused,
    SendAbandoned,
    TransportError,
)
from .events import EventKind, Notification
from .faults import checkpoint
from .logins import LoginWatch
from .mesh import MeshMailbox
from .models import RETRIABLE, Direction, Message, State
from .payloads.base import Finding, Payload, ValidationResult
from .pipeline import Logged, PollReport
from .plugins import Plugins
from .progress import Progress
from .reader import Reading
from .sources import discard_if_changed, open_regular, text_name
from .store import Row, Store
from .transforms import transformed
from .validation import DEFAULT_CAP, check, needs_validation, oversize, route_options

log = logging.getLogger("meshbridge")
EMPTY = Finding("the payload is empty (MESH refuses empty messages)", code="payload.empty")
DOMAIN_ACK_CAP = 10_000_000  # bytes: larger inbound payloads are never read as acknowledgements
BATCH_BYTES = 100_000_000  # a folder batch is finished early once it holds this much (disk space)
RECEIVE_BATCH = 50  # messages downloaded and recorded before one fsync makes them durable and they are acknowledged

__all__ = ["Bridge", "PollReport"]


class Bridge(Reading):
    """One meshbridge: a config, its store and a MESH session per mailbox. Reading (``status``,
    ``messages``, ``show``) is :class:`~meshbridge.reader.Reading`'s, the same as a Reader's."""

    def __init__(self, config: Config, plugins: Plugins | None = None) -> None:
        self.config = config
        self.plugins = plugins or Plugins()
        self.plugins.configure(config)  # plugin tables and destination targets: refused now, not on every poll
        self._check_routes()
        self.store = Store(config.store.path, inline_max=config.store.inline_max)
        self._mailboxes: dict[str, MeshMailbox] = {}
        self._acks: Acknowledgements | None = None
        self.logins = LoginWatch(self.store, self.plugins, self.handshake)
        self.stopping = threading.Event()  # set on SIGTERM: an upload stops after the chunk in hand
        self.progress: Progress | None = None  # told how chunked sends and downloads go (the CLI's bar)

    def _check_routes(self) -> None:
        """Route settings that depend on installed plugins: payload types and destination kinds."""
        types, kinds = self.plugins.payload_types(), self.plugins.destinations()
        for i, route in enumerate(self.config.routes):
            if route.payload_type != "auto" and route.payload_type not in types:
                raise ConfigError(
                    str(self.config.file),
                    f"routes[{i}].payload_type",
                    f"no payload type {route.payload_type!r} is installed (have: {', '.join(sorted(types))})",
                )
            for kind in route.destination or {}:
                if kind not in kinds:
                    raise ConfigError(
                        str(self.config.file),
                        f"routes[{i}].destination.{kind}",
                        f"no destination kind {kind!r} is installed (have: {', '.join(sorted(kinds))})",
                    )

    def _notify(self, kind: EventKind, message_id: str | None, summary: str, **detail: Any) -> None:
        if kind not in steps.NOTIFIED:  # those are the step lines the store logs (meshbridge.steps)
            log.warning("%s: %s", kind, summary)
        self.plugins.notify(Notification(kind, message_id, summary, detail))

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

    @property
    def retry_policy(self) -> pipeline.RetryPolicy:
        mesh = self.config.mesh
        return pipeline.RetryPolicy(mesh.send_attempts, mesh.retry_backoff, mesh.retry_backoff_max, mesh.send_lease)

    @property
    def delivery_policy(self) -> pipeline.RetryPolicy:
        service = self.config.service
        return pipeline.RetryPolicy(
            service.delivery_attempts, service.delivery_backoff, service.delivery_backoff_max, service.delivery_lease
        )

    def delivery_deadline(self, route: Route) -> float:
        """The total deadline of one delivery on this route: its destination's ``timeout``, else
        ``[service] delivery_timeout``."""
        return route.destination_options.timeout or self.config.service.delivery_timeout

    def mailbox(self, mailbox_id: str) -> MeshMailbox:
        if mailbox_id not in self.config.mailboxes:
            raise ConfigError(str(self.config.file), "mailboxes", f"mailbox {mailbox_id!r} is not configured")
        if mailbox_id not in self._mailboxes:
            self.config.require(mailboxes=[mailbox_id], destinations=False)  # secrets resolved when MESH is needed
            self._mailboxes[mailbox_id] = MeshMailbox(self.config.mesh, self.config.mailboxes[mailbox_id])
        return self._mailboxes[mailbox_id]

    def handshake(self, mailbox_id: str) -> None:
        """Validate a mailbox with MESH (daily, as MESH asks); a refused login raises ``mesh-auth``."""
        try:
            self.mailbox(mailbox_id).handshake()
        except MeshAuthRefused as exc:
            self.logins.refused(exc)
            raise
        self.logins.ok(mailbox_id)

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
        source_file: str | None = None,
    ) -> Message:
        """Validate a payload, store it durably and send it. Returns the message as stored then.

        A payload that fails validation, or an empty one, is quarantined (state ``rejected``) and
        :class:`~meshbridge.PayloadRejected` raised. A name that is not UTF-8 is stored with each
        such byte as ``%XX``. With ``source_file`` (a folder source's file), the file is stat'ed
        again once stored; if it changed meanwhile the copy is ``discarded`` unsent and
        :class:`~meshbridge.errors.SourceChanged` raised. A MESH rejection or outage leaves the message
        stored (``failed`` or ``accepted``) and raises :class:`~meshbridge.TransportError`;
        ``poll`` retries ``accepted`` ones. A refused login (:class:`~meshbridge.MeshAuthRefused`)
        leaves it ``accepted``, its attempts not counted, and raises ``mesh-auth`` once per mailbox.
        """
        r_obj: Route | None = None
        if route:
            r_obj = self.config.route(route)
            if r_obj.direction != "outbound":
                raise ConfigError(str(self.config.file), "routes", f"route {route!r} is not outbound")
            _same_as_route(r_obj, sender=sender, to=to, workflow=workflow_id)
            sender, to, workflow_id = r_obj.mailbox, r_obj.to, r_obj.workflow_id
            payload_type = payload_type or r_obj.payload_type
            subject, content_type = r_obj.subject, r_obj.content_type
        else:
            if not (sender and to and workflow_id):
                raise ConfigError(str(self.config.file), "", "give a route, or a sender, a recipient and a workflow id")
            subject = content_type = None
        self.mailbox(sender)  # refuse an unknown sender before storing anything
        assert to
        assert workflow_id
        ptype = payload_type or "auto"
        file = Path(path)
        try:  # one open file throughout: what was checked is what is stored
            with open_regular(file, follow=source_file is None) as source:
                opened = os.fstat(source.fileno())
                fields = dict(
                    route=route,
                    mailbox=sender,
                    to=to,
                    workflow_id=workflow_id,
                    filename=text_name(file.name),  # (the store and MESH keep names as text)
                    subject=subject,
                    content_type=content_type,
                    claim=True,
                    source_file=source_file,
                )
                if opened.st_size == 0:
                    empty = ValidationResult("binary" if ptype == "auto" else ptype, (EMPTY,))
                    message = self._quarantine(source, empty, fields)
                elif not needs_validation(ptype) and not (r_obj and r_obj.itk):
                    message = pipeline.accept(self.store, source, payload_type=ptype, **fields)
                else:
                    message = self._accept_validated(file, source, opened.st_size, ptype, r_obj, fields)
        except OSError as exc:
            raise PayloadError(f"cannot read {file}: {exc.strerror}") from None
        if source_file is not None:
            discard_if_changed(self.store, file, opened, message)
        if message["state"] == State.REJECTED:
            self._refuse(message)
        checkpoint("send:stored")
        try:
            self._transmit(message, claimed=True)
        except TransportError as exc:
            exc.message_id = message["id"]  # stored: the caller can follow it up
            raise
        return self.show(message["id"])

    def _transmit(self, message: Row, *, claimed: bool = False) -> bool:
        """Send one stored message now (see :func:`pipeline.transmit`), minding the mailbox's login."""
        mailbox = message["mailbox"]
        try:
            mesh, policy = self.mailbox(mailbox), self.retry_policy
            sent = pipeline.transmit(
                self.store,
                mesh,
                message,
                claimed=claimed,
                policy=policy,
                stopping=self.stopping,
                progress=self.progress,
            )
        except MeshAuthRefused as exc:
            self.logins.refused(exc)
            raise
        if sent:
            self.logins.ok(mailbox)
        return sent

    def _quarantine(self, source: BinaryIO, result: ValidationResult, fields: dict[str, Any]) -> Row:
        """Store a refused payload as ``rejected`` with its findings (:meth:`_refuse` raises)."""
        source.seek(0)
        return pipeline.accept(self.store, source, payload_type=result.payload_type, rejected=result, **fields)

    def _refuse(self, message: Row) -> None:
        findings = [Finding(**f) for f in json.loads(message["findings"])]
        errors = [f for f in findings if f.severity == "error"]
        summary = f"{message['filename']} refused: " + "; ".join(str(f) for f in errors[:3])
        self._notify(EventKind.REJECTED, message["id"], summary, findings=[f.as_dict() for f in findings])
        raise PayloadRejected(summary, findings, message["id"])

    def _accept_validated(
        self, file: Path, source: BinaryIO, size: int, ptype: str, route: Route | None, fields: dict[str, Any]
    ) -> Row:
        cap = int(route_options(route).get("max_size") or DEFAULT_CAP)
        if size > cap:
            result = oversize(ptype, size, cap)
            data = None
        else:
            data = source.read()
            result = check(
                self.plugins,
                data,
                payload_type=ptype,
                route=route,
                direction="out",
                workflow_id=fields["workflow_id"],
                filename=fields["filename"],
            )
        if not result.valid:
            return self._quarantine(source, result, fields)
        assert data is not None
        if route is not None:
            payload = Payload(data, result.payload_type, "out", fields["workflow_id"], fields["filename"], result)
            data, result = transformed(self.plugins, payload, route, ptype)  # checked again if changed
            if not result.valid:
                return self._quarantine(source, result, fields)  # the sender's bytes, the output's findings
        fields["content_type"] = fields["content_type"] or self.media_type(result)
        if route is None:
            return pipeline.accept(self.store, io.BytesIO(data), payload_type=result.payload_type, **fields)
        payload = Payload(data, result.payload_type, "out", fields["workflow_id"], fields["filename"], result)
        if route.itk is None:
            message = pipeline.accept(self.store, io.BytesIO(data), payload_type=result.payload_type, **fields)
            self._expect_domain_acks(message, payload, route)
            return message
        wrapped = acks.wrap(data, fields["content_type"], route)
        fields["content_type"] = wrapped.content_type
        extra = {"id": wrapped.message_id, "itk_message_id": wrapped.itk_message_id}
        message = pipeline.accept(
            self.store, io.BytesIO(wrapped.data), payload_type=result.payload_type, extra=extra, **fields
        )
        acks.expect(self.store, message["id"], route.itk)
        self._expect_domain_acks(message, payload, route)
        return message

    def _expect_domain_acks(self, message: Row, payload: Payload, route: Route) -> None:
        for protocol in self.plugins.ack_protocols():
            try:
                key = protocol.expects(payload, route)
            except Exception as exc:  # a broken plugin must not stop the send
                log.error("ack protocol %s failed on %s: %s: %s", protocol.name, message["id"], type(exc).__name__, exc)
                continue
            if key:
                self.store.remember_key(protocol.name, key, message["id"])
                self.store.expect(message["id"], protocol.name, acks.due(protocol.within(route)))

    def _domain_ack(self, message: Row, report: PollReport) -> bool:
        """Is this inbound message a domain acknowledgement? If so, correlate it."""
        protocols = self.plugins.ack_protocols()
        if not protocols or message["payload_size"] > DOMAIN_ACK_CAP:
            return False
        data = self.store.payloads.read(message["payload_sha256"])
        result = check(self.plugins, data, direction="in", workflow_id=message["workflow_id"])
        payload = Payload(data, result.payload_type, "in", message["workflow_id"], message["filename"], result)
        for protocol in protocols:
            try:
                match = protocol.answers(payload)
            except Exception as exc:
                log.error("ack protocol %s failed on %s: %s: %s", protocol.name, message["id"], type(exc).__name__, exc)
                continue
            if match is not None:
                if domain_acks.correlate(self.store, protocol, message, match, self._notify):
                    report.correlated.append(message["id"])
                return True
        return False

    def media_type(self, result: ValidationResult) -> str | None:
        """The MIME type of a validated payload: its type's, or the one its validator found."""
        found = result.details.get("media_type")
        payload_type = self.plugins.payload_types().get(result.payload_type)
        return found or (payload_type.media_type if payload_type else None)

    def flush(self, report: PollReport | None = None) -> PollReport:
        """Send every stored message still waiting (``accepted``), and resume sends whose sender died."""
        report = report or PollReport()
        policy = self.retry_policy
        self.logins.probe(report)  # a refused login fixed since: its messages are due now
        waiting = [m for m in self.store.messages(state="accepted", direction="out") if pipeline.due_for_sending(m)]
        for message in waiting + self.store.stale_sending(policy.lease):
            if self.stopping.is_set():
                break
            if message["mailbox"] in report.login_refused:  # one refused login a pass: the others wait
                continue
            try:
                if self._transmit(message):
                    report.sent.append(message["id"])
            except MeshAuthRefused as exc:
                report.problems.append(f"send {message['id']}: {exc}")
                report.mailbox_trouble(exc.mailbox, refused=True)
            except SendAbandoned as exc:
                report.problems.append(Logged(f"send {message['id']}: {exc}"))
                report.mailbox_trouble(message["mailbox"])
                self._notify(EventKind.FAILED, message["id"], str(exc))
            except MeshRejected as exc:
                report.problems.append(Logged(f"send {message['id']}: {exc}"))
                self._notify(EventKind.FAILED, message["id"], f"{message['id']} refused by MESH: {exc}", code=exc.code)
            except DiskFull as exc:  # the next pass sends it
                store_full(report, exc)
                break
            except TransportError as exc:  # recorded as send-failed, due again after a backoff
                report.problems.append(Logged(f"send {message['id']}: {exc}"))
            except MeshbridgeError as exc:
                report.problems.append(f"send {message['id']}: {exc}")
                self.logins.failed(report, message["mailbox"], exc)
        return report

    # -- inbound --------------------------------------------------------------------------

    def poll(self, mailbox: str | None = None, *, track: bool = True) -> PollReport:
        """One pass: flush sends, collect every inbox, deliver what is due, apply REPORTs, refresh tracking.

        Each delivery is claimed in the store with a lease and has a total deadline, so a second
        process on the same store never delivers a message twice at once, and a broken or slow
        destination only fails its own messages (retried with backoff), never the pass.
        """
        ids = [mailbox] if mailbox else list(self.config.mailboxes)
        for mailbox_id in ids:
            self.mailbox(mailbox_id)
        report = self.flush()
        with goes_on(report):
            self.collect(mailbox, report)
        with goes_on(report):
            self.deliver(mailboxes=ids, report=report)
        self.flush(report)  # responses made while collecting
        if track:
            self.track(report)
        with goes_on(report):
            self.sweep(report)
        return report

    def collect(self, mailbox: str | None = None, report: PollReport | None = None) -> PollReport:
        """Collect every inbox (or one) and do all that needs no destination: acknowledge in MESH,
        apply REPORTs and acknowledgements, answer and validate (``valid``: ready to deliver).

        Holds the store's ``inbound`` lock: a second process collecting from the same store waits,
        so no message is downloaded or answered twice.
        """
        report = report or PollReport()
        ids = [mailbox] if mailbox else list(self.config.mailboxes)
        with self.store.exclusive("inbound"):  # one process at a time collects
            for mailbox_id in ids:
                if self.stopping.is_set():
                    break
                if mailbox_id not in report.login_refused:  # refused already on this pass: not asked twice
                    self._collect(mailbox_id, report)
            self._prepare_all(report)
        return report

    def sweep(self, report: PollReport | None = None) -> PollReport:
        """Flag expectations whose deadline passed (once each) and tell the plugins."""
        report = report or PollReport()
        for row in self.store.sweep_overdue():
            report.overdue.append(row["message_id"])
            self._notify(
                EventKind.OVERDUE,
                row["message_id"],
                f"{row['message_id']}: {row['kind']} was due by {row['due_at']}",
                expected=row["kind"],
                due_at=row["due_at"],
            )
        return report

    def retry(self, message_id: str) -> Message:
        """Send a ``failed`` outbound message again, or deliver an ``undelivered`` inbound one again
        (a fresh set of attempts; the inbound one is delivered by the next pass). Raises
        :class:`~meshbridge.RetryRefused` when it cannot be retried, and what sending it now raises."""
        message = self.store.get(message_id)
        problem = retries.refusal(message)
        if problem is None and not retries.requeue(self.store, message):
            problem = "its state changed meanwhile (another process retried it?)"
        if problem:
            raise RetryRefused(f"{message['id']}: {problem}")
        if message["direction"] == Direction.OUT:
            self._transmit(self.store.get(message["id"]))
        return self.show(message["id"])

    def retry_many(
        self,
        ids: Sequence[str] = (),
        *,
        state: State | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> retries.Retries:
        """Retry the messages ``ids`` name, or else every retriable one in ``state`` (``failed``,
        ``undelivered``, or both when None) last changed within ``[since, until]``; outbound ones
        are sent at once. Each comes back queued (its state now) or with why it could not be."""
        if state is not None and state not in RETRIABLE.values():
            raise InvalidRequest(f"only failed or undelivered messages can be retried, not {state!r} ones")
        done = retries.Retries()
        rows = retries.by_ids(self.store, ids, done) if ids else retries.matching(self.store, state, since, until)
        return retries.retry(self.store, rows, self._transmit, done)

    def replay(self, message_id: str, *, force: bool = False) -> Message:
        """Deliver an inbound message again, or route and validate an ``unrouted`` or ``invalid``
        one again against the current config (see :mod:`meshbridge.replay`)."""
        from .replay import replay

        return self.show(replay(self, message_id, force=force)["id"])

    def ack(self, message_id: str, *, code: str | None = None, nack: bool = False, text: str | None = None) -> Message:
        """The end application's business response to an inbound ITK message; it goes back to the sender
        on the route's ack workflow.

        A positive ``code`` (default 30001, "patient known here"), or with ``nack=True`` a negative one
        (e.g. 30002); a code of the other kind, or not a business code, raises
        :class:`~meshbridge.InvalidRequest` and nothing is sent.
        """
        return self.show(self.acks.business_ack(message_id, code, text, nack=nack)["id"])

    @property
    def acks(self) -> Acknowledgements:
        if self._acks is None:
            self._acks = Acknowledgements(self.config, self.store, self.plugins, self.mailbox, self._notify)
        return self._acks

    def _collect(self, mailbox_id: str, report: PollReport) -> None:
        mesh = self.mailbox(mailbox_id)
        # Stored but not recorded as acknowledged (a crash on either side of the acknowledge): the
        # inbox may no longer list it, so finish it from the store. A repeated acknowledge is harmless.
        stored = [m for m in self.store.messages(state="received", direction="in") if m["mailbox"] == mailbox_id]
        self._acknowledge(mesh, stored, report)
        batch: list[Row] = []
        try:
            self.store.space.room_for(0)  # no room for new messages: leave them in MESH
            for mesh_id in mesh.inbox():
                try:
                    batch.append(pipeline.download(self.store, mesh, mesh_id, durable=False, progress=self.progress))
                except (DiskFull, MeshAuthRefused):
                    raise
                except MeshbridgeError as exc:
                    report.problems.append(f"collect {mesh_id} for {mailbox_id}: {exc}")
                    self.logins.failed(report, mailbox_id, exc)
                if len(batch) >= RECEIVE_BATCH:
                    self._acknowledge(mesh, batch, report)
                    batch = []
            self.logins.ok(mailbox_id)  # the inbox was listed: the login works
        except DiskFull as exc:  # what is not stored stays in MESH for the next pass
            store_full(report, exc)
        except MeshbridgeError as exc:
            report.problems.append(str(exc))
            self.logins.failed(report, mailbox_id, exc)
        self._acknowledge(mesh, batch, report)

    def _acknowledge(self, mesh: MeshMailbox, batch: list[Row], report: PollReport) -> None:
        """Acknowledge stored messages in MESH once their rows are durable: one fsync for the batch
        (also for rows another process stored and died before syncing)."""
        try:
            self.store.make_durable(*(m["id"] for m in batch))
        except DiskFull as exc:  # not durable: not acknowledged, MESH keeps them
            store_full(report, exc)
            return
        for message in batch:
            try:
                route = pipeline.inbound_route(self.config, message) if pipeline.undecodable(message) else None
                if route is not None and route.itk is not None:  # its 10009 will be new data: room first
                    self.store.space.room_for(0)
                pipeline.acknowledge(self.store, mesh, message)
                report.received.append(message["id"])
                if pipeline.undecodable(message):
                    report.invalid.append(message["id"])
                    summary = f"{message['id']} from {message['peer']}: {message['last_error']}"
                    self._notify(EventKind.INVALID, message["id"], summary)
                    if route is not None and route.itk is not None:
                        self.acks.answer_undecodable(route, message)
            except DiskFull as exc:
                store_full(report, exc)
                break
            except MeshbridgeError as exc:
                report.problems.append(f"acknowledge {message['mesh_message_id']} in {mesh.id}: {exc}")
                self.logins.failed(report, mesh.id, exc)

    def _prepare_all(self, report: PollReport) -> None:
        """Every collected message (``mesh-acked``): REPORTs and acknowledgements applied, DATA
        answered (ITK) and validated. What a route can deliver becomes ``valid``; delivering is
        :meth:`deliver`'s. A message that fails here (a plugin that raises included) is reported
        and the others go on."""
        for message in self.store.messages(state="mesh-acked", direction="in"):
            if self.stopping.is_set():
                return
            try:
                self._prepare(message, report)
                self._tally_kept(message, report)
            except DiskFull as exc:
                store_full(report, exc)
                break
            except MeshbridgeError as exc:
                report.problems.append(f"prepare {message['id']}: {exc}")
            except Exception as exc:
                log.exception("preparing %s failed", message["id"])
                report.problems.append(f"prepare {message['id']}: {type(exc).__name__}: {exc}")

    def _tally_kept(self, message: Row, report: PollReport) -> None:
        """Count a message kept as ``orphan`` or ``duplicate`` by this pass as such in the report."""
        state = self.store.get(message["id"])["state"]
        if state in ("orphan", "duplicate"):
            getattr(report, state).append(message["id"])

    def _prepare(self, message: Row, report: PollReport, respond: bool = True) -> None:
        """Route one ``mesh-acked`` message and validate it (ITK: answer it, unless not ``respond``)."""
        if message["message_type"] == "REPORT":
            self._apply_report(message, report)
            return
        if self._domain_ack(message, report):
            return
        route = pipeline.inbound_route(self.config, message)
        if route is None and message["workflow_id"] in acks.ack_workflows(self.config, message["mailbox"]):
            if self.acks.receive_response(message):
                report.correlated.append(message["id"])
            return
        if route is None or route.destination is None:
            pipeline.mark_unrouted(self.store, message, route)
            report.unrouted.append(message["id"])
            self._notify(
                EventKind.UNROUTED,
                message["id"],
                f"{message['id']} from {message['peer']} on workflow "
                f"{message['workflow_id']}: no inbound route; kept in the store",
            )
            return
        if route.itk:
            state = self.acks.receive_message(route, message, respond=respond)
            if state == "invalid":  # a duplicate is counted as such (_tally_kept)
                report.invalid.append(message["id"])
            return
        result = pipeline.validate_inbound(self.store, self.plugins, route, message)
        if not result.valid:
            report.invalid.append(message["id"])
            self._notify(
                EventKind.INVALID,
                message["id"],
                f"{message['id']} on {route.name} is invalid: " + "; ".join(str(f) for f in result.errors[:3]),
                findings=[f.as_dict() for f in result.findings],
            )
            return
        self.store.transition(  # lazy: lost in a power cut, the message is validated again
            message["id"],
            "valid",
            from_states=("mesh-acked",),
            detail={"payload_type": result.payload_type},
            route=route.name,
            payload_type=result.payload_type,
            durable=False,
        )

    def delivery_routes(self, mailboxes: list[str] | None = None) -> list[Route]:
        """Inbound routes with a destination (on these mailboxes)."""
        return [
            r
            for r in self.config.routes
            if r.direction == "inbound" and r.destination and (mailboxes is None or r.mailbox in mailboxes)
        ]

    def deliver(
        self, route: str | None = None, *, mailboxes: list[str] | None = None, report: PollReport | None = None
    ) -> PollReport:
        """Deliver every ``valid`` inbound message that is due, on one route or all of them.

        Each is claimed first (a lease of ``[service] delivery_lease`` on the lease clock, renewed
        while its destination works: see :class:`pipeline.inbound.Heartbeat`), delivered within
        its deadline, and on failure due again after a backoff; after ``[service]
        delivery_attempts`` it is ``undelivered``, with an event. Stops between messages when :attr:`stopping` is set.
        """
        report = report or PollReport()
        routes = [self.config.route(route)] if route else self.delivery_routes(mailboxes)
        for r in routes:
            if self.stopping.is_set():
                break
            try:
                self._deliver_route(r, report)
            except DiskFull as exc:
                store_full(report, exc)
                break
            except MeshbridgeError as exc:
                report.problems.append(f"deliver on {r.name}: {exc}")
        return report

    def _deliver_route(self, route: Route, report: PollReport) -> None:
        assert route.destination is not None
        policy, deadline = self.delivery_policy, self.delivery_deadline(route)
        due = [
            m
            for m in self.store.deliverable(route.mailbox, route.workflow_id, policy.lease)
            if pipeline.inbound_route(self.config, m) == route
        ]
        if not due:
            return
        [(kind, target)] = route.destination.items()
        folder = kind == "folder"
        # folder deliveries are staged a batch at a time (see FolderBatch); one process at a time
        # stages into a folder, so the temp files left by a crashed pass can be cleaned
        lock = f"folder-{hashlib.sha256(str(target).encode()).hexdigest()[:12]}"
        with self.store.exclusive(lock) if folder else nullcontext():
            batch = FolderBatch(self.store.tag)
            if folder:
                batch.clean([target])
            delivered = len(report.delivered)
            size = RECEIVE_BATCH if folder else 1  # a folder batch is claimed at once: it is quick
            try:
                for start in range(0, len(due), size):
                    if self.stopping.is_set():
                        break
                    chunk = due[start : start + size]
                    taken = self.store.claim_deliveries([m["id"] for m in chunk], policy.lease)
                    for message in chunk:
                        if message["id"] in taken:
                            claimed = {**message, "lease_holder": taken[message["id"]]}
                            self._deliver(route, claimed, batch, report, policy, deadline)
            finally:
                try:
                    batch.finish()
                finally:
                    if len(report.delivered) > delivered:
                        self.store.sync()  # folder deliveries were recorded lazily

    def _deliver(
        self,
        route: Route,
        message: Row,
        batch: FolderBatch,
        report: PollReport,
        policy: pipeline.RetryPolicy,
        deadline: float,
    ) -> None:
        def done(error: MeshbridgeError | None) -> None:
            if isinstance(error, DiskFull):
                store_full(report, error)
            elif error:
                self._delivery_failed(route, message, error, report)
            else:
                report.delivered.append(message["id"])

        try:
            if pipeline.deliver_inbound(
                self.store,
                self.plugins,
                route,
                message,
                batch=batch,
                on_done=done,
                policy=policy,
                deadline=deadline,
                stopping=self.stopping,
                claim=message["lease_holder"],
            ):
                report.delivered.append(message["id"])
            elif len(batch) >= RECEIVE_BATCH or batch.size >= BATCH_BYTES:
                batch.finish()
        except DeliveryInterrupted as exc:
            report.problems.append(Logged(f"deliver {message['id']}: {exc}"))
        except DiskFull:
            raise  # a delivery that cannot be recorded would be made again: the route stops here
        except MeshbridgeError as exc:
            self._delivery_failed(route, message, exc, report)
        except Exception as exc:  # not the destination's (deliver_inbound catches all of those): the rest go on
            log.exception("delivering %s failed", message["id"])
            report.problems.append(f"deliver {message['id']}: {type(exc).__name__}: {exc}")

    def _delivery_failed(self, route: Route, message: Row, error: MeshbridgeError, report: PollReport) -> None:
        report.problems.append(Logged(f"deliver {message['id']}: {error}"))  # delivery-failed or undelivered
        if self.store.get(message["id"])["state"] == "undelivered":
            report.undelivered.append(message["id"])
            self._notify(
                EventKind.UNDELIVERED,
                message["id"],
                f"{message['id']} on {route.name} not delivered after "
                f"{self.config.service.delivery_attempts} attempts: {error}",
                route=route.name,
                reason=str(error),
            )

    def _apply_report(self, message: Row, report: PollReport) -> None:
        linked = pipeline.apply_report(self.store, message)
        if linked:
            report.undeliverable.append(linked["id"])
            self._notify(
                EventKind.UNDELIVERABLE, linked["id"], f"{linked['id']} undeliverable: {message['last_error']}"
            )
        else:
            problem = (
                f"MESH report {message['mesh_message_id']} names {message['linked_message_id']}, "
                "which this store did not send"
            )
            report.problems.append(Logged(problem))
            self._notify(EventKind.ORPHAN, message["id"], problem)

    def track(self, report: PollReport | None = None, *, force: bool = False) -> PollReport:
        """Refresh MESH tracking of sent messages (rarely: ``[mesh] tracking_interval``)."""
        report = report or PollReport()
        interval = self.config.mesh.tracking_interval
        for message in self.store.messages(state="sent", direction="out"):
            if not (force or pipeline.tracking_due(message, interval)) or message["mailbox"] in report.login_refused:
                continue
            try:
                pipeline.track(self.store, self.mailbox(message["mailbox"]), message)
                report.tracked.append(message["id"])
            except DiskFull as exc:
                store_full(report, exc)
                break
            except MeshbridgeError as exc:
                report.problems.append(f"track {message['id']}: {exc}")
                self.logins.failed(report, message["mailbox"], exc)
        return report


def store_full(report: PollReport, exc: DiskFull) -> None:
    """One line per pass for a full or failing store disk, however many steps met it."""
    if not any(problem.startswith("store disk") for problem in report.problems):
        report.problems.append(
            f"{exc}; new messages wait (in MESH, in source folders) until the store can write again, "
            "what is stored is still delivered and sent"
        )


@contextmanager
def goes_on(report: PollReport) -> Iterator[None]:
    """A full store disk ends this step of the pass with one line; the pass and the service go on."""
    try:
        yield
    except DiskFull as exc:
        store_full(report, exc)


def _same_as_route(route: Route, *, sender: str | None, to: str | None, workflow: str | None) -> None:
    """Refuse a sender, recipient or workflow given beside ``route`` that differs from the route's own."""
    given = (("sender", sender, route.mailbox), ("recipient", to, route.to), ("workflow", workflow, route.workflow_id))
    differ = [f"{what} {value} (the route's is {own})" for what, value, own in given if value and value != own]
    if differ:
        raise InvalidRequest(
            f"route {route.name!r} contradicts the {', '.join(differ)}: give the route alone, or no route and all three"
        )
