"""The store's schema as ordered migrations of plain SQL, for SQLite and PostgreSQL alike.

Each migration returns its statements for a :class:`~.dialects.Dialect`, which spells the few words
the two databases write differently. Add new ones at the end; never edit old ones (stores built by
them exist: tests/data holds their schema, and the sqlite-utils migrations that built the first ones).
:mod:`.migrating` applies them and records each by name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import clock
from .counters import counters, counting_in_place
from .dialects import Dialect

Statement = str | tuple[str, list[Any]]  # SQL, or SQL and its parameters (marked ``Dialect.param``)
Migration = Callable[[Dialect], list[Statement]]

MIGRATIONS: list[Migration] = []


def migration(fn: Migration) -> Migration:
    """Register ``fn`` as the next migration, named by its function name."""
    MIGRATIONS.append(fn)
    return fn


@migration
def m001_messages_and_events(d: Dialect) -> list[Statement]:
    return [
        f"""CREATE TABLE messages (
            id TEXT PRIMARY KEY,
            direction TEXT NOT NULL,
            state TEXT NOT NULL,
            route TEXT,
            mailbox TEXT,
            peer TEXT,
            workflow_id TEXT,
            mesh_message_id TEXT,
            message_type TEXT,
            payload_type TEXT,
            payload_sha256 TEXT,
            payload_size {d.integer},
            filename TEXT,
            subject TEXT,
            content_type TEXT,
            linked_message_id TEXT,
            chunks_done {d.integer} DEFAULT 0,
            chunks_total {d.integer},
            attempts {d.integer} DEFAULT 0,
            last_error TEXT,
            destination TEXT,
            itk_message_id TEXT,
            inf_ack_code TEXT,
            bus_ack_code TEXT,
            tracked_at TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )""",
        # id: meshbridge's own (also sent as mex-LocalID); direction "out" | "in"; mailbox: ours;
        # peer: the other mailbox; message_type DATA | REPORT; linked_message_id: the MESH id a REPORT is about
        "CREATE UNIQUE INDEX idx_messages_mesh_id ON messages(direction, mesh_message_id) "
        "WHERE mesh_message_id IS NOT NULL",
        "CREATE INDEX idx_messages_state ON messages(state)",
        "CREATE INDEX idx_messages_created_at ON messages(created_at)",
        f"""CREATE TABLE events (
            seq {d.serial},
            message_id TEXT NOT NULL REFERENCES messages(id),
            at TEXT NOT NULL,
            kind TEXT NOT NULL,
            state TEXT,
            detail TEXT
        )""",
        "CREATE INDEX idx_events_message_id ON events(message_id)",
        *d.append_only("events"),  # the timeline is evidence
        """CREATE TABLE expectations (
            message_id TEXT REFERENCES messages(id),
            kind TEXT,
            due_at TEXT,
            met_at TEXT,
            outcome TEXT,
            overdue_at TEXT,
            PRIMARY KEY (message_id, kind)
        )""",
        "CREATE INDEX idx_expectations_due_at ON expectations(due_at)",
    ]


@migration
def m002_findings(d: Dialect) -> list[Statement]:
    """Validation findings (JSON list) of rejected and invalid messages."""
    return ["ALTER TABLE messages ADD COLUMN findings TEXT"]


@migration
def m003_itk(d: Dialect) -> list[Statement]:
    """ITK3 correlation: responses point at the message they answer; ids compare case-insensitively."""
    return [
        "ALTER TABLE messages ADD COLUMN answers TEXT",  # meshbridge id of the message this response answers
        f"CREATE INDEX idx_messages_itk_id ON messages(direction, {d.nocase('itk_message_id')})",
    ]


@migration
def m004_ack_keys(d: Dialect) -> list[Statement]:
    """Correlation keys of domain acknowledgements (``meshbridge_ack_protocols``)."""
    return [
        """CREATE TABLE ack_keys (
            protocol TEXT,
            key TEXT,
            message_id TEXT REFERENCES messages(id),
            PRIMARY KEY (protocol, key)
        )"""
    ]


@migration
def m005_service(d: Dialect) -> list[Statement]:
    """Send backoff, and the source file a message came from (never picked twice)."""
    return [
        "ALTER TABLE messages ADD COLUMN next_attempt_at TEXT",
        "ALTER TABLE messages ADD COLUMN source_file TEXT",
        "CREATE INDEX idx_messages_source ON messages(source_file, payload_sha256)",
    ]


@migration
def m006_inline_payloads(d: Dialect) -> list[Statement]:
    """Small payloads live in the database (``[store] inline_max``); big ones stay files."""
    return [
        f"CREATE TABLE payloads (sha256 TEXT PRIMARY KEY, size {d.integer} NOT NULL, data {d.blob} NOT NULL)",
        # SQLiteStore.sync() bumps this one row in a durable commit: a real write, so SQLite syncs the log
        f"CREATE TABLE syncs (id {d.integer} PRIMARY KEY, count {d.integer})",
        "INSERT INTO syncs (id, count) VALUES (1, 0)",
    ]


@migration
def m008_send_leases(d: Dialect) -> list[Statement]:
    """Who holds a ``sending`` claim, and its heartbeat on the lease clock (``meshbridge.clock``).

    A claim made before this migration gets a heartbeat now: it lapses one lease from here.
    """
    return [
        "ALTER TABLE messages ADD COLUMN lease_holder TEXT",
        "ALTER TABLE messages ADD COLUMN lease_boot TEXT",
        f"ALTER TABLE messages ADD COLUMN lease_beat {d.double}",
        (
            f"UPDATE messages SET lease_holder = 'migrated', lease_boot = {d.param}, lease_beat = {d.param} "
            "WHERE state = 'sending'",
            [clock.boot(), clock.now()],
        ),
    ]


@migration
def m009_local_id(d: Dialect) -> list[Statement]:
    """The sender's own id of an inbound message (its ``mex-LocalID``), shown by ``show``."""
    return ["ALTER TABLE messages ADD COLUMN local_id TEXT"]


@migration
def m011_bad_bodies(d: Dialect) -> list[Statement]:
    """Sightings of inbound bodies that could not be decoded: the same raw bytes twice, or too many
    tries, and they are stored ``invalid`` and acknowledged (a table, not a message row: nothing is
    stored or shown as a message until that decision)."""
    return [
        f"""CREATE TABLE bad_bodies (
            mesh_message_id TEXT,
            raw_sha256 TEXT,
            mailbox TEXT,
            seen {d.integer},
            reason TEXT,
            last_seen TEXT,
            PRIMARY KEY (mesh_message_id, raw_sha256)
        )"""
    ]


@migration
def m012_expectation_verdicts(d: Dialect) -> list[Statement]:
    """How an expectation was met: ``ack``, ``nack`` (a negative answer) or ``closed`` (another
    answer's nack ended it), and the answer's text, so that views show a nack as a nack. Earlier
    closed rows are recognised by their outcome. Open expectations get a partial index: overdue
    (``sqlite.OVERDUE``) is found through it."""
    return [
        "ALTER TABLE expectations ADD COLUMN verdict TEXT",
        "ALTER TABLE expectations ADD COLUMN text TEXT",
        "UPDATE expectations SET verdict = 'closed' WHERE met_at IS NOT NULL AND outcome LIKE 'closed by %'",
        "CREATE INDEX idx_expectations_open ON expectations(due_at) WHERE met_at IS NULL",
    ]


@migration
def m013_mesh_logins(d: Dialect) -> list[Statement]:
    """Mailboxes whose login MESH refuses (``mesh-auth``): one row per mailbox while it lasts, so
    that the event is raised once per mailbox, across processes, until a call succeeds again."""
    return [
        f"""CREATE TABLE mesh_logins (
            mailbox TEXT PRIMARY KEY,
            since TEXT NOT NULL,
            last_at TEXT NOT NULL,
            refusals {d.integer} NOT NULL,
            reason TEXT
        )"""
    ]


@migration
def m014_payload_chunks(d: Dialect) -> list[Statement]:
    """Big payloads in the database, as rows of at most 1 MiB each (a PostgreSQL store keeps them
    here, needing no shared file system; a SQLite store keeps its big payloads as files). A payload
    being written has a ``tmp:<n>`` key until it is whole, then it is renamed to its sha256."""
    return [
        f"""CREATE TABLE payload_chunks (
            sha256 TEXT NOT NULL,
            seq {d.integer} NOT NULL,
            data {d.blob} NOT NULL,
            PRIMARY KEY (sha256, seq)
        )""",
        # payload bytes rarely compress: PostgreSQL stores them as they are, out of line
        *(["ALTER TABLE payload_chunks ALTER COLUMN data SET STORAGE EXTERNAL"] if d.name == "postgresql" else []),
    ]


# -- m015: reads that do not grow with the store -------------------------------------------------

NACKED = ("inf-nacked", "bus-nacked")  # the states the ``nacked`` filter lists (its partial index's)
_NACKED_SQL = "state IN ('inf-nacked', 'bus-nacked')"


@migration
def m015_counters_and_listing_indexes(d: Dialect) -> list[Statement]:
    """Counters and indexes for reads that cost the same at any size (docs/store.md, "Reads at scale"):
    the ``counts`` table and the derived message columns, kept by triggers (:mod:`.counters`), and
    an index in ``(created_at, id)`` order for each listing filter, and for each lookup."""
    return [
        *counters(d),
        # listings: each filter's rows in (created_at, id) order, walked from the cursor
        "DROP INDEX idx_messages_state",
        "DROP INDEX idx_messages_created_at",
        "DROP INDEX idx_messages_itk_id",
        "DROP INDEX idx_expectations_due_at",
        "DROP INDEX idx_expectations_open",
        "CREATE INDEX idx_messages_created ON messages(created_at, id)",
        *(
            f"CREATE INDEX idx_messages_by_{name} ON messages({columns}, created_at, id)"
            for name, columns in (
                ("state", "state"),
                ("route", "route"),
                ("route_state", "route, state"),
                ("direction", "direction"),
                ("mailbox", "mailbox"),
                ("peer", "peer"),
                ("workflow", "workflow_id"),
            )
        ),
        "CREATE INDEX idx_messages_overdue ON messages(created_at, id) WHERE overdue_open > 0",
        "CREATE INDEX idx_messages_owes ON messages(created_at, id) WHERE owes > 0",
        f"CREATE INDEX idx_messages_nacked ON messages(created_at, id) WHERE {_NACKED_SQL}",
        # lookups (show): MESH id and ITK id in any case, the sender's local id
        f"CREATE INDEX idx_messages_mesh_nocase ON messages({d.nocase('mesh_message_id')})",
        f"CREATE INDEX idx_messages_itk ON messages({d.nocase('itk_message_id')})",
        "CREATE INDEX idx_messages_local_id ON messages(local_id)",
        "CREATE INDEX idx_messages_filename ON messages(filename)",
        # a source file by its path ("path@sha256" as a prefix): SQLite's idx_messages_source serves it;
        # PostgreSQL needs byte order whatever the database's collation
        *(
            [f"CREATE INDEX idx_messages_source_path ON messages({d.bytewise('source_file')})"]
            if d.name != "sqlite"
            else []
        ),
        # the sweep and the overdue reads: open expectations the sweep has not yet seen overdue
        "CREATE INDEX idx_expectations_unswept ON expectations(due_at) WHERE met_at IS NULL AND overdue_at IS NULL",
    ]


@migration
def m016_counting_in_place(d: Dialect) -> list[Statement]:
    """The same counters for less on PostgreSQL: its per-row triggers' upserts written in place
    (:func:`.counters.counting_in_place`); nothing on SQLite."""
    return list(counting_in_place(d))


# Migrations that add only indexes and what triggers derive from the rows (:mod:`.counters`), or
# change only how: an archive made before one imports into a store after it, its rows counted as they go in.
DERIVED_ONLY = frozenset({m015_counters_and_listing_indexes.__name__, m016_counting_in_place.__name__})


@migration
def m017_alert_outbox(d: Dialect) -> list[Statement]:
    """The alert outbox (:mod:`.outbox`): each notification queued in the transaction of the change
    it reports (``alerts``), and each notifier's delivery of it (``alert_sends``: due, attempts,
    sent or given up). A send is claimed by moving its ``due_at`` past its lease: a dispatcher
    that dies leaves it due again when the lease ends."""
    return [
        """CREATE TABLE alerts (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            message_id TEXT REFERENCES messages(id),
            summary TEXT NOT NULL,
            detail TEXT,
            created_at TEXT NOT NULL,
            routed_at TEXT
        )""",
        # id: the notification's own, its idempotency key everywhere; routed_at: its sends were made
        "CREATE INDEX idx_alerts_unrouted ON alerts(created_at) WHERE routed_at IS NULL",
        f"""CREATE TABLE alert_sends (
            alert_id TEXT NOT NULL REFERENCES alerts(id),
            target TEXT NOT NULL,
            attempts {d.integer} NOT NULL DEFAULT 0,
            due_at TEXT,
            sent_at TEXT,
            gave_up_at TEXT,
            last_error TEXT,
            PRIMARY KEY (alert_id, target)
        )""",
        # due_at NULL: finished (sent or given up); the dispatcher reads only the due ones
        "CREATE INDEX idx_alert_sends_due ON alert_sends(due_at) WHERE due_at IS NOT NULL",
    ]


# Migrations that add only tables, and no rows: an archive made before one imports into a store
# after it, those tables left empty (an older meshbridge queued no alerts).
ADDS_TABLES = {m017_alert_outbox.__name__: frozenset({"alerts", "alert_sends"})}
