"""Outbound steps: accept (bytes + row durable) -> transmit (claimed, resumable, retried) -> track."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO, TypedDict

from .. import clock
from ..actors import Actor, with_actor
from ..errors import ClaimLost, MeshAuthRefused, MeshRejected, SendAbandoned, StoreError, TransportError
from ..events import EventKind, Notification
from ..faults import checkpoint
from ..mesh import MeshMailbox, chunk_count
from ..models import IN_FLIGHT, Direction, State, TimelineKind
from ..payloads.base import ValidationResult
from ..progress import Progress, named
from ..store import Store, StoredMessage, new_lease, now

SEND_LEASE = 900.0  # default ``[mesh] send_lease``: seconds a ``sending`` claim lasts without a heartbeat


class NewMessage(TypedDict):
    """What :func:`accept` is told about an outbound message besides its bytes and payload type."""

    route: str | None
    mailbox: str
    to: str
    workflow_id: str
    filename: str | None
    subject: str | None
    content_type: str | None
    claim: bool
    source_file: str | None
    by: Actor | None  # who asked (their name on the first timeline entry)


# (IN_FLIGHT, the outbound states MESH tracking or a REPORT may still move on: meshbridge.models)


def accept(
    store: Store,
    source: BinaryIO,
    *,
    route: str | None,
    mailbox: str,
    to: str,
    workflow_id: str,
    payload_type: str,
    filename: str | None,
    subject: str | None = None,
    content_type: str | None = None,
    rejected: ValidationResult | None = None,
    extra: dict[str, Any] | None = None,
    claim: bool = False,
    source_file: str | None = None,
    by: Actor | None = None,
) -> StoredMessage:
    """Make an outbound message durable: payload file first, then the row (its first timeline
    entry names ``by``, who asked, if given).

    State ``accepted``, or ``sending`` when ``claim`` (the caller sends it at once: one
    transaction less), or ``rejected`` (quarantined: bytes and findings kept, never sent; its
    ``rejected`` notification queued with it).
    """
    sha, size = store.payloads.write_file(source)
    detail: dict[str, Any] = {"sha256": sha, "size": size}
    findings, alert = None, None
    if rejected is not None:
        findings = [f.as_dict() for f in rejected.findings]
        detail["findings"] = findings
        alert = Notification(EventKind.REJECTED, None, rejection(filename, rejected), {"findings": findings})
    detail = with_actor(detail, by) or detail
    state = State.REJECTED if rejected is not None else State.SENDING if claim else State.ACCEPTED
    if state == State.SENDING:
        extra = {**(extra or {}), **new_lease()}
    return store.add(
        Direction.OUT,
        state,
        detail=detail,
        alert=alert,
        before=State.ACCEPTED if state == State.SENDING else "",
        source_file=source_file,
        findings=json.dumps(findings) if findings else None,
        **(extra or {}),
        route=route,
        mailbox=mailbox,
        peer=to,
        workflow_id=workflow_id,
        payload_type=payload_type,
        payload_sha256=sha,
        payload_size=size,
        filename=filename,
        subject=subject,
        content_type=content_type,
    )


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a send is retried before it is ``failed``; how long a claim lasts.

    ``lease``: a message left ``sending`` without a heartbeat for this long (on the lease clock,
    ``meshbridge.clock``) belongs to a process that died, and another pass may claim it and resume
    the send.
    """

    attempts: int = 10
    backoff: float = 30.0
    backoff_max: float = 3600.0
    lease: float = SEND_LEASE

    def delay(self, attempts: int) -> float:
        return float(min(self.backoff_max, self.backoff * 2 ** max(0, attempts - 1)))


def rejection(filename: str | None, result: ValidationResult) -> str:
    """The one line that says why a payload was refused (its first errors)."""
    errors = [f for f in result.findings if f.severity == "error"]
    return f"{filename} refused: " + "; ".join(str(f) for f in errors[:3])


def transmit(
    store: Store,
    mesh: MeshMailbox,
    message: StoredMessage,
    *,
    claimed: bool = False,
    policy: RetryPolicy = RetryPolicy(),
    stopping: threading.Event | None = None,
    progress: Progress | None = None,
) -> bool:
    """Send one accepted message. Returns True when MESH took it.

    The row is claimed (``accepted`` -> ``sending``) first so no other process sends it too,
    unless it was born claimed (``claimed=True``). The claim is a lease with a heartbeat: renewed
    as the upload reads its bytes, within a chunk as well as between chunks (see :class:`Lease`).
    A retry, or a send taken over from a lapsed claim, first asks MESH whether an earlier attempt
    got through after all (by local id), so a lost answer never becomes a duplicate.
    A chunked upload resumes after the last chunk recorded. A sender can die after MESH took a
    chunk and before recording it: a message MESH finds by local id has its first chunk, and one
    MESH tracks past ``uploading`` has its last; neither is uploaded again.
    A transient failure puts it back to ``accepted`` with a backoff, until ``policy.attempts``
    is spent (then ``failed``); a MESH rejection fails it at once. A refused login
    (:class:`MeshAuthRefused`) is no fault of the message: it goes back to ``accepted`` with the
    error on its timeline (``login-refused``) and a backoff that grows with the mailbox's refusals
    (``store.logins``, counted here; set on the exception as ``refusals``) up to
    ``policy.backoff_max``, and its attempts are not counted. ``stopping`` set (SIGTERM)
    stops a chunked upload after the chunk in hand: the message stays ``sending``, its claim
    released, and the next pass resumes it. A claim lost to another process raises ClaimLost.
    ``progress`` follows a chunked upload's bytes.
    """
    resumed = False
    if not claimed:
        taken = store.claim(message.id, policy.lease)
        if not taken:
            return False
        message, resumed = taken, taken.resumed
    lease = Lease(store, message.id, message.lease_holder or "", policy.lease)  # none: never claimed, ClaimLost
    try:
        store.payloads.verify(message.sha256)
    except StoreError as exc:
        lease.hold()
        alert = Notification(EventKind.FAILED, message.id, f"{message.id} not sent: {exc}")
        store.transition(message.id, State.FAILED, detail={"reason": str(exc)}, last_error=str(exc), alert=alert)
        raise
    attempts = message.attempts + 1
    try:
        resume, done = _earlier_attempt(store, mesh, message, lease, attempts, resumed=resumed)
        if done:
            return True
        mesh_id = _upload(store, mesh, message, lease, resume, stopping, progress)
    except _Stopped as stop:
        store.release(
            message.id, lease.holder, TimelineKind.SEND_INTERRUPTED, {"reason": "stopping", "chunk": str(stop)}
        )
        return False
    except TransportError as exc:
        _failed_attempt(store, message, exc, lease, attempts, policy)
        raise
    checkpoint("send:accepted")
    lease.hold()
    _sent(store, message, mesh_id, attempts)
    checkpoint("send:recorded")
    return True


def _earlier_attempt(
    store: Store, mesh: MeshMailbox, message: StoredMessage, lease: Lease, attempts: int, *, resumed: bool
) -> tuple[tuple[str, int] | None, bool]:
    """Where an earlier attempt left this send: ``(resume, done)``, ``resume`` being the MESH id
    and the chunks MESH has, ``done`` when MESH has all of it (then it is recorded ``sent``)."""
    total = chunk_count(message.payload_size or 0, mesh.chunk_size)
    resume = None
    if message.mesh_message_id and message.chunks_done:
        resume = (message.mesh_message_id, message.chunks_done)
    elif resumed or message.attempts or message.last_error:  # taken over, retried, or retried by hand
        earlier = mesh.find_sent(message.id)
        if earlier and total == 1:
            lease.hold()
            _sent(store, message, earlier, attempts, {"found_by_local_id": True})
            return None, True
        if earlier:  # MESH has the first chunk (it made the id): continue after it
            lease.hold()
            _found_chunk(store, message, earlier, 1, total)
            resume = (earlier, 1)
    if resume and resume[1] < total and _uploaded(mesh, resume[0]):  # MESH has the last one too
        lease.hold()
        _found_chunk(store, message, resume[0], total, total)
        _sent(store, message, resume[0], attempts)
        return resume, True
    return resume, False


def _upload(
    store: Store,
    mesh: MeshMailbox,
    message: StoredMessage,
    lease: Lease,
    resume: tuple[str, int] | None,
    stopping: threading.Event | None,
    progress: Progress | None,
) -> str:
    """Upload the message's bytes (after ``resume``'s chunks), recording each chunk MESH takes."""

    def chunk_sent(mesh_id: str, n: int, total: int) -> None:
        checkpoint("send:chunk")
        if total > 1:
            lease.hold()
            store.update(
                message.id,
                kind=TimelineKind.CHUNK_SENT,
                detail={"chunk": f"{n}/{total}"},
                mesh_message_id=mesh_id,
                chunks_done=n,
                chunks_total=total,
            )
        if n < total and stopping is not None and stopping.is_set():
            raise _Stopped(f"{n}/{total}")

    return mesh.send(
        lambda: store.payloads.open(message.sha256),
        message.payload_size or 0,
        to=message.peer or "",  # (accept stores both: an outbound message always has them)
        workflow_id=message.workflow_id or "",
        local_id=message.id,
        filename=message.filename,
        subject=message.subject,
        content_type=message.content_type,
        resume=resume,
        on_chunk=chunk_sent,
        on_read=lease.beat,
        progress=named(progress, f"send {message.id} to {message.peer}"),
    )


def _failed_attempt(
    store: Store, message: StoredMessage, exc: TransportError, lease: Lease, attempts: int, policy: RetryPolicy
) -> None:
    """Record a send MESH did not take: ``failed`` (a rejection, or the last attempt: then
    :class:`SendAbandoned` is raised), else back to ``accepted`` with a backoff (a refused login's
    backoff grows with the mailbox's refusals, and its attempt is not counted)."""
    lease.hold()
    if isinstance(exc, MeshRejected):
        detail = {"reason": str(exc), "code": exc.code}
        alert = Notification(EventKind.FAILED, message.id, f"{message.id} refused by MESH: {exc}", {"code": exc.code})
        store.transition(message.id, State.FAILED, detail=detail, last_error=str(exc), attempts=attempts, alert=alert)
        return
    if isinstance(exc, MeshAuthRefused):
        exc.refusals = store.logins.refused(message.mailbox, str(exc))
        retry_at = _retry_at(policy.delay(exc.refusals))
        detail = {"reason": str(exc), "retry_at": retry_at}
        store.transition(
            message.id,
            State.ACCEPTED,
            kind=TimelineKind.LOGIN_REFUSED,
            detail=detail,
            last_error=str(exc),
            next_attempt_at=retry_at,
        )
        return
    if attempts >= policy.attempts:
        abandoned = SendAbandoned(f"{message.id}: gave up after {attempts} attempts: {exc}")
        store.transition(
            message.id,
            State.FAILED,
            detail={"reason": f"gave up after {attempts} attempts: {exc}"},
            last_error=str(exc),
            attempts=attempts,
            alert=Notification(EventKind.FAILED, message.id, str(abandoned), {"attempts": attempts}),
        )
        raise abandoned from None
    retry_at = _retry_at(policy.delay(attempts))
    store.transition(
        message.id,
        State.ACCEPTED,
        kind=TimelineKind.SEND_FAILED,
        detail={"reason": str(exc), "retry_at": retry_at},
        last_error=str(exc),
        attempts=attempts,
        next_attempt_at=retry_at,
    )


def _retry_at(delay: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=delay)).isoformat(timespec="microseconds")


class _Stopped(Exception):
    """The service is stopping: the upload ends after the chunk in hand (the chunk, as text)."""


class Lease:
    """This process's ``sending`` claim on a message: its heartbeat, and the check that it is still ours.

    :meth:`beat` renews it at most every ``lease / 4`` seconds of the lease clock as the upload
    reads its bytes (at least every 10 s, so a long lease is not left to its last quarter);
    :meth:`hold` renews it at once, before recording anything. Both raise :class:`ClaimLost` when
    another process has taken the send over, which it can only have done after a whole lease
    without a heartbeat: the upload stops mid-chunk, and nothing is recorded.
    """

    def __init__(self, store: Store, message_id: str, holder: str, lease: float) -> None:
        self.store, self.message_id, self.holder = store, message_id, holder
        self.every = min(max(lease / 4, 0.05), 10.0)
        self._last = clock.now()

    def beat(self) -> None:
        if clock.now() - self._last >= self.every:
            self.hold()

    def hold(self) -> None:
        if not self.store.renew(self.message_id, self.holder):
            raise ClaimLost(f"{self.message_id}: another process took over its send (this one's claim had lapsed)")
        self._last = clock.now()


def _found_chunk(store: Store, message: StoredMessage, mesh_id: str, n: int, total: int) -> None:
    """Record chunk ``n`` that MESH took before the sender died, unrecorded (see ``send:chunk``)."""
    store.update(
        message.id,
        kind=TimelineKind.CHUNK_SENT,
        detail={"chunk": f"{n}/{total}", "found_in_mesh": True},
        mesh_message_id=mesh_id,
        chunks_done=n,
        chunks_total=total,
    )


def _uploaded(mesh: MeshMailbox, mesh_id: str) -> bool:
    """Does MESH have every chunk of a chunked message? (``uploading`` until the last one arrives.)"""
    try:
        status = str(mesh.track(mesh_id).get("status", "")).lower()
    except TransportError:  # not known: resume; a finished message answers the next chunk with an error
        return False
    return status not in ("", "uploading")


def _sent(
    store: Store, message: StoredMessage, mesh_id: str, attempts: int, extra: dict[str, Any] | None = None
) -> None:
    store.transition(
        message.id,
        State.SENT,
        detail={"mesh_message_id": mesh_id, **(extra or {})},
        mesh_message_id=mesh_id,
        attempts=attempts,
        last_error=None,
        next_attempt_at=None,
        tracked_at=now(),  # the tracking interval counts from the send
        durable=False,  # lost in a power cut: the claim lapses and a retry finds the message by local id
    )


def due_for_sending(message: StoredMessage) -> bool:
    return not message.next_attempt_at or message.next_attempt_at <= datetime.now(UTC)


def track(store: Store, mesh: MeshMailbox, message: StoredMessage) -> None:
    """Ask MESH how a sent message is doing: ``acknowledged`` by the recipient means delivered."""
    assert message.mesh_message_id, "a sent message has its MESH id"
    record = mesh.track(message.mesh_message_id)
    status = str(record.get("status", "")).lower()
    detail = {
        k: record[k] for k in ("status", "status_code", "status_description", "status_timestamp") if record.get(k)
    }
    if status == "acknowledged":
        store.transition(message.id, State.DELIVERED, from_states=(State.SENT,), detail=detail, tracked_at=now())
    elif status in ("undeliverable", "error"):  # not a state: MESH's tracking status
        summary = f"{message.id} undeliverable: MESH tracking says {status}"
        alert = Notification(EventKind.UNDELIVERABLE, message.id, summary, detail)
        store.transition(
            message.id, State.UNDELIVERABLE, from_states=IN_FLIGHT, detail=detail, tracked_at=now(), alert=alert
        )
    else:
        store.update(message.id, tracked_at=now())


def tracking_due(message: StoredMessage, interval: float) -> bool:
    """MESH asks for tracking to be rare: once per ``interval`` after the send, per message."""
    if not message.tracked_at:
        return True
    return datetime.now(UTC) - message.tracked_at >= timedelta(seconds=interval)
