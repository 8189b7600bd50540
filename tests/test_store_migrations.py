"""The store's migrations: plain SQL run by meshbridge's own runner, on SQLite and on PostgreSQL.

Stores built by the sqlite-utils migrations they replace must keep upgrading, and a new store must
have the same schema: tests/data holds that schema (taken from a store built before the rewrite)
and a frozen copy of the sqlite-utils migrations, which build stores at each step as older
meshbridges left them. On PostgreSQL (tests/postgres_fixtures.py) every migration runs in a database made for the test
and dropped after.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from meshbridge.store import SQLiteStore, migrating
from meshbridge.store.dialects import POSTGRESQL, SQLITE
from meshbridge.store.migrating import NAMES
from meshbridge.store.schema import m015_counters_and_listing_indexes

DATA = Path(__file__).parent / "data"
FROZEN = json.loads((DATA / "store_schema_m013.json").read_text())  # a store built by the sqlite-utils migrations
ADDED = {  # by the migrations since: m014_payload_chunks, then m015_counters_and_listing_indexes
    "table payload_chunks": {
        "columns": [["sha256", "TEXT", 1, None, 1], ["seq", "INTEGER", 1, None, 2], ["data", "BLOB", 1, None, 0]],
        "constraint_indexes": [["pk", 1, [["sha256", 0, "BINARY"], ["seq", 0, "BINARY"]]]],
        "foreign_keys": [],
    },
    "table counts": {
        "columns": [
            *([name, "TEXT", 1, None, key] for key, name in enumerate(("counter", "direction", "route", "term"), 1)),
            ["slot", "INTEGER", 1, None, 5],
            ["n", "INTEGER", 1, None, 0],
        ],
        "constraint_indexes": [
            ["pk", 1, [[name, 0, "BINARY"] for name in ("counter", "direction", "route", "term", "slot")]]
        ],
        "foreign_keys": [],
    },
}
ADDED |= {  # m017_alert_outbox: notifications queued with what they report, and each notifier's delivery
    "table alerts": {
        "columns": [
            ["id", "TEXT", 0, None, 1],
            ["kind", "TEXT", 1, None, 0],
            ["message_id", "TEXT", 0, None, 0],
            ["summary", "TEXT", 1, None, 0],
            ["detail", "TEXT", 0, None, 0],
            ["created_at", "TEXT", 1, None, 0],
            ["routed_at", "TEXT", 0, None, 0],
        ],
        "constraint_indexes": [["pk", 1, [["id", 0, "BINARY"]]]],
        "foreign_keys": [["messages", "message_id", "id"]],
    },
    "table alert_sends": {
        "columns": [
            ["alert_id", "TEXT", 1, None, 1],
            ["target", "TEXT", 1, None, 2],
            ["attempts", "INTEGER", 1, "0", 0],
            *([name, "TEXT", 0, None, 0] for name in ("due_at", "sent_at", "gave_up_at", "last_error")),
        ],
        "constraint_indexes": [["pk", 1, [["alert_id", 0, "BINARY"], ["target", 0, "BINARY"]]]],
        "foreign_keys": [["alerts", "alert_id", "id"]],
    },
}
LISTED = [["created_at", 0, "BINARY"], ["id", 0, "BINARY"]]  # the keyset order of a listing's index


def _index(table: str, columns: list[list[Any]], where: str | None = None) -> dict[str, Any]:
    return {"table": table, "unique": 0, "columns": columns, "where": where}


ADDED_INDEXES = {
    "index idx_messages_created": _index("messages", LISTED),
    **{
        f"index idx_messages_by_{name}": _index("messages", [*([c, 0, "BINARY"] for c in columns), *LISTED])
        for name, columns in (
            ("state", ["state"]),
            ("route", ["route"]),
            ("route_state", ["route", "state"]),
            ("direction", ["direction"]),
            ("mailbox", ["mailbox"]),
            ("peer", ["peer"]),
            ("workflow", ["workflow_id"]),
        )
    },
    "index idx_messages_overdue": _index("messages", LISTED, "overdue_open > 0"),
    "index idx_messages_owes": _index("messages", LISTED, "owes > 0"),
    "index idx_messages_nacked": _index("messages", LISTED, "state in ('inf-nacked', 'bus-nacked')"),
    "index idx_messages_mesh_nocase": _index("messages", [["mesh_message_id", 0, "NOCASE"]]),
    "index idx_messages_itk": _index("messages", [["itk_message_id", 0, "NOCASE"]]),
    "index idx_messages_local_id": _index("messages", [["local_id", 0, "BINARY"]]),
    "index idx_messages_filename": _index("messages", [["filename", 0, "BINARY"]]),
    "index idx_alerts_unrouted": _index("alerts", [["created_at", 0, "BINARY"]], "routed_at is null"),
    "index idx_alert_sends_due": _index("alert_sends", [["due_at", 0, "BINARY"]], "due_at is not null"),
    "index idx_expectations_unswept": _index(
        "expectations", [["due_at", 0, "BINARY"]], "met_at is null and overdue_at is null"
    ),
}
REPLACED = {  # indexes m015 drops (its listing indexes replace them)
    "index idx_messages_state",
    "index idx_messages_created_at",
    "index idx_messages_itk_id",
    "index idx_expectations_due_at",
    "index idx_expectations_open",
}


def _triggers() -> dict[str, Any]:
    """m015's triggers (they keep ``counts``, ``overdue_open`` and ``owes``), each on its table, as written."""
    stated = [sql for sql in m015_counters_and_listing_indexes(SQLITE) if sql.startswith("CREATE TRIGGER")]
    found = {}
    for sql in stated:
        name, table = re.match(r"CREATE TRIGGER (\w+) .*? ON (\w+) ", sql, re.S).groups()  # type: ignore[union-attr]
        found[f"trigger {name}"] = {"table": table, "sql": _norm(sql)}
    assert sorted(found) == [
        f"trigger {t}_counted_{op}" for t in ("expectations", "messages") for op in ("delete", "insert", "update")
    ]
    return found


def _now() -> dict[str, Any]:
    """The schema a store has now: the frozen one, with what the migrations since added and dropped."""
    now = {key: value for key, value in (FROZEN | ADDED | ADDED_INDEXES).items() if key not in REPLACED}
    messages = now["table messages"]
    derived = [[name, "INTEGER", 1, "0", 0] for name in ("overdue_open", "owes")]
    now["table messages"] = {**messages, "columns": [*messages["columns"], *derived]}
    return now | _triggers()


OLD = 11  # the sqlite-utils migrations: NAMES' first 11
PG_TYPES = {"TEXT": "text", "INTEGER": "bigint", "REAL": "double precision", "BLOB": "bytea"}


def _norm(sql: str) -> str:
    """SQL text compared loosely: case, quotes and spacing do not matter."""
    return re.sub(r"\s+", " ", re.sub(r'["\[\]]', "", sql)).strip().lower().replace("( ", "(").replace(" )", ")")


NOW = _now()


def shape(conn: sqlite3.Connection) -> dict[str, Any]:
    """What a store's schema is made of, in PRAGMA terms (not the text of its CREATE statements):
    columns with type, not-null, default and key; foreign keys; indexes with their columns,
    collations and WHERE clause; triggers."""
    out: dict[str, Any] = {}
    rows = conn.execute(
        "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name"
    ).fetchall()
    for kind, name, table, sql in rows:
        if kind == "table":
            indexes = [
                [origin, unique, _columns(conn, index)]
                for _, index, unique, origin, _ in conn.execute(f'PRAGMA index_list("{name}")')
                if origin != "c"  # made by a PRIMARY KEY or UNIQUE constraint: named by SQLite
            ]
            out[f"table {name}"] = {
                "columns": [
                    [c[1], c[2].upper(), c[3], c[4], c[5]] for c in conn.execute(f'PRAGMA table_xinfo("{name}")')
                ],
                "foreign_keys": [[f[2], f[3], f[4]] for f in conn.execute(f'PRAGMA foreign_key_list("{name}")')],
                "constraint_indexes": sorted(indexes),
            }
        elif kind == "index":
            listed = conn.execute(f'PRAGMA index_list("{table}")')
            unique, partial = next((u, p) for _, n, u, _, p in listed if n == name)
            where = _norm(sql).split(" where ", 1)[1] if partial else None
            out[f"index {name}"] = {"table": table, "unique": unique, "columns": _columns(conn, name), "where": where}
        else:
            out[f"{kind} {name}"] = {"table": table, "sql": _norm(sql)}
    return out


def _columns(conn: sqlite3.Connection, index: str) -> list[list[Any]]:
    """An index's key columns: name (None for an expression), descending, collation."""
    return [[c[2], c[3], c[4]] for c in conn.execute(f'PRAGMA index_xinfo("{index}")') if c[5]]


def shape_of(path: Path) -> dict[str, Any]:
    conn = sqlite3.connect(path)
    try:
        return shape(conn)
    finally:
        conn.close()


def applied(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return [n for (n,) in conn.execute("SELECT name FROM _sqlite_migrations WHERE migration_set = 'meshbridge'")]
    finally:
        conn.close()


def old_migrations() -> Any:
    """The frozen sqlite-utils migrations (tests/data/sqlite_utils_migrations.py)."""
    spec = importlib.util.spec_from_file_location("sqlite_utils_migrations", DATA / "sqlite_utils_migrations.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.migrations


def old_store(path: Path, stop_before: str | None) -> list[str]:
    """A store as an older meshbridge left it: the sqlite-utils migrations up to ``stop_before``."""
    from sqlite_utils import Database

    migrations = old_migrations()
    db = Database(path)
    migrations.apply(db, stop_before=stop_before)
    names = [m.name for m in migrations.applied(db)]
    db.close()
    return names


def test_the_old_migrations_are_a_prefix_of_the_new() -> None:
    """Names are how a store knows what it has: none renamed, none reordered, new ones at the end."""
    old = [m.name for m in old_migrations()._migrations]
    assert list(NAMES[: len(old)]) == old and len(old) == OLD


def test_a_new_store_has_the_schema_the_sqlite_utils_migrations_built(tmp_path: Path) -> None:
    """... and the tables added since."""
    SQLiteStore(tmp_path / "mb.db").close()
    assert shape_of(tmp_path / "mb.db") == NOW
    assert applied(tmp_path / "mb.db") == list(NAMES)


def test_the_frozen_migrations_build_the_frozen_schema(tmp_path: Path) -> None:
    """The test data agree with each other (the copy of the old migrations is the code that ran)."""
    old_store(tmp_path / "mb.db", None)
    assert shape_of(tmp_path / "mb.db") == FROZEN


@pytest.mark.parametrize("step", range(OLD + 1))  # (later steps: the runner builds them, below)
def test_a_store_an_older_meshbridge_left_at_any_step_upgrades(tmp_path: Path, step: int) -> None:
    """Built by the sqlite-utils migrations before ``NAMES[step]``, with a message being sent and an
    expectation another answer closed: opening it applies the rest, and its data migrate too."""
    path = tmp_path / "mb.db"
    assert old_store(path, NAMES[step]) == list(NAMES[:step])
    if step:  # messages and expectations exist
        conn = sqlite3.connect(path)
        with conn:
            for id_, state in (("m1", "sending"), ("m2", "sent")):
                conn.execute(
                    "INSERT INTO messages (id, direction, state, created_at, updated_at) "
                    "VALUES (?, 'out', ?, '2024-01-01T00:00:00+00:00', '2024-01-01T00:00:00+00:00')",
                    [id_, state],
                )
            conn.execute(
                "INSERT INTO events (message_id, at, kind, state) "
                "VALUES ('m1', '2024-01-01T00:00:00+00:00', 'sending', 'sending')"
            )
            conn.execute(
                "INSERT INTO expectations (message_id, kind, due_at, met_at, outcome) "
                "VALUES ('m2', 'bus-ack', '2024-01-01T00:00:00+00:00', '2024-01-01T00:00:00+00:00', 'closed by ERR')"
            )
        conn.close()
    store = SQLiteStore(path)
    try:
        assert store.migrated == list(NAMES[step:])
        if step:  # rows written before a data migration are migrated by it
            leases = NAMES.index("m008_send_leases") >= step
            assert store.get("m1").lease_holder == ("migrated" if leases else None)
            assert store.get("m2").lease_holder is None
            verdicts = NAMES.index("m012_expectation_verdicts") >= step
            stored = store.conn.execute("SELECT verdict FROM expectations WHERE message_id = 'm2'").fetchall()
            assert stored == [("closed" if verdicts else None,)]  # the column (Expectation.verdict judges old rows)
            assert [e.kind for e in store.events("m1")] == ["sending"]
    finally:
        store.close()
    assert shape_of(path) == NOW
    assert applied(path) == list(NAMES)


def test_a_failing_migration_leaves_the_store_as_it_was(tmp_path: Path) -> None:
    """All pending migrations apply in one transaction with their records, or none do."""
    path = tmp_path / "mb.db"
    old_store(path, "m012_expectation_verdicts")
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE mesh_logins (x TEXT)")  # m013 will fail: its table exists
    conn.commit()
    conn.close()
    with pytest.raises(sqlite3.OperationalError, match="mesh_logins already exists"):
        SQLiteStore(path)
    conn = sqlite3.connect(path)
    try:
        columns = [c[1] for c in conn.execute("PRAGMA table_info(expectations)")]
        assert "verdict" not in columns  # m012 rolled back with m013
        assert migrating.pending(conn) == list(NAMES[NAMES.index("m012_expectation_verdicts") :])
    finally:
        conn.close()


# -- PostgreSQL -------------------------------------------------------------------------------


def test_every_migration_runs_on_postgresql(postgres: Any) -> None:
    import psycopg

    conn = postgres
    assert migrating.pending(conn, POSTGRESQL) == list(NAMES)
    done = migrating.apply(conn, POSTGRESQL, stop_before="m008_send_leases")
    assert done == list(NAMES[: NAMES.index("m008_send_leases")])
    conn.execute(
        "INSERT INTO messages (id, direction, state, created_at, updated_at) VALUES ('m1', 'out', 'sending', 't', 't')"
    )
    conn.execute(
        "INSERT INTO expectations (message_id, kind, met_at, outcome) VALUES ('m1', 'bus-ack', 't', 'closed by ERR')"
    )
    conn.commit()
    assert migrating.apply(conn, POSTGRESQL) == list(NAMES[NAMES.index("m008_send_leases") :])
    conn.commit()
    assert migrating.pending(conn, POSTGRESQL) == [] and migrating.apply(conn, POSTGRESQL) == []
    recorded = conn.execute("SELECT name FROM _sqlite_migrations WHERE migration_set = 'meshbridge' ORDER BY id")
    assert [n for (n,) in recorded.fetchall()] == list(NAMES)

    # the data migrations ran: a claim made before leases lapses; a closed expectation says so
    assert conn.execute("SELECT lease_holder FROM messages").fetchall() == [("migrated",)]
    assert conn.execute("SELECT verdict FROM expectations").fetchall() == [("closed",)]

    # the same tables, columns (in order) and indexes as on SQLite, with the types mapped
    tables = {key.split(" ", 1)[1]: value for key, value in NOW.items() if key.startswith("table ")}
    found = conn.execute(
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        'WHERE table_schema = current_schema() ORDER BY table_name COLLATE "C", ordinal_position'
    ).fetchall()
    assert found == [(t, c[0], PG_TYPES[c[1]]) for t in sorted(tables) for c in tables[t]["columns"]]
    indexes = conn.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() AND indexname LIKE 'idx%'"
    ).fetchall()
    pg_only = ["idx_messages_source_path"]  # a source path as a prefix in byte order, whatever the collation
    expected = [k.split(" ", 1)[1] for k in NOW if k.startswith("index ")]
    assert sorted(name for name, _ in indexes) == sorted([*expected, *pg_only])
    definitions = dict(indexes)
    assert '(source_file COLLATE "C")' in definitions["idx_messages_source_path"]
    assert "(lower(itk_message_id))" in definitions["idx_messages_itk"]
    assert "(lower(mesh_message_id))" in definitions["idx_messages_mesh_nocase"]
    assert "WHERE ((met_at IS NULL) AND (overdue_at IS NULL))" in definitions["idx_expectations_unswept"]
    assert "(created_at, id) WHERE (owes > 0)" in definitions["idx_messages_owes"]
    assert (
        "UNIQUE" in definitions["idx_messages_mesh_id"]
        and "WHERE (mesh_message_id IS NOT NULL)" in (definitions["idx_messages_mesh_id"])
    )

    # events number themselves and stay as written
    conn.execute("INSERT INTO events (message_id, at, kind) VALUES ('m1', 't', 'sending')")
    conn.execute("INSERT INTO events (message_id, at, kind) VALUES ('m1', 't', 'sent')")
    conn.commit()
    assert conn.execute("SELECT seq, kind FROM events ORDER BY seq").fetchall() == [(1, "sending"), (2, "sent")]
    for change in ("UPDATE events SET kind = 'forged'", "DELETE FROM events", "TRUNCATE events"):
        with pytest.raises(psycopg.errors.RaiseException, match="events are append-only"), conn.transaction():
            conn.execute(change)
    assert conn.execute("SELECT count(*) FROM events").fetchone() == (2,)
    # foreign keys hold
    with pytest.raises(psycopg.errors.ForeignKeyViolation), conn.transaction():
        conn.execute("INSERT INTO events (message_id, at, kind) VALUES ('nobody', 't', 'x')")
