"""Collecting: one inbound pass over the MESH inboxes, everything that needs no destination.

Download each message to the store, make a batch durable and only then acknowledge it in MESH;
then prepare every ``mesh-acked`` message: apply MESH REPORTs, correlate ITK responses and
domain acknowledgements, answer ITK messages, route and validate the rest (``valid``: ready for
:mod:`meshbridge.delivering`). The machinery behind :meth:`Bridge.collect <meshbridge.Bridge.collect>`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from . import acks, domain_acks, pipeline
from .errors import DiskFull, MeshAuthRefused, MeshbridgeError
from .mesh import MeshMailbox
from .models import Direction, State
from .payloads.base import Payload
from .pipeline import Logged, PollReport, store_full
from .store import StoredMessage
from .validation import check

if TYPE_CHECKING:
    from .bridge import Bridge

log = logging.getLogger("meshbridge")
DOMAIN_ACK_CAP = 10_000_000  # bytes: larger inbound payloads are never read as acknowledgements
RECEIVE_BATCH = 50  # messages downloaded and recorded before one fsync makes them durable and they are acknowledged


def collect_mailbox(bridge: Bridge, mailbox_id: str, report: PollReport) -> None:
    """Download one mailbox's inbox into the store and acknowledge it in MESH, a durable batch at a time."""
    mesh = bridge.mailbox(mailbox_id)
    # Stored but not recorded as acknowledged (a crash on either side of the acknowledge): the
    # inbox may no longer list it, so finish it from the store. A repeated acknowledge is harmless.
    stored = [m for m in bridge.store.messages(state=State.RECEIVED, direction=Direction.IN) if m.mailbox == mailbox_id]
    acknowledge(bridge, mesh, stored, report)
    batch: list[StoredMessage] = []
    try:
        bridge.store.space.room_for(0)  # no room for new messages: leave them in MESH
        for mesh_id in mesh.inbox():
            try:
                batch.append(pipeline.download(bridge.store, mesh, mesh_id, durable=False, progress=bridge.progress))
            except (DiskFull, MeshAuthRefused):
                raise
            except MeshbridgeError as exc:
                report.problems.append(f"collect {mesh_id} for {mailbox_id}: {exc}")
                bridge.logins.failed(report, mailbox_id, exc)
            if len(batch) >= RECEIVE_BATCH:
                acknowledge(bridge, mesh, batch, report)
                batch = []
        bridge.logins.ok(mailbox_id)  # the inbox was listed: the login works
    except DiskFull as exc:  # what is not stored stays in MESH for the next pass
        store_full(report, exc)
    except MeshbridgeError as exc:
        report.problems.append(str(exc))
        bridge.logins.failed(report, mailbox_id, exc)
    acknowledge(bridge, mesh, batch, report)


def acknowledge(bridge: Bridge, mesh: MeshMailbox, batch: list[StoredMessage], report: PollReport) -> None:
    """Acknowledge stored messages in MESH once their rows are durable: one fsync for the batch
    (also for rows another process stored and died before syncing)."""
    try:
        bridge.store.make_durable(*(m.id for m in batch))
    except DiskFull as exc:  # not durable: not acknowledged, MESH keeps them
        store_full(report, exc)
        return
    for message in batch:
        try:
            _acknowledge_one(bridge, mesh, message, report)
        except DiskFull as exc:
            store_full(report, exc)
            break
        except MeshbridgeError as exc:
            report.problems.append(f"acknowledge {message.mesh_message_id} in {mesh.id}: {exc}")
            bridge.logins.failed(report, mesh.id, exc)


def _acknowledge_one(bridge: Bridge, mesh: MeshMailbox, message: StoredMessage, report: PollReport) -> None:
    route = pipeline.inbound_route(bridge.config, message) if pipeline.undecodable(message) else None
    if route is not None and route.itk is not None:  # its 10009 will be new data: room first
        bridge.store.space.room_for(0)
    pipeline.acknowledge(bridge.store, mesh, message)
    report.received.append(message.id)
    if pipeline.undecodable(message):
        report.invalid.append(message.id)  # its notification was queued with the state (pipeline.acknowledge)
        if route is not None and route.itk is not None:
            bridge.acks.answer_undecodable(route, message)


def prepare_all(bridge: Bridge, report: PollReport) -> None:
    """Every collected message (``mesh-acked``): REPORTs and acknowledgements applied, DATA
    answered (ITK) and validated. What a route can deliver becomes ``valid``; delivering is
    :mod:`meshbridge.delivering`'s. A message that fails here (a plugin that raises included) is
    reported and the others go on."""
    for message in bridge.store.messages(state=State.MESH_ACKED, direction=Direction.IN):
        if bridge.stopping.is_set():
            return
        try:
            prepare(bridge, message, report)
            tally_kept(bridge, message, report)
        except DiskFull as exc:
            store_full(report, exc)
            break
        except MeshbridgeError as exc:
            report.problems.append(f"prepare {message.id}: {exc}")
        except Exception as exc:
            log.exception("preparing %s failed", message.id)
            report.problems.append(f"prepare {message.id}: {type(exc).__name__}: {exc}")


def tally_kept(bridge: Bridge, message: StoredMessage, report: PollReport) -> None:
    """Count a message kept as ``orphan`` or ``duplicate`` by this pass as such in the report."""
    state = bridge.store.get(message.id).state
    if state in (State.ORPHAN, State.DUPLICATE):
        getattr(report, state).append(message.id)


def prepare(bridge: Bridge, message: StoredMessage, report: PollReport, respond: bool = True) -> None:
    """Route one ``mesh-acked`` message and validate it (ITK: answer it, unless not ``respond``)."""
    if message.message_type == "REPORT":
        apply_report(bridge, message, report)
        return
    if domain_ack(bridge, message, report):
        return
    route = pipeline.inbound_route(bridge.config, message)
    if route is None and message.workflow_id in acks.ack_workflows(bridge.config, message.mailbox):
        if bridge.acks.receive_response(message):
            report.correlated.append(message.id)
        return
    if route is None or route.destination is None:
        pipeline.mark_unrouted(bridge.store, message, route)  # and its notification
        report.unrouted.append(message.id)
        return
    if route.itk:
        state = bridge.acks.receive_message(route, message, respond=respond)
        if state == State.INVALID:  # a duplicate is counted as such (tally_kept)
            report.invalid.append(message.id)
        return
    result = pipeline.validate_inbound(bridge.store, bridge.plugins, route, message)
    if not result.valid:  # recorded invalid, its notification queued with it
        report.invalid.append(message.id)
        return
    bridge.store.transition(  # lazy: lost in a power cut, the message is validated again
        message.id,
        State.VALID,
        from_states=(State.MESH_ACKED,),
        detail={"payload_type": result.payload_type},
        route=route.name,
        payload_type=result.payload_type,
        durable=False,
    )


def domain_ack(bridge: Bridge, message: StoredMessage, report: PollReport) -> bool:
    """Is this inbound message a domain acknowledgement? If so, correlate it."""
    protocols = bridge.plugins.ack_protocols()
    if not protocols or (message.payload_size or 0) > DOMAIN_ACK_CAP:
        return False
    data = bridge.store.payloads.read(message.sha256)
    result = check(bridge.plugins, data, direction=Direction.IN, workflow_id=message.workflow_id)
    payload = Payload(data, result.payload_type, Direction.IN, message.workflow_id, message.filename, result)
    for protocol in protocols:
        try:
            match = protocol.answers(payload)
        except Exception as exc:
            log.error("ack protocol %s failed on %s: %s: %s", protocol.name, message.id, type(exc).__name__, exc)
            continue
        if match is not None:
            if domain_acks.correlate(bridge.store, protocol, message, match):
                report.correlated.append(message.id)
            return True
    return False


def apply_report(bridge: Bridge, message: StoredMessage, report: PollReport) -> None:
    """Apply a MESH REPORT (non-delivery) to the message it names, or keep it as an orphan."""
    linked = pipeline.apply_report(bridge.store, message)  # undeliverable or orphan, notified with the change
    if linked:
        report.undeliverable.append(linked.id)
    else:
        problem = (
            f"MESH report {message.mesh_message_id} names {message.linked_message_id}, which this store did not send"
        )
        report.problems.append(Logged(problem))
