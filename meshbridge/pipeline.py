"""The steps of the flow, each a small function over the store and one MESH mailbox.

outbound: accept (bytes + row durable) -> transmit -> track
inbound:  download (to disk, row durable) -> MESH acknowledge -> report | route -> deliver
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO

from .config import Config, Route
from .destinations import DeliveryError, FolderBatch, safe_name, to_folder
from .errors import MeshbridgeError, MeshRejected, SendAbandoned, StoreError, TransportError
from .faults import checkpoint
from .mesh import Envelope, MeshMailbox, chunk_count
from .payloads.base import ValidationResult
from .plugins import Plugins
from .store import Row, Store, now
from .validation import DEFAULT_CAP, check, needs_validation, oversize, route_options

log = logging.getLogger("meshbridge")

SEND_LEASE = 900.0  # default ``[mesh] send_lease``: seconds a ``sending`` claim lasts without progress

# Outbound states MESH tracking or a REPORT may still move on.
IN_FLIGHT = ("sent", "delivered")


@dataclass
class PollReport:
    """What one pass did; ``problems`` are one-line reasons to show an operator."""

    sent: list[str] = field(default_factory=list)
    received: list[str] = field(default_factory=list)
    delivered: list[str] = field(default_factory=list)
    unrouted: list[str] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)
    correlated: list[str] = field(default_factory=list)
    overdue: list[str] = field(default_factory=list)
    undeliverable: list[str] = field(default_factory=list)
    tracked: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


# -- outbound -------------------------------------------------------------------------------


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
) -> Row:
    """Make an outbound message durable: payload file first, then the row.

    State ``accepted``, or ``sending`` when ``claim`` (the caller sends it at once: one
    transaction less), or ``rejected`` (quarantined: bytes and findings kept, never sent).
    """
    sha, size = store.payloads.write_file(source)
    detail: dict[str, Any] = {"sha256": sha, "size": size}
    findings = None
    if rejected is not None:
        findings = [f.as_dict() for f in rejected.findings]
        detail["findings"] = findings
    state = "rejected" if rejected is not None else "sending" if claim else "accepted"
    return store.add(
        "out",
        state,
        detail=detail,
        before="accepted" if state == "sending" else "",
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

    ``lease``: a message left ``sending`` without progress for this long belongs to a process that
    died, and another pass may claim it and resume the send.
    """

    attempts: int = 10
    backoff: float = 30.0
    backoff_max: float = 3600.0
    lease: float = SEND_LEASE

    def delay(self, attempts: int) -> float:
        return float(min(self.backoff_max, self.backoff * 2 ** max(0, attempts - 1)))


def transmit(
    store: Store, mesh: MeshMailbox, message: Row, *, claimed: bool = False, policy: RetryPolicy = RetryPolicy()
) -> bool:
    """Send one accepted message. Returns True when MESH took it.

    The row is claimed (``accepted`` -> ``sending``) first so no other process sends it too,
    unless it was born claimed (``claimed=True``). A retry first asks MESH whether an earlier
    attempt got through after all (by local id), so a lost answer never becomes a duplicate.
    A chunked upload resumes after the last chunk recorded. A sender can die after MESH took a
    chunk and before recording it: a message MESH finds by local id has its first chunk, and one
    MESH tracks past ``uploading`` has its last; neither is uploaded again.
    A transient failure puts it back to ``accepted`` with a backoff, until ``policy.attempts``
    is spent (then ``failed``); a MESH rejection fails it at once.
    """
    if not claimed and not store.claim(message["id"], policy.lease):
        return False
    sha = message["payload_sha256"]
    try:
        store.payloads.verify(sha)
    except StoreError as exc:
        store.transition(message["id"], "failed", detail={"reason": str(exc)}, last_error=str(exc))
        raise
    attempts = message["attempts"] + 1
    total = chunk_count(message["payload_size"], mesh.chunk_size)
    resume = None
    try:
        if message["mesh_message_id"] and message["chunks_done"]:
            resume = (message["mesh_message_id"], message["chunks_done"])
        elif message["attempts"] or (message["state"] == "sending" and not claimed):  # a retry, or a dead claim
            earlier = mesh.find_sent(message["id"])
            if earlier and total == 1:
                _sent(store, message, earlier, attempts, {"found_by_local_id": True})
                return True
            if earlier:  # MESH has the first chunk (it made the id): continue after it
                _found_chunk(store, message, earlier, 1, total)
                resume = (earlier, 1)
        if resume and resume[1] < total and _uploaded(mesh, resume[0]):  # MESH has the last one too
            _found_chunk(store, message, resume[0], total, total)
            _sent(store, message, resume[0], attempts)
            return True

        def progress(mesh_id: str, n: int, total: int) -> None:
            checkpoint("send:chunk")
            if total > 1:
                store.update(
                    message["id"],
                    kind="chunk-sent",
                    detail={"chunk": f"{n}/{total}"},
                    mesh_message_id=mesh_id,
                    chunks_done=n,
                    chunks_total=total,
                )

        mesh_id = mesh.send(
            lambda: store.payloads.open(sha),
            message["payload_size"],
            to=message["peer"],
            workflow_id=message["workflow_id"],
            local_id=message["id"],
            filename=message["filename"],
            subject=message["subject"],
            content_type=message["content_type"],
            resume=resume,
            on_chunk=progress,
        )
    except MeshRejected as exc:
        store.transition(
            message["id"],
            "failed",
            detail={"reason": str(exc), "code": exc.code},
            last_error=str(exc),
            attempts=attempts,
        )
        raise
    except TransportError as exc:
        if attempts >= policy.attempts:
            store.transition(
                message["id"],
                "failed",
                detail={"reason": f"gave up after {attempts} attempts: {exc}"},
                last_error=str(exc),
                attempts=attempts,
            )
            raise SendAbandoned(f"{message['id']}: gave up after {attempts} attempts: {exc}") from None
        retry_at = (datetime.now(UTC) + timedelta(seconds=policy.delay(attempts))).isoformat(timespec="microseconds")
        store.transition(
            message["id"],
            "accepted",
            kind="send-failed",
            detail={"reason": str(exc), "retry_at": retry_at},
            last_error=str(exc),
            attempts=attempts,
            next_attempt_at=retry_at,
        )
        raise
    checkpoint("send:accepted")
    _sent(store, message, mesh_id, attempts)
    checkpoint("send:recorded")
    return True


def _found_chunk(store: Store, message: Row, mesh_id: str, n: int, total: int) -> None:
    """Record chunk ``n`` that MESH took before the sender died, unrecorded (see ``send:chunk``)."""
    store.update(
        message["id"],
        kind="chunk-sent",
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


def _sent(store: Store, message: Row, mesh_id: str, attempts: int, extra: dict[str, Any] | None = None) -> None:
    store.transition(
        message["id"],
        "sent",
        detail={"mesh_message_id": mesh_id, **(extra or {})},
        mesh_message_id=mesh_id,
        attempts=attempts,
        last_error=None,
        next_attempt_at=None,
        tracked_at=now(),  # the tracking interval counts from the send
        durable=False,  # lost in a power cut: the claim lapses and a retry finds the message by local id
    )


def due_for_sending(message: Row) -> bool:
    return not message["next_attempt_at"] or message["next_attempt_at"] <= now()


def track(store: Store, mesh: MeshMailbox, message: Row) -> None:
    """Ask MESH how a sent message is doing: ``acknowledged`` by the recipient means delivered."""
    record = mesh.track(message["mesh_message_id"])
    status = str(record.get("status", "")).lower()
    detail = {
        k: record[k] for k in ("status", "status_code", "status_description", "status_timestamp") if record.get(k)
    }
    if status == "acknowledged":
        store.transition(message["id"], "delivered", from_states=("sent",), detail=detail, tracked_at=now())
    elif status in ("undeliverable", "error"):
        store.transition(message["id"], "undeliverable", from_states=IN_FLIGHT, detail=detail, tracked_at=now())
    else:
        store.update(message["id"], tracked_at=now())


def tracking_due(message: Row, interval: float) -> bool:
    """MESH asks for tracking to be rare: once per ``interval`` after the send, per message."""
    if not message["tracked_at"]:
        return True
    last = datetime.fromisoformat(message["tracked_at"])
    return datetime.now(UTC) - last >= timedelta(seconds=interval)


# -- inbound --------------------------------------------------------------------------------


def download(store: Store, mesh: MeshMailbox, mesh_id: str, *, durable: bool = True) -> Row:
    """Download one message and record it ``received``: stored, not yet acknowledged in MESH.

    ``durable=False`` records it lazily: :meth:`Store.make_durable` on a batch makes them all
    durable with one sync instead of one each (:func:`acknowledge` syncs if the caller did not).
    """
    message = store.find("in", mesh_id)
    if message is None:
        envelope, (sha, size) = mesh.download(mesh_id, store.payloads.write)
        checkpoint("receive:downloaded")
        try:
            message = _record(store, mesh.id, envelope, sha, size, durable)
        except StoreError:  # another process stored it first
            message = store.find("in", mesh_id)
            if message is None:
                raise
    return message


def acknowledge(store: Store, mesh: MeshMailbox, message: Row) -> None:
    """Acknowledge a stored ``received`` message in MESH (which then forgets it), and record that."""
    if message["state"] == "received":
        store.make_durable(message["id"])
        checkpoint("receive:stored")
        mesh.acknowledge(message["mesh_message_id"])
        checkpoint("receive:acknowledged")
        # lost in a power cut: the message is ``received`` again and the acknowledge is repeated
        store.transition(message["id"], "mesh-acked", from_states=("received",), durable=False)


def _record(store: Store, mailbox: str, envelope: Envelope, sha: str, size: int, durable: bool) -> Row:
    return store.add(
        "in",
        "received",
        durable=durable,
        detail={"sha256": sha, "size": size, "from": envelope.sender, "chunks": envelope.chunks},
        mailbox=mailbox,
        peer=envelope.sender,
        workflow_id=envelope.workflow_id,
        mesh_message_id=envelope.message_id,
        message_type=envelope.message_type,
        payload_sha256=sha,
        payload_size=size,
        filename=envelope.filename,
        subject=envelope.subject,
        content_type=envelope.content_type,
        linked_message_id=envelope.linked_message_id,
        chunks_total=envelope.chunks,
        last_error=" ".join(x for x in (envelope.status_code, envelope.status_description) if x)
        if envelope.is_report
        else None,
    )


def apply_report(store: Store, report: Row) -> Row | None:
    """A MESH REPORT: mark the linked outbound message ``undeliverable`` with MESH's code."""
    code, _, description = (report["last_error"] or "").partition(" ")
    detail = {"mesh_code": code, "mesh_description": description, "report": report["mesh_message_id"]}
    linked = store.find("out", report["linked_message_id"] or "")
    if linked is None:
        store.transition(report["id"], "orphan", from_states=("mesh-acked",), detail=detail)
        log.warning(
            "MESH report %s is about %s, which this store did not send",
            report["mesh_message_id"],
            report["linked_message_id"],
        )
        return None
    store.transition(linked["id"], "undeliverable", from_states=("accepted", "sending", *IN_FLIGHT), detail=detail)
    store.transition(
        report["id"],
        "report",
        from_states=("mesh-acked",),
        detail={**detail, "about": linked["id"]},
        route=linked["route"],
    )
    return store.get(linked["id"])


def inbound_route(config: Config, message: Row) -> Route | None:
    return config.inbound_route(message["mailbox"], message["workflow_id"] or "")


def mark_unrouted(store: Store, message: Row, route: Route | None) -> None:
    """No route takes it: kept in the store (already acknowledged in MESH) and reported."""
    reason = "no inbound route takes this workflow" if route is None else f"route {route.name} has no destination"
    store.transition(
        message["id"],
        "unrouted",
        from_states=("mesh-acked",),
        detail={"reason": reason, "workflow_id": message["workflow_id"]},
    )
    log.warning(
        "unrouted: %s from %s on workflow %s (%s); kept in the store",
        message["id"],
        message["peer"],
        message["workflow_id"],
        reason,
    )


def validate_inbound(store: Store, plugins: Plugins, route: Route, message: Row) -> ValidationResult:
    """Check a collected payload against its route; an invalid one is recorded ``invalid`` with findings.

    A valid one stays ``mesh-acked``: :func:`deliver_inbound` records ``valid`` and ``delivered``
    together (one transaction less per message).
    """
    result = check_stored(store, plugins, message, route.payload_type, route)
    if not result.valid:
        findings = [f.as_dict() for f in result.findings]
        store.transition(
            message["id"],
            "invalid",
            from_states=("mesh-acked",),
            route=route.name,
            payload_type=result.payload_type,
            findings=json.dumps(findings),
            detail={"payload_type": result.payload_type, "findings": findings},
        )
    return result


def check_stored(
    store: Store, plugins: Plugins, message: Row, payload_type: str, route: Route | None
) -> ValidationResult:
    """Validate a stored payload without loading more than the validation cap into memory."""
    if not needs_validation(payload_type):
        return ValidationResult(payload_type, (), {"size": message["payload_size"]})
    options = route_options(route)
    cap = int(options.get("max_size") or DEFAULT_CAP)
    if message["payload_size"] > cap:
        return oversize(payload_type, message["payload_size"], cap)
    return check(
        plugins,
        store.payloads.read(message["payload_sha256"]),
        payload_type=payload_type,
        route=route,
        direction=message["direction"],
        workflow_id=message["workflow_id"],
        filename=message["filename"],
    )


def deliver_inbound(
    store: Store,
    plugins: Plugins,
    route: Route,
    message: Row,
    validated: ValidationResult | None = None,
    replay: bool = False,
    batch: FolderBatch | None = None,
    on_done: Callable[[MeshbridgeError | None], None] | None = None,
) -> bool:
    """Hand a valid payload to the route's destination; ``delivered`` once per MESH message id.

    ``validated`` is the verdict of a message still ``mesh-acked``: it is recorded as ``valid``
    with the delivery, or alone when the delivery fails (the next poll retries it).

    With a ``batch``, a delivery to the built-in folder destination is staged and False returned:
    it is recorded when the caller finishes the batch, and ``on_done`` then gets None or the error.
    That record is lazy (the caller syncs the store after the pass): lost in a power cut, the same
    file is written again under the same name. Every other delivery is made and recorded durably
    at once (an HTTP POST or a command is not repeated so lightly), and True returned.
    """
    assert route.destination is not None
    [(kind, target)] = route.destination.items()
    deliver = plugins.destinations().get(kind)
    if deliver is None:
        raise DeliveryError(f"route {route.name}: no destination kind {kind!r} is installed")
    valid = None
    fields: dict[str, Any] = {}
    if validated is not None:
        valid = ("valid", {"payload_type": validated.payload_type})
        fields = {"route": route.name, "payload_type": validated.payload_type}

    def failed(exc: DeliveryError | StoreError) -> None:
        if valid:
            store.transition(message["id"], "valid", from_states=("mesh-acked",), detail=valid[1], **fields)
        store.update(message["id"], kind="delivery-failed", detail={"reason": str(exc)}, last_error=str(exc))

    def delivered(where: str, durable: bool) -> None:
        checkpoint("deliver:written")
        if replay:
            store.event(message["id"], "delivered", {"destination": where, "replay": True})
            return
        store.transition(
            message["id"],
            "delivered",
            from_states=("mesh-acked", "valid"),
            before=valid,
            detail={"destination": where},
            destination=where,
            last_error=None,
            durable=durable,
            **fields,
        )
        checkpoint("deliver:recorded")

    def staged(outcome: str | DeliveryError) -> None:
        error: MeshbridgeError | None = outcome if isinstance(outcome, DeliveryError) else None
        try:
            if isinstance(outcome, DeliveryError):
                failed(outcome)
            else:
                delivered(outcome, durable=False)
        except MeshbridgeError as exc:  # the next message in the batch is still recorded
            error = exc
        if on_done:
            on_done(error)

    name = safe_name(message["mesh_message_id"], message["filename"])
    blocks = store.payloads.blocks(message["payload_sha256"])
    try:
        if batch is not None and deliver is to_folder and not replay:
            batch.add(target, blocks, name, staged)
            return False
        where = deliver(target, blocks, name, message["content_type"])
    except (DeliveryError, StoreError) as exc:
        failed(exc)
        raise
    delivered(where, durable=True)
    return True
