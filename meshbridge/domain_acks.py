"""Domain acknowledgements (EDIFACT RECEP, NHSACK ...) on the same expectation machinery as ITK3.

A plugin returns :class:`AckProtocol` objects from ``meshbridge_ack_protocols``. For each outbound
payload, ``expects`` may return a correlation key: meshbridge then records an expectation named
after the protocol (deadline from the route option ``<name>_within``, e.g. ``recep_within = "1d"``).
For each inbound payload, ``answers`` may recognise it as such an acknowledgement and say which
key it answers. meshbridge applies it only when it comes from the mailbox the original was sent
to (MESH's ``mex-From``), arrives on the mailbox the original was sent from, on a workflow the
protocol declares (``workflows``): then it meets the expectation, records the outcome on the
original's timeline and files the acknowledgement as ``correlated``. Anything else (nothing
matches, or the wrong sender, mailbox or workflow) is kept as ``orphan`` with its reason, raised
as an event, and changes nothing on the original.
See ``examples/recep_ack.py`` for a complete plugin.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import responders
from .config import Route, parse_duration
from .events import EventKind, Notification
from .models import State
from .payloads.base import Payload
from .store import Store, StoredMessage


@dataclass(frozen=True)
class AckMatch:
    """An inbound payload recognised as an acknowledgement.

    :param key: the correlation key of the message it answers (as ``expects`` produced it).
    :param positive: accepted (True) or rejected (False); a rejection closes every expectation.
    :param code: the protocol's own outcome code, e.g. ``OK`` or ``CA``.
    :param text: words for the timeline (no patient data).
    """

    key: str
    positive: bool
    code: str
    text: str | None = None


@dataclass(frozen=True)
class AckProtocol:
    """A kind of domain acknowledgement.

    :param name: expectation kind and event name, e.g. ``recep``.
    :param expects: ``expects(payload, route) -> key | None`` for outbound payloads.
    :param answers: ``answers(payload) -> AckMatch | None`` for inbound payloads.
    :param workflows: the MESH workflow ids the acknowledgement arrives on, e.g.
        ``("NHAIS_RECEP",)``. ``None`` (the default): the original's own workflow id, or that id
        with ``_ACK`` appended (the usual MESH convention, as ITK3's ack workflows).
    """

    name: str
    expects: Callable[[Payload, Route], str | None]
    answers: Callable[[Payload], AckMatch | None]
    workflows: tuple[str, ...] | None = None

    def within(self, route: Route) -> float | None:
        value = route.options.get(f"{self.name}_within")
        return None if value is None else parse_duration(value)

    def arrives_on(self, original: StoredMessage) -> frozenset[str]:
        """The workflow ids on which an acknowledgement of ``original`` may arrive."""
        if self.workflows is not None:
            return frozenset(self.workflows)
        workflow = original.workflow_id or ""  # (an outbound message always has one)
        return frozenset({workflow, f"{workflow}_ACK"})


def correlate(store: Store, protocol: AckProtocol, message: StoredMessage, match: AckMatch) -> StoredMessage | None:
    """Apply a recognised domain acknowledgement to the message it answers, if its sender may answer it."""
    detail = {"protocol": protocol.name, "code": match.code, "text": match.text, "ack": message.id}
    target = store.by_key(protocol.name, match.key)
    if target is None:
        reason = f"{protocol.name} answers {match.key!r}, which this store did not send"
        _orphan(store, message, reason, detail)
        return None
    misfit = responders.misfit(message, target, protocol.arrives_on(target), f"{match.key!r}")
    if misfit:
        _orphan(store, message, f"{protocol.name} {misfit}", {**detail, "claims": target.id})
        return None
    if not store.meet(target.id, protocol.name, match.code, positive=match.positive, text=match.text):
        reason = f"{protocol.name} answers {match.key!r}, which was already answered (or closed): it is answered once"
        _orphan(store, message, reason, {**detail, "claims": target.id})
        return None
    summary = f"{target.id} rejected by {protocol.name} {match.code}"
    nack = None if match.positive else Notification(EventKind.NACK, target.id, summary, detail)
    store.update(
        target.id, kind=protocol.name if match.positive else f"{protocol.name}-rejected", detail=detail, alert=nack
    )
    if not match.positive:
        store.close_expectations(target.id, f"closed by {protocol.name} {match.code}")
    store.transition(
        message.id,
        State.CORRELATED,
        from_states=(State.MESH_ACKED,),
        answers=target.id,
        detail={**detail, "answers": target.id},
    )
    return store.get(target.id)


def _orphan(store: Store, message: StoredMessage, reason: str, detail: dict[str, Any]) -> None:
    """Keep an acknowledgement that may not be applied, with its reason; the original is left alone."""
    summary = f"{message.id} from {message.peer}: {reason}"
    store.transition(
        message.id,
        State.ORPHAN,
        from_states=(State.MESH_ACKED,),
        detail={**detail, "reason": reason},
        last_error=reason,
        alert=Notification(EventKind.ORPHAN, message.id, summary, {**detail, "reason": reason}),
    )
