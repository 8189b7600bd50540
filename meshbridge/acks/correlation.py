"""Correlating ITK3 responses (ITK008M) with the messages they answer.

A response applies only when it comes from the original's recipient to the mailbox it left from
on its route's ack workflow (``responders``), once per sender (idempotent on its own
``MessageHeader.id``), and only while the message still takes a response of that level; anything
else is kept as an ``orphan`` with its reason.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import itk, responders
from ..config import Config
from ..events import EventKind, Notification
from ..kinds import BUS, INF
from ..models import FINAL, Direction, Event, State, TimelineKind
from ..store import Store, StoredMessage

# told of a response applied: (the message's route, the level, positive?, its timeline on demand)
Correlated = Callable[[str | None, str, bool, Callable[[], list[Event]]], None]
_ALL = (State.ACCEPTED, State.SENDING, State.SENT, State.DELIVERED, State.INF_ACKED, State.BUS_ACKED)


def ack_workflows(config: Config, mailbox: str) -> set[str]:
    """Workflows on which ``mailbox`` receives ITK responses (no route needed for them)."""
    return {r.itk.ack_workflow for r in config.routes if r.itk and r.mailbox == mailbox}


def answer_workflows(config: Config, original: StoredMessage) -> set[str]:
    """Workflows on which answers to ``original`` may arrive: its route's ack workflow.

    A message whose route is gone from the config (or had none) takes the ack workflows of the
    mailbox it was sent from, and its own workflow.
    """
    for route in config.routes:
        if route.name == original.route and route.itk:
            return {route.itk.ack_workflow}
    return ack_workflows(config, original.mailbox) | {original.workflow_id or ""}  # (an outbound one has one)


def correlate(
    config: Config,
    store: Store,
    response: StoredMessage,
    header: itk.ItkHeader,
    correlated: Correlated | None = None,
) -> StoredMessage | None:
    """Apply an ITK response to the message it answers. Returns that message, or None (orphan/duplicate).

    Checked in this order, so that a response nobody may send changes nothing and blocks nothing:
    the code and the answered message, then who sent it, where and on which workflow
    (``responders.misfit``), then whether that sender's response was seen before, and last whether
    the message still takes a response of that level (not final, not answered at that level yet,
    and, for one of our own responses, only the infrastructure ack it asked for).
    """
    store.update(response.id, itk_message_id=header.message_id)
    detail = {
        "code": header.itk_code,
        "display": header.itk_display,
        "text": header.itk_text,
        "level": header.level,
        "response": response.id,
    }
    code = itk.lookup(header.itk_code)
    targets = (
        []
        if header.response_identifier == itk.UNREADABLE
        else store.find_itk(Direction.OUT, header.response_identifier or "")
    )
    if code is None or not targets:
        reason = (
            f"unknown ITK response code {header.itk_code!r}"
            if code is None
            else f"answers {header.response_identifier!r}, which this store did not send"
        )
        _orphan_response(store, response, header, reason, detail)
        return None
    target = targets[0]
    misfit = responders.misfit(response, target, answer_workflows(config, target), header.response_identifier or "")
    if misfit:
        _orphan_response(store, response, header, misfit, {**detail, "claims": target.id})
        return None
    if _seen_before(store, response, header):
        store.transition(response.id, State.DUPLICATE, detail={"itk_message_id": header.message_id})
        return None
    if code.code in ("20007", "20008") and target.inf_ack_code == itk.SUCCESS:
        # a re-send after a lost ack: the receiver already has it (reference itk3.md §6.2)
        store.update(target.id, kind=TimelineKind.DUPLICATE_REPORTED, detail=detail)
        store.transition(response.id, State.CORRELATED, detail={**detail, "answers": target.id}, answers=target.id)
        return store.get(target.id)
    applied = _apply(store, response, header, target, code, detail)
    if applied is not None and correlated is not None:
        correlated(target.route, code.level, code.positive is not False, lambda: store.events(target.id))
    return applied


def _apply(
    store: Store,
    response: StoredMessage,
    header: itk.ItkHeader,
    target: StoredMessage,
    code: itk.ResponseCode,
    detail: dict[str, Any],
) -> StoredMessage | None:
    """Apply a response at its level (infrastructure or business) unless the message takes no more of it."""
    positive = code.positive is not False
    if code.level == itk.INFRASTRUCTURE:
        kind, column, expectation = (TimelineKind.INF_ACK if positive else TimelineKind.INF_NACK), "inf_ack_code", INF
        state = State.INF_ACKED if positive else State.INF_NACKED
        advance_from: tuple[str, ...] = (State.ACCEPTED, State.SENDING, State.SENT, State.DELIVERED)
    else:
        kind, column, expectation = (TimelineKind.BUS_ACK if positive else TimelineKind.BUS_NACK), "bus_ack_code", BUS
        state = State.BUS_ACKED if positive else State.BUS_NACKED
        advance_from = (State.ACCEPTED, State.SENDING, State.SENT, State.DELIVERED, State.INF_ACKED)
    reason = _answered(target, column, header.response_identifier or "") or _unasked(
        store, target, code.level, header.response_identifier or ""
    )
    if reason:
        _orphan_response(store, response, header, reason, {**detail, "claims": target.id})
        return None
    store.meet(target.id, expectation, code.code, positive=positive, text=header.itk_text)
    answered: dict[str, Any] = {column: code.code}
    nack = (
        None
        if positive
        else Notification(EventKind.NACK, target.id, f"{target.id} got {code.code} {code.display}", detail)
    )
    store.update(target.id, kind=kind, detail=detail, alert=nack, **answered)  # the nack notified with it
    if not positive:
        store.close_expectations(target.id, f"closed by {code.code}")
        store.transition(target.id, state, from_states=tuple(s for s in _ALL if s not in FINAL), detail=detail)
    else:
        store.transition(target.id, state, from_states=advance_from, detail=detail)
        if not store.open_expectations(target.id):
            store.transition(target.id, State.COMPLETE, from_states=(State.INF_ACKED, State.BUS_ACKED))
    store.transition(response.id, State.CORRELATED, detail={**detail, "answers": target.id}, answers=target.id)
    return store.get(target.id)


def _answered(target: StoredMessage, column: str, answers: str) -> str | None:
    """Why ``target`` takes no more responses of this level, or None: a final state, or an answer
    of this level already applied (a later, different one from the same recipient changes nothing)."""
    if target.state in FINAL:
        return f"answers {answers}, which is already {target.state}: a final state is not changed"
    given = target.inf_ack_code if column == "inf_ack_code" else target.bus_ack_code
    if given:
        level = "infrastructure" if column == "inf_ack_code" else "business"
        return f"answers {answers}, which already has {level} response {given}: it is answered once"
    return None


def _unasked(store: Store, target: StoredMessage, level: str, answers: str) -> str | None:
    """Why a response may not answer ``target``, one of our own responses, or None: a response is
    answered only by the infrastructure ack it asked for (Full Acknowledgement), never otherwise."""
    if target.answers is None:  # an ITK message of ours, not a response
        return None
    if level == itk.INFRASTRUCTURE and any(e.kind == INF for e in store.expectations(target.id)):
        return None
    return f"answers {answers}, our response {target.id}, which asked for no such acknowledgement"


def _seen_before(store: Store, response: StoredMessage, header: itk.ItkHeader) -> bool:
    """Was this response (its MessageHeader.id, from this sender) already applied?

    Only responses that were applied count: an orphan reusing a genuine response's id (a forger
    quick off the mark) must not make the genuine one a duplicate.
    """
    return any(
        m.id != response.id
        and m.state in (State.CORRELATED, State.DUPLICATE)
        and responders.same_mailbox(m.peer, response.peer)
        for m in store.find_itk(Direction.IN, header.message_id)
    )


def _orphan_response(
    store: Store, response: StoredMessage, header: itk.ItkHeader, reason: str, detail: dict[str, Any]
) -> None:
    """Keep a response that may not be applied, with its reason (and its ``orphan`` notification);
    the message it names is left alone."""
    summary = f"ITK response {header.message_id} from {response.peer}: {reason}"
    alert = Notification(EventKind.ORPHAN, response.id, summary, {**detail, "reason": reason})
    store.transition(response.id, State.ORPHAN, detail={**detail, "reason": reason}, last_error=reason, alert=alert)
