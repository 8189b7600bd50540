"""The store's writes, the same on SQLite and PostgreSQL: :class:`SQLStore`, the backends' base.

Every state change is one transaction holding a conditional UPDATE and its event row, so two
processes on one store never both win the same transition: on SQLite the transaction has the
write lock up front (``BEGIN IMMEDIATE``); on PostgreSQL the conditional UPDATE waits for a
concurrent one on the same row and then finds its condition false, and rows to claim are picked
with ``FOR UPDATE SKIP LOCKED`` (:attr:`~.dialects.Dialect.lock_rows`). A backend gives the
connection pieces: :meth:`_transaction`, :meth:`_rows`, :meth:`_serialize`, its payloads.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Protocol

from .. import clock
from ..errors import SourceTaken, StoreError
from ..events import Notification
from ..models import FINISHED, State, TimelineKind
from ..steps import Event as Step
from ..steps import Facts, log_steps
from .expecting import Expecting
from .outbox import Outbox, insert
from .queries import Session, lapsed, lapsed_sql, new_lease, now, select_sql
from .records import Claimed, StoredMessage


class PayloadRows(Protocol):
    def exists(self, sha256: str) -> bool: ...
    def remove(self, sha256: str) -> bool: ...


class SQLStore(Expecting):
    """The backend-neutral part of a :class:`~.protocol.Store` (see the module docstring).

    Durability: a commit waits for the disk unless the work it records can be found again after a
    power cut, in which case it is *lazy* and becomes durable with the next durable commit (both
    databases write their log in order, so the store after a power cut is always an earlier state
    of itself). Lazy: ``sent`` (a retry asks MESH by local id), ``mesh-acked`` (the acknowledge is
    repeated), a folder delivery within a poll, which ends with :meth:`sync` (the file is written
    again, under the same name), ``valid`` without ITK (validated again), a delivery's claim (due
    again). Durable: everything a MESH call or an outside reader relies on afterwards.
    """

    integrity_errors: ClassVar[tuple[type[Exception], ...]] = ()
    _payload_rows: PayloadRows

    def _init_sql(self) -> None:
        self._lazy: set[str] = set()  # messages this store added lazily, not synced since
        self._durable: set[str] = set()  # messages known durable (a bounded cache: see make_durable)
        self._recorded: list[Step] = []  # timeline events of the transaction in hand (see meshbridge.steps)
        self.outbox = Outbox(self)  # notifications queued, and their deliveries (see .outbox)

    # -- what a backend gives

    def _transaction(self, durable: bool) -> AbstractContextManager[Session]:
        raise NotImplementedError

    def _serialize(self, db: Session, key: str) -> None:
        """Make transactions that call this with the same ``key`` take turns (until commit)."""

    # -- transactions and durability

    @contextmanager
    def immediate(self, durable: bool = True) -> Iterator[Session]:
        """A write transaction. ``durable=False``: the commit does not wait for the disk (see the
        class docstring). The steps it records are logged once it is committed."""
        self._recorded.clear()
        try:
            with self._transaction(durable) as db:
                yield db
        except BaseException:
            self._recorded.clear()
            raise
        if self._recorded:
            recorded, self._recorded = self._recorded, []
            log_steps(recorded, self._step_row)

    def _step_row(self, message_id: str) -> Facts | None:
        """A message's fields for its step's log line (never fails the step: None if unreadable)."""
        try:
            rows = self._rows(
                "SELECT direction, state, route, mailbox, peer, mesh_message_id, workflow_id, filename FROM messages "
                "WHERE id = ?",
                [message_id],
            )
        except Exception:  # (the database's own errors, or meshbridge's)
            return None
        return Facts(**rows[0]) if rows else None

    def sync(self) -> None:
        """Make every lazy commit so far durable: a durable commit of a real write (the log holds
        everything committed before it, in order)."""
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

    # -- writes ---------------------------------------------------------------------------

    def add(
        self,
        direction: str,
        state: str,
        detail: dict[str, Any] | None = None,
        *,
        before: str = "",
        durable: bool = True,
        alert: Notification | None = None,
        **fields: Any,
    ) -> StoredMessage:
        """Insert a message and its first event. ``direction`` is ``out`` or ``in``.

        ``before`` names a state the message passed through on the way (e.g. ``accepted`` for a
        message born claimed as ``sending``): it gets its own event, in the same transaction.
        ``durable=False``: see the class docstring; the caller syncs before relying on the row.
        ``alert``: a notification about the new message, queued in the same transaction (its
        ``message_id`` is set to the new message's id).
        """
        stamp = now()
        row = {"id": fields.pop("id", None) or uuid.uuid4().hex, "direction": direction, "state": state}
        row |= {"created_at": stamp, "updated_at": stamp, **fields}
        source, sha = fields.get("source_file"), fields.get("payload_sha256")
        try:
            with self.immediate(durable) as db:
                if source:
                    self._serialize(db, f"source:{source}")
                    if db.execute("SELECT 1 FROM messages WHERE source_file = ?", [source]).fetchone():
                        raise SourceTaken(f"source file {source} is already stored")  # checked and taken at once
                if sha:
                    self._serialize(db, f"payload:{sha}")
                    if not self._payload_rows.exists(sha):  # housekeeping removed identical old bytes meanwhile
                        raise StoreError(f"payload {sha} was removed by housekeeping before its message was recorded")
                columns = ", ".join(row)  # plain SQL (no schema introspection each time)
                db.execute(f"INSERT INTO messages ({columns}) VALUES ({', '.join('?' * len(row))})", list(row.values()))
                if before:
                    self._event(db, row["id"], before, before, detail, stamp)
                self._event(db, row["id"], state, state, None if before else detail, stamp)
                if alert is not None:
                    insert(db, replace(alert, message_id=row["id"]), stamp)
        except self.integrity_errors as exc:
            raise StoreError(f"message already stored: {str(exc).strip().splitlines()[0]}") from None
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
        alert: Notification | None = None,
        **fields: Any,
    ) -> bool:
        """Move a message to ``to_state`` if it is in one of ``from_states``; record the event.

        ``before=(state, detail)`` records a state passed through on the way, in the same transaction.
        ``durable=False`` for a change that can be found again after a power cut (class docstring).
        ``alert``: a notification queued in the same transaction, if the message changed.

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
                self._event(db, message_id, before[0], before[0], before[1], stamp)
            if changed:
                self._event(db, message_id, kind or to_state, to_state, detail, stamp)
                if alert is not None:
                    insert(db, alert, stamp)
        return bool(changed)

    def claim(self, message_id: str, lease: float) -> Claimed | None:
        """Take an outbound message to send: ``accepted``, or ``sending`` with a lapsed claim (see
        :func:`~.queries.lapsed_sql`: its sender died, or stopped and released it). One process
        wins and gets the message as claimed, with ``resumed`` True when it took over a
        ``sending`` one (which may have reached MESH in part); the others get None. The claim is
        the lease: the transaction ends here, never held across the upload."""
        stamp = now()
        taken = new_lease()
        claimable = f"(m.state = 'accepted' OR (m.state = 'sending' AND {lapsed_sql(self.dialect, 'm.')}))"
        with self.immediate() as db:
            found = db.execute(
                f"SELECT m.state FROM messages m WHERE m.id = ? AND {claimable}{self.dialect.lock_rows}",
                [message_id, *lapsed(lease)],
            ).fetchone()
            if found is None:
                return None
            db.execute(
                "UPDATE messages SET state = 'sending', updated_at = ?, lease_holder = ?, lease_boot = ?, "
                "lease_beat = ? WHERE id = ?",
                [stamp, *taken.values(), message_id],
            )
            kind = TimelineKind.SENDING if found[0] == State.ACCEPTED else TimelineKind.RESENDING
            self._event(db, message_id, kind, State.SENDING, None, stamp)
        return Claimed.from_row(self._get(message_id), resumed=found[0] == State.SENDING)

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
                self._event(db, message_id, kind, None, detail, stamp)
        return bool(changed)

    def deliverable(self, mailbox: str, workflow_id: str, lease: float) -> list[StoredMessage]:
        """Inbound ``valid`` messages on this mailbox and workflow that are due for delivery: never
        tried or their backoff over, and not claimed by a live delivery (nor being claimed now)."""
        where = (
            "m.direction = 'in' AND m.state = 'valid' AND m.mailbox = ? AND m.workflow_id = ? "
            f"AND (m.next_attempt_at IS NULL OR m.next_attempt_at <= ?) AND {lapsed_sql(self.dialect, 'm.')}"
        )
        params = [now(), mailbox, workflow_id, now(), *lapsed(lease)]
        if not self.dialect.lock_rows:
            rows = self._rows(select_sql(where), params)
        else:
            with self.immediate(durable=False) as db:
                rows = db.rows(select_sql(where, lock=self.dialect.lock_rows), params)
        return [StoredMessage.from_row(row) for row in rows]

    def claim_deliveries(self, message_ids: list[str], lease: float) -> dict[str, str]:
        """Take due ``valid`` inbound messages to deliver, in one transaction, with a claim like a
        send's (holder, boot, heartbeat on the lease clock; ``next_attempt_at`` is only the
        backoff's). Returns ``{id: holder}`` for the ids this call took: of two workers, one wins
        each message. Lazy: a claim lost in a power cut only makes the message due again."""
        if not message_ids:
            return {}
        taken = new_lease()
        with self.immediate(durable=False) as db:
            due = db.execute(
                f"SELECT m.id FROM messages m WHERE m.id IN ({', '.join('?' * len(message_ids))}) "
                "AND m.direction = 'in' AND m.state = 'valid' "
                "AND (m.next_attempt_at IS NULL OR m.next_attempt_at <= ?) "
                f"AND {lapsed_sql(self.dialect, 'm.')}{self.dialect.lock_rows}",
                [*message_ids, now(), *lapsed(lease)],
            ).fetchall()
            ids = [row[0] for row in due]
            if ids:
                db.execute(
                    "UPDATE messages SET lease_holder = ?, lease_boot = ?, lease_beat = ? "
                    f"WHERE id IN ({', '.join('?' * len(ids))})",
                    [*taken.values(), *ids],
                )
        return {ident: taken["lease_holder"] for ident in ids}

    def update(
        self,
        message_id: str,
        kind: str | None = None,
        detail: dict[str, Any] | None = None,
        *,
        durable: bool = True,
        alert: Notification | None = None,
        **fields: Any,
    ) -> None:
        """Set fields without a state change; with ``kind``, also record an event; with ``alert``,
        queue that notification in the same transaction."""
        stamp = now()
        sets = {"updated_at": stamp, **fields}
        with self.immediate(durable) as db:
            db.execute(
                "UPDATE messages SET " + ", ".join(f"{k} = ?" for k in sets) + " WHERE id = ?",
                [*sets.values(), message_id],
            )
            if kind:
                self._event(db, message_id, kind, None, detail, stamp)
            if alert is not None:
                insert(db, alert, stamp)

    def event(
        self, message_id: str, kind: str, detail: dict[str, Any] | None = None, *, alert: Notification | None = None
    ) -> None:
        """Record a timeline event (and queue ``alert`` with it, in the same transaction)."""
        stamp = now()
        with self.immediate() as db:
            self._event(db, message_id, kind, None, detail, stamp)
            if alert is not None:
                insert(db, alert, stamp)

    def _event(
        self, db: Session, message_id: str, kind: str, state: str | None, detail: dict[str, Any] | None, at: str
    ) -> None:
        db.execute(
            "INSERT INTO events (message_id, at, kind, state, detail) VALUES (?, ?, ?, ?, ?)",
            [message_id, at, kind, state, json.dumps(detail, sort_keys=True) if detail else None],
        )
        self._recorded.append((message_id, kind, state, detail))

    def fold_counts(self) -> int:
        """Fold the counter rows each connection added to (PostgreSQL: one per backend, see schema
        ``m015``) into one per counter, and drop those that count nothing; the rows removed. The
        counts read the same before and after; it keeps them one small table to sum."""
        with self.immediate(durable=False) as db:  # lost in a power cut: folded again next time
            folded = 0
            if self.dialect.name == "postgresql":
                folded = db.execute(
                    "WITH gone AS (DELETE FROM counts WHERE slot <> 0 RETURNING counter, direction, route, term, n) "
                    "INSERT INTO counts (counter, direction, route, term, slot, n) "
                    "SELECT counter, direction, route, term, 0, sum(n) FROM gone "
                    "GROUP BY counter, direction, route, term "
                    "ON CONFLICT (counter, direction, route, term, slot) DO UPDATE SET n = counts.n + excluded.n"
                ).rowcount
            return folded + db.execute("DELETE FROM counts WHERE slot = 0 AND n = 0").rowcount

    def remove_old_payloads(self, retention: float) -> int:
        """Delete payloads of finished messages older than ``retention`` seconds; rows stay.

        A payload still used by an unfinished (or younger) message is kept. Returns payloads removed.
        """
        cutoff = (datetime.now(UTC) - timedelta(seconds=retention)).isoformat(timespec="microseconds")
        finished = ", ".join(f"'{state}'" for state in sorted(FINISHED))
        old = self._rows(
            f"SELECT id, payload_sha256 FROM messages WHERE state IN ({finished}) AND updated_at < ? "
            "AND payload_sha256 IS NOT NULL AND id NOT IN "
            "(SELECT message_id FROM expectations WHERE met_at IS NULL)",
            [cutoff],
        )
        removed = 0
        for row in old:
            sha = row["payload_sha256"]
            with self.immediate() as db:  # checked, removed and recorded at once: see add()
                self._serialize(db, f"payload:{sha}")
                still_used = db.execute(
                    f"SELECT count(*) FROM messages WHERE payload_sha256 = ? AND (state NOT IN ({finished}) "
                    "OR updated_at >= ? OR id IN (SELECT message_id FROM expectations WHERE met_at IS NULL))",
                    [sha, cutoff],
                ).fetchone()[0]
                stamp = now()
                db.execute("UPDATE messages SET payload_sha256 = NULL, updated_at = ? WHERE id = ?", [stamp, row["id"]])
                self._event(db, row["id"], TimelineKind.PAYLOAD_REMOVED, None, {"sha256": sha}, stamp)
                if not still_used and self._payload_rows.remove(sha):  # last: a failure above removes nothing
                    removed += 1
        return removed
