"""Inbound steps: download (to disk, row durable) -> MESH acknowledge -> report | route -> validate -> deliver."""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import errno
import itertools
import json
import logging
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO

from .. import clock
from ..config import DELIVERY_TIMEOUT, Config, Route
from ..destinations import FolderBatch, kill_commands, safe_name, to_folder
from ..destinations import deliver as deliver_to
from ..errors import DeliveryError, DeliveryInterrupted, MeshbridgeError, StoreError, UndecodableBody
from ..events import EventKind, Notification
from ..faults import checkpoint
from ..mesh import Envelope, MeshMailbox
from ..models import IN_FLIGHT, Direction, State, TimelineKind
from ..payloads.base import Finding, ValidationResult
from ..plugins import Plugins
from ..progress import Progress, named
from ..store import Store, StoredMessage
from ..store.space import CHECK_EVERY, disk_error
from ..validation import DEFAULT_CAP, check, needs_validation, oversize, route_options
from .outbound import RetryPolicy

log = logging.getLogger("meshbridge")
ABANDON_GRACE = 5.0  # seconds past its deadline before a destination's thread is abandoned
STOP_GRACE = 2.0  # seconds a stopped delivery's thread gets to report after its commands were killed
BAD_BODY_ATTEMPTS = 5  # downloads that fail to decode before the body is stored as received anyway


def download(
    store: Store, mesh: MeshMailbox, mesh_id: str, *, durable: bool = True, progress: Progress | None = None
) -> StoredMessage:
    """Download one message and record it ``received``: stored, not yet acknowledged in MESH.

    ``durable=False`` records it lazily: :meth:`Store.make_durable` on a batch makes them all
    durable with one sync instead of one each (:func:`acknowledge` syncs if the caller did not).

    A body that cannot be decoded raises :class:`UndecodableBody` and is left in MESH (a cut may
    be a passing fault), until the same raw bytes have been seen twice or ``BAD_BODY_ATTEMPTS``
    downloads failed so: then the raw bytes are recorded, to become ``invalid`` once acknowledged.
    ``progress`` follows a chunked download's bytes.
    """
    message = store.find(Direction.IN, mesh_id)
    if message is None:
        seen_before = store.bad_body_seen(mesh_id)
        undecodable: UndecodableBody | None = None
        with _raw_copy(store, seen_before) as copy:
            try:
                raw = _within_space(store, copy) if copy else None
                envelope, (sha, size) = mesh.download(
                    mesh_id, store.payloads.write, raw=raw, progress=named(progress, f"receive {mesh_id} for {mesh.id}")
                )
            except UndecodableBody as exc:
                sha, size = _give_up(store, mesh.id, mesh_id, exc, copy)
                envelope, undecodable = exc.envelope, exc
        checkpoint("receive:downloaded")
        try:
            message = _record(store, mesh.id, envelope, sha, size, durable, undecodable)
        except StoreError:  # another process stored it first
            message = store.find(Direction.IN, mesh_id)
            if message is None:
                raise
        if seen_before:
            store.forget_bad_body(mesh_id)
    return message


@contextlib.contextmanager
def _raw_copy(store: Store, wanted: bool) -> Iterator[BinaryIO | None]:
    """An anonymous temporary file for the raw bytes of a body that failed to decode before
    (nothing is left behind whatever happens); None the first time, when no copy is kept."""
    if not wanted:
        yield None
        return
    with tempfile.TemporaryFile(dir=store.payloads.root / "tmp", buffering=0) as copy:  # closing never writes
        yield copy


def _within_space(store: Store, copy: BinaryIO) -> Callable[[bytes], None]:
    """``copy.write`` for the raw bytes, which are new data on the store's disk like any payload:
    the free space is checked as the copy grows, and a full disk is :class:`DiskFull`, never a
    disk filled to its last byte nor an ``OSError`` taken for a failed download."""
    written = checked = 0

    def write(block: bytes) -> None:
        nonlocal written, checked
        with _disk(store):
            view = memoryview(block)
            while view:  # unbuffered: a write may take part of the block
                done = copy.write(view)
                if not done:
                    raise OSError(errno.ENOSPC, "no byte of the raw copy could be written")
                view = view[done:]
        written += len(block)
        if written - checked >= CHECK_EVERY:
            store.space.room_for(0)
            checked = written

    return write


@contextlib.contextmanager
def _disk(store: Store) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        full = disk_error(exc, store.payloads.root)
        if full is None:
            raise
        raise full from None


def _give_up(store: Store, mailbox: str, mesh_id: str, exc: UndecodableBody, copy: BinaryIO | None) -> tuple[str, int]:
    """Store the raw copy of an undecodable body, once seen often enough; else raise (try again)."""
    same, attempts = store.sight_bad_body(mailbox, mesh_id, exc.raw_sha256, str(exc))
    if copy is None or (same < 2 and attempts < BAD_BODY_ATTEMPTS):
        raise UndecodableBody(
            f"{exc} (download {attempts} of at most {BAD_BODY_ATTEMPTS}: left in MESH and tried again on "
            "the next poll; the same bytes twice are stored as received and recorded invalid)",
            exc.envelope,
            exc.raw_sha256,
            exc.raw_size,
        ) from None
    copy.seek(0)
    return store.payloads.write_file(copy)


def acknowledge(store: Store, mesh: MeshMailbox, message: StoredMessage) -> None:
    """Acknowledge a stored ``received`` message in MESH (which then forgets it), and record that.

    A body stored as received because it could not be decoded becomes ``invalid`` at once.
    """
    if message.state == State.RECEIVED:
        store.make_durable(message.id)
        checkpoint("receive:stored")
        mesh.acknowledge(message.mesh_message_id or "")  # (a received message has its MESH id)
        checkpoint("receive:acknowledged")
        # lost in a power cut: the message is ``received`` again and the acknowledge is repeated
        if undecodable(message):
            findings = [f.as_dict() for f in message.findings]
            summary = f"{message.id} from {message.peer}: {message.last_error}"
            store.transition(
                message.id,
                State.INVALID,
                from_states=(State.RECEIVED,),
                before=(State.MESH_ACKED, None),
                detail={"reason": message.last_error, "findings": findings},
                durable=False,
                alert=Notification(EventKind.INVALID, message.id, summary, {"findings": findings}),
            )
        else:
            store.transition(message.id, State.MESH_ACKED, from_states=(State.RECEIVED,), durable=False)


def undecodable(message: StoredMessage) -> bool:
    """A message stored as received because its body could not be decoded (it has findings already)."""
    return message.state == State.RECEIVED and bool(message.findings)


def _record(
    store: Store,
    mailbox: str,
    envelope: Envelope,
    sha: str,
    size: int,
    durable: bool,
    undecodable: UndecodableBody | None = None,
) -> StoredMessage:
    detail = {"sha256": sha, "size": size, "from": envelope.sender, "chunks": envelope.chunks}
    findings, last_error = None, None
    if envelope.is_report:
        last_error = " ".join(x for x in (envelope.status_code, envelope.status_description) if x)
    if undecodable is not None:
        last_error = f"undecodable body, stored as received: {undecodable}"
        findings = json.dumps([Finding(last_error, code="payload.undecodable").as_dict()])
        detail["undecodable"] = last_error
    return store.add(
        Direction.IN,
        State.RECEIVED,
        durable=durable,
        detail=detail,
        mailbox=mailbox,
        peer=envelope.sender,
        workflow_id=envelope.workflow_id,
        mesh_message_id=envelope.message_id,
        message_type=envelope.message_type,
        payload_sha256=sha,
        payload_size=size,
        filename=envelope.filename,
        local_id=envelope.local_id,
        subject=envelope.subject,
        content_type=envelope.content_type,
        linked_message_id=envelope.linked_message_id,
        chunks_total=envelope.chunks,
        last_error=last_error,
        findings=findings,
    )


def apply_report(store: Store, report: StoredMessage) -> StoredMessage | None:
    """A MESH REPORT: mark the linked outbound message ``undeliverable`` with MESH's code."""
    code, _, description = (report.last_error or "").partition(" ")
    detail = {"mesh_code": code, "mesh_description": description, "report": report.mesh_message_id}
    linked = store.find(Direction.OUT, report.linked_message_id or "")
    if linked is None:
        reason = f"MESH report about {report.linked_message_id}, which this store did not send"
        problem = (
            f"MESH report {report.mesh_message_id} names {report.linked_message_id}, which this store did not send"
        )
        store.transition(
            report.id,
            State.ORPHAN,
            from_states=(State.MESH_ACKED,),
            detail={**detail, "reason": reason},
            alert=Notification(EventKind.ORPHAN, report.id, problem, {**detail, "reason": reason}),
        )
        return None
    store.transition(
        linked.id,
        State.UNDELIVERABLE,
        from_states=(State.ACCEPTED, State.SENDING, *IN_FLIGHT),
        detail=detail,
        alert=Notification(
            EventKind.UNDELIVERABLE, linked.id, f"{linked.id} undeliverable: {report.last_error}", detail
        ),
    )
    store.transition(
        report.id,
        State.REPORT,
        from_states=(State.MESH_ACKED,),
        detail={**detail, "about": linked.id},
        route=linked.route,
    )
    return store.get(linked.id)


def inbound_route(config: Config, message: StoredMessage) -> Route | None:
    return config.inbound_route(message.mailbox, message.workflow_id or "")


def mark_unrouted(store: Store, message: StoredMessage, route: Route | None) -> None:
    """No route takes it: kept in the store (already acknowledged in MESH) and reported."""
    reason = "no inbound route takes this workflow" if route is None else f"route {route.name} has no destination"
    summary = f"{message.id} from {message.peer} on workflow {message.workflow_id}: no inbound route; kept in the store"
    store.transition(
        message.id,
        State.UNROUTED,
        from_states=(State.MESH_ACKED,),
        detail={"reason": reason, "workflow_id": message.workflow_id},
        alert=Notification(EventKind.UNROUTED, message.id, summary, {"reason": reason}),
    )  # logged as a step (meshbridge.steps)


def validate_inbound(store: Store, plugins: Plugins, route: Route, message: StoredMessage) -> ValidationResult:
    """Check a collected payload against its route; an invalid one is recorded ``invalid`` with findings.

    A valid one stays ``mesh-acked``: :func:`deliver_inbound` records ``valid`` and ``delivered``
    together (one transaction less per message).
    """
    result = check_stored(store, plugins, message, route.payload_type, route)
    if not result.valid:
        findings = [f.as_dict() for f in result.findings]
        summary = f"{message.id} on {route.name} is invalid: " + "; ".join(str(f) for f in result.errors[:3])
        store.transition(
            message.id,
            State.INVALID,
            from_states=(State.MESH_ACKED,),
            route=route.name,
            payload_type=result.payload_type,
            findings=json.dumps(findings),
            detail={"payload_type": result.payload_type, "findings": findings},
            alert=Notification(EventKind.INVALID, message.id, summary, {"findings": findings}),
        )
    return result


def check_stored(
    store: Store, plugins: Plugins, message: StoredMessage, payload_type: str, route: Route | None
) -> ValidationResult:
    """Validate a stored payload without loading more than the validation cap into memory.

    An empty body is refused whatever the type (MESH refuses to send one; a peer can still make
    one, e.g. gzip of nothing).
    """
    if not message.payload_size:
        return ValidationResult(payload_type, (Finding("the payload is empty", code="payload.empty"),))
    if not needs_validation(payload_type):
        return ValidationResult(payload_type, (), {"size": message.payload_size})
    options = route_options(route)
    cap = int(options.get("max_size") or DEFAULT_CAP)
    if message.payload_size > cap:
        return oversize(payload_type, message.payload_size, cap)
    try:
        return check(
            plugins,
            store.payloads.read(message.sha256),
            payload_type=payload_type,
            route=route,
            direction=message.direction,
            workflow_id=message.workflow_id,
            filename=message.filename,
        )
    except MemoryError:  # refused, like one over the cap: the messages behind it go on
        size = message.payload_size
        finding = Finding(
            f"payload is {size} bytes, more than this process has the memory to validate", code="payload.size"
        )
        return ValidationResult(payload_type, (finding,))


def deliver_inbound(
    store: Store,
    plugins: Plugins,
    route: Route,
    message: StoredMessage,
    validated: ValidationResult | None = None,
    replay: bool = False,
    batch: FolderBatch | None = None,
    on_done: Callable[[MeshbridgeError | None], None] | None = None,
    policy: RetryPolicy | None = None,
    deadline: float | None = None,
    stopping: threading.Event | None = None,
    claim: str | None = None,
) -> bool:
    """Hand a valid payload to the route's destination; ``delivered`` once per MESH message id.

    ``validated`` is the verdict of a message still ``mesh-acked``: it is recorded as ``valid``
    with the delivery, or alone when the delivery fails (the next poll retries it).

    With a ``batch``, a delivery to the built-in folder destination is staged and False returned:
    it is recorded when the caller finishes the batch, and ``on_done`` then gets None or the error.
    That record is lazy (the caller syncs the store after the pass): lost in a power cut, the same
    file is written again under the same name. Every other delivery is made and recorded durably
    at once (an HTTP POST or a command is not repeated so lightly), and True returned.

    With a ``policy``, a failed delivery is retried after a backoff and, after ``policy.attempts``,
    the message is ``undelivered`` (see :func:`retry_later`); without one (a replay) it is only
    recorded. A destination other than a folder batch runs in a thread of its own for at most
    ``deadline`` seconds (then it is a failed delivery and the thread is abandoned); anything it
    raises is a failed delivery. When ``stopping`` is set meanwhile, the claim is released and
    :class:`~meshbridge.errors.DeliveryInterrupted` raised.

    ``claim`` is the holder of this process's delivery claim (see ``Store.claim_deliveries``): it
    is renewed while the destination works (``policy.lease`` without a heartbeat lets another
    process take it over), and released with whatever is recorded: delivered, failed, interrupted.
    """
    assert route.destination is not None
    [kind] = route.destination
    target = plugins.target(route)  # validated by its kind's model when the Bridge started
    deliver = plugins.destinations().get(kind)
    if deliver is None:
        raise DeliveryError(f"route {route.name}: no destination kind {kind!r} is installed")
    record = _Record(store, message, validated, route, policy, replay, on_done)
    name = safe_name(message.mesh_message_id or message.id, message.filename)
    blocks = store.payloads.blocks(message.sha256)
    try:
        if batch is not None and deliver is to_folder and not replay:
            batch.add(target, blocks, name, record.staged)
            return False
        blocks = _opened(blocks)  # the store is read here; the destination's thread reads files only
        deadline = deadline or route.destination_options.timeout or DELIVERY_TIMEOUT
        options = dataclasses.replace(route.destination_options, timeout=deadline)
        where = _within(
            lambda: deliver_to(kind, deliver, target, blocks, name, message.content_type, options),
            deadline,
            stopping,
            f"{kind} destination of route {route.name}",
            beat=Heartbeat(store, message.id, claim, policy.lease).beat if claim and policy else None,
        )
    except DeliveryInterrupted as exc:
        store.update(
            message.id,
            kind=TimelineKind.DELIVERY_INTERRUPTED,
            detail={"reason": str(exc)},  # "<kind> destination of route R: meshbridge stopped while it was …"
            next_attempt_at=None,
            lease_beat=None,
        )
        raise
    except (DeliveryError, StoreError) as exc:
        record.failed(exc)
        raise
    record.delivered(where, durable=True)
    return True


class _Record:
    """What :func:`deliver_inbound` records of one delivery: delivered, failed (retried later or
    not), or a folder batch's outcome (``staged``, then ``on_done``). ``validated``: the message is
    still ``mesh-acked`` and its verdict is recorded with the outcome."""

    def __init__(
        self,
        store: Store,
        message: StoredMessage,
        validated: ValidationResult | None,
        route: Route,
        policy: RetryPolicy | None,
        replay: bool,
        on_done: Callable[[MeshbridgeError | None], None] | None,
    ) -> None:
        self.store, self.message, self.policy, self.replay, self.on_done = store, message, policy, replay, on_done
        self.valid: tuple[str, dict[str, Any]] | None = None
        self.fields: dict[str, Any] = {}
        if validated is not None:
            self.valid = (State.VALID, {"payload_type": validated.payload_type})
            self.fields = {"route": route.name, "payload_type": validated.payload_type}

    def failed(self, exc: DeliveryError | StoreError) -> None:
        store, message = self.store, self.message
        if self.valid:
            store.transition(
                message.id, State.VALID, from_states=(State.MESH_ACKED,), detail=self.valid[1], **self.fields
            )
        if self.policy is None or self.replay:
            store.update(
                message.id, kind=TimelineKind.DELIVERY_FAILED, detail={"reason": str(exc)}, last_error=str(exc)
            )
        else:
            retry_later(store, message, str(exc), self.policy, self.fields.get("route"))

    def delivered(self, where: str, durable: bool) -> None:
        checkpoint("deliver:written")
        if self.replay:
            self.store.event(self.message.id, TimelineKind.DELIVERED, {"destination": where, "replay": True})
            return
        self.store.transition(
            self.message.id,
            State.DELIVERED,
            from_states=(State.MESH_ACKED, State.VALID),
            before=self.valid,
            detail={"destination": where},
            destination=where,
            last_error=None,
            lease_beat=None,
            durable=durable,
            **self.fields,
        )
        checkpoint("deliver:recorded")

    def staged(self, outcome: str | DeliveryError) -> None:
        error: MeshbridgeError | None = outcome if isinstance(outcome, DeliveryError) else None
        try:
            if isinstance(outcome, DeliveryError):
                self.failed(outcome)
            else:
                self.delivered(outcome, durable=False)
        except MeshbridgeError as exc:  # the next message in the batch is still recorded
            error = exc
        if self.on_done:
            self.on_done(error)


def retry_later(
    store: Store, message: StoredMessage, reason: str, policy: RetryPolicy, route: str | None = None
) -> bool:
    """Record a failed delivery, its claim released: due again after the policy's backoff, or
    ``undelivered`` once ``policy.attempts`` are spent (with its notification). Returns True when
    it is now ``undelivered``."""
    attempts = (message.attempts or 0) + 1
    if attempts >= policy.attempts:
        route = route or message.route
        summary = f"{message.id} on {route} not delivered after {attempts} attempts: {reason}"
        return store.transition(
            message.id,
            State.UNDELIVERED,
            from_states=(State.VALID,),
            detail={"reason": reason, "attempts": attempts},
            last_error=reason,
            attempts=attempts,
            next_attempt_at=None,
            lease_beat=None,
            alert=Notification(EventKind.UNDELIVERED, message.id, summary, {"route": route, "reason": reason}),
        )
    retry_at = (datetime.now(UTC) + timedelta(seconds=policy.delay(attempts))).isoformat(timespec="microseconds")
    store.update(
        message.id,
        kind=TimelineKind.DELIVERY_FAILED,
        detail={"reason": reason, "attempt": attempts, "retry_at": retry_at},
        last_error=reason,
        attempts=attempts,
        next_attempt_at=retry_at,
        lease_beat=None,  # the claim is released: the backoff (wall-clock, for people) says when again
    )
    return False


def _opened(blocks: Iterator[bytes]) -> Iterator[bytes]:
    """Read the first block in this thread: opening a payload may read the store's connection,
    which must not be used by a destination's thread (that may be abandoned)."""
    first = next(blocks, None)
    return itertools.chain(() if first is None else (first,), blocks)


class Heartbeat:
    """This process's claim to deliver a message, renewed while its destination works: at most
    every ``lease / 4`` seconds of the lease clock (at least every 10 s), from the waiting loop of
    :func:`_within`, in the worker's own thread and with its own store connection. So a claim
    lapses only when its worker stops beating (died, or is frozen), however long the deadline."""

    def __init__(self, store: Store, message_id: str, holder: str, lease: float) -> None:
        self.store, self.message_id, self.holder = store, message_id, holder
        self.every = min(max(lease / 4, 0.05), 10.0)
        self._last = clock.now()
        self._lost = False

    def beat(self) -> None:
        if self._lost or clock.now() - self._last < self.every:
            return
        try:
            held = self.store.renew(self.message_id, self.holder, state=State.VALID)
        except StoreError as exc:  # a heartbeat missed only ages the claim: the next one may pass
            log.warning(
                "%s: its delivery claim could not be renewed: %s",
                self.message_id,
                exc,
                extra={"message_id": self.message_id},
            )
            return
        self._last = clock.now()
        if not held:  # only after a whole lease without a heartbeat: this process was frozen
            self._lost = True
            log.warning(
                "%s: another process took over its delivery (this one's claim had lapsed)",
                self.message_id,
                extra={"message_id": self.message_id},
            )


def _within(
    call: Callable[[], str],
    deadline: float,
    stopping: threading.Event | None,
    what: str,
    beat: Callable[[], None] | None = None,
) -> str:
    """Run a destination in a daemon thread for at most ``deadline`` seconds (and a short grace,
    so the built-in destinations, which keep the deadline themselves, end cleanly first), calling
    ``beat`` (the claim's heartbeat) while it waits.

    Whatever it raises becomes a :class:`DeliveryError` (or stays a ``StoreError``) naming the
    exception; past the deadline, or when ``stopping`` is set, its thread is abandoned (a plugin
    cannot be interrupted; the process groups of the commands it started are killed) and the
    delivery is failed, or interrupted. A command that exited just before the stop is delivered.
    """
    outcome: list[Any] = []
    done = threading.Event()

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:  # a plugin may raise anything, even SystemExit
            outcome.append(exc)
        finally:
            done.set()

    context = contextvars.copy_context()  # what it logs names the job that delivers
    worker = threading.Thread(target=context.run, args=(run,), name="meshbridge-destination", daemon=True)
    worker.start()
    end = time.monotonic() + deadline + ABANDON_GRACE  # http and command keep the deadline themselves
    while not done.wait(min(0.25, max(0.0, end - time.monotonic()))):
        if beat is not None:
            beat()
        if stopping is not None and stopping.is_set():
            if kill_commands(worker) and done.wait(STOP_GRACE) and not isinstance(outcome[0], BaseException):
                break  # it finished as it was stopped: delivered
            raise DeliveryInterrupted(f"{what}: meshbridge stopped while it was still working")
        if time.monotonic() >= end:
            kill_commands(worker)
            raise DeliveryError(f"{what} did not finish within {deadline:g} s (abandoned)")
    result = outcome[0]
    if isinstance(result, DeliveryError | StoreError):
        raise result
    if isinstance(result, BaseException):
        raise DeliveryError(f"{what} failed: {type(result).__name__}: {result}")
    return str(result)
