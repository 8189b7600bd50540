"""What a listing selects (:class:`Filters`) and what the status counts (:class:`Status`, with
:class:`RouteCount`): the operator's views, beside the messages they show (:mod:`.models`).

Imports nothing heavy: :class:`~meshbridge.Reader` (``meshbridge status``) builds these too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .models import Direction, State


def is_text(value: str) -> bool:
    """Can a store hold ``value``: no NUL (PostgreSQL refuses it) and no lone surrogate (which is
    how Python hands over a byte of a command line that is not UTF-8)? What is not names nothing stored."""
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return "\x00" not in value


@dataclass(frozen=True)
class Filters:
    """Which messages a listing holds: every field set narrows it (none set: every message).

    ``overdue``: with an expectation past its deadline and unmet (the store's one definition, as of
    reading); ``nacked``: ``inf-nacked`` or ``bus-nacked``; ``owed``: inbound ITK messages still
    owing our business ack; ``since``/``until``: created at or after / before (aware datetimes).
    A state that is not one of :class:`State`, or a naive time, is an
    :class:`~meshbridge.errors.InvalidRequest`.
    """

    state: State | None = None
    direction: Direction | None = None
    route: str | None = None
    mailbox: str | None = None
    peer: str | None = None
    workflow_id: str | None = None
    overdue: bool = False
    nacked: bool = False
    owed: bool = False
    since: datetime | None = None
    until: datetime | None = None

    def __post_init__(self) -> None:
        from .errors import InvalidRequest

        for name, kind in (("state", State), ("direction", Direction)):
            value = getattr(self, name)
            if value is not None and not isinstance(value, kind):
                if value not in kind._value2member_map_:
                    known = ", ".join(sorted(kind._value2member_map_))
                    raise InvalidRequest(f"unknown {name} {value!r} (one of: {known})")
                object.__setattr__(self, name, kind(value))
        for name in ("route", "mailbox", "peer", "workflow_id"):
            value = getattr(self, name)
            if value is not None and not is_text(value):
                raise InvalidRequest(f"{name}: not text (a NUL, or a byte that is not UTF-8): {value!r}")
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise InvalidRequest(f"{name} needs a time zone (a naive time is ambiguous)")


@dataclass(frozen=True)
class RouteCount:
    """How many messages of one direction are in one state on one route (None: no route)."""

    route: str | None
    direction: Direction
    state: State
    messages: int

    def as_json(self) -> dict[str, Any]:
        direction, state = str(self.direction), str(self.state)
        return {"route": self.route, "direction": direction, "state": state, "messages": self.messages}


@dataclass(frozen=True)
class Status:
    """Counts by direction and state (``counts``) and by route too (``by_route``); ``overdue``:
    overdue expectations (as of reading), ``overdue_messages``: the messages they are on;
    ``owed``: inbound ITK messages still owing our business ack. Read from counters the store
    keeps as it writes: the same cost for any number of messages."""

    counts: Mapping[Direction, Mapping[State, int]]
    overdue: int
    overdue_messages: int
    owed: int
    by_route: tuple[RouteCount, ...] = ()

    def as_json(self) -> dict[str, Any]:
        counts = {str(d): {str(s): n for s, n in states.items()} for d, states in self.counts.items()}
        return {
            "counts": counts,
            "overdue": self.overdue,
            "overdue_messages": self.overdue_messages,
            "owed": self.owed,
            "by_route": [r.as_json() for r in self.by_route],
        }
