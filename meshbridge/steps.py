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
from typing import Any

log = logging.getLogger("meshbridge.steps")
_told: ContextVar[bool] = ContextVar("meshbridge_steps_told", default=False)

INFO, WARNING = logging.INFO, logging.WARNING

# timeline kind -> (step, level), whichever the direction
STEPS: dict[str, tuple[str, int]] = {
    "accepted": ("stored", INFO),
    "rejected": ("rejected", WARNING),
    "sent": ("sent", INFO),
    "send-failed": ("send-failed", WARNING),  # MESH could not be reached: tried again with backoff
    "failed": ("failed", WARNING),
    "delivered": ("delivered", INFO),
    "undeliverable": ("undeliverable", WARNING),
    "received": ("received", INFO),
    "invalid": ("invalid", WARNING),
    "unrouted": ("unrouted", WARNING),
    "duplicate": ("duplicate", INFO),
    "delivery-failed": ("delivery-failed", WARNING),  # tried again with backoff
    "undelivered": ("undelivered", WARNING),
    "orphan": ("orphan", WARNING),
    "overdue": ("overdue", WARNING),
    "inf-ack": ("acked", INFO),  # a response to a message of ours (its state may move too: DEBUG)
    "bus-ack": ("acked", INFO),
    "inf-nack": ("nacked", WARNING),
    "bus-nack": ("nacked", WARNING),
    "retry": ("retried", INFO),
    "replay": ("replayed", INFO),
    "send-interrupted": ("interrupted", INFO),
    "delivery-interrupted": ("interrupted", INFO),
}
# inbound only: our business response to a message we received (given with ``meshbridge ack``)
INBOUND_STEPS = {"bus-acked": ("acked", INFO), "bus-nacked": ("nacked", WARNING)}
# the event kinds ``meshbridge_on_event`` shares with a step: their step line is their log line
NOTIFIED = frozenset(
    {
        "rejected",
        "failed",
        "undeliverable",
        "invalid",
        "duplicate",
        "unrouted",
        "undelivered",
        "orphan",
        "overdue",
        "nack",
    }
)

Event = tuple[str, str, str | None, dict[str, Any] | None]  # message id, kind, the state it set (if any), detail
Lookup = Callable[[str], dict[str, Any] | None]  # message id -> its row (after the commit), or None


def step_of(kind: str, direction: str | None, detail: dict[str, Any]) -> tuple[str, int] | None:
    """The step a timeline event is, with its level; None for a kind logged at DEBUG only."""
    if kind in STEPS:
        return STEPS[kind]
    if direction == "in" and kind in INBOUND_STEPS:
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
        widest = step_of(kind, "in", detail)  # before reading the row: could any line be wanted?
        wanted = logging.DEBUG if widest is None else min(widest[1], INFO) if told else widest[1]
        if not log.isEnabledFor(wanted):
            continue
        row = lookup(message_id) or {}
        step, level = step_of(kind, row.get("direction"), detail) or (kind, logging.DEBUG)
        level = min(level, INFO) if told else level
        if not log.isEnabledFor(level):
            continue
        code = detail.get("code") or detail.get("mesh_code") or detail.get("status_code")
        fields = {
            "step": step,
            "message_id": message_id,
            "route": row.get("route"),
            "mailbox": row.get("mailbox"),
            "peer": row.get("peer"),
            "mesh_message_id": row.get("mesh_message_id"),
            "state": state or row.get("state"),
            "code": str(code) if code is not None else None,
        }
        said = summary(step, kind, row, detail)
        log.log(level, "%s %s%s", step, message_id, f": {said}" if said else "", extra=fields)


def summary(step: str, kind: str, row: dict[str, Any], detail: dict[str, Any]) -> str:
    """The facts of one step in a few words (a peer's text among them, shown as it came)."""
    peer, workflow = row.get("peer"), row.get("workflow_id")
    named = f"{row['filename']} " if row.get("filename") else ""
    if step == "stored":
        return f"{named}for {peer} on workflow {workflow}"
    if step == "received":
        return f"{named}from {peer} on workflow {workflow}"
    if step == "sent":
        return f"to {peer} as {detail.get('mesh_message_id') or row.get('mesh_message_id')}"
    if step == "delivered":
        where = detail.get("destination")
        return f"to {where}" if where else f"collected by {peer} (MESH tracking)"
    if step in ("acked", "nacked"):
        said = " ".join(str(detail[k]) for k in ("protocol", "code", "display") if detail.get(k))
        return f"{said}: {detail['text']}" if detail.get("text") else said
    if step == "overdue":
        return f"{detail.get('expected')} was due by {detail.get('due_at')}"
    if step == "unrouted":
        return f"from {peer} on workflow {workflow} ({detail.get('reason')}); kept in the store"
    if step == "undeliverable":
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
