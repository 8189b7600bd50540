"""The store's reads, the same SQL on SQLite and PostgreSQL (see :class:`~.sql.SQLStore`).

Queries are written with ``?`` markers; a backend runs them through :meth:`Reads._rows` (a read
outside any transaction) and spells what differs through its :class:`~.dialects.Dialect`.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any, Protocol

from .. import clock
from ..errors import UnknownMessage
from ..models import Event, Expectation, Message, MessageSummary, Page
from .cursors import cursor, position
from .dialects import Dialect

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
_OVERDUE = f"EXISTS (SELECT 1 FROM expectations e WHERE e.message_id = m.id AND {OVERDUE})"


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

    def _rows(self, sql: str, params: list[Any] | tuple[Any, ...] = ()) -> list[Row]:
        raise NotImplementedError

    def get(self, message_id: str) -> Row:
        """A message by meshbridge id, or else by MESH message id."""
        for column in ("id", "mesh_message_id"):
            rows = self._select(f"m.{column} = ?", [message_id], limit=1)
            if rows:
                return rows[0]
        raise UnknownMessage(f"no message with id {message_id!r}")

    def find_itk(self, direction: str, itk_message_id: str) -> list[Row]:
        """Messages whose ITK ``MessageHeader.id`` equals this one, compared case-insensitively."""
        same = self.dialect.nocase_equals("m.itk_message_id")
        return self._select(f"m.direction = ? AND {same}", [direction, itk_message_id])

    def from_source(self, source_key: str) -> Row | None:
        """The message stored from this source file (``path@sha256``), if any."""
        rows = self._select("m.source_file = ?", [source_key], limit=1)
        return rows[0] if rows else None

    def find(self, direction: str, mesh_message_id: str) -> Row | None:
        rows = self._select("m.direction = ? AND m.mesh_message_id = ?", [direction, mesh_message_id], limit=1)
        return rows[0] if rows else None

    def stale_sending(self, lease: float) -> list[Row]:
        """Outbound messages claimed ``sending`` whose claim lapsed (see :func:`lapsed_sql`)."""
        return self._select(
            f"m.direction = 'out' AND m.state = 'sending' AND {lapsed_sql(self.dialect, 'm.')}", lapsed(lease)
        )

    def messages(
        self,
        *,
        state: str | None = None,
        direction: str | None = None,
        overdue: bool = False,
        expecting: str | None = None,
        limit: int | None = None,
    ) -> list[Row]:
        """Messages, oldest first. ``overdue``: only those with an overdue expectation
        (:data:`OVERDUE`); ``expecting``: only those with an open expectation of this kind."""
        where, params = _filters(state, direction, overdue, expecting)
        return self._select(" AND ".join(where), params, limit=limit)

    def page(
        self,
        *,
        state: str | None = None,
        direction: str | None = None,
        overdue: bool = False,
        expecting: str | None = None,
        limit: int | None = None,
        after: str | None = None,
        newest: bool = False,
    ) -> Page:
        """One page of :meth:`messages` (one query), oldest first or ``newest`` first: at most
        ``limit`` items, from just after the cursor ``after`` (keyset on ``created_at``, ``id``)."""
        where, params = _filters(state, direction, overdue, expecting)
        if after:
            where.append(f"(m.created_at, m.id) {'<' if newest else '>'} (?, ?)")
            params.extend(position(after))
        rows = self._select(" AND ".join(where), params, limit=limit + 1 if limit else None, newest=newest)
        more = bool(limit) and len(rows) > (limit or 0)
        rows = rows[:limit] if limit else rows
        following = cursor(rows[-1]["created_at"], rows[-1]["id"]) if more else None
        return Page(tuple(MessageSummary.from_row(row) for row in rows), following)

    def message(self, message_id: str) -> Message:
        """A message (by meshbridge id, or else MESH message id) with its timeline and expectations."""
        row = self.get(message_id)
        return Message.from_row(
            row,
            events=tuple(Event.from_row(e) for e in self.events(row["id"])),
            expectations=tuple(Expectation.from_row(e) for e in self.expectations(row["id"])),
        )

    def _select(self, where: str, params: list[Any], limit: int | None = None, newest: bool = False) -> list[Row]:
        rows = self._rows(select_sql(where, limit, newest), [now(), *params])
        return [{**row, "overdue": bool(row["overdue"])} for row in rows]

    def events(self, message_id: str) -> list[Row]:
        rows = self._rows("SELECT * FROM events WHERE message_id = ? ORDER BY seq", [message_id])
        return [{**e, "detail": json.loads(e["detail"]) if e["detail"] else {}} for e in rows]

    def open_expectations(self, message_id: str) -> list[Row]:
        return [e for e in self.expectations(message_id) if e["met_at"] is None]

    def expectations(self, message_id: str) -> list[Row]:
        """A message's expectations, each with ``overdue`` (:data:`OVERDUE`, as of now) and ``late``
        (met after its deadline)."""
        rows = self._rows(
            f"SELECT e.*, {OVERDUE} AS overdue, {LATE} AS late FROM expectations e WHERE e.message_id = ? "
            "ORDER BY e.kind",
            [now(), message_id],
        )
        return [{**row, "overdue": bool(row["overdue"]), "late": bool(row["late"])} for row in rows]

    def by_key(self, protocol: str, key: str) -> Row | None:
        rows = self._rows("SELECT message_id FROM ack_keys WHERE protocol = ? AND key = ?", [protocol, key])
        return self.get(rows[0]["message_id"]) if rows else None

    def bad_body_seen(self, mesh_message_id: str) -> bool:
        """Has a download of this message failed to decode before?"""
        return bool(self._rows("SELECT 1 AS seen FROM bad_bodies WHERE mesh_message_id = ?", [mesh_message_id]))

    def counts(self) -> dict[str, dict[str, int]]:
        """``{direction: {state: count}}``."""
        result: dict[str, dict[str, int]] = {}
        sql = "SELECT direction, state, count(*) AS n FROM messages GROUP BY direction, state ORDER BY 1, 2"
        for row in self._rows(sql):
            result.setdefault(row["direction"], {})[row["state"]] = int(row["n"])
        return result

    def overdue_count(self) -> tuple[int, int]:
        """``(overdue expectations, messages they belong to)``, both by :data:`OVERDUE` as of now."""
        [found] = self._rows(
            f"SELECT count(*) AS n, count(DISTINCT e.message_id) AS messages FROM expectations e WHERE {OVERDUE}",
            [now()],
        )
        return int(found["n"]), int(found["messages"])

    def expecting_count(self, kind: str) -> int:
        """How many messages have an open expectation of ``kind``."""
        [found] = self._rows(
            "SELECT count(DISTINCT message_id) AS n FROM expectations WHERE kind = ? AND met_at IS NULL", [kind]
        )
        return int(found["n"])


def select_sql(where: str, limit: int | None = None, newest: bool = False, lock: str = "") -> str:
    """Messages matching ``where``, each with ``overdue`` (its first parameter is now)."""
    order = "m.created_at DESC, m.id DESC" if newest else "m.created_at, m.id"
    sql = f"SELECT m.*, {_OVERDUE} AS overdue FROM messages m WHERE {where} ORDER BY {order}"
    if limit:
        sql += f" LIMIT {int(limit)}"
    return sql + lock


def _filters(
    state: str | None, direction: str | None, overdue: bool, expecting: str | None
) -> tuple[list[str], list[Any]]:
    """The WHERE terms of a listing (see :meth:`Reads.messages`) and their parameters."""
    where, params = ["1 = 1"], []
    if state:
        where.append("m.state = ?")
        params.append(state)
    if direction:
        where.append("m.direction = ?")
        params.append(direction)
    if overdue:
        where.append(_OVERDUE)
        params.append(now())
    if expecting:
        where.append(
            "EXISTS (SELECT 1 FROM expectations e WHERE e.message_id = m.id AND e.kind = ? AND e.met_at IS NULL)"
        )
        params.append(expecting)
    return where, params
