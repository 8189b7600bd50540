"""How the command line shows an expectation: open, OVERDUE, met (late or not), NACKED or closed.

Whether an expectation is overdue, late, and its verdict are the store's
(:class:`~meshbridge.models.Expectation`); this module only words it for people.
"""

from __future__ import annotations

from ..models import Expectation
from .times import shown

OURS = {"bus-ack-owed": "our business ack"}  # expectations we must meet, not our peer


def line(expectation: Expectation, utc: bool = False) -> str:
    """One line for ``show``, e.g. ``expects bus-ack by 2026-11-28 07:00:00-05:00: NACKED 30003 (Moved away) at …``."""
    kind = expectation.kind
    label = f"{kind} ({OURS[kind]})" if kind in OURS else kind
    due = f"by {shown(expectation.due_at, utc)}" if expectation.due_at else "(no deadline)"
    found = expectation.verdict
    if found is None:
        status = "OVERDUE" if expectation.overdue else "open"
    else:
        at = shown(expectation.met_at, utc)
        outcome = expectation.outcome or ""
        text = f" ({expectation.text})" if expectation.text else ""
        if kind in OURS:  # we answered: say what we sent
            status = f"sent {'nack ' if found == 'nack' else ''}{outcome}{text} at {at}"
        else:
            status = {
                "nack": f"NACKED {outcome}{text} at {at}",
                "closed": f"{outcome} at {at}",
            }.get(found, f"met {outcome}{text} at {at}")
        if expectation.late:
            status += ", LATE"
    return f"expects {label} {due}: {status}"
