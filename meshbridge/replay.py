"""``replay``: deliver an inbound message again, or route and validate it again.

A delivered (or valid, bus-acked, bus-nacked) message is delivered to its route's destination
again; its state does not change (an event ``delivered`` with ``replay`` records it).

An ``unrouted`` or ``invalid`` message goes through routing and validation again against the
config as it is now, as if it had just been collected (an event ``replay`` first, its findings
and last error cleared): a route added since, or a payload type or validation setting changed
since, takes it, and a valid one is delivered at once. An ITK message is answered as any new
one would be (20013, or a nack), unless it was nacked before: replaying a message the sender was
told we refused is refused unless ``force``, and then no new response is sent (the sender has
our final word; its recorded ``inf_ack_code`` is kept).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from . import collecting, itk, pipeline
from .actors import Actor, with_actor
from .errors import ReplayRefused
from .models import REDELIVERABLE, REROUTABLE, Direction, State, TimelineKind
from .pipeline import PollReport
from .store import StoredMessage

if TYPE_CHECKING:
    from .bridge import Bridge


def replay(bridge: Bridge, message_id: str, *, force: bool = False, by: Actor | None = None) -> StoredMessage:
    """Replay one inbound message (see the module docstring); returns its row afterwards.

    A delivery that fails raises (``DeliveryError`` or ``StoreError``); a re-routed message that
    failed is left ``valid`` with a backoff, for the service's next delivery attempt.
    """
    message = bridge.store.get(message_id)
    if message.direction != Direction.IN or message.state not in REDELIVERABLE | REROUTABLE:
        raise ReplayRefused(
            f"{message.id} is {message.direction} and {message.state}: only an inbound message "
            "that was delivered, or is unrouted or invalid, can be replayed"
        )
    if not message.payload_sha256:
        raise ReplayRefused(f"{message.id}: its payload was removed by retention")
    nack = nacked(message)
    if nack and not force:
        raise ReplayRefused(
            f"{message.id} was answered with nack {nack} (the sender was told it was refused): "
            "give --force to replay it anyway; no new response is sent"
        )
    bridge.store.payloads.verify(message.payload_sha256)  # a damaged payload: one line, nothing changed
    if message.state in REROUTABLE:
        return reroute(bridge, message, respond=not nack, by=by)
    return redeliver(bridge, message, by)


def nacked(message: StoredMessage) -> str | None:
    """The negative code we answered this message with (infrastructure or business), if any."""
    inf: str | None = message.inf_ack_code
    bus: str | None = message.bus_ack_code
    if inf and inf != itk.SUCCESS:
        return inf
    code = itk.lookup(bus) if bus else None
    if code is not None and code.negative:
        return bus
    return None


def redeliver(bridge: Bridge, message: StoredMessage, by: Actor | None = None) -> StoredMessage:
    route = pipeline.inbound_route(bridge.config, message)
    if route is None or route.destination is None:
        raise ReplayRefused(f"{message.id}: no inbound route with a destination takes workflow {message.workflow_id}")
    bridge.store.event(message.id, TimelineKind.REPLAY, with_actor(None, by))
    pipeline.deliver_inbound(
        bridge.store,
        bridge.plugins,
        route,
        replace(message, state=State.VALID),
        replay=True,
        deadline=bridge.delivery_deadline(route),
        stopping=bridge.stopping,
    )
    return bridge.store.get(message.id)


def reroute(bridge: Bridge, message: StoredMessage, *, respond: bool, by: Actor | None = None) -> StoredMessage:
    """Back to ``mesh-acked``, through the steps a collected message takes, and delivered if valid."""
    if any(f.code == "payload.undecodable" for f in message.findings):
        raise ReplayRefused(
            f"{message.id}: its body could not be decoded and was stored as it came; there is nothing "
            "to route or validate (`meshbridge export` writes those bytes)"
        )
    store = bridge.store
    with store.exclusive("inbound"):  # as a poll's collection: one process at a time prepares
        moved = store.transition(
            message.id,
            State.MESH_ACKED,
            from_states=(message.state,),
            kind=TimelineKind.REPLAY,
            detail=with_actor({"from": message.state, **({} if respond else {"forced": True, "response": "none"})}, by),
            route=None,
            findings=None,
            last_error=None,
        )
        if not moved:
            raise ReplayRefused(f"{message.id} changed while this replay started; look at it again")
        collecting.prepare(bridge, store.get(message.id), PollReport(), respond=respond)
    message = store.get(message.id)
    if message.state != State.VALID:
        return message
    route = pipeline.inbound_route(bridge.config, message)
    assert route is not None
    policy = bridge.delivery_policy
    taken = store.claim_deliveries([message.id], policy.lease)
    if message.id in taken:  # else a running service took it first: it delivers it
        pipeline.deliver_inbound(
            store,
            bridge.plugins,
            route,
            replace(message, lease_holder=taken[message.id]),
            policy=policy,
            deadline=bridge.delivery_deadline(route),
            stopping=bridge.stopping,
            claim=taken[message.id],
        )
    return store.get(message.id)
