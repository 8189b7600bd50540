"""The correlation store on SQLite (sqlite-utils): one row per message, an append-only timeline.

Every state change is one ``BEGIN IMMEDIATE`` transaction holding a conditional UPDATE and its
event row, so two processes on one file never both win the same transition.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import sqlite3
import uuid
from collections.abc import Collection, Iterator
from contextlib import contextmanager, nullcontext, suppress
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import clock
from ..config import INLINE_MAX
from ..errors import DiskFull, SourceTaken, StoreError, StoreOutdated, UnknownMessage
from ..models import (
    FINISHED,
    Event,
    Expectation,
    Message,
    MessageSummary,
    Page,
    State,
    TimelineKind,
)
from ..steps import Event as Step
from ..steps import Facts, log_steps
from . import migrating
from .cursors import cursor, position
from .logins import Logins
from .opening import StoreConnection, open_store
from .payloads import Payloads, secure_dir, unsynced
from .records import Claimed, OverdueExpectation, StoredMessage
from .space import Space

if TYPE_CHECKING:
    from sqlite_utils import Database

Row = dict[str, Any]


def now() -> str:
    """UTC now as ISO 8601 with microseconds: sorts as text."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


class SQLiteStore:
    """The :class:`~.protocol.Store` on SQLite: messages, their events and expectations, and their
    payloads (see :class:`Payloads`).

    Durability: a commit waits for the disk (``synchronous=FULL``) unless the work it records can
    be found again after a power cut, in which case it is *lazy* and becomes durable with the next
    durable commit (the write-ahead log keeps order, so the store after a power cut is always an
    earlier state of itself). Lazy: ``sent`` (a retry asks MESH by local id), ``mesh-acked`` (the
    acknowledge is repeated), a folder delivery within a poll, which ends with :meth:`sync` (the
    file is written again, under the same name), ``valid`` without ITK (validated again), a
    delivery's claim (due again). Durable: everything a MESH call or an outside reader relies on
    afterwards.
    """

    def __init__(self, path: str | os.PathLike[str], *, inline_max: int = INLINE_MAX, migrate: bool = True) -> None:
        """Open (or build) the store at ``path``. An existing store older than this meshbridge is
        migrated, or with ``migrate=False`` refused as :class:`StoreOutdated`, untouched."""
        self.path = Path(path)
        secure_dir(self.path.parent)
        self.created = not self.path.exists()  # (for ``store migrate``'s report)
        conn = open_store(self.path, timeout=30)  # refuses a damaged file; builds a new one whole
        self.conn: StoreConnection = conn
        self.space = Space(self.path)
        conn.on_full = self.space.release  # the disk is full: state changes may use the reserve
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        self._lazy: set[str] = set()  # messages this store added lazily, not synced since
        self._durable: set[str] = set()  # messages known durable (a bounded cache: see make_durable)
        self._recorded: list[Step] = []  # timeline events of the transaction in hand (see meshbridge.steps)
        try:
            self.migrated = self._schema(migrate)  # the migrations opening applied
        except BaseException:
            conn.close()
            raise
        self.payloads = Payloads(self.path.parent / "payloads", conn, inline_max, self.space)
        self.logins = Logins(self)  # mailboxes whose login MESH refuses (``mesh-auth``)

    def keep_reserve(self) -> None:
        """Keep a disk reserve for state changes from now on (the service does): preallocated
        now if there is room, released when the disk is full, then made again (see :mod:`.space`)."""
        self.space.keep = True
        with suppress(DiskFull, OSError):
            self.space.room_for(0)

    def _schema(self, migrate: bool) -> list[str]:
        """Check the schema version under the write lock (a store that cannot be written is refused
        here, by every command): apply the migrations the store lacks and return their names, or
        with ``migrate=False`` refuse it as :class:`StoreOutdated`."""
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            missing = migrating.pending(conn)
            if missing and not migrate:
                raise outdated(self.path, missing)
            applied = migrating.apply(conn) if missing else []
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return applied

    @cached_property
    def db(self) -> Database:
        """The store's connection in sqlite-utils (imported on first use: reading needs none of it)."""
        from sqlite_utils import Database

        return Database(self.conn, execute_plugins=False)

    def close(self) -> None:
        self.conn.close()

    @property
    def tag(self) -> str:
        """A short name for this store, unique per database path (e.g. for its temp files elsewhere)."""
        return hashlib.sha256(str(self.path.resolve()).encode()).hexdigest()[:8]

    @contextmanager
    def immediate(self, durable: bool = True) -> Iterator[Database]:
        """A write transaction that takes the write lock up front (no lost races under WAL).

        ``durable=False``: the commit does not wait for the disk (see the class docstring).
        A full disk raises :class:`DiskFull` with the transaction rolled back (SQLite may have
        rolled it back already).
        """
        conn = self.conn
        self._recorded.clear()
        with nullcontext() if durable else unsynced(conn):
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
                conn.execute("COMMIT")
            except BaseException:
                self._recorded.clear()
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        if self._recorded:  # the steps it recorded, logged once they are committed
            recorded, self._recorded = self._recorded, []
            log_steps(recorded, self._step_row)

    def _step_row(self, message_id: str) -> Facts | None:
        """A message's fields for its step's log line (never fails the step: None if unreadable)."""
        try:
            cursor = self.conn.execute(
                "SELECT direction, state, route, mailbox, peer, mesh_message_id, workflow_id, filename FROM messages "
                "WHERE id = ?",
                [message_id],
            )
            with self.conn.reading():
                found = cursor.fetchone()
        except (sqlite3.Error, StoreError):
            return None
        return Facts(*found) if found else None

    def sync(self) -> None:
        """Make every lazy commit so far durable: a durable commit of a real write (SQLite syncs
        the log, which holds everything committed before it, in order)."""
        with self.immediate() as db:
            db.execute("UPDATE syncs SET count = count + 1")
        self._synced()

    def make_durable(self, *message_ids: str) -> None:
        """Make sure these messages' rows are durable (before MESH forgets them): one sync,
        unless each is known durable already. Rows this store did not write count as unknown."""
        if not self._durable.issuperset(message_ids):
            self.sync()
            self._durable.update(message_ids)

    def _synced(self, *also: str) -> None:
        if len(self._durable) > 100_000:  # forgetting costs one more sync, never safety
            self._durable.clear()
        self._durable.update(self._lazy, also)
        self._lazy.clear()

    @contextmanager
    def exclusive(self, name: str) -> Iterator[None]:
        """Work only one process at a time may do on this store (``<db>.<name>.lock``; others wait).

        An OS file lock, not a row: the kernel drops it when its process dies, so a crash never
        leaves it taken.
        """
        fd = os.open(f"{self.path}.{name}.lock", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    # -- writes ---------------------------------------------------------------------------

    def add(
        self,
        direction: str,
        state: str,
        detail: dict[str, Any] | None = None,
        *,
        before: str = "",
        durable: bool = True,
        **fields: Any,
    ) -> StoredMessage:
        """Insert a message and its first event. ``direction`` is ``out`` or ``in``.

        ``before`` names a state the message passed through on the way (e.g. ``accepted`` for a
        message born claimed as ``sending``): it gets its own event, in the same transaction.
        ``durable=False``: see the class docstring; the caller syncs before relying on the row.
        """
        stamp = now()
        row = {
            "id": fields.pop("id", None) or uuid.uuid4().hex,
            "direction": direction,
            "state": state,
            "created_at": stamp,
            "updated_at": stamp,
            **fields,
        }
        source = fields.get("source_file")
        try:
            with self.immediate(durable) as db:
                if source and db.execute("SELECT 1 FROM messages WHERE source_file = ?", [source]).fetchone():
                    raise SourceTaken(f"source file {source} is already stored")  # checked and taken at once
                sha = fields.get("payload_sha256")
                if sha and not self.payloads.exists(sha):  # housekeeping removed identical old bytes meanwhile
                    raise StoreError(f"payload {sha} was removed by housekeeping before its message was recorded")
                columns = ", ".join(row)  # plain SQL: sqlite-utils' insert introspects the schema each time
                db.execute(f"INSERT INTO messages ({columns}) VALUES ({', '.join('?' * len(row))})", list(row.values()))
                if before:
                    self._event(row["id"], before, before, detail, stamp)
                self._event(row["id"], state, state, None if before else detail, stamp)
        except sqlite3.IntegrityError as exc:
            raise StoreError(f"message already stored: {exc}") from None
        if durable:
            self._synced(row["id"])  # this commit synced the log: it and everything before are durable
        else:
            self._lazy.add(row["id"])
        return self.get(row["id"])

    def transition(
        self,
        message_id: str,
        to_state: str,
        *,
        from_states: Collection[str] | None = None,
        kind: str | None = None,
        detail: dict[str, Any] | None = None,
        before: tuple[str, dict[str, Any] | None] | None = None,
        durable: bool = True,
        **fields: Any,
    ) -> bool:
        """Move a message to ``to_state`` if it is in one of ``from_states``; record the event.

        ``before=(state, detail)`` records a state passed through on the way, in the same transaction.
        ``durable=False`` for a change that can be found again after a power cut (class docstring).

        Returns False (and changes nothing) when the message was not in an allowed state, which
        is how a second process learns that the first one already did the work.
        """
        stamp = now()
        sets = {"state": to_state, "updated_at": stamp, **fields}
        sql = "UPDATE messages SET " + ", ".join(f"{k} = ?" for k in sets) + " WHERE id = ?"
        params = [*sets.values(), message_id]
        if from_states:
            sql += f" AND state IN ({', '.join('?' * len(from_states))})"
            params += from_states
        with self.immediate(durable) as db:
            changed = db.execute(sql, params).rowcount
            if changed and before:
                self._event(message_id, before[0], before[0], before[1], stamp)
            if changed:
                self._event(message_id, kind or to_state, to_state, detail, stamp)
        return bool(changed)

    def claim(self, message_id: str, lease: float) -> Claimed | None:
        """Take an outbound message to send: ``accepted``, or ``sending`` with a lapsed claim (see
        :func:`lapsed`: its sender died, or stopped and released it). One process wins and gets
        the message as claimed, with ``resumed`` True when it took over a ``sending`` one (which
        may have reached MESH in part); the others get None."""
        stamp = now()
        taken = new_lease()
        with self.immediate() as db:
            row = db.execute("SELECT state FROM messages WHERE id = ?", [message_id]).fetchone()
            changed = db.execute(
                "UPDATE messages SET state = 'sending', updated_at = ?, lease_holder = ?, lease_boot = ?, "
                f"lease_beat = ? WHERE id = ? AND (state = 'accepted' OR (state = 'sending' AND {_LAPSED}))",
                [stamp, *taken.values(), message_id, *lapsed(lease)],
            ).rowcount
            if changed:
                kind = TimelineKind.SENDING if row[0] == State.ACCEPTED else TimelineKind.RESENDING
                self._event(message_id, kind, State.SENDING, None, stamp)
        return Claimed.from_row(self._get(message_id), resumed=row[0] == State.SENDING) if changed else None

    def renew(self, message_id: str, holder: str, state: str = State.SENDING) -> bool:
        """A heartbeat of a claim (a ``sending`` one, or a ``valid`` inbound one being delivered);
        False when ``holder`` no longer holds it (another process took it over). Not synced: a
        heartbeat lost in a power cut only ages the claim."""
        with self.immediate(durable=False) as db:
            return bool(
                db.execute(
                    "UPDATE messages SET lease_boot = ?, lease_beat = ? "
                    "WHERE id = ? AND state = ? AND lease_holder = ?",
                    [clock.boot(), clock.now(), message_id, state, holder],
                ).rowcount
            )

    def release(self, message_id: str, holder: str, kind: str, detail: dict[str, Any] | None = None) -> bool:
        """Give up a ``sending`` claim at once (e.g. on SIGTERM): the message stays ``sending``
        and the next pass of any process resumes it without waiting for the lease."""
        stamp = now()
        with self.immediate() as db:
            changed = db.execute(
                "UPDATE messages SET lease_beat = NULL, updated_at = ? "
                "WHERE id = ? AND state = 'sending' AND lease_holder = ?",
                [stamp, message_id, holder],
            ).rowcount
            if changed:
                self._event(message_id, kind, None, detail, stamp)
        return bool(changed)

    def deliverable(self, mailbox: str, workflow_id: str, lease: float) -> list[StoredMessage]:
        """Inbound ``valid`` messages on this mailbox and workflow that are due for delivery: never
        tried or their backoff over, and not claimed by a live delivery (see :func:`lapsed`)."""
        rows = self._select(
            "m.direction = 'in' AND m.state = 'valid' AND m.mailbox = ? AND m.workflow_id = ? "
            f"AND (m.next_attempt_at IS NULL OR m.next_attempt_at <= ?) AND {_LAPSED}",
            [mailbox, workflow_id, now(), *lapsed(lease)],
        )
        return [StoredMessage.from_row(row) for row in rows]

    def claim_deliveries(self, message_ids: list[str], lease: float) -> dict[str, str]:
        """Take due ``valid`` inbound messages to deliver, in one transaction, with a claim like a
        send's (holder, boot, heartbeat on the lease clock; ``next_attempt_at`` is only the
        backoff's). Returns ``{id: holder}`` for the ids this call took: of two workers, one wins
        each message. Lazy: a claim lost in a power cut only makes the message due again."""
        taken = new_lease()
        marks = ", ".join("?" * len(message_ids))
        with self.immediate(durable=False) as db:
            rows = db.execute(
                "UPDATE messages SET lease_holder = ?, lease_boot = ?, lease_beat = ? "
                f"WHERE id IN ({marks}) AND direction = 'in' AND state = 'valid' "
                f"AND (next_attempt_at IS NULL OR next_attempt_at <= ?) AND {_LAPSED} RETURNING id",
                [*taken.values(), *message_ids, now(), *lapsed(lease)],
            ).fetchall()
        return {row[0]: taken["lease_holder"] for row in rows}

    def update(
        self,
        message_id: str,
        kind: str | None = None,
        detail: dict[str, Any] | None = None,
        *,
        durable: bool = True,
        **fields: Any,
    ) -> None:
        """Set fields without a state change; with ``kind``, also record an event."""
        stamp = now()
        sets = {"updated_at": stamp, **fields}
        with self.immediate(durable) as db:
            db.execute(
                "UPDATE messages SET " + ", ".join(f"{k} = ?" for k in sets) + " WHERE id = ?",
                [*sets.values(), message_id],
            )
            if kind:
                self._event(message_id, kind, None, detail, stamp)

    def event(self, message_id: str, kind: str, detail: dict[str, Any] | None = None) -> None:
        with self.immediate():
            self._event(message_id, kind, None, detail, now())

    def _event(self, message_id: str, kind: str, state: str | None, detail: dict[str, Any] | None, at: str) -> None:
        self.db.execute(
            "INSERT INTO events (message_id, at, kind, state, detail) VALUES (?, ?, ?, ?, ?)",
            [message_id, at, kind, state, json.dumps(detail, sort_keys=True) if detail else None],
        )
        self._recorded.append((message_id, kind, state, detail))

    def remove_old_payloads(self, retention: float) -> int:
        """Delete payloads of finished messages older than ``retention`` seconds; rows stay.

        A payload still used by an unfinished (or younger) message is kept. Returns payloads removed.
        """
        cutoff = (datetime.now(UTC) - timedelta(seconds=retention)).isoformat(timespec="microseconds")
        finished = ", ".join(f"'{state}'" for state in sorted(FINISHED))
        old = list(
            self.db.query(
                f"SELECT id, payload_sha256 FROM messages WHERE state IN ({finished}) AND updated_at < ? "
                "AND payload_sha256 IS NOT NULL AND id NOT IN "
                "(SELECT message_id FROM expectations WHERE met_at IS NULL)",
                [cutoff],
            )
        )
        removed = 0
        for row in old:
            sha = row["payload_sha256"]
            with self.immediate() as db:  # checked, removed and recorded at once: see add()
                still_used = db.execute(
                    f"SELECT count(*) FROM messages WHERE payload_sha256 = ? AND (state NOT IN ({finished}) "
                    "OR updated_at >= ? OR id IN (SELECT message_id FROM expectations WHERE met_at IS NULL))",
                    [sha, cutoff],
                ).fetchone()[0]
                stamp = now()
                db.execute("UPDATE messages SET payload_sha256 = NULL, updated_at = ? WHERE id = ?", [stamp, row["id"]])
                self._event(row["id"], TimelineKind.PAYLOAD_REMOVED, None, {"sha256": sha}, stamp)
                if not still_used and self.payloads.remove(sha):  # last: a failure above removes nothing
                    removed += 1
        return removed

    # -- expectations ---------------------------------------------------------------------

    def expect(self, message_id: str, kind: str, due_at: str | None) -> None:
        """Record that ``kind`` (``inf-ack``, ``bus-ack``, a plugin's ack) must come back by ``due_at``."""
        with self.immediate() as db:
            db.execute(
                "INSERT OR IGNORE INTO expectations (message_id, kind, due_at) VALUES (?, ?, ?)",
                [message_id, kind, due_at],
            )

    def meet(self, message_id: str, kind: str, outcome: str, *, positive: bool = True, text: str | None = None) -> bool:
        """Mark an expectation met (once) by an answer: ``outcome`` is its code, ``positive`` False
        for a nack, ``text`` what the answer said. Returns False if it was already met or never expected."""
        with self.immediate() as db:
            return bool(
                db.execute(
                    "UPDATE expectations SET met_at = ?, outcome = ?, verdict = ?, text = ? "
                    "WHERE message_id = ? AND kind = ? AND met_at IS NULL",
                    [now(), outcome, "ack" if positive else "nack", text, message_id, kind],
                ).rowcount
            )

    def close_expectations(self, message_id: str, outcome: str) -> int:
        """A final answer (a nack) ends every open expectation of the message (verdict ``closed``)."""
        with self.immediate() as db:
            return db.execute(
                "UPDATE expectations SET met_at = ?, outcome = ?, verdict = 'closed' "
                "WHERE message_id = ? AND met_at IS NULL",
                [now(), outcome, message_id],
            ).rowcount

    def open_expectations(self, message_id: str) -> list[Expectation]:
        return [e for e in self.expectations(message_id) if e.met_at is None]

    def expectations(self, message_id: str) -> list[Expectation]:
        """A message's expectations, each with ``overdue`` (:data:`OVERDUE`, as of now) and ``late``
        (met after its deadline)."""
        cursor = self.conn.execute(
            f"SELECT e.*, {OVERDUE} AS overdue, {LATE} AS late FROM expectations e WHERE e.message_id = ? "
            "ORDER BY e.kind",
            [now(), message_id],
        )
        names = [d[0] for d in cursor.description]
        with self.conn.reading():
            rows = [dict(zip(names, values, strict=True)) for values in cursor]
        return [Expectation.from_row(row) for row in rows]

    def remember_key(self, protocol: str, key: str, message_id: str) -> None:
        with self.immediate() as db:
            db.execute(
                "INSERT OR REPLACE INTO ack_keys (protocol, key, message_id) VALUES (?, ?, ?)",
                [protocol, key, message_id],
            )

    def by_key(self, protocol: str, key: str) -> StoredMessage | None:
        rows = list(self.db.query("SELECT message_id FROM ack_keys WHERE protocol = ? AND key = ?", [protocol, key]))
        return self.get(rows[0]["message_id"]) if rows else None

    def sweep_overdue(self) -> list[OverdueExpectation]:
        """Record the moment each expectation was first seen overdue (:data:`OVERDUE`), once each,
        with an ``overdue`` event for the timeline and notifications. Views never read this moment
        to decide what is overdue: they apply :data:`OVERDUE` themselves."""
        stamp = now()
        with self.immediate() as db:
            rows = list(
                db.query(
                    f"UPDATE expectations AS e SET overdue_at = ? WHERE e.overdue_at IS NULL AND {OVERDUE} "
                    "RETURNING message_id, kind, due_at",
                    [stamp, stamp],
                )
            )
            for row in rows:
                self._event(
                    row["message_id"],
                    TimelineKind.OVERDUE,
                    None,
                    {"expected": row["kind"], "due_at": row["due_at"]},
                    stamp,
                )
        return [OverdueExpectation.from_row(row) for row in rows]

    # -- bodies that could not be decoded ----------------------------------------------------

    def sight_bad_body(self, mailbox: str, mesh_message_id: str, raw_sha256: str, reason: str) -> tuple[int, int]:
        """Count one more sighting of an undecodable body; ``(times these raw bytes were seen,
        downloads of this message that failed so)``."""
        stale = (datetime.now(UTC) - timedelta(days=30)).isoformat(timespec="microseconds")
        with self.immediate(durable=False) as db:  # lost in a power cut: one more try, no harm
            db.execute("DELETE FROM bad_bodies WHERE last_seen < ?", [stale])  # MESH has long expired those
            db.execute(
                "INSERT INTO bad_bodies (mesh_message_id, raw_sha256, mailbox, seen, reason, last_seen) "
                "VALUES (?, ?, ?, 1, ?, ?) ON CONFLICT DO UPDATE SET seen = seen + 1, reason = excluded.reason, "
                "last_seen = excluded.last_seen",
                [mesh_message_id, raw_sha256, mailbox, reason, now()],
            )
            same, attempts = db.execute(
                "SELECT sum(seen) FILTER (WHERE raw_sha256 = ?), sum(seen) FROM bad_bodies WHERE mesh_message_id = ?",
                [raw_sha256, mesh_message_id],
            ).fetchone()
        return int(same), int(attempts)

    def bad_body_seen(self, mesh_message_id: str) -> bool:
        """Has a download of this message failed to decode before?"""
        found = self.conn.execute("SELECT 1 FROM bad_bodies WHERE mesh_message_id = ?", [mesh_message_id])
        return found.fetchone() is not None

    def forget_bad_body(self, mesh_message_id: str) -> None:
        """The message was stored (whole, or as received and ``invalid``): its sightings are done with."""
        with self.immediate(durable=False) as db:
            db.execute("DELETE FROM bad_bodies WHERE mesh_message_id = ?", [mesh_message_id])

    # -- reads ----------------------------------------------------------------------------

    def get(self, message_id: str) -> StoredMessage:
        """A message by meshbridge id, or else by MESH message id."""
        return StoredMessage.from_row(self._get(message_id))

    def _get(self, message_id: str) -> Row:
        for column in ("id", "mesh_message_id"):
            rows = self._select(f"m.{column} = ?", [message_id], limit=1)
            if rows:
                return rows[0]
        raise UnknownMessage(f"no message with id {message_id!r}")

    def find_itk(self, direction: str, itk_message_id: str) -> list[StoredMessage]:
        """Messages whose ITK ``MessageHeader.id`` equals this one, compared case-insensitively."""
        rows = self._select("m.direction = ? AND m.itk_message_id = ? COLLATE NOCASE", [direction, itk_message_id])
        return [StoredMessage.from_row(row) for row in rows]

    def from_source(self, source_key: str) -> StoredMessage | None:
        """The message stored from this source file (``path@sha256``), if any."""
        rows = self._select("m.source_file = ?", [source_key], limit=1)
        return StoredMessage.from_row(rows[0]) if rows else None

    def find(self, direction: str, mesh_message_id: str) -> StoredMessage | None:
        rows = self._select("m.direction = ? AND m.mesh_message_id = ?", [direction, mesh_message_id], limit=1)
        return StoredMessage.from_row(rows[0]) if rows else None

    def stale_sending(self, lease: float) -> list[StoredMessage]:
        """Outbound messages claimed ``sending`` whose claim lapsed (see :func:`lapsed`)."""
        rows = self._select(f"m.direction = 'out' AND m.state = 'sending' AND {_LAPSED}", lapsed(lease))
        return [StoredMessage.from_row(row) for row in rows]

    def messages(
        self,
        *,
        state: str | None = None,
        direction: str | None = None,
        overdue: bool = False,
        expecting: str | None = None,
        limit: int | None = None,
    ) -> list[StoredMessage]:
        """Messages, oldest first. ``overdue``: only those with an overdue expectation
        (:data:`OVERDUE`); ``expecting``: only those with an open expectation of this kind."""
        where, params = _filters(state, direction, overdue, expecting)
        return [StoredMessage.from_row(row) for row in self._select(" AND ".join(where), params, limit=limit)]

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
        row = self._get(message_id)
        return Message.from_row(
            row, events=tuple(self.events(row["id"])), expectations=tuple(self.expectations(row["id"]))
        )

    def _select(self, where: str, params: list[Any], limit: int | None = None, newest: bool = False) -> list[Row]:
        order = "m.created_at DESC, m.id DESC" if newest else "m.created_at, m.id"
        sql = f"SELECT m.*, {_OVERDUE} AS overdue FROM messages m WHERE {where} ORDER BY {order}"
        if limit:
            sql += f" LIMIT {int(limit)}"
        args = [now(), *params]
        cursor = self.conn.execute(sql, args)  # not db.query: that wraps every read in a savepoint
        names = [d[0] for d in cursor.description]
        with self.conn.reading():
            return [{**dict(zip(names, values, strict=True)), "overdue": bool(values[-1])} for values in cursor]

    def events(self, message_id: str) -> list[Event]:
        """A message's timeline, oldest first."""
        with self.conn.reading():
            rows = list(self.db.query("SELECT * FROM events WHERE message_id = ? ORDER BY seq", [message_id]))
        return [Event.from_row(row) for row in rows]

    def counts(self) -> dict[str, dict[str, int]]:
        """``{direction: {state: count}}``."""
        result: dict[str, dict[str, int]] = {}
        cursor = self.conn.execute("SELECT direction, state, count(*) FROM messages GROUP BY 1, 2 ORDER BY 1, 2")
        with self.conn.reading():
            for direction, state, n in cursor:
                result.setdefault(direction, {})[state] = n
        return result

    def overdue_count(self) -> tuple[int, int]:
        """``(overdue expectations, messages they belong to)``, both by :data:`OVERDUE` as of now."""
        with self.conn.reading():
            found = self.conn.execute(
                f"SELECT count(*), count(DISTINCT e.message_id) FROM expectations e WHERE {OVERDUE}", [now()]
            ).fetchone()
        return int(found[0]), int(found[1])

    def expecting_count(self, kind: str) -> int:
        """How many messages have an open expectation of ``kind``."""
        with self.conn.reading():
            found = self.conn.execute(
                "SELECT count(DISTINCT message_id) FROM expectations WHERE kind = ? AND met_at IS NULL", [kind]
            ).fetchone()
        return int(found[0])


def _filters(
    state: str | None, direction: str | None, overdue: bool, expecting: str | None
) -> tuple[list[str], list[Any]]:
    """The WHERE terms of a listing (see :meth:`SQLiteStore.messages`) and their parameters."""
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


def new_lease() -> dict[str, Any]:
    """The lease columns of a fresh claim (to send or to deliver): a new holder, beating now."""
    return {"lease_holder": uuid.uuid4().hex, "lease_boot": clock.boot(), "lease_beat": clock.now()}


# A claim has lapsed when it was released, made in an earlier boot (its process is gone), or has
# had no heartbeat for the lease, all on the lease clock (meshbridge.clock), never the wall clock.
_LAPSED = "(lease_beat IS NULL OR lease_boot IS NOT ? OR lease_beat <= ?)"


def lapsed(lease: float) -> list[Any]:
    """The parameters of ``_LAPSED`` for a lease of ``lease`` seconds."""
    return [clock.boot(), clock.now() - lease]


# Overdue, the one definition every view uses (status, messages, show, the sweep): an expectation
# whose deadline has passed and which is not met. One parameter: now, as stored text (see now()).
OVERDUE = "(e.met_at IS NULL AND e.due_at IS NOT NULL AND e.due_at < ?)"
# Late: met, but after its deadline (no parameter).
LATE = "(e.met_at IS NOT NULL AND e.due_at IS NOT NULL AND e.met_at > e.due_at)"
_OVERDUE = f"EXISTS (SELECT 1 FROM expectations e WHERE e.message_id = m.id AND {OVERDUE})"


def outdated(path: Path, missing: list[str]) -> StoreOutdated:
    """The one-line refusal of a store older than this meshbridge, by a command that does not migrate."""
    n = len(missing)
    return StoreOutdated(
        f"store {path} is older than this meshbridge ({n} migration{'' if n == 1 else 's'} to apply): "
        "run `meshbridge store migrate`"
    )
