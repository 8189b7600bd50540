"""The facade that wires config, store, MESH transport and pipeline together."""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from . import certificates, collecting, delivering, following, pipeline, retries, sending, steps
from .acks import Acknowledgements
from .actors import Actor
from .config import Config, Route, load
from .dispatching import Dispatched, Dispatcher
from .errors import (
    ConfigError,
    InvalidRequest,
    MeshAuthRefused,
    PayloadError,
    RetryRefused,
    SourceTaken,
    TransportError,
)
from .events import EventKind, Notification
from .faults import checkpoint
from .logins import LoginWatch
from .mesh import MeshMailbox
from .models import RETRIABLE, Direction, Message, State, TimelineKind
from .payloads.base import ValidationResult
from .pipeline import PollReport, goes_on
from .pipeline.outbound import NewMessage
from .plugins import Plugins
from .progress import Progress
from .reader import Reading
from .sources import discard_if_changed, open_regular, text_name
from .store import Store, StoredMessage, connect
from .telemetry import Telemetry
from .validation import needs_validation

log = logging.getLogger("meshbridge")

__all__ = ["Bridge", "PollReport"]


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _then_dispatch(operation: Callable[Concatenate[Bridge, _P], _R]) -> Callable[Concatenate[Bridge, _P], _R]:
    """The operation, then (the outermost one, also when it raises) a dispatcher pass, unless
    the Bridge's ``dispatch_after`` is off: what it queued reaches the plugins and notifiers."""

    @functools.wraps(operation)
    def run(self: Bridge, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        self._depth += 1
        try:
            return operation(self, *args, **kwargs)
        finally:
            self._depth -= 1
            if not self._depth and self.dispatch_after:
                self._dispatch_quietly()

    return run


class Bridge(Reading):
    """One meshbridge: a config, its store and a MESH session per mailbox. Reading (``status``,
    ``messages``, ``show``) is :class:`~meshbridge.reader.Reading`'s, the same as a Reader's."""

    def __init__(self, config: Config, plugins: Plugins | None = None) -> None:
        self.config = config
        self.plugins = plugins or Plugins()
        self.plugins.configure(config)  # plugin tables and destination targets: refused now, not on every poll
        self._check_routes()
        self.store: Store = connect(config.store)
        self.telemetry = Telemetry(config, self.store)  # its metrics (served at /metrics by the web package)
        self._mailboxes: dict[str, MeshMailbox] = {}
        self._acks: Acknowledgements | None = None
        self.logins = LoginWatch(self.store, self.handshake)
        self.stopping = threading.Event()  # set on SIGTERM: an upload stops after the chunk in hand
        self.progress: Progress | None = None  # told how chunked sends and downloads go (the CLI's bar)
        self.dispatch_after = True  # each operation ends with a dispatcher pass (the service: a job instead)
        self._dispatcher: Dispatcher | None = None
        self._depth = 0  # operations in hand (the outermost one dispatches)

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

    def notify(self, kind: EventKind, message_id: str | None, summary: str, **detail: Any) -> Notification:
        """Queue a notification in the store's outbox, in a transaction of its own, and log it
        unless the store logs its step already. (What the pipeline notifies is queued with the
        change it reports instead: the store's writes take an ``alert``.) The dispatcher hands it
        to the plugins (``meshbridge_on_event``) and the ``[alerts]`` notifiers."""
        return self._queue(Notification(kind, message_id, summary, detail))

    def _queue(self, notification: Notification) -> Notification:
        if notification.kind not in steps.NOTIFIED:  # those are the step lines the store logs (meshbridge.steps)
            log.warning("%s: %s", notification.kind, notification.summary)
        self.store.outbox.queue(notification)
        return notification

    @property
    def dispatcher(self) -> Dispatcher:
        """Hands what the outbox holds to the plugins and the ``[alerts]`` notifiers (:mod:`.dispatching`)."""
        if self._dispatcher is None:
            self._dispatcher = Dispatcher(self.store, self.plugins, self.config.model.alerts)
        return self._dispatcher

    def dispatch(self) -> Dispatched:
        """One pass of the dispatcher: every notification that is due, to each of its targets.
        Run after each operation of this Bridge (unless :attr:`dispatch_after` is False, as in the
        service's workers, where a job of its own runs it)."""
        return self.dispatcher.run(self.stopping)

    def check_certificates(self) -> list[Notification]:
        """Queue ``certificate-expiring`` for the MESH client certificate and CA bundle if either
        expires within ``[alerts] certificate_warning`` (once a day each); returns those queued now."""
        mesh = self.config.mesh
        files = {"client_cert": mesh.client_cert, "ca_bundle": mesh.ca_bundle}
        found = certificates.expiring(files, self.config.model.alerts.certificate_warning)
        return [self._queue(n) for n in found if self.store.outbox.queue(n)]

    def _dispatch_quietly(self) -> None:
        """A dispatcher pass after an operation: its own failure (a store that went away) is
        logged, never raised over the operation's outcome; the next pass picks it up."""
        try:
            self.dispatch()
        except Exception as exc:
            log.error("dispatching notifications failed: %s: %s", type(exc).__name__, exc)

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
            mailbox = self.config.mailboxes[mailbox_id]
            self._mailboxes[mailbox_id] = MeshMailbox(self.config.mesh, mailbox, self.telemetry.mesh(mailbox_id))
        return self._mailboxes[mailbox_id]

    @_then_dispatch
    def handshake(self, mailbox_id: str, *, alert: bool = False) -> None:
        """Validate a mailbox with MESH (daily, as MESH asks); a refused login raises ``mesh-auth``.
        With ``alert`` (the service's daily one), any other failure queues ``handshake-failed``,
        once a day per mailbox."""
        try:
            self.mailbox(mailbox_id).handshake()
        except MeshAuthRefused as exc:
            self.logins.refused(exc)
            raise
        except TransportError as exc:
            if alert:
                day = datetime.now(UTC).strftime("%Y-%m-%d")
                key = hashlib.sha256(f"handshake-failed:{mailbox_id}:{day}".encode()).hexdigest()[:32]
                summary = f"the MESH handshake of mailbox {mailbox_id} failed: {exc}"
                failed = Notification(
                    EventKind.HANDSHAKE_FAILED, None, summary, {"mailbox": mailbox_id, "reason": str(exc)}, key
                )
                if self.store.outbox.queue(failed):
                    log.warning("%s: %s", failed.kind, summary)
            raise
        self.logins.ok(mailbox_id)

    # -- outbound -------------------------------------------------------------------------

    @_then_dispatch
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
        by: Actor | None = None,
    ) -> Message:
        """Validate a payload, store it durably and send it. Returns the message as stored then.
        ``by``: who asked (a person at the command line, an API token), named on its timeline.

        A payload that fails validation, or an empty one, is quarantined (state ``rejected``) and
        :class:`~meshbridge.PayloadRejected` raised. A name that is not UTF-8 is stored with each
        such byte as ``%XX``, and so is a control character (MESH refuses those in its headers).
        With ``source_file`` (a folder source's file), the file is stat'ed
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
            sending.same_as_route(r_obj, sender=sender, to=to, workflow=workflow_id)
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
                fields = NewMessage(
                    route=route,
                    mailbox=sender,
                    to=to,
                    workflow_id=workflow_id,
                    filename=text_name(file.name),  # (the store and MESH keep names as text)
                    subject=subject,
                    content_type=content_type,
                    claim=True,
                    source_file=source_file,
                    by=by,
                )
                if opened.st_size == 0:
                    empty = ValidationResult("binary" if ptype == "auto" else ptype, (sending.EMPTY,))
                    message = sending.quarantine(self.store, source, empty, fields)
                elif not needs_validation(ptype) and not (r_obj and r_obj.itk):
                    message = pipeline.accept(self.store, source, payload_type=ptype, **fields)
                else:
                    message = sending.accept_validated(self, file, source, opened.st_size, ptype, r_obj, fields)
        except FileNotFoundError:
            if source_file is not None:  # another process took it from the folder (and sends it)
                raise SourceTaken(f"source file {source_file} was taken by another process") from None
            raise PayloadError(f"cannot read {file}: no such file") from None
        except OSError as exc:
            raise PayloadError(f"cannot read {file}: {exc.strerror}") from None
        if source_file is not None:
            discard_if_changed(self.store, file, opened, message)
        if message.state == State.REJECTED:
            sending.refuse(self, message)
        checkpoint("send:stored")
        try:
            self._transmit(message, claimed=True)
        except TransportError as exc:
            exc.message_id = message.id  # stored: the caller can follow it up
            raise
        return self.show(message.id)

    def _transmit(self, message: StoredMessage, *, claimed: bool = False) -> bool:
        return sending.transmit(self, message, claimed=claimed)

    def media_type(self, result: ValidationResult) -> str | None:
        """The MIME type of a validated payload: its type's, or the one its validator found."""
        found = result.details.get("media_type")
        payload_type = self.plugins.payload_types().get(result.payload_type)
        return found or (payload_type.media_type if payload_type else None)

    @_then_dispatch
    def flush(self, report: PollReport | None = None) -> PollReport:
        """Send every stored message still waiting (``accepted``), and resume sends whose sender died."""
        report = report or PollReport()
        sending.flush(self, report)
        return report

    # -- inbound --------------------------------------------------------------------------

    @_then_dispatch
    def poll(self, mailbox: str | None = None, *, track: bool = True) -> PollReport:
        """One pass: flush sends, collect every inbox, deliver what is due, apply REPORTs, refresh tracking.

        Each delivery is claimed in the store with a lease and has a total deadline, so a second
        process on the same store never delivers a message twice at once, and a broken or slow
        destination only fails its own messages (retried with backoff), never the pass.
        """
        with self.telemetry.polling():
            return self._poll(mailbox, track=track)

    def _poll(self, mailbox: str | None, *, track: bool) -> PollReport:
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

    @_then_dispatch
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
                    collecting.collect_mailbox(self, mailbox_id, report)
            collecting.prepare_all(self, report)
        return report

    @_then_dispatch
    def sweep(self, report: PollReport | None = None) -> PollReport:
        """Flag expectations whose deadline passed (once each) and tell the plugins."""
        report = report or PollReport()
        following.sweep(self, report)
        return report

    @_then_dispatch
    def retry(self, message_id: str, *, by: Actor | None = None) -> Message:
        """Send a ``failed`` outbound message again, or deliver an ``undelivered`` inbound one again
        (a fresh set of attempts; the inbound one is delivered by the next pass). Raises
        :class:`~meshbridge.RetryRefused` when it cannot be retried, and what sending it now raises.
        ``by``: who asked, named on its ``retry`` timeline entry."""
        message = self.store.get(message_id)
        problem = retries.refusal(message)
        if problem is None and not retries.requeue(self.store, message, by):
            problem = "its state changed meanwhile (another process retried it?)"
        if problem:
            raise RetryRefused(f"{message.id}: {problem}")
        if message.direction == Direction.OUT:
            self._transmit(self.store.get(message.id))
        return self.show(message.id)

    @_then_dispatch
    def retry_many(
        self,
        ids: Sequence[str] = (),
        *,
        state: State | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        by: Actor | None = None,
    ) -> retries.Retries:
        """Retry the messages ``ids`` name, or else every retriable one in ``state`` (``failed``,
        ``undelivered``, or both when None) last changed within ``[since, until]``; outbound ones
        are sent at once. Each comes back queued (its state now) or with why it could not be."""
        if state is not None and state not in RETRIABLE.values():
            raise InvalidRequest(f"only failed or undelivered messages can be retried, not {state!r} ones")
        done = retries.Retries()
        rows = retries.by_ids(self.store, ids, done) if ids else retries.matching(self.store, state, since, until)
        return retries.retry(self.store, rows, self._transmit, done, by)

    @_then_dispatch
    def replay(self, message_id: str, *, force: bool = False, by: Actor | None = None) -> Message:
        """Deliver an inbound message again, or route and validate an ``unrouted`` or ``invalid``
        one again against the current config (see :mod:`meshbridge.replay`); ``by``: who asked,
        named on its ``replay`` timeline entry."""
        from .replay import replay

        return self.show(replay(self, message_id, force=force, by=by).id)

    @_then_dispatch
    def ack(
        self,
        message_id: str,
        *,
        code: str | None = None,
        nack: bool = False,
        text: str | None = None,
        by: Actor | None = None,
    ) -> Message:
        """The end application's business response to an inbound ITK message; it goes back to the sender
        on the route's ack workflow.

        A positive ``code`` (default 30001, "patient known here"), or with ``nack=True`` a negative one
        (e.g. 30002); a code of the other kind, or not a business code, raises
        :class:`~meshbridge.InvalidRequest` and nothing is sent. ``by``: who answered, named on the
        timeline entry of the answer.
        """
        return self.show(self.acks.business_ack(message_id, code, text, nack=nack, by=by).id)

    def response_to(self, message_id: str) -> Message | None:
        """The response we last stored to send to this inbound message (its ITK ack or nack), if any."""
        responded = [
            e for e in self.store.events(message_id) if e.kind == TimelineKind.RESPONDED and e.detail.get("response")
        ]
        return self.show(responded[-1].detail["response"]) if responded else None

    def login_refused(self, mailbox: str | None) -> bool:
        """Does MESH refuse this mailbox's login now (until a call succeeds: see ``mesh-auth``)?
        ``None`` (a message without a mailbox) is never refused."""
        return mailbox in self.store.logins.refusing()

    @property
    def acks(self) -> Acknowledgements:
        if self._acks is None:
            self._acks = Acknowledgements(
                self.config,
                self.store,
                self.plugins,
                self.mailbox,
                transmit=lambda row: self._transmit(row, claimed=True),
                correlated=self.telemetry.correlated,
            )
        return self._acks

    def delivery_routes(self, mailboxes: list[str] | None = None) -> list[Route]:
        """Inbound routes with a destination (on these mailboxes)."""
        return [
            r
            for r in self.config.routes
            if r.direction == "inbound" and r.destination and (mailboxes is None or r.mailbox in mailboxes)
        ]

    @_then_dispatch
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
        delivering.deliver_routes(self, routes, report)
        return report

    @_then_dispatch
    def track(self, report: PollReport | None = None, *, force: bool = False) -> PollReport:
        """Refresh MESH tracking of sent messages (rarely: ``[mesh] tracking_interval``)."""
        report = report or PollReport()
        following.track(self, report, force=force)
        return report
