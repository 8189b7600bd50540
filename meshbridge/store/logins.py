"""Mailboxes whose login MESH refuses: the state behind the ``mesh-auth`` event.

A row exists from the first refusal until a call on that mailbox succeeds. Each change is one
transaction (an upsert, a ``DELETE … RETURNING``), so of several processes (cron passes, the
service's workers) exactly one raises the event and exactly one clears it: the ``mesh-auth`` and
``mesh-auth-cleared`` notifications are queued (:mod:`.outbox`) in that same transaction.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..events import EventKind, Notification
from ..models import stamp as shown
from .outbox import insert
from .records import RefusedLogin

if TYPE_CHECKING:
    from .sql import SQLStore


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
            if count == 1:
                insert(db, refused_alert(mailbox, reason), stamp)
        return int(count)

    def accepted(self, mailbox: str) -> RefusedLogin | None:
        """A call on this mailbox succeeded: forget its refusal, and make its outbound messages
        waiting out a backoff due now (MESH takes the login again). Returns the refusal this call
        cleared (None if it was not refused, or another process cleared it first)."""
        from .queries import now

        if not self._store._rows("SELECT 1 AS refused FROM mesh_logins WHERE mailbox = ?", [mailbox]):
            return None  # the usual case: a read, no write transaction
        with self._store.immediate() as db:
            rows = db.rows("DELETE FROM mesh_logins WHERE mailbox = ? RETURNING *", [mailbox])
            if rows:
                insert(db, cleared_alert(RefusedLogin.from_row(rows[0])), now())
                db.execute(
                    "UPDATE messages SET next_attempt_at = NULL "
                    "WHERE direction = 'out' AND state = 'accepted' AND mailbox = ? AND next_attempt_at IS NOT NULL",
                    [mailbox],
                )
        return RefusedLogin.from_row(rows[0]) if rows else None

    def refusing(self) -> dict[str, RefusedLogin]:
        """Every mailbox whose login is refused now, by id."""
        rows = self._store._rows("SELECT * FROM mesh_logins ORDER BY mailbox")
        return {row["mailbox"]: RefusedLogin.from_row(row) for row in rows}


def refused_alert(mailbox: str, reason: str) -> Notification:
    """The ``mesh-auth`` notification of a mailbox's first refused login."""
    summary = (
        f"MESH refused the login of mailbox {mailbox}: {reason}; its messages wait (accepted) "
        "until the login works again"
    )
    return Notification(EventKind.MESH_AUTH, None, summary, {"mailbox": mailbox, "reason": reason})


def cleared_alert(row: RefusedLogin) -> Notification:
    """The ``mesh-auth-cleared`` notification of a mailbox whose login works again."""
    summary = (
        f"MESH takes the login of mailbox {row.mailbox} again (refused {row.refusals} times since "
        f"{shown(row.since)}); its waiting messages are due now"
    )
    return Notification(EventKind.MESH_AUTH_CLEARED, None, summary, {"mailbox": row.mailbox, "since": shown(row.since)})
