"""The store's schema version: which migrations a store lacks, read with plain SQL, and applying them.

Opening a store checks its version without sqlite-utils (``status`` starts fast); only a store that
lacks migrations, or a new one, imports :mod:`.schema` and sqlite-utils' migration machinery.
"""

from __future__ import annotations

import sqlite3

MIGRATION_SET = "meshbridge"
MIGRATIONS_TABLE = "_sqlite_migrations"  # sqlite-utils' record of the migrations applied
# The names of :mod:`.schema`'s migrations, in order (a test keeps the two equal): add new ones at the end.
NAMES = (
    "m001_messages_and_events",
    "m002_findings",
    "m003_itk",
    "m004_ack_keys",
    "m005_service",
    "m006_inline_payloads",
    "m008_send_leases",
    "m009_local_id",
    "m011_bad_bodies",
    "m012_expectation_verdicts",
    "m013_mesh_logins",
)


def pending(conn: sqlite3.Connection) -> list[str]:
    """The migrations this store lacks, in order (none for a store at this version)."""
    found = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", [MIGRATIONS_TABLE])
    if found.fetchone() is None:
        return list(NAMES)
    applied = {
        name
        for (name,) in conn.execute(f"SELECT name FROM {MIGRATIONS_TABLE} WHERE migration_set = ?", [MIGRATION_SET])
    }
    return [name for name in NAMES if name not in applied]


def apply(conn: sqlite3.Connection) -> list[str]:
    """Apply the migrations this store lacks, inside the caller's transaction; the names applied."""
    from sqlite_utils import Database

    from .schema import migrations

    missing = pending(conn)
    if missing:
        migrations.apply(Database(conn, execute_plugins=False))
    return missing
