"""The store's expectations, acknowledgement keys and undecodable bodies: writes the same on
SQLite and PostgreSQL (each one transaction; see :class:`~.sql.SQLStore`)."""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Any

from ..events import EventKind, Notification
from ..models import TimelineKind, moment
from ..models import stamp as shown
from .outbox import insert
from .queries import UNSWEPT, Reads, Session, now
from .records import OverdueExpectation


class Expecting(Reads):
    """Expectations (what must come back, by when), ack keys and bad-body sightings."""

    def immediate(self, durable: bool = True) -> AbstractContextManager[Session]:
        raise NotImplementedError

    def _event(
        self, db: Session, message_id: str, kind: str, state: str | None, detail: dict[str, Any] | None, at: str
    ) -> None:
        raise NotImplementedError

    def expect(self, message_id: str, kind: str, due_at: str | None) -> None:
        """Record that ``kind`` (``inf-ack``, ``bus-ack``, a plugin's ack) must come back by ``due_at``."""
        with self.immediate() as db:
            db.execute(
                "INSERT INTO expectations (message_id, kind, due_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
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
            self._lock_in_order(db, "e.message_id = ? AND e.met_at IS NULL", [message_id])
            return db.execute(
                "UPDATE expectations SET met_at = ?, outcome = ?, verdict = 'closed' "
                "WHERE message_id = ? AND met_at IS NULL",
                [now(), outcome, message_id],
            ).rowcount

    def remember_key(self, protocol: str, key: str, message_id: str) -> None:
        with self.immediate() as db:
            db.execute(
                "INSERT INTO ack_keys (protocol, key, message_id) VALUES (?, ?, ?) "
                "ON CONFLICT (protocol, key) DO UPDATE SET message_id = excluded.message_id",
                [protocol, key, message_id],
            )

    def sweep_overdue(self) -> list[OverdueExpectation]:
        """Record the moment each expectation was first seen overdue (:data:`~.queries.OVERDUE`),
                once each, with an ``overdue`` event for the timeline and an ``overdue`` notification queued in the
        same transaction (:mod:`.outbox`). Views never read
                this moment to decide what is overdue: they apply ``OVERDUE`` themselves. Only expectations
                not seen yet are looked at (:data:`~.queries.UNSWEPT`, a partial index): with nothing due,
                the sweep costs the same at any size."""
        stamp = now()
        with self.immediate() as db:
            self._lock_in_order(db, UNSWEPT, [stamp])
            rows = db.rows(
                f"UPDATE expectations AS e SET overdue_at = ? WHERE {UNSWEPT} RETURNING message_id, kind, due_at",
                [stamp, stamp],
            )
            for row in rows:
                detail = {"expected": row["kind"], "due_at": row["due_at"]}
                self._event(db, row["message_id"], TimelineKind.OVERDUE, None, detail, stamp)
                due = shown(moment(row["due_at"]))
                summary = f"{row['message_id']}: {row['kind']} was due by {due}"
                alert = Notification(EventKind.OVERDUE, row["message_id"], summary, {**detail, "due_at": due})
                insert(db, alert, stamp)
        return [OverdueExpectation.from_row(row) for row in rows]

    def _lock_in_order(self, db: Session, where: str, params: list[Any]) -> None:
        """PostgreSQL: lock the expectations ``where`` selects in one order, their key's, before a
        statement changes several: the sweep's (by deadline) and a close's (by kind) would each
        otherwise hold one row the other waits for. (SQLite: one writer, nothing to order.)"""
        if self.dialect.name == "postgresql":
            db.execute(f"SELECT 1 FROM expectations e WHERE {where} ORDER BY e.message_id, e.kind FOR UPDATE", params)

    # -- bodies that could not be decoded ----------------------------------------------------

    def sight_bad_body(self, mailbox: str, mesh_message_id: str, raw_sha256: str, reason: str) -> tuple[int, int]:
        """Count one more sighting of an undecodable body; ``(times these raw bytes were seen,
        downloads of this message that failed so)``."""
        stale = (datetime.now(UTC) - timedelta(days=30)).isoformat(timespec="microseconds")
        with self.immediate(durable=False) as db:  # lost in a power cut: one more try, no harm
            db.execute("DELETE FROM bad_bodies WHERE last_seen < ?", [stale])  # MESH has long expired those
            db.execute(
                "INSERT INTO bad_bodies (mesh_message_id, raw_sha256, mailbox, seen, reason, last_seen) "
                "VALUES (?, ?, ?, 1, ?, ?) ON CONFLICT (mesh_message_id, raw_sha256) DO UPDATE "
                "SET seen = bad_bodies.seen + 1, reason = excluded.reason, last_seen = excluded.last_seen",
                [mesh_message_id, raw_sha256, mailbox, reason, now()],
            )
            same, attempts = db.execute(
                "SELECT sum(seen) FILTER (WHERE raw_sha256 = ?), sum(seen) FROM bad_bodies WHERE mesh_message_id = ?",
                [raw_sha256, mesh_message_id],
            ).fetchone()
        return int(same), int(attempts)

    def forget_bad_body(self, mesh_message_id: str) -> None:
        """The message was stored (whole, or as received and ``invalid``): its sightings are done with."""
        with self.immediate(durable=False) as db:
            db.execute("DELETE FROM bad_bodies WHERE mesh_message_id = ?", [mesh_message_id])
