"""Mailboxes whose login MESH refuses: the state behind the ``mesh-auth`` event.

A row exists from the first refusal until a call on that mailbox succeeds. Each change is one
``BEGIN IMMEDIATE`` transaction, so of several processes (cron passes, the service's workers)
exactly one raises the event and exactly one clears it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .records import RefusedLogin

if TYPE_CHECKING:
    from .sqlite import SQLiteStore


class Logins:
    """The ``mesh_logins`` table of one store."""

    def __init__(self, store: SQLiteStore) -> None:
        self._store = store

    def refused(self, mailbox: str, reason: str) -> int:
        """Count one more refusal of this mailbox's login; returns the count (1: it was working until now)."""
        from .sqlite import now

        stamp = now()
        with self._store.immediate() as db:
            (count,) = db.execute(
                "INSERT INTO mesh_logins (mailbox, since, last_at, refusals, reason) VALUES (?, ?, ?, 1, ?) "
                "ON CONFLICT (mailbox) DO UPDATE SET refusals = refusals + 1, last_at = excluded.last_at, "
                "reason = excluded.reason RETURNING refusals",
                [mailbox, stamp, stamp, reason],
            ).fetchone()
        return int(count)

    def accepted(self, mailbox: str) -> RefusedLogin | None:
        """A call on this mailbox succeeded: forget its refusal, and make its outbound messages
        waiting out a backoff due now (MESH takes the login again). Returns the refusal this call
        cleared (None if it was not refused, or another process cleared it first)."""
        found = self._store.conn.execute("SELECT 1 FROM mesh_logins WHERE mailbox = ?", [mailbox]).fetchone()
        if found is None:  # the usual case: a read, no write transaction
            return None
        with self._store.immediate() as db:
            cursor = db.execute("DELETE FROM mesh_logins WHERE mailbox = ? RETURNING *", [mailbox])
            names = [d[0] for d in cursor.description]
            row = cursor.fetchone()
            if row:
                db.execute(
                    "UPDATE messages SET next_attempt_at = NULL "
                    "WHERE direction = 'out' AND state = 'accepted' AND mailbox = ? AND next_attempt_at IS NOT NULL",
                    [mailbox],
                )
        return RefusedLogin.from_row(dict(zip(names, row, strict=True))) if row else None

    def refusing(self) -> dict[str, RefusedLogin]:
        """Every mailbox whose login is refused now, by id."""
        conn = self._store.conn
        cursor = conn.execute("SELECT * FROM mesh_logins ORDER BY mailbox")
        names = [d[0] for d in cursor.description]
        with conn.reading():
            return {row[0]: RefusedLogin.from_row(dict(zip(names, row, strict=True))) for row in cursor}
