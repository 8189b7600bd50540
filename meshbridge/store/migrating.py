"""The store's schema version: which migrations a store lacks, and applying them.

Each applied migration is recorded by name in ``_sqlite_migrations`` (set ``meshbridge``), the table
sqlite-utils kept when it ran them, so stores it migrated carry on from where they are. The runner
is plain DB-API: the same on a SQLite connection and, with :data:`~.dialects.POSTGRESQL`, on a
PostgreSQL one (it writes inside the caller's transaction; the caller commits).
"""

from __future__ import annotations

import datetime
from typing import Any, Protocol

from .dialects import SQLITE, Dialect
from .schema import MIGRATIONS

MIGRATION_SET = "meshbridge"
MIGRATIONS_TABLE = "_sqlite_migrations"  # the name sqlite-utils gave it: existing stores have it
NAMES = tuple(m.__name__ for m in MIGRATIONS)  # in order


class Connection(Protocol):
    """What the runner needs of a connection: ``sqlite3`` and ``psycopg`` ones both have it."""

    def execute(self, sql: Any, params: Any = ..., /) -> Any: ...


def pending(conn: Connection, dialect: Dialect = SQLITE) -> list[str]:
    """The migrations this store lacks, in order (none for a store at this version)."""
    if not _has_table(conn, dialect):
        return list(NAMES)
    rows = conn.execute(
        f"SELECT name FROM {MIGRATIONS_TABLE} WHERE migration_set = {dialect.param}", [MIGRATION_SET]
    ).fetchall()
    applied = {name for (name,) in rows}
    return [name for name in NAMES if name not in applied]


def apply(conn: Connection, dialect: Dialect = SQLITE, *, stop_before: str | None = None) -> list[str]:
    """Apply the migrations this store lacks, inside the caller's transaction; the names applied.
    ``stop_before``: apply none from that one on (tests build stores as older versions left them)."""
    missing = pending(conn, dialect)
    if stop_before is not None:
        missing = [name for name in missing if NAMES.index(name) < NAMES.index(stop_before)]
    if not missing:
        return []
    if not _has_table(conn, dialect):
        conn.execute(
            f"CREATE TABLE {MIGRATIONS_TABLE} (id {dialect.serial}, migration_set TEXT, name TEXT, applied_at TEXT)"
        )
        conn.execute(
            f"CREATE UNIQUE INDEX idx_{MIGRATIONS_TABLE}_migration_set_name ON {MIGRATIONS_TABLE}(migration_set, name)"
        )
    todo = set(missing)
    for migration in MIGRATIONS:
        if migration.__name__ not in todo:
            continue
        for statement in migration(dialect):
            if isinstance(statement, str):
                conn.execute(statement)
            else:
                conn.execute(*statement)
        conn.execute(
            f"INSERT INTO {MIGRATIONS_TABLE} (migration_set, name, applied_at) "
            f"VALUES ({dialect.param}, {dialect.param}, {dialect.param})",
            [MIGRATION_SET, migration.__name__, str(datetime.datetime.now(datetime.UTC))],
        )
    return missing


def _has_table(conn: Connection, dialect: Dialect) -> bool:
    if dialect.name == "sqlite":
        sql = f"SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = {dialect.param}"
    else:
        sql = (
            "SELECT 1 FROM information_schema.tables "
            f"WHERE table_schema = current_schema() AND table_name = {dialect.param}"
        )
    return conn.execute(sql, [MIGRATIONS_TABLE]).fetchone() is not None
