"""Sending: a payload checked, transformed, ITK-wrapped and stored (``accepted`` or ``rejected``),
then sent to MESH now or by a later flush. The machinery behind :meth:`Bridge.send
<meshbridge.Bridge.send>` and :meth:`Bridge.flush <meshbridge.Bridge.flush>`."""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from . import acks, pipeline
from .config import Route
from .errors import (
    DiskFull,
    InvalidRequest,
    MeshAuthRefused,
    MeshbridgeError,
    PayloadRejected,
    SendAbandoned,
    TransportError,
)
from .models import Direction, State
from .payloads.base import Finding, Payload, ValidationResult
from .pipeline import Logged, PollReport, store_full
from .pipeline.outbound import NewMessage
from .store import Store, StoredMessage
from .transforms import transformed
from .validation import DEFAULT_CAP, check, oversize, route_options

if TYPE_CHECKING:
    from .bridge import Bridge

log = logging.getLogger("meshbridge")
EMPTY = Finding("the payload is empty (MESH refuses empty messages)", code="payload.empty")


def same_as_route(route: Route, *, sender: str | None, to: str | None, workflow: str | None) -> None:
    """Refuse a sender, recipient or workflow given beside ``route`` that differs from the route's own."""
    given = (("sender", sender, route.mailbox), ("recipient", to, route.to), ("workflow", workflow, route.workflow_id))
    differ = [f"{what} {value} (the route's is {own})" for what, value, own in given if value and value != own]
    if differ:
        raise InvalidRequest(
            f"route {route.name!r} contradicts the {', '.join(differ)}: give the route alone, or no route and all three"
        )


def transmit(bridge: Bridge, message: StoredMessage, *, claimed: bool = False) -> bool:
    """Send one stored message now (see :func:`pipeline.transmit`), minding the mailbox's login."""
    mailbox = message.mailbox
    try:
        mesh, policy = bridge.mailbox(mailbox), bridge.retry_policy
        sent = pipeline.transmit(
            bridge.store,
            mesh,
            message,
            claimed=claimed,
            policy=policy,
            stopping=bridge.stopping,
            progress=bridge.progress,
        )
    except MeshAuthRefused as exc:
        bridge.logins.refused(exc)
        raise
    if sent:
        bridge.logins.ok(mailbox)
    return sent


def quarantine(store: Store, source: BinaryIO, result: ValidationResult, fields: NewMessage) -> StoredMessage:
    """Store a refused payload as ``rejected`` with its findings (:func:`refuse` raises)."""
    source.seek(0)
    return pipeline.accept(store, source, payload_type=result.payload_type, rejected=result, **fields)


def refuse(bridge: Bridge, message: StoredMessage) -> None:
    """Raise :class:`~meshbridge.PayloadRejected` with a ``rejected`` message's findings (its
    notification was queued when it was stored)."""
    findings = list(message.findings)
    errors = [f for f in findings if f.severity == "error"]
    summary = f"{message.filename} refused: " + "; ".join(str(f) for f in errors[:3])
    raise PayloadRejected(summary, findings, message.id)


def accept_validated(
    bridge: Bridge, file: Path, source: BinaryIO, size: int, ptype: str, route: Route | None, fields: NewMessage
) -> StoredMessage:
    """Validate (and on a route transform) a payload, then store it: ``rejected`` with its findings,
    or ``accepted`` as it will be sent (ITK-wrapped on an ITK route, its expectations recorded)."""
    cap = int(route_options(route).get("max_size") or DEFAULT_CAP)
    if size > cap:
        result = oversize(ptype, size, cap)
        data = None
    else:
        data = source.read()
        result = check(
            bridge.plugins,
            data,
            payload_type=ptype,
            route=route,
            direction=Direction.OUT,
            workflow_id=fields["workflow_id"],
            filename=fields["filename"],
        )
    if not result.valid:
        return quarantine(bridge.store, source, result, fields)
    assert data is not None
    if route is not None:
        payload = Payload(data, result.payload_type, Direction.OUT, fields["workflow_id"], fields["filename"], result)
        data, result = transformed(bridge.plugins, payload, route, ptype)  # checked again if changed
        if not result.valid:
            return quarantine(bridge.store, source, result, fields)  # the sender's bytes, the output's findings
    fields["content_type"] = fields["content_type"] or bridge.media_type(result)
    if route is None:
        return pipeline.accept(bridge.store, io.BytesIO(data), payload_type=result.payload_type, **fields)
    return _accept_on_route(bridge, data, result, route, fields)


def _accept_on_route(
    bridge: Bridge, data: bytes, result: ValidationResult, route: Route, fields: NewMessage
) -> StoredMessage:
    store = bridge.store
    payload = Payload(data, result.payload_type, Direction.OUT, fields["workflow_id"], fields["filename"], result)
    if route.itk is None:
        message = pipeline.accept(store, io.BytesIO(data), payload_type=result.payload_type, **fields)
        expect_domain_acks(bridge, message, payload, route)
        return message
    wrapped = acks.wrap(data, fields["content_type"], route)
    fields["content_type"] = wrapped.content_type
    extra = {"id": wrapped.message_id, "itk_message_id": wrapped.itk_message_id}
    message = pipeline.accept(store, io.BytesIO(wrapped.data), payload_type=result.payload_type, extra=extra, **fields)
    acks.expect(store, message.id, route.itk)
    expect_domain_acks(bridge, message, payload, route)
    return message


def expect_domain_acks(bridge: Bridge, message: StoredMessage, payload: Payload, route: Route) -> None:
    """Record what each ack protocol (a plugin) expects back for this message, and by when."""
    for protocol in bridge.plugins.ack_protocols():
        try:
            key = protocol.expects(payload, route)
        except Exception as exc:  # a broken plugin must not stop the send
            log.error("ack protocol %s failed on %s: %s: %s", protocol.name, message.id, type(exc).__name__, exc)
            continue
        if key:
            bridge.store.remember_key(protocol.name, key, message.id)
            bridge.store.expect(message.id, protocol.name, acks.due(protocol.within(route)))


def flush(bridge: Bridge, report: PollReport) -> None:
    """Send every stored message still waiting (``accepted``), and resume sends whose sender died."""
    store, policy = bridge.store, bridge.retry_policy
    bridge.logins.probe(report)  # a refused login fixed since: its messages are due now
    waiting = [m for m in store.messages(state=State.ACCEPTED, direction=Direction.OUT) if pipeline.due_for_sending(m)]
    for message in waiting + store.stale_sending(policy.lease):
        if bridge.stopping.is_set():
            break
        if message.mailbox in report.login_refused:  # one refused login a pass: the others wait
            continue
        try:
            if transmit(bridge, message):
                report.sent.append(message.id)
        except DiskFull as exc:  # the next pass sends it
            store_full(report, exc)
            break
        except MeshbridgeError as exc:
            _send_failed(bridge, message, exc, report)


def _send_failed(bridge: Bridge, message: StoredMessage, exc: MeshbridgeError, report: PollReport) -> None:
    """Report one send of a flush that failed (a final one's ``failed`` notification was queued
    with its state)."""
    if isinstance(exc, MeshAuthRefused):
        report.problems.append(f"send {message.id}: {exc}")
        report.mailbox_trouble(exc.mailbox, refused=True)
    elif isinstance(exc, SendAbandoned):
        report.problems.append(Logged(f"send {message.id}: {exc}"))
        report.mailbox_trouble(message.mailbox)  # failed: its notification queued with the state
    elif isinstance(exc, TransportError):  # refused by MESH (failed), or due again after a backoff
        report.problems.append(Logged(f"send {message.id}: {exc}"))
    else:
        report.problems.append(f"send {message.id}: {exc}")
        bridge.logins.failed(report, message.mailbox, exc)
