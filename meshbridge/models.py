"""The typed results of the public API: messages, their timelines and expectations, and pages
(what a listing selects and the status counts: :mod:`.views`).

States, directions and timeline event kinds are defined here once, as :class:`~enum.StrEnum`\\ s
(a member equals its text, so ``message.state == "sent"`` holds). The groups of states the
pipeline acts on (:data:`FINISHED`, :data:`RETRIABLE`, :data:`REDELIVERABLE`, …) are sets of them.
Times are aware datetimes (UTC, as stored); ``as_json()`` gives what ``messages --json`` and
``show --json`` print.

Imports nothing heavy: :class:`~meshbridge.Reader` (``meshbridge status``) builds these too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Self, TypeVar

from .errors import StoreError
from .payloads.base import Finding

_E = TypeVar("_E", bound=StrEnum)


class Direction(StrEnum):
    """Which way a message goes: ``out`` (we send it) or ``in`` (we received it)."""

    OUT = "out"
    IN = "in"


class State(StrEnum):
    """Every state a message can be in (README "States")."""

    # outbound
    REJECTED = "rejected"  # validation refused it: quarantined, never sent
    ACCEPTED = "accepted"  # stored, waiting to be sent
    SENDING = "sending"  # claimed by a sender
    SENT = "sent"  # MESH took it (its MESH id is known)
    DELIVERED = "delivered"  # out: the recipient collected it; in: given to its destination
    UNDELIVERABLE = "undeliverable"  # a MESH REPORT (or tracking) says it will not arrive
    INF_ACKED = "inf-acked"
    INF_NACKED = "inf-nacked"
    BUS_ACKED = "bus-acked"  # out: the recipient's business ack; in: ours, sent
    BUS_NACKED = "bus-nacked"
    COMPLETE = "complete"  # every expectation met
    FAILED = "failed"  # MESH refused it, or its send attempts are spent
    DISCARDED = "discarded"  # a folder source's file changed after it was stored: never sent
    # inbound
    RECEIVED = "received"  # bytes and row durable
    MESH_ACKED = "mesh-acked"  # acknowledged in MESH
    VALID = "valid"  # routed and validated: to be delivered
    INVALID = "invalid"  # validation refused it (findings recorded)
    UNROUTED = "unrouted"  # no route takes its workflow
    UNDELIVERED = "undelivered"  # its destination failed every delivery attempt
    DUPLICATE = "duplicate"  # an ITK message id its sender used before
    CORRELATED = "correlated"  # an ITK response or domain ack applied to a message of ours
    ORPHAN = "orphan"  # a response, ack or REPORT that answers nothing it may answer
    REPORT = "report"  # a MESH REPORT applied to a message of ours


# States after which a message's payload is no longer needed (retention may remove it).
FINISHED = frozenset(
    {
        State.COMPLETE,
        State.DELIVERED,
        State.BUS_ACKED,
        State.BUS_NACKED,
        State.INF_NACKED,
        State.UNDELIVERABLE,
        State.CORRELATED,
        State.REPORT,
        State.DUPLICATE,
        State.ORPHAN,
        State.INVALID,
        State.REJECTED,
        State.FAILED,
        State.UNDELIVERED,
        State.DISCARDED,
    }
)
# Outbound states an ITK answer no longer changes.
FINAL = frozenset({State.INF_NACKED, State.BUS_NACKED, State.COMPLETE, State.UNDELIVERABLE, State.FAILED})
# Outbound states MESH holds the message in (sent, and maybe collected).
IN_FLIGHT = frozenset({State.SENT, State.DELIVERED})
# direction -> the state a retry starts from, and the state it puts the message in
RETRIABLE = {Direction.OUT: State.FAILED, Direction.IN: State.UNDELIVERED}
AGAIN = {Direction.OUT: State.ACCEPTED, Direction.IN: State.VALID}
# Inbound states ``replay`` delivers again, and those it routes and validates again.
REDELIVERABLE = frozenset({State.DELIVERED, State.VALID, State.BUS_ACKED, State.BUS_NACKED})
REROUTABLE = frozenset({State.UNROUTED, State.INVALID})


class TimelineKind(StrEnum):
    """The kinds of timeline entry meshbridge records (a state change records its state's name;
    a domain ack protocol adds its own name and ``NAME-rejected``). Not the notifications handed
    to plugins: those are :class:`~meshbridge.EventKind`."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"
    SENDING = "sending"
    RESENDING = "resending"  # a claim taken over from a sender that died or stopped
    CHUNK_SENT = "chunk-sent"
    SEND_INTERRUPTED = "send-interrupted"
    SEND_FAILED = "send-failed"  # MESH not reached: tried again with backoff
    LOGIN_REFUSED = "login-refused"
    SENT = "sent"
    FAILED = "failed"
    DISCARDED = "discarded"
    DELIVERED = "delivered"
    UNDELIVERABLE = "undeliverable"
    INF_ACK = "inf-ack"  # an answer to a message of ours
    INF_NACK = "inf-nack"
    BUS_ACK = "bus-ack"
    BUS_NACK = "bus-nack"
    INF_ACKED = "inf-acked"
    INF_NACKED = "inf-nacked"
    BUS_ACKED = "bus-acked"
    BUS_NACKED = "bus-nacked"
    COMPLETE = "complete"
    DUPLICATE_REPORTED = "duplicate-reported"  # the recipient says it saw our message before
    RECEIVED = "received"
    MESH_ACKED = "mesh-acked"
    VALID = "valid"
    INVALID = "invalid"
    UNROUTED = "unrouted"
    DUPLICATE = "duplicate"
    CORRELATED = "correlated"
    ORPHAN = "orphan"
    REPORT = "report"
    RESPONDED = "responded"  # we sent an ITK response to this message
    DELIVERY_FAILED = "delivery-failed"  # tried again with backoff
    DELIVERY_INTERRUPTED = "delivery-interrupted"
    UNDELIVERED = "undelivered"
    OVERDUE = "overdue"  # an expectation's deadline passed unmet (recorded once)
    RETRY = "retry"
    REPLAY = "replay"
    PAYLOAD_REMOVED = "payload-removed"  # retention removed the payload
    ALERT_SENT = "alert-sent"  # a notifier ([alerts]) delivered a notification about this message
    ALERT_GIVEN_UP = "alert-given-up"  # a notifier's attempts at one are spent
    DOWNLOADED = "downloaded"  # its payload was downloaded through the API (by whom: the detail)


def moment(value: str | None) -> datetime | None:
    """A stored time as an aware datetime (one without an offset is UTC: meshbridge only ever stored UTC)."""
    if not value:
        return None
    try:
        found = datetime.fromisoformat(value)
    except ValueError:
        raise StoreError(f"the store holds {value!r} where a time belongs") from None
    return found if found.tzinfo is not None else found.replace(tzinfo=UTC)


def stored(kind: type[_E], value: Any) -> _E:
    """A stored value of an enumeration (a state, a direction); one it does not hold is a damaged
    store (a hand-edited or hostile archive imported), a one-line :class:`StoreError`."""
    try:
        return kind(value)
    except ValueError:
        raise StoreError(f"the store holds {value!r} where a {kind.__name__.lower()} belongs") from None


def stamp(value: datetime | None) -> str | None:
    """A time for JSON: ISO 8601 with microseconds and its offset, as the store writes it."""
    return value.isoformat(timespec="microseconds") if value else None


def _kind(value: str) -> TimelineKind | str:
    return TimelineKind(value) if value in TimelineKind._value2member_map_ else value


@dataclass(frozen=True)
class Event:
    """One entry of a message's timeline: ``kind`` happened ``at``, setting ``state`` (if it changed it)."""

    seq: int
    at: datetime
    kind: TimelineKind | str
    state: State | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Event:
        detail = row["detail"]
        if isinstance(detail, str):
            detail = json.loads(detail)
        at = moment(row["at"])
        assert at is not None
        state = stored(State, row["state"]) if row["state"] else None
        return cls(row["seq"], at, _kind(row["kind"]), state, detail or {})

    def as_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": stamp(self.at),
            "kind": str(self.kind),
            "state": self.state,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class Expectation:
    """An answer a message waits for (``inf-ack``, ``bus-ack``, a plugin's ack, or ``bus-ack-owed``:
    ours to give). ``overdue``: open past its deadline (the store's one definition, as of reading);
    ``late``: met after it; ``verdict``: ``ack``, ``nack``, ``closed`` (ended by a nack), None while open."""

    kind: str
    due_at: datetime | None
    met_at: datetime | None = None
    outcome: str | None = None
    verdict: str | None = None
    text: str | None = None
    overdue_at: datetime | None = None  # when the sweep first recorded it overdue
    overdue: bool = False
    late: bool = False

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Expectation:
        met = moment(row["met_at"])
        return cls(
            kind=row["kind"],
            due_at=moment(row["due_at"]),
            met_at=met,
            outcome=row.get("outcome"),
            verdict=_verdict(row) if met else None,
            text=row.get("text"),
            overdue_at=moment(row.get("overdue_at")),
            overdue=bool(row["overdue"]),
            late=bool(row["late"]),
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "due_at": stamp(self.due_at),
            "met_at": stamp(self.met_at),
            "overdue_at": stamp(self.overdue_at),
            "overdue": self.overdue,
            "late": self.late,
            "verdict": self.verdict,
            "outcome": self.outcome,
            "text": self.text,
        }


def _verdict(row: Mapping[str, Any]) -> str:
    """``ack``, ``nack`` or ``closed`` for a met expectation. Rows met before verdicts were stored
    (``m012``) are judged by their outcome: an ITK code the code table types negative is a nack."""
    if row.get("verdict"):
        return str(row["verdict"])
    outcome = str(row.get("outcome") or "")
    if outcome.startswith("closed by "):
        return "closed"
    from .itk.codes import lookup

    code = lookup(outcome)
    return "nack" if code is not None and code.positive is False else "ack"


_FIELD_NAMES: dict[type, frozenset[str]] = {}


def _field_names(cls: type) -> frozenset[str]:
    """A dataclass's field names (read once per class: a page of rows asks for them per row)."""
    known = _FIELD_NAMES.get(cls)
    if known is None:
        known = _FIELD_NAMES[cls] = frozenset(f.name for f in fields(cls))
    return known


# The fields ``messages --json`` prints, in order (``findings`` follows ``overdue`` … see as_json).
JSON_FIELDS = (
    "id",
    "direction",
    "state",
    "route",
    "mailbox",
    "peer",
    "mesh_message_id",
    "workflow_id",
    "filename",
    "subject",
    "local_id",
    "payload_type",
    "payload_size",
    "itk_message_id",
    "inf_ack_code",
    "bus_ack_code",
    "overdue",
    "last_error",
    "created_at",
    "updated_at",
)
_TIMES = frozenset({"created_at", "updated_at", "tracked_at", "next_attempt_at"})


@dataclass(frozen=True, kw_only=True)
class MessageSummary:
    """One stored message, as a list shows it (no timeline). ``overdue``: an expectation of it is
    past its deadline and unmet, as of reading."""

    id: str
    direction: Direction
    state: State
    created_at: datetime
    updated_at: datetime
    route: str | None = None
    mailbox: str | None = None  # ours
    peer: str | None = None  # the other mailbox: recipient of out, sender of in
    workflow_id: str | None = None
    mesh_message_id: str | None = None
    message_type: str | None = None  # DATA | REPORT
    local_id: str | None = None  # an inbound message's sender's own id (mex-LocalID)
    filename: str | None = None
    subject: str | None = None
    content_type: str | None = None
    payload_type: str | None = None
    payload_sha256: str | None = None  # None once retention removed the payload
    payload_size: int | None = None
    itk_message_id: str | None = None
    inf_ack_code: str | None = None
    bus_ack_code: str | None = None
    answers: str | None = None  # the id of the message of ours this response answers
    linked_message_id: str | None = None  # a REPORT: the MESH id of the message it is about
    destination: str | None = None  # where an inbound message was delivered
    source_file: str | None = None  # the folder source's file it came from (path@sha256)
    chunks_done: int = 0
    chunks_total: int | None = None
    attempts: int = 0
    next_attempt_at: datetime | None = None
    tracked_at: datetime | None = None
    last_error: str | None = None
    findings: tuple[Finding, ...] = ()
    overdue: bool = False

    @classmethod
    def from_row(cls, row: Mapping[str, Any], **more: Any) -> Self:
        """The typed message of a store row (columns it does not know, such as leases, are left out)."""
        known = _field_names(cls)
        values: dict[str, Any] = {k: v for k, v in row.items() if k in known}
        for name in _TIMES & values.keys():
            values[name] = moment(values[name])
        values["direction"] = stored(Direction, row["direction"])
        values["state"] = stored(State, row["state"])
        values["findings"] = tuple(Finding(**f) for f in json.loads(row.get("findings") or "[]"))
        values["overdue"] = bool(row.get("overdue"))
        values["chunks_done"] = row.get("chunks_done") or 0
        values["attempts"] = row.get("attempts") or 0
        return cls(**values, **more)

    def as_json(self) -> dict[str, Any]:
        """``messages --json``'s item: :data:`JSON_FIELDS` and ``findings``, times ISO 8601 with their offset."""
        public: dict[str, Any] = {}
        for name in JSON_FIELDS:
            value = getattr(self, name)
            public[name] = stamp(value) if name in _TIMES else value
        public["findings"] = [f.as_dict() for f in self.findings]
        return public


@dataclass(frozen=True, kw_only=True)
class Message(MessageSummary):
    """One stored message with its timeline (oldest first) and expectations (by kind)."""

    events: tuple[Event, ...] = ()
    expectations: tuple[Expectation, ...] = ()

    def as_json(self) -> dict[str, Any]:
        """``show --json``: the summary's fields, ``events`` and ``expectations``."""
        return {
            **super().as_json(),
            "events": [e.as_json() for e in self.events],
            "expectations": [e.as_json() for e in self.expectations],
        }


@dataclass(frozen=True)
class Page:
    """One page of a listing, and the cursor of the next one (None on the last page): pass it as
    ``after`` to get the next page. A page is a sequence of its items (``page[0]``, ``len(page)``)."""

    items: tuple[MessageSummary, ...]
    next: str | None = None

    def __iter__(self) -> Iterator[MessageSummary]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> MessageSummary:
        return self.items[index]
