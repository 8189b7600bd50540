"""Mailboxes whose login MESH refuses: the state behind the ``mesh-auth`` event.

A row exists from the first refusal until a call on that mailbox succeeds. Each change is one
transaction (an upsert, a ``DELETE … RETURNING``), so of several processes (cron passes, the
service's workers) exactly one raises the event and exactly one clears it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .sql import SQLStore

Row = dict[str, Any]


class Logins:
    """The ``mesh_logins`` table of one store."""

    def __init__(self, store: SQLStore) -> None:
        self._store = store

    def refused(self, mailbox: str, reason: str) -> int:
        """Count one more refusal of this mailbox's login; returns the count (1: it was working until now)."""
        from .queries import now

        stamp = now()
        with self._store.immediate() as db:
            (count,) = db.execute(
                "INSERT INTO mesh_logins (mailbox, since, last_at, refusals, reason) VALUES (?, ?, ?, 1, ?) "
                "ON CONFLICT (mailbox) DO UPDATE SET refusals = mesh_logins.refusals + 1, last_at = excluded.last_at, "
                "reason = excluded.reason RETURNING refusals",
                [mailbox, stamp, stamp, reason],
            ).fetchone()
        return int(count)

    def accepted(self, mailbox: str) -> Row | None:
        """A call on this mailbox succeeded: forget its refusal, and make its outbound messages
        waiting out a backoff due now (MESH takes the login again). Returns the row this call
        removed (None if it was not refused, or another process cleared it first)."""
        if not self._store._rows("SELECT 1 AS refused FROM mesh_logins WHERE mailbox = ?", [mailbox]):
            return None  # the usual case: a read, no write transaction
        with self._store.immediate() as db:
            rows = db.rows("DELETE FROM mesh_logins WHERE mailbox = ? RETURNING *", [mailbox])
            if rows:
                db.execute(
                    "UPDATE messages SET next_attempt_at = NULL "
                    "WHERE direction = 'out' AND state = 'accepted' AND mailbox = ? AND next_attempt_at IS NOT NULL",
                    [mailbox],
                )
        return rows[0] if rows else None

    def refusing(self) -> dict[str, Row]:
        """Every mailbox whose login is refused now, by id."""
        return {row["mailbox"]: row for row in self._store._rows("SELECT * FROM mesh_logins ORDER BY mailbox")}
