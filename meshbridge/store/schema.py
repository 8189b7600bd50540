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
_OWED_KIND = "bus-ack-owed"  # meshbridge.kinds.BUS_OWED (the schema does not import the pipeline)


@migration
def m015_counters_and_listing_indexes(d: Dialect) -> list[Statement]:
    """Counters and indexes for reads that cost the same at any size (docs/store.md, "Reads at scale").

    ``counts`` holds how many messages are in each (direction, route, state), how many
    expectations of each (direction, kind) are open and how many of those the sweep has seen
    overdue, and how many messages have one of those. Triggers keep them in the transaction that
    changes a row, whatever writes it (the store, an import, a bulk load). On PostgreSQL each
    connection adds to its own row (``slot``: its backend pid), so nodes never wait on one counter
    row; :meth:`~.sql.SQLStore.fold_counts` folds those into slot 0 now and then. A message carries
    ``overdue_open`` (its expectations the sweep saw overdue and still open) and ``owes`` (an open
    business ack we owe), so listings of either walk a partial index in order.
    """
    return [
        f"ALTER TABLE messages ADD COLUMN overdue_open {d.integer} NOT NULL DEFAULT 0",
        f"ALTER TABLE messages ADD COLUMN owes {d.integer} NOT NULL DEFAULT 0",
        "UPDATE messages SET overdue_open = (SELECT count(*) FROM expectations e WHERE e.message_id = messages.id "
        "AND e.met_at IS NULL AND e.overdue_at IS NOT NULL) WHERE id IN "
        "(SELECT message_id FROM expectations WHERE met_at IS NULL AND overdue_at IS NOT NULL)",
        "UPDATE messages SET owes = 1 WHERE id IN "
        f"(SELECT message_id FROM expectations WHERE kind = '{_OWED_KIND}' AND met_at IS NULL)",
        f"""CREATE TABLE counts (
            counter TEXT NOT NULL,
            direction TEXT NOT NULL,
            route TEXT NOT NULL,
            term TEXT NOT NULL,
            slot {d.integer} NOT NULL,
            n {d.integer} NOT NULL,
            PRIMARY KEY (counter, direction, route, term, slot)
        )""",
        # counter: messages (term: state) | overdue_messages (term '') | open, overdue (term: expectation kind);
        # route '' for none (and for the expectation counters, which are by direction and kind only)
        "INSERT INTO counts (counter, direction, route, term, slot, n) "
        "SELECT 'messages', direction, coalesce(route, ''), state, 0, count(*) FROM messages "
        "GROUP BY direction, coalesce(route, ''), state",
        "INSERT INTO counts (counter, direction, route, term, slot, n) "
        "SELECT 'overdue_messages', direction, coalesce(route, ''), '', 0, count(*) FROM messages "
        "WHERE overdue_open > 0 GROUP BY direction, coalesce(route, '')",
        "INSERT INTO counts (counter, direction, route, term, slot, n) "
        "SELECT 'open', coalesce(m.direction, ''), '', e.kind, 0, count(*) FROM expectations e "
        "LEFT JOIN messages m ON m.id = e.message_id WHERE e.met_at IS NULL GROUP BY coalesce(m.direction, ''), e.kind",
        "INSERT INTO counts (counter, direction, route, term, slot, n) "
        "SELECT 'overdue', coalesce(m.direction, ''), '', e.kind, 0, count(*) FROM expectations e "
        "LEFT JOIN messages m ON m.id = e.message_id WHERE e.met_at IS NULL AND e.overdue_at IS NOT NULL "
        "GROUP BY coalesce(m.direction, ''), e.kind",
        *(_sqlite_counting() if d.name == "sqlite" else _postgresql_counting()),
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
        # the sweep and the overdue reads: open expectations the sweep has not yet seen overdue
        "CREATE INDEX idx_expectations_unswept ON expectations(due_at) WHERE met_at IS NULL AND overdue_at IS NULL",
    ]


def _bump(counter: str, direction: str, route: str, term: str, delta: str, when: str, source: str = "") -> str:
    """SQLite: add ``delta`` to one counter row when ``when`` holds (an upsert; slot 0)."""
    return (
        f"INSERT INTO counts (counter, direction, route, term, slot, n) SELECT '{counter}', {direction}, {route}, "
        f"{term}, 0, {delta} {source} WHERE {when} "
        "ON CONFLICT (counter, direction, route, term, slot) DO UPDATE SET n = n + excluded.n;"
    )


def _sqlite_counting() -> list[str]:
    """The triggers that keep ``counts``, ``overdue_open`` and ``owes`` on SQLite (one writer at a time: slot 0)."""

    def messages(row: str, sign: str) -> str:
        route = f"coalesce({row}.route, '')"
        return _bump("messages", f"{row}.direction", route, f"{row}.state", sign, "1") + _bump(
            "overdue_messages", f"{row}.direction", route, "''", sign, f"{row}.overdue_open > 0"
        )

    def expectations(delta_open: str, delta_swept: str, row: str) -> str:
        direction = f"coalesce((SELECT direction FROM messages WHERE id = {row}.message_id), '')"
        return (
            _bump("open", direction, "''", f"{row}.kind", delta_open, f"{delta_open} <> 0")
            + _bump("overdue", direction, "''", f"{row}.kind", delta_swept, f"{delta_swept} <> 0")
            + f"UPDATE messages SET overdue_open = overdue_open + {delta_swept} "
            f"WHERE id = {row}.message_id AND {delta_swept} <> 0;" + f"UPDATE messages SET owes = owes + {delta_open} "
            f"WHERE id = {row}.message_id AND {row}.kind = '{_OWED_KIND}' AND {delta_open} <> 0;"
        )

    def is_open(row: str) -> str:
        return f"({row}.met_at IS NULL)"

    def is_swept(row: str) -> str:
        return f"({row}.met_at IS NULL AND {row}.overdue_at IS NOT NULL)"

    changed = (
        "OLD.direction IS NOT NEW.direction OR OLD.route IS NOT NEW.route OR OLD.state IS NOT NEW.state "
        "OR (OLD.overdue_open > 0) IS NOT (NEW.overdue_open > 0)"
    )
    opened, swept = is_open("NEW"), is_swept("NEW")
    was_opened, was_swept = is_open("OLD"), is_swept("OLD")
    return [
        f"CREATE TRIGGER messages_counted_insert AFTER INSERT ON messages BEGIN {messages('NEW', '1')} END",
        f"CREATE TRIGGER messages_counted_update AFTER UPDATE OF direction, route, state, overdue_open ON messages "
        f"WHEN {changed} BEGIN {messages('OLD', '-1')} {messages('NEW', '1')} END",
        f"CREATE TRIGGER messages_counted_delete AFTER DELETE ON messages BEGIN {messages('OLD', '-1')} END",
        "CREATE TRIGGER expectations_counted_insert AFTER INSERT ON expectations "
        f"BEGIN {expectations(opened, swept, 'NEW')} END",
        "CREATE TRIGGER expectations_counted_update AFTER UPDATE OF met_at, overdue_at ON expectations "
        f"WHEN {was_opened} IS NOT {opened} OR {was_swept} IS NOT {swept} BEGIN "
        f"{expectations(f'({opened} - {was_opened})', f'({swept} - {was_swept})', 'NEW')} END",
        "CREATE TRIGGER expectations_counted_delete AFTER DELETE ON expectations "
        f"BEGIN {expectations(f'(-{was_opened})', f'(-{was_swept})', 'OLD')} END",
    ]


def _postgresql_counting() -> list[str]:
    """The same on PostgreSQL: each connection counts in its own row (slot: its backend pid).

    Inserts and deletes count once per statement, by group (transition tables): a bulk load or an
    import does not update one counter row once per message, which in one transaction leaves a
    version per update for the next one to step over (quadratic). Updates count per row."""
    return [
        "CREATE FUNCTION meshbridge_count(c TEXT, d TEXT, r TEXT, t TEXT, delta BIGINT) RETURNS void "
        "LANGUAGE sql AS $$ INSERT INTO counts (counter, direction, route, term, slot, n) "
        "VALUES (c, d, r, t, pg_backend_pid(), delta) ON CONFLICT (counter, direction, route, term, slot) "
        "DO UPDATE SET n = counts.n + excluded.n $$",
        """CREATE FUNCTION messages_counted() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM meshbridge_count('messages', OLD.direction, coalesce(OLD.route, ''), OLD.state, -1);
            IF OLD.overdue_open > 0 THEN
                PERFORM meshbridge_count('overdue_messages', OLD.direction, coalesce(OLD.route, ''), '', -1);
            END IF;
            PERFORM meshbridge_count('messages', NEW.direction, coalesce(NEW.route, ''), NEW.state, 1);
            IF NEW.overdue_open > 0 THEN
                PERFORM meshbridge_count('overdue_messages', NEW.direction, coalesce(NEW.route, ''), '', 1);
            END IF;
            RETURN NULL;
        END $$""",
        "CREATE TRIGGER messages_counted_update AFTER UPDATE OF direction, route, state, overdue_open ON messages "
        "FOR EACH ROW WHEN (OLD.direction IS DISTINCT FROM NEW.direction OR OLD.route IS DISTINCT FROM NEW.route "
        "OR OLD.state IS DISTINCT FROM NEW.state OR (OLD.overdue_open > 0) <> (NEW.overdue_open > 0)) "
        "EXECUTE FUNCTION messages_counted()",
        # rows added (or removed): the transition table ``changed``, counted by group in one statement
        """CREATE FUNCTION messages_counted_rows() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            sign INT := CASE TG_OP WHEN 'INSERT' THEN 1 ELSE -1 END;
        BEGIN
            INSERT INTO counts (counter, direction, route, term, slot, n)
            SELECT 'messages', direction, coalesce(route, ''), state, pg_backend_pid(), sign * count(*)
            FROM changed GROUP BY direction, coalesce(route, ''), state
            UNION ALL
            SELECT 'overdue_messages', direction, coalesce(route, ''), '', pg_backend_pid(), sign * count(*)
            FROM changed WHERE overdue_open > 0 GROUP BY direction, coalesce(route, '')
            ON CONFLICT (counter, direction, route, term, slot) DO UPDATE SET n = counts.n + excluded.n;
            RETURN NULL;
        END $$""",
        *(
            f"CREATE TRIGGER messages_counted_{op.lower()} AFTER {op} ON messages REFERENCING {age} TABLE AS changed "
            "FOR EACH STATEMENT EXECUTE FUNCTION messages_counted_rows()"
            for op, age in (("INSERT", "NEW"), ("DELETE", "OLD"))
        ),
        f"""CREATE FUNCTION expectations_counted() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            was_open INT := (OLD.met_at IS NULL)::INT;
            was_swept INT := (OLD.met_at IS NULL AND OLD.overdue_at IS NOT NULL)::INT;
            is_open INT := (NEW.met_at IS NULL)::INT;
            is_swept INT := (NEW.met_at IS NULL AND NEW.overdue_at IS NOT NULL)::INT;
            dir TEXT;
        BEGIN
            IF is_open = was_open AND is_swept = was_swept THEN
                RETURN NULL;
            END IF;
            SELECT direction INTO dir FROM messages WHERE id = NEW.message_id;
            IF is_open <> was_open THEN
                PERFORM meshbridge_count('open', coalesce(dir, ''), '', NEW.kind, is_open - was_open);
                IF NEW.kind = '{_OWED_KIND}' THEN
                    UPDATE messages SET owes = owes + is_open - was_open WHERE id = NEW.message_id;
                END IF;
            END IF;
            IF is_swept <> was_swept THEN
                PERFORM meshbridge_count('overdue', coalesce(dir, ''), '', NEW.kind, is_swept - was_swept);
                UPDATE messages SET overdue_open = overdue_open + is_swept - was_swept WHERE id = NEW.message_id;
            END IF;
            RETURN NULL;
        END $$""",
        "CREATE TRIGGER expectations_counted AFTER UPDATE OF met_at, overdue_at ON expectations "
        "FOR EACH ROW EXECUTE FUNCTION expectations_counted()",
        # (each message's direction and flags by its primary key, whatever the number of rows: no plan
        # made for a bulk load's thousands is ever reused for one row)
        f"""CREATE FUNCTION expectations_counted_rows() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            sign INT := CASE TG_OP WHEN 'INSERT' THEN 1 ELSE -1 END;
            ident TEXT; owes_n BIGINT; swept_n BIGINT;
        BEGIN
            INSERT INTO counts (counter, direction, route, term, slot, n)
            SELECT counter, direction, '', kind, pg_backend_pid(), sign * count(*) FROM (
                SELECT c.counter, c.kind, coalesce((SELECT direction FROM messages WHERE id = c.message_id), '')
                FROM (SELECT 'open' AS counter, message_id, kind FROM changed WHERE met_at IS NULL
                      UNION ALL
                      SELECT 'overdue', message_id, kind FROM changed WHERE met_at IS NULL AND overdue_at IS NOT NULL) c
            ) AS e (counter, kind, direction)
            GROUP BY counter, direction, kind
            ON CONFLICT (counter, direction, route, term, slot) DO UPDATE SET n = counts.n + excluded.n;
            FOR ident, owes_n, swept_n IN
                SELECT message_id, count(*) FILTER (WHERE kind = '{_OWED_KIND}'),
                    count(*) FILTER (WHERE overdue_at IS NOT NULL)
                FROM changed WHERE met_at IS NULL AND (kind = '{_OWED_KIND}' OR overdue_at IS NOT NULL)
                GROUP BY message_id
            LOOP
                UPDATE messages SET owes = owes + sign * owes_n, overdue_open = overdue_open + sign * swept_n
                WHERE id = ident;
            END LOOP;
            RETURN NULL;
        END $$""",
        *(
            f"CREATE TRIGGER expectations_counted_{op.lower()} AFTER {op} ON expectations "
            f"REFERENCING {age} TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION expectations_counted_rows()"
            for op, age in (("INSERT", "NEW"), ("DELETE", "OLD"))
        ),
    ]
