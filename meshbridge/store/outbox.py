"""The alert outbox: notifications queued durably, and each notifier's delivery of them.

A notification is written to ``alerts`` in the same transaction as the change it reports (the
store's writes take an ``alert``: :meth:`~.sql.SQLStore.transition` and the others call
:func:`insert`), or in one of its own when nothing else is written (:meth:`Outbox.queue`: a failed
handshake, an expiring certificate). The dispatcher (:mod:`meshbridge.dispatching`) then routes it,
once, to its targets (``alert_sends``: the plugins, and each notifier whose kinds take it), claims
what is due, and records each outcome: sent, due again after a backoff, or given up. A claim moves
the send's ``due_at`` one lease ahead, so a dispatcher that dies leaves its sends due again then
(at least once: the receiver sees the same idempotency key, the notification's id, again).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..events import Notification
from ..models import TimelineKind
from .queries import Session, now
from .records import AlertSend

if TYPE_CHECKING:
    from .sql import SQLStore


def insert(db: Session, notification: Notification, at: str) -> bool:
    """Queue ``notification`` in the transaction in hand; False if one with its id is queued already."""
    detail = json.dumps(dict(notification.detail), sort_keys=True, default=str) if notification.detail else None
    return bool(
        db.execute(
            "INSERT INTO alerts (id, kind, message_id, summary, detail, created_at) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (id) DO NOTHING",
            [notification.id, str(notification.kind), notification.message_id, notification.summary, detail, at],
        ).rowcount
    )


def _later(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat(timespec="microseconds")


class Outbox:
    """The ``alerts`` and ``alert_sends`` tables of one store."""

    def __init__(self, store: SQLStore) -> None:
        self._store = store

    def queue(self, notification: Notification) -> bool:
        """Queue a notification in a transaction of its own (when no other change records it).
        False if one with the same id was queued before (a stable id makes a repeat a no-op)."""
        with self._store.immediate() as db:
            return insert(db, notification, now())

    def route(self, targets: Callable[[Notification], Sequence[str]], limit: int = 500) -> int:
        """Give each notification not routed yet its sends, due now, one per target ``targets``
        names for it; returns how many were routed. Routed once: a config changed later does
        not route it again."""
        store = self._store
        if not store._rows("SELECT 1 AS unrouted FROM alerts WHERE routed_at IS NULL LIMIT 1"):
            return 0  # the usual case: a read through the partial index, no write transaction
        stamp = now()
        with store.immediate() as db:
            lock = " FOR UPDATE SKIP LOCKED" if store.dialect.name == "postgresql" else ""
            rows = db.rows(
                "SELECT id, kind, message_id, summary, detail FROM alerts WHERE routed_at IS NULL "
                f"ORDER BY created_at LIMIT {int(limit)}{lock}"
            )
            for row in rows:
                detail = json.loads(row["detail"]) if row["detail"] else {}
                notification = Notification.restored(row["kind"], row["message_id"], row["summary"], detail, row["id"])
                for target in dict.fromkeys(targets(notification)):
                    db.execute(
                        "INSERT INTO alert_sends (alert_id, target, attempts, due_at) VALUES (?, ?, 0, ?) "
                        "ON CONFLICT (alert_id, target) DO NOTHING",
                        [row["id"], target, stamp],
                    )
                db.execute("UPDATE alerts SET routed_at = ? WHERE id = ?", [stamp, row["id"]])
        return len(rows)

    def claim(
        self,
        lease: float,
        limit: int = 100,
        targets: Sequence[str] | None = None,
        due_by: str | None = None,
        skip: Sequence[str] = (),
    ) -> list[AlertSend]:
        """Take the sends that are due (by ``due_by``, default now; oldest first; only these
        ``targets`` if given, none of those in ``skip``): each is due again one ``lease`` from now
        unless its outcome is recorded before. Two dispatchers never take the same send at once."""
        store = self._store
        stamp, until = now(), _later(lease)
        where, params = "s.due_at <= ?", [min(due_by or stamp, stamp)]
        if targets is not None:
            if not targets:
                return []
            where += f" AND s.target IN ({', '.join('?' * len(targets))})"
            params += list(targets)
        if skip:
            where += f" AND s.target NOT IN ({', '.join('?' * len(skip))})"
            params += list(skip)
        if not store._rows(f"SELECT 1 AS due FROM alert_sends s WHERE {where} LIMIT 1", params):
            return []  # the usual case: a read through the partial index, no write transaction
        lock = " FOR UPDATE OF s SKIP LOCKED" if store.dialect.name == "postgresql" else ""
        with store.immediate(durable=False) as db:  # a claim lost in a power cut: due again at once
            rows = db.rows(
                "SELECT a.id, a.kind, a.message_id, a.summary, a.detail, s.target, s.attempts "
                f"FROM alert_sends s JOIN alerts a ON a.id = s.alert_id WHERE {where} "
                f"ORDER BY s.due_at LIMIT {int(limit)}{lock}",
                params,
            )
            for row in rows:
                db.execute(
                    "UPDATE alert_sends SET due_at = ? WHERE alert_id = ? AND target = ?",
                    [until, row["id"], row["target"]],
                )
        return [AlertSend.from_row(row) for row in rows]

    def sent(self, send: AlertSend, detail: dict[str, Any] | None = None, *, timeline: bool = True) -> bool:
        """Record a send done; with ``timeline``, an ``alert-sent`` event on the message it is
        about (if any). False if it was recorded before (another dispatcher took it over)."""
        return self._finish(send, "sent_at", TimelineKind.ALERT_SENT, detail, timeline=timeline)

    def gave_up(self, send: AlertSend, error: str, detail: dict[str, Any] | None = None) -> bool:
        """Record a send whose attempts are spent: ``alert-given-up`` on the message's timeline."""
        return self._finish(send, "gave_up_at", TimelineKind.ALERT_GIVEN_UP, {**(detail or {}), "error": error})

    def sent_all(self, sends: Sequence[AlertSend], detail: dict[str, Any]) -> int:
        """Record many sends done at once (a digest carried them), in one transaction: an
        ``alert-sent`` event on each one's message; how many were recorded."""
        return self._finish_all(sends, "sent_at", TimelineKind.ALERT_SENT, detail)

    def gave_up_all(self, sends: Sequence[AlertSend], error: str, detail: dict[str, Any]) -> int:
        """Record many sends given up at once (a digest of them was), in one transaction."""
        return self._finish_all(sends, "gave_up_at", TimelineKind.ALERT_GIVEN_UP, {**detail, "error": error})

    def _finish(
        self, send: AlertSend, column: str, kind: str, detail: dict[str, Any] | None, *, timeline: bool = True
    ) -> bool:
        return bool(self._finish_all([send], column, kind, detail, timeline=timeline))

    def _finish_all(
        self,
        sends: Sequence[AlertSend],
        column: str,
        kind: str,
        detail: dict[str, Any] | None,
        *,
        timeline: bool = True,
    ) -> int:
        store, stamp = self._store, now()
        error = (detail or {}).get("error")
        done = 0
        with store.immediate() as db:
            for send in sends:
                changed = db.execute(
                    f"UPDATE alert_sends SET due_at = NULL, {column} = ?, attempts = attempts + 1, last_error = ? "
                    "WHERE alert_id = ? AND target = ? AND due_at IS NOT NULL",
                    [stamp, error, send.notification.id, send.target],
                ).rowcount
                done += bool(changed)
                message_id = send.notification.message_id
                if changed and timeline and message_id:
                    facts = {
                        "alert": send.notification.id,
                        "kind": str(send.notification.kind),
                        "notifier": send.target,
                    }
                    store._event(db, message_id, kind, None, {**facts, **(detail or {})}, stamp)
        return done

    def retry(self, send: AlertSend, error: str, delay: float) -> None:
        """Record a failed attempt: due again in ``delay`` seconds."""
        self.retry_all([(send, delay)], error)

    def retry_all(self, sends: Sequence[tuple[AlertSend, float]], error: str) -> None:
        """Record a failed attempt of each send, in one transaction: each due again after its delay."""
        with self._store.immediate() as db:
            for send, delay in sends:
                db.execute(
                    "UPDATE alert_sends SET attempts = attempts + 1, due_at = ?, last_error = ? "
                    "WHERE alert_id = ? AND target = ? AND due_at IS NOT NULL",
                    [_later(delay), error, send.notification.id, send.target],
                )

    def pending(self) -> int:
        """Notifications not routed yet, and sends not finished (sent or given up)."""
        rows = self._store._rows(
            "SELECT (SELECT count(*) FROM alerts WHERE routed_at IS NULL) AS unrouted, "
            "(SELECT count(*) FROM alert_sends WHERE due_at IS NOT NULL) AS unsent"
        )
        return int(rows[0]["unrouted"]) + int(rows[0]["unsent"])

    def remove_old(self, retention: float) -> int:
        """Forget notifications whose sends are all finished, older than ``retention`` seconds
        (their deliveries stay on the messages' timelines); the number removed."""
        cutoff = _later(-retention)
        done = (
            "SELECT id FROM alerts WHERE routed_at IS NOT NULL AND created_at < ? AND NOT EXISTS "
            "(SELECT 1 FROM alert_sends s WHERE s.alert_id = alerts.id AND s.due_at IS NOT NULL)"
        )
        with self._store.immediate(durable=False) as db:  # lost in a power cut: removed next time
            db.execute(f"DELETE FROM alert_sends WHERE alert_id IN ({done})", [cutoff])
            return int(db.execute(f"DELETE FROM alerts WHERE id IN ({done})", [cutoff]).rowcount)
