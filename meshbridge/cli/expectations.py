"""How the command line shows an expectation: open, OVERDUE, met (late or not), NACKED or closed.

Whether an expectation is overdue is the store's one definition (``Store.expectations`` gives
``overdue`` and ``late``); this module only words it, for people and for JSON.
"""

from __future__ import annotations

from typing import Any

from .times import iso, shown

TIME_FIELDS = ("due_at", "met_at", "overdue_at")
OURS = {"bus-ack-owed": "our business ack"}  # expectations we must meet, not our peer


def verdict(expectation: dict[str, Any]) -> str | None:
    """``ack``, ``nack`` or ``closed`` for a met expectation, None for an open one.

    Rows met before verdicts were stored (``m012``) are judged by their outcome: an ITK code the
    code table types negative is a nack; anything else counts as an ack.
    """
    if expectation["met_at"] is None:
        return None
    if expectation.get("verdict"):
        return str(expectation["verdict"])
    outcome = str(expectation.get("outcome") or "")
    if outcome.startswith("closed by "):
        return "closed"
    from ..itk.codes import lookup

    code = lookup(outcome)
    return "nack" if code is not None and code.positive is False else "ack"


def line(expectation: dict[str, Any], utc: bool = False) -> str:
    """One line for ``show``, e.g. ``expects bus-ack by 2026-11-28 07:00:00-05:00: NACKED 30003 (Moved away) at …``."""
    kind = expectation["kind"]
    label = f"{kind} ({OURS[kind]})" if kind in OURS else kind
    due = f"by {shown(expectation['due_at'], utc)}" if expectation["due_at"] else "(no deadline)"
    found = verdict(expectation)
    if found is None:
        status = "OVERDUE" if expectation["overdue"] else "open"
    else:
        at = shown(expectation["met_at"], utc)
        outcome = expectation.get("outcome") or ""
        text = f" ({expectation['text']})" if expectation.get("text") else ""
        if kind in OURS:  # we answered: say what we sent
            status = f"sent {'nack ' if found == 'nack' else ''}{outcome}{text} at {at}"
        else:
            status = {
                "nack": f"NACKED {outcome}{text} at {at}",
                "closed": f"{outcome} at {at}",
            }.get(found, f"met {outcome}{text} at {at}")
        if expectation["late"]:
            status += ", LATE"
    return f"expects {label} {due}: {status}"


def public(expectation: dict[str, Any]) -> dict[str, Any]:
    """An expectation for JSON: times as ISO 8601 with their offset, ``overdue``, ``late`` and ``verdict``."""
    return {
        "kind": expectation["kind"],
        **{name: iso(expectation.get(name)) for name in TIME_FIELDS},
        "overdue": bool(expectation["overdue"]),
        "late": bool(expectation["late"]),
        "verdict": verdict(expectation),
        "outcome": expectation.get("outcome"),
        "text": expectation.get("text"),
    }
