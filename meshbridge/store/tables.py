"""The store's tables as the database itself lists them, for moving a store (:mod:`.moving`).

Tables are read from the schema (``sqlite_master``, ``information_schema``), not from a list in
the code, so a table a later migration adds is carried without anyone naming it. Left out: SQLite's
own ``sqlite_*`` tables and the migrations' bookkeeping (:data:`~.migrating.MIGRATIONS_TABLE`),
which the target has from its own migrations (an archive names its schema version instead).
"""

from __future__ import annotations

import functools
import sqlite3
from dataclasses import dataclass
from typing import Any

from .dialects import SQLITE, Dialect
from .migrating import MIGRATIONS_TABLE, Connection
from .migrating import apply as migrate


@dataclass(frozen=True)
class Table:
    """One table: its columns in order, the key its rows are read in, the tables it references."""

    name: str
    columns: tuple[str, ...]
    key: tuple[str, ...]
    references: frozenset[str]


def tables(conn: Connection, dialect: Dialect) -> list[Table]:
    """The store's tables, each after the tables it references (so rows insert in this order)."""
    if dialect.name == "sqlite":
        found = [_sqlite_table(conn, name) for name in _sqlite_names(conn)]
    else:
        found = [_pg_table(conn, name) for name in _pg_names(conn)]
    return _ordered(found)


def quoted(name: str) -> str:
    """An identifier as SQL (both databases quote with double quotes)."""
    return '"' + name.replace('"', '""') + '"'


def _sqlite_names(conn: Connection) -> list[str]:
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").fetchall()
    return [name for (name,) in rows if not name.startswith("sqlite_") and name != MIGRATIONS_TABLE]


def _sqlite_table(conn: Connection, name: str) -> Table:
    info = conn.execute(f"PRAGMA table_info({quoted(name)})").fetchall()  # cid, name, type, notnull, dflt, pk
    columns = tuple(row[1] for row in info)
    key = tuple(row[1] for row in sorted((r for r in info if r[5]), key=lambda r: r[5]))
    refs = {row[2] for row in conn.execute(f"PRAGMA foreign_key_list({quoted(name)})").fetchall()}
    return Table(name, columns, key or columns, frozenset(refs - {name}))


def _pg_names(conn: Connection) -> list[str]:
    rows = conn.execute(
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name"
    ).fetchall()
    return [name for (name,) in rows if name != MIGRATIONS_TABLE]


def _pg_table(conn: Connection, name: str) -> Table:
    columns = tuple(
        column
        for (column,) in conn.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = %s ORDER BY ordinal_position",
            [name],
        ).fetchall()
    )
    key = tuple(
        column
        for (column,) in conn.execute(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a "
            "ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
            "WHERE i.indrelid = to_regclass(%s) AND i.indisprimary "
            "ORDER BY array_position(i.indkey, a.attnum)",
            [quoted(name)],
        ).fetchall()
    )
    refs = {
        ref
        for (ref,) in conn.execute(
            "SELECT c.confrelid::regclass::text FROM pg_constraint c "
            "WHERE c.conrelid = to_regclass(%s) AND c.contype = 'f'",
            [quoted(name)],
        ).fetchall()
    }
    return Table(name, columns, key or columns, frozenset({r.strip('"') for r in refs} - {name}))


def _ordered(found: list[Table]) -> list[Table]:
    """``found`` with each table after those it references (by name among equals: deterministic)."""
    todo = {t.name: t for t in found}
    done: list[Table] = []
    while todo:
        ready = sorted(name for name, t in todo.items() if not (t.references & todo.keys()))
        if not ready:  # a cycle of references: keep name order (the insert then fails, clearly)
            ready = sorted(todo)
        done.extend(todo.pop(name) for name in ready)
    return done


@functools.cache
def seeded() -> dict[str, int]:
    """The rows a newly built store holds per table (a migration may insert some, e.g. ``syncs``)."""
    conn = sqlite3.connect(":memory:")
    try:
        migrate(conn, SQLITE)
        return {
            t.name: conn.execute(f"SELECT count(*) FROM {quoted(t.name)}").fetchone()[0] for t in tables(conn, SQLITE)
        }
    finally:
        conn.close()


def count(conn: Connection, name: str) -> int:
    found: Any = conn.execute(f"SELECT count(*) FROM {quoted(name)}").fetchone()
    return int(found[0])


def lock_for_import(conn: Connection, dialect: Dialect, carried: list[Table]) -> None:
    """In an import's transaction: no other process writes to these tables until it ends (they wait),
    so the store is still empty when the rows go in and no event takes a number the archive's hold.
    (SQLite: ``BEGIN IMMEDIATE`` took the write lock already.) Reads go on meanwhile."""
    if dialect.name != "sqlite" and carried:
        conn.execute(f"LOCK TABLE {', '.join(quoted(t.name) for t in carried)} IN EXCLUSIVE MODE")


def reset_sequences(conn: Connection, dialect: Dialect, carried: list[Table]) -> None:
    """After rows were inserted with their own numbers: each PostgreSQL identity (or serial) sequence
    of these tables goes past the highest number, so the next row gets a higher one. (SQLite numbers
    an ``INTEGER PRIMARY KEY`` from the highest row: nothing to do.)"""
    if dialect.name == "sqlite":
        return
    for table in carried:
        for column in table.columns:
            (sequence,) = conn.execute("SELECT pg_get_serial_sequence(%s, %s)", [quoted(table.name), column]).fetchone()
            if sequence is not None:
                conn.execute(
                    f"SELECT setval(%s, coalesce(max({quoted(column)}), 0) + 1, false) FROM {quoted(table.name)}",
                    [sequence],
                )
