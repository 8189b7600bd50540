"""The operator's log of messages: one line per step (stored, sent, received, delivered, acked,
nacked, overdue, failed, …), written when the store has recorded that step on the message's
timeline and its transaction has committed.

One place for every step, so none is logged twice and none is missed: whoever records a step
(the pipeline, the ack handling, a command) logs nothing about it itself. Timeline kinds that are
not steps an operator follows (``sending``, ``chunk-sent``, ``mesh-acked``, ``valid``,
``correlated``, ``responded``, …) are logged at DEBUG. Each line carries the message's fields
(``message_id``, ``route``, ``mailbox``, ``peer``, ``mesh_message_id``, ``state``: the one the
step set, else the message's after it, ``code``) and
``step`` as ``extra``: the JSON format prints them as fields, the text format after the message.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from .events import EventKind
from .models import Direction, TimelineKind

log = logging.getLogger("meshbridge.steps")
_told: ContextVar[bool] = ContextVar("meshbridge_steps_told", default=False)

INFO, WARNING = logging.INFO, logging.WARNING

# timeline kind -> (step, level), whichever the direction
STEPS: dict[str, tuple[str, int]] = {  # TimelineKind members: StrEnums, so a stored str finds them
    TimelineKind.ACCEPTED: ("stored", INFO),
    TimelineKind.REJECTED: ("rejected", WARNING),
    TimelineKind.SENT: ("sent", INFO),
    TimelineKind.SEND_FAILED: ("send-failed", WARNING),  # MESH could not be reached: tried again with backoff
    TimelineKind.FAILED: ("failed", WARNING),
    TimelineKind.DELIVERED: ("delivered", INFO),
    TimelineKind.UNDELIVERABLE: ("undeliverable", WARNING),
    TimelineKind.RECEIVED: ("received", INFO),
    TimelineKind.INVALID: ("invalid", WARNING),
    TimelineKind.UNROUTED: ("unrouted", WARNING),
    TimelineKind.DUPLICATE: ("duplicate", INFO),
    TimelineKind.DELIVERY_FAILED: ("delivery-failed", WARNING),  # tried again with backoff
    TimelineKind.UNDELIVERED: ("undelivered", WARNING),
    TimelineKind.ORPHAN: ("orphan", WARNING),
    TimelineKind.OVERDUE: ("overdue", WARNING),
    TimelineKind.INF_ACK: ("acked", INFO),  # a response to a message of ours (its state may move too: DEBUG)
    TimelineKind.BUS_ACK: ("acked", INFO),
    TimelineKind.INF_NACK: ("nacked", WARNING),
    TimelineKind.BUS_NACK: ("nacked", WARNING),
    TimelineKind.RETRY: ("retried", INFO),
    TimelineKind.REPLAY: ("replayed", INFO),
    TimelineKind.SEND_INTERRUPTED: ("interrupted", INFO),
    TimelineKind.DELIVERY_INTERRUPTED: ("interrupted", INFO),
}
# inbound only: our business response to a message we received (given with ``meshbridge ack``)
INBOUND_STEPS: dict[str, tuple[str, int]] = {
    TimelineKind.BUS_ACKED: ("acked", INFO),
    TimelineKind.BUS_NACKED: ("nacked", WARNING),
}
# the event kinds ``meshbridge_on_event`` shares with a step: their step line is their log line
NOTIFIED = frozenset(
    {
        EventKind.REJECTED,
        EventKind.FAILED,
        EventKind.UNDELIVERABLE,
        EventKind.INVALID,
        EventKind.DUPLICATE,
        EventKind.UNROUTED,
        EventKind.UNDELIVERED,
        EventKind.ORPHAN,
        EventKind.OVERDUE,
        EventKind.NACK,
    }
)

Event = tuple[str, str, str | None, dict[str, Any] | None]  # message id, kind, the state it set (if any), detail


@dataclass(frozen=True)
class Facts:
    """What a step's log line tells of its message (read after the commit)."""

    direction: str | None = None
    state: str | None = None
    route: str | None = None
    mailbox: str | None = None
    peer: str | None = None
    mesh_message_id: str | None = None
    workflow_id: str | None = None
    filename: str | None = None


Lookup = Callable[[str], Facts | None]  # message id -> its facts (after the commit), or None


def step_of(kind: str, direction: str | None, detail: dict[str, Any]) -> tuple[str, int] | None:
    """The step a timeline event is, with its level; None for a kind logged at DEBUG only."""
    if kind in STEPS:
        return STEPS[kind]
    if direction == Direction.IN and kind in INBOUND_STEPS:
        return INBOUND_STEPS[kind]
    protocol = detail.get("protocol")  # a plugin's domain acknowledgement (its kind is the protocol's name)
    if protocol and kind == protocol:
        return "acked", INFO
    if protocol and kind == f"{protocol}-rejected":
        return "nacked", WARNING
    return None


@contextmanager
def told_by_caller() -> Iterator[None]:
    """Within it the command itself tells the user how it went, in its one line (``send``): a step's
    WARNING is logged at INFO, so that the default level shows the outcome once, not twice."""
    token = _told.set(True)
    try:
        yield
    finally:
        _told.reset(token)


def log_steps(events: list[Event], lookup: Lookup) -> None:
    """Log recorded timeline events: each step at its level, every other kind at DEBUG."""
    for message_id, kind, state, detail in events:
        detail = detail or {}
        told = _told.get()
        widest = step_of(kind, Direction.IN, detail)  # before reading the row: could any line be wanted?
        wanted = logging.DEBUG if widest is None else min(widest[1], INFO) if told else widest[1]
        if not log.isEnabledFor(wanted):
            continue
        row = lookup(message_id) or Facts()
        step, level = step_of(kind, row.direction, detail) or (kind, logging.DEBUG)
        level = min(level, INFO) if told else level
        if not log.isEnabledFor(level):
            continue
        code = detail.get("code") or detail.get("mesh_code") or detail.get("status_code")
        fields = {
            "step": step,
            "message_id": message_id,
            "route": row.route,
            "mailbox": row.mailbox,
            "peer": row.peer,
            "mesh_message_id": row.mesh_message_id,
            "state": state or row.state,
            "code": str(code) if code is not None else None,
        }
        said = summary(step, kind, row, detail)
        log.log(level, "%s %s%s", step, message_id, f": {said}" if said else "", extra=fields)


def summary(step: str, kind: str, row: Facts, detail: dict[str, Any]) -> str:
    """The facts of one step in a few words (a peer's text among them, shown as it came)."""
    peer, workflow = row.peer, row.workflow_id
    named = f"{row.filename} " if row.filename else ""
    if step == "stored":
        return f"{named}for {peer} on workflow {workflow}"
    if step == "received":  # not a state: a step's name
        return f"{named}from {peer} on workflow {workflow}"
    if step == "sent":  # not a state: a step's name
        return f"to {peer} as {detail.get('mesh_message_id') or row.mesh_message_id}"
    if step == "delivered":  # not a state: a step's name
        where = detail.get("destination")
        return f"to {where}" if where else f"collected by {peer} (MESH tracking)"
    if step in ("acked", "nacked"):
        said = " ".join(str(detail[k]) for k in ("protocol", "code", "display") if detail.get(k))
        return f"{said}: {detail['text']}" if detail.get("text") else said
    if step == "overdue":
        return f"{detail.get('expected')} was due by {detail.get('due_at')}"
    if step == "unrouted":  # not a state: a step's name
        return f"from {peer} on workflow {workflow} ({detail.get('reason')}); kept in the store"
    if step == "undeliverable":  # not a state: a step's name
        return " ".join(
            str(detail[k]) for k in ("mesh_code", "mesh_description", "status", "status_description") if detail.get(k)
        )
    said = str(detail["reason"]) if detail.get("reason") else ""
    if not said and detail.get("findings"):
        said = "; ".join(_finding(f) for f in detail["findings"][:3])
    if detail.get("retry_at"):
        said += f"; tried again at {detail['retry_at']}"
    return said


def _finding(finding: Any) -> str:
    if isinstance(finding, dict):
        where = finding.get("where")
        return f"{where}: {finding.get('message')}" if where else str(finding.get("message"))
    return str(finding)
