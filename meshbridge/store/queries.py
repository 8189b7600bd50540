"""The store's reads, the same SQL on SQLite and PostgreSQL (see :class:`~.sql.SQLStore`).

Queries are written with ``?`` markers; a backend runs them through :meth:`Reads._rows` (a read
outside any transaction) and spells what differs through its :class:`~.dialects.Dialect`.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Protocol

from .. import clock
from ..errors import InvalidRequest, UnknownMessage
from ..models import Direction, Event, Expectation, Message, MessageSummary, Page, State
from ..views import Filters, is_text
from .cursors import cursor, position
from .dialects import Dialect
from .records import Counts, StoredMessage
from .schema import NACKED

Row = dict[str, Any]


def now() -> str:
    """UTC now as ISO 8601 with microseconds: sorts as text."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def new_lease() -> dict[str, Any]:
    """The lease columns of a fresh claim (to send or to deliver): a new holder, beating now."""
    return {"lease_holder": uuid.uuid4().hex, "lease_boot": clock.boot(), "lease_beat": clock.now()}


def lapsed_sql(d: Dialect, prefix: str = "") -> str:
    """A claim has lapsed when it was released, made in an earlier boot (its process is gone), or
    has had no heartbeat for the lease, all on the lease clock (meshbridge.clock), never the wall
    clock. Parameters: :func:`lapsed`."""
    p = prefix
    return f"({p}lease_beat IS NULL OR {p}lease_boot {d.differs} ? OR {p}lease_beat <= ?)"


def lapsed(lease: float) -> list[Any]:
    """The parameters of :func:`lapsed_sql` for a lease of ``lease`` seconds."""
    return [clock.boot(), clock.now() - lease]


# Overdue, the one definition every view uses (status, messages, show, the sweep): an expectation
# whose deadline has passed and which is not met. One parameter: now, as stored text (see now()).
OVERDUE = "(e.met_at IS NULL AND e.due_at IS NOT NULL AND e.due_at < ?)"
# Late: met, but after its deadline (no parameter).
LATE = "(e.met_at IS NOT NULL AND e.due_at IS NOT NULL AND e.met_at > e.due_at)"
# Overdue and not yet seen by the sweep (which sets ``overdue_at``): few, found through the partial
# index ``idx_expectations_unswept``. What the sweep has seen is counted (``counts``) and flagged on
# its message (``overdue_open``): the two together are exactly OVERDUE. One parameter: now.
UNSWEPT = "(e.met_at IS NULL AND e.overdue_at IS NULL AND e.due_at IS NOT NULL AND e.due_at < ?)"
# A message with an OVERDUE expectation: flagged, or with one the sweep has not seen yet. Not OVERDUE
# itself: PostgreSQL may run an EXISTS once for all rows (a hashed subplan), which over OVERDUE reads
# every expectation; over UNSWEPT it reads the few rows of the partial index. One parameter: now.
_OVERDUE = f"(m.overdue_open > 0 OR EXISTS (SELECT 1 FROM expectations e WHERE e.message_id = m.id AND {UNSWEPT}))"
_BY_ID = 500  # ids per statement when messages are fetched by id (well under both databases' parameter limits)
_NACKED = "m.state IN (" + ", ".join(f"'{state}'" for state in NACKED) + ")"  # as idx_messages_nacked has it


class Cursor(Protocol):
    """What the store reads of a cursor (``sqlite3`` and ``psycopg`` ones both have it)."""

    @property
    def rowcount(self) -> int: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...


class Session(Protocol):
    """A transaction in hand: statements with ``?`` markers."""

    def execute(self, sql: str, params: list[Any] | tuple[Any, ...] = ...) -> Cursor: ...
    def rows(self, sql: str, params: list[Any] | tuple[Any, ...] = ...) -> list[Row]: ...


class Reads:
    """The reads of a store; a backend gives :meth:`_rows` and :attr:`dialect`."""

    dialect: Dialect

    def _rows(self, sql: str, params: list[Any] | tuple[Any, ...] = (), *, replan: bool = False) -> list[Row]:
        """The rows of a read. ``replan``: planned for these values every time, never from a plan
        the database cached for any values (PostgreSQL's generic plan of a prepared statement, which
        for a listing may sort all of a filter's rows where the plan for its values walks an index
        from the cursor). Listings replan; keyed reads, which run far more often, need not."""
        raise NotImplementedError

    def get(self, message_id: str) -> StoredMessage:
        """A message by meshbridge id, or else by MESH message id (in any case)."""
        return StoredMessage.from_row(self._get(message_id))

    def _get(self, message_id: str) -> Row:
        keys = ("m.id = ?", self.dialect.nocase_equals("m.mesh_message_id")) if is_text(message_id) else ()
        for where in keys:
            rows = self._select(where, [message_id], limit=1)
            if rows:
                return rows[0]
        raise UnknownMessage(f"no message with id {message_id!r}")

    def lookup(self, key: str, limit: int = 20) -> list[MessageSummary]:
        """Messages ``key`` names, newest first, at most ``limit``: by meshbridge id, MESH message id
        or ITK id (each in any case), local id (``mex-LocalID``), file name, or source file (its
        path, or ``path@sha256``). Each through an index."""
        if not is_text(key):
            return []
        nocase = self.dialect.nocase_equals
        path = self.dialect.bytewise("m.source_file")
        found: dict[str, Row] = {}
        for where, params in (
            ("m.id = ?", [key]),
            (nocase("m.mesh_message_id"), [key]),
            (nocase("m.itk_message_id"), [key]),
            ("m.local_id = ?", [key]),
            ("m.filename = ?", [key]),
            ("m.source_file = ?", [key]),
            (f"{path} >= ? AND {path} < ?", [f"{key}@", f"{key}A"]),  # "path@<sha256>" ('A' follows '@')
        ):
            for row in self._select(where, params, limit=limit, newest=True):
                found.setdefault(row["id"], row)
        rows = sorted(found.values(), key=lambda row: (row["created_at"], row["id"]), reverse=True)[:limit]
        return [MessageSummary.from_row(row) for row in rows]

    def find_itk(self, direction: str, itk_message_id: str) -> list[StoredMessage]:
        """Messages whose ITK ``MessageHeader.id`` equals this one, compared case-insensitively."""
        same = self.dialect.nocase_equals("m.itk_message_id")
        return [
            StoredMessage.from_row(row)
            for row in self._select(f"m.direction = ? AND {same}", [direction, itk_message_id])
        ]

    def from_source(self, source_key: str) -> StoredMessage | None:
        """The message stored from this source file (``path@sha256``), if any."""
        rows = self._select("m.source_file = ?", [source_key], limit=1)
        return StoredMessage.from_row(rows[0]) if rows else None

    def find(self, direction: str, mesh_message_id: str) -> StoredMessage | None:
        rows = self._select("m.direction = ? AND m.mesh_message_id = ?", [direction, mesh_message_id], limit=1)
        return StoredMessage.from_row(rows[0]) if rows else None

    def stale_sending(self, lease: float) -> list[StoredMessage]:
        """Outbound messages claimed ``sending`` whose claim lapsed (see :func:`lapsed_sql`)."""
        rows = self._select(
            f"m.state = 'sending' AND m.direction = 'out' AND {lapsed_sql(self.dialect, 'm.')}", lapsed(lease)
        )
        return [StoredMessage.from_row(row) for row in rows]

    def messages(
        self, filters: Filters | None = None, *, state: State | None = None, direction: Direction | None = None
    ) -> list[StoredMessage]:
        """Every message ``filters`` (or ``state`` and ``direction``) selects, oldest first, in one
        list: for the pipeline's passes over a state. A listing for people pages (:meth:`page`)."""
        filters = filters or Filters(state=state, direction=direction)
        return [StoredMessage.from_row(row) for row in self._listing(filters, None, None, newest=False)]

    def page(
        self, filters: Filters | None = None, *, limit: int | None = 50, after: str | None = None, newest: bool = True
    ) -> Page:
        """One page of the messages ``filters`` selects, newest first (or oldest): at most ``limit``
        (None: all) from just after the cursor ``after`` (a page's ``next``). Keyset pages on
        ``(created_at, id)``: every filter walks an index in that order from the cursor, so the 500th
        page costs what the first does (docs/store.md, "Reads at scale"). A ``limit`` below 1 is an
        :class:`~meshbridge.errors.InvalidRequest`."""
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise InvalidRequest(f"a page's limit must be a whole number of at least 1, not {limit!r}")
        rows = self._listing(filters or Filters(), limit + 1 if limit else None, after, newest)
        more = bool(limit) and len(rows) > (limit or 0)
        rows = rows[:limit] if limit else rows
        following = cursor(rows[-1]["created_at"], rows[-1]["id"]) if more else None
        return Page(tuple(MessageSummary.from_row(row) for row in rows), following)

    def _listing(self, filters: Filters, limit: int | None, after: str | None, newest: bool) -> list[Row]:
        where, params = _filters(filters)
        if after is not None:  # "" too: not a cursor, never the start again
            where.append(f"(m.created_at, m.id) {'<' if newest else '>'} (?, ?)")
            params.extend(position(after))
        if not filters.overdue:
            return self._select(" AND ".join(where), params, limit, newest, replan=True)
        # overdue: those the sweep has flagged (a partial index in order), and the few it has not seen
        # yet, by id. Not a join or IN (subquery): the planners cannot know how few those are (they
        # guess from the deadlines of every expectation) and would walk every message to find them.
        # The unswept first: one the sweep flags between the two reads is then in one or the other.
        unswept = self._rows(f"SELECT e.message_id FROM expectations e WHERE {UNSWEPT}", [now()])
        rows = self._select(" AND ".join([*where, "m.overdue_open > 0"]), params, limit, newest, replan=True)
        seen = {row["id"] for row in rows}
        fresh = [ident for ident in dict.fromkeys(row["message_id"] for row in unswept) if ident not in seen]
        for start in range(0, len(fresh), _BY_ID):
            ids = fresh[start : start + _BY_ID]
            where_ids = " AND ".join([*where, f"m.id IN ({', '.join('?' * len(ids))})"])
            rows += self._select(where_ids, [*params, *ids], limit, newest, replan=True)
        rows = list({row["id"]: row for row in rows}.values())  # (flagged since the first read)
        rows.sort(key=lambda row: (row["created_at"], row["id"]), reverse=newest)
        return rows[:limit] if limit else rows

    def message(self, message_id: str) -> Message:
        """A message (by meshbridge id, or else MESH message id) with its timeline and expectations."""
        row = self._get(message_id)
        return Message.from_row(
            row, events=tuple(self.events(row["id"])), expectations=tuple(self.expectations(row["id"]))
        )

    def _select(
        self, where: str, params: list[Any], limit: int | None = None, newest: bool = False, replan: bool = False
    ) -> list[Row]:
        rows = self._rows(select_sql(where, limit, newest), [now(), *params], replan=replan)
        return [{**row, "overdue": bool(row["overdue"])} for row in rows]

    def events(self, message_id: str) -> list[Event]:
        """A message's timeline, oldest first."""
        rows = self._rows("SELECT * FROM events WHERE message_id = ? ORDER BY seq", [message_id])
        return [Event.from_row(row) for row in rows]

    def open_expectations(self, message_id: str) -> list[Expectation]:
        return [e for e in self.expectations(message_id) if e.met_at is None]

    def expectations(self, message_id: str) -> list[Expectation]:
        """A message's expectations, each with ``overdue`` (:data:`OVERDUE`, as of now) and ``late``
        (met after its deadline)."""
        rows = self._rows(
            f"SELECT e.*, {OVERDUE} AS overdue, {LATE} AS late FROM expectations e WHERE e.message_id = ? "
            "ORDER BY e.kind",
            [now(), message_id],
        )
        return [Expectation.from_row(row) for row in rows]

    def by_key(self, protocol: str, key: str) -> StoredMessage | None:
        rows = self._rows("SELECT message_id FROM ack_keys WHERE protocol = ? AND key = ?", [protocol, key])
        return self.get(rows[0]["message_id"]) if rows else None

    def bad_body_seen(self, mesh_message_id: str) -> bool:
        """Has a download of this message failed to decode before?"""
        return bool(self._rows("SELECT 1 AS seen FROM bad_bodies WHERE mesh_message_id = ?", [mesh_message_id]))

    def counts(self) -> Counts:
        """The store's counters (kept by triggers as rows change: schema ``m015``), with the overdue
        expectations the sweep has not seen yet added: one statement, one snapshot, the same cost
        for any number of messages. Their messages are read one by one by id (:func:`_of_message`), never
        joined: a planner guessing many unswept rows would hash-join every message."""
        rows = self._rows(
            "SELECT counter, direction, route, term, sum(n) AS n FROM counts GROUP BY counter, direction, route, term "
            f"UNION ALL SELECT 'overdue', u.direction, '', u.kind, count(*) FROM (SELECT {_of_message('direction')} "
            f"AS direction, e.kind FROM expectations e WHERE {UNSWEPT}) u GROUP BY u.direction, u.kind "
            "UNION ALL SELECT 'overdue_messages', '', '', '', count(DISTINCT e.message_id) FROM expectations e "
            f"WHERE {UNSWEPT} AND {_of_message('overdue_open')} = 0",
            [now(), now()],
        )
        messages: dict[tuple[str, str | None, str], int] = {}
        kinds: dict[str, dict[tuple[str, str], int]] = {"open": {}, "overdue": {}}
        overdue_messages = 0
        for row in rows:
            n, counter = int(row["n"] or 0), row["counter"]
            if not n:
                continue
            if counter == "messages":
                key = (row["direction"], row["route"] or None, row["term"])
                messages[key] = messages.get(key, 0) + n
            elif counter in kinds:
                key2 = (row["direction"], row["term"])
                kinds[counter][key2] = kinds[counter].get(key2, 0) + n
            elif counter == "overdue_messages":
                overdue_messages += n
        return Counts(messages, kinds["open"], kinds["overdue"], overdue_messages)


def select_sql(where: str, limit: int | None = None, newest: bool = False, lock: str = "") -> str:
    """Messages matching ``where``, each with ``overdue`` (its first parameter is now)."""
    order = "m.created_at DESC, m.id DESC" if newest else "m.created_at, m.id"
    sql = f"SELECT m.*, {_OVERDUE} AS overdue FROM messages m WHERE {where} ORDER BY {order}"
    if limit:
        sql += f" LIMIT {int(limit)}"
    return sql + lock


def _of_message(column: str) -> str:
    """A column of expectation ``e``'s message, read by its id (a scalar subquery: never a join)."""
    return f"(SELECT m.{column} FROM messages m WHERE m.id = e.message_id)"


def _filters(filters: Filters) -> tuple[list[str], list[Any]]:
    """The WHERE terms of a listing and their parameters (``overdue`` is :meth:`Reads._listing`'s)."""
    where: list[str] = ["1 = 1"]
    params: list[Any] = []
    for column, value in (
        ("state", filters.state),
        ("route", filters.route),
        ("direction", filters.direction),
        ("mailbox", filters.mailbox),
        ("peer", filters.peer),
        ("workflow_id", filters.workflow_id),
    ):
        if value is not None:
            where.append(f"m.{column} = ?")
            params.append(str(value))
    if filters.nacked:
        where.append(_NACKED)
    if filters.owed:
        where.append("m.owes > 0")
    if filters.since:
        where.append("m.created_at >= ?")
        params.append(stored_time(filters.since))
    if filters.until:
        where.append("m.created_at < ?")
        params.append(stored_time(filters.until))
    return where, params


def stored_time(moment: datetime) -> str:
    """An aware time as the store writes times (UTC, microseconds: :func:`now`), to compare as text."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")
