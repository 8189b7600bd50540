"""Moving a store to another (or the same kind of) backend: export to an archive, import from one.

Export reads every table of the store (:func:`~.tables.tables`: as the database lists them) in one
snapshot, and every payload, streamed, into an archive (:mod:`.archive`). Import writes them into
a store that holds no rows yet and has the same schema version (or a later one by migrations that
add only what is derived: :data:`~.schema.DERIVED_ONLY`): the payloads first, through the
target's own :class:`~.protocol.PayloadStore` (so each lands where that backend keeps payloads,
checked against its sha256), then every row in one transaction, keeping its numbers (an event's
``seq``; PostgreSQL's sequences are then set past them). What triggers derive from the rows (the
counters: :mod:`.counters`) is never carried: the target's triggers make it from the rows as they
go in (an archive that carries it anyway has it left out). Anything wrong with the archive is an
:class:`~meshbridge.errors.ArchiveError` and the target is left as it was: the transaction is
rolled back and the payloads this import added are removed. Imports into one store take turns
(:meth:`~.protocol.Store.exclusive`), so the one that finds the store filled by another has written
nothing yet, and removes nothing the other's rows name.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import IO, Any

from ..errors import ArchiveError, MeshbridgeError, StoreNotEmpty
from .archive import ArchiveReader, ArchiveWriter, Manifest, TableSpec
from .counters import DERIVED_COLUMNS, DERIVED_TABLES
from .migrating import MIGRATION_SET, MIGRATIONS_TABLE, NAMES, Connection
from .protocol import Store
from .schema import ADDS_TABLES, DERIVED_ONLY
from .sides import PAYLOAD_TABLES, Side, side_of
from .tables import Table, count, lock_for_import, quoted, reset_sequences, seeded, tables


@dataclass(frozen=True)
class Moved:
    """What an export wrote or an import stored: rows per table, and the payloads."""

    tables: dict[str, int]
    payloads: int
    payload_bytes: int


def carried(conn: Connection, side: Side) -> list[Table]:
    """The tables an archive carries as rows: all but those of payload bytes (carried as payloads)
    and those the triggers keep; each without the columns the triggers keep."""
    return [
        replace(t, columns=_underived(t.name, t.columns))
        for t in tables(conn, side.dialect)
        if t.name not in PAYLOAD_TABLES and t.name not in DERIVED_TABLES
    ]


def _underived(table: str, columns: Sequence[str]) -> tuple[str, ...]:
    """``columns`` but those the triggers keep (:data:`~.counters.DERIVED_COLUMNS`)."""
    derived = DERIVED_COLUMNS.get(table, frozenset())
    return tuple(c for c in columns if c not in derived)


def schema(conn: Connection, side: Side) -> tuple[str, ...]:
    """The migrations applied to the store, in their order (any this meshbridge does not know last)."""
    rows = conn.execute(
        f"SELECT name FROM {MIGRATIONS_TABLE} WHERE migration_set = {side.dialect.param}", [MIGRATION_SET]
    ).fetchall()
    names = {name for (name,) in rows}
    return tuple(n for n in NAMES if n in names) + tuple(sorted(names - set(NAMES)))


# -- export ---------------------------------------------------------------------------------


def export_store(store: Store, out: IO[bytes], compress: str = "") -> Moved:
    """Write the whole store to ``out`` as an archive (``compress``: ``gz``, ``xz`` or none)."""
    side = side_of(store)
    try:
        return _export(side, out, compress)
    except side.errors as exc:
        raise side.error(exc) from None


def _export(side: Side, out: IO[bytes], compress: str) -> Moved:
    with side.snapshot() as conn, tempfile.TemporaryFile() as listing:
        found = carried(conn, side)
        counts = {t.name: count(conn, t.name) for t in found}
        n = total = 0
        for sha, size in side.listed(conn):  # spooled: a store may hold millions
            listing.write(f"{sha} {size}\n".encode())
            n, total = n + 1, total + size
        specs = tuple(TableSpec(t.name, t.columns, counts[t.name]) for t in found)
        exported_at = datetime.now(UTC).isoformat(timespec="seconds")
        writer = ArchiveWriter(out, compress)
        writer.manifest(Manifest(schema(conn, side), side.dialect.name, exported_at, specs, n, total))
        listing.seek(0)
        for line in listing:
            sha, length = line.decode().split()
            writer.payload(sha, int(length), side.payloads.blocks(sha))
        for table in found:
            columns = ", ".join(quoted(c) for c in table.columns)
            order = ", ".join(quoted(c) for c in table.key)
            sql = f"SELECT {columns} FROM {quoted(table.name)} ORDER BY {order}"
            writer.table(table.name, side.rows(conn, sql))
        writer.close()
    return Moved(counts, n, total)


# -- import ---------------------------------------------------------------------------------


def import_store(store: Store, source: IO[bytes], label: str) -> Moved:
    """Read the archive ``source`` (named ``label`` in errors) into ``store``, which must hold no rows
    and have the archive's schema version; all of it, or nothing (see the module)."""
    side = side_of(store)
    try:
        with store.exclusive("import"):  # one import at a time: a refused one removes only its own payloads
            return _import(side, source, label)
    except side.errors as exc:
        raise side.error(exc) from None


def _import(side: Side, source: IO[bytes], label: str) -> Moved:
    reader = ArchiveReader(source, label)
    with side.snapshot() as conn:
        found = _matching(reader.manifest, conn, side, reader.error)
        _refuse_rows(conn, found)
    added: list[str] = []
    try:
        n, total = _payloads(reader, side, added)
        with side.transaction() as conn:
            lock_for_import(conn, side.dialect, found)
            _refuse_rows(conn, found)  # again, under the write lock
            for table in found:
                if count(conn, table.name):  # what the migrations put there (e.g. ``syncs``)
                    conn.execute(f"DELETE FROM {quoted(table.name)}")
            for spec, rows in reader.tables():
                if spec.name in DERIVED_TABLES:  # carried by an archive of issue 13's first cut: read, left out
                    for _ in rows:
                        pass
                    continue
                try:
                    side.insert(conn, spec.name, *_stored(spec, rows))
                except side.refusals as exc:  # (a lost connection, a full disk: the store's error)
                    raise reader.error(f"table {spec.name}: a row cannot be stored: {_first_line(exc)}") from None
            reset_sequences(conn, side.dialect, found)
            reader.end()
    except BaseException:
        for sha in added:
            with contextlib.suppress(MeshbridgeError, OSError, *side.errors):
                side.remove_payload(sha)
        raise
    return Moved({t.name: t.rows for t in reader.manifest.tables if t.name not in DERIVED_TABLES}, n, total)


def _stored(spec: TableSpec, rows: Iterable[list[Any]]) -> tuple[tuple[str, ...], Iterable[list[Any]]]:
    """The columns of ``spec`` an import stores (not those the triggers keep), and its rows cut to them."""
    columns = _underived(spec.name, spec.columns)
    if columns == spec.columns:
        return columns, rows
    kept = [spec.columns.index(c) for c in columns]
    return columns, ([row[i] for i in kept] for row in rows)


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _matching(manifest: Manifest, conn: Connection, side: Side, error: Callable[[str], ArchiveError]) -> list[Table]:
    """The target's tables in the archive's order, after checking that they are the archive's."""
    ours, theirs = schema(conn, side), manifest.schema
    newer = sorted(set(theirs) - set(ours))
    if newer:
        raise error(
            f"its schema has migrations this store lacks ({', '.join(newer)}): import it with the "
            "meshbridge that exported it, or a newer one"
        )
    lacking = set(ours) - set(theirs)
    older = sorted(lacking - DERIVED_ONLY - set(ADDS_TABLES))  # (the triggers derive what those add)
    if older:
        raise error(
            f"its schema lacks migrations this store has ({', '.join(older)}): run `meshbridge store migrate` "
            "on the store it came from with this meshbridge, and export it again"
        )
    target = {t.name: t for t in carried(conn, side)}
    listed = [spec.name for spec in manifest.tables if spec.name not in DERIVED_TABLES]
    unknown = sorted(set(listed) - set(target))
    empty = {table for name in lacking & set(ADDS_TABLES) for table in ADDS_TABLES[name]}  # (left empty)
    missing = sorted(set(target) - set(listed) - empty)
    if unknown or missing:
        raise error(f"its tables are not this store's: unknown {unknown or 'none'}, missing {missing or 'none'}")
    for spec in manifest.tables:
        if spec.name in DERIVED_TABLES:
            continue
        if set(_underived(spec.name, spec.columns)) != set(target[spec.name].columns):
            raise error(f"table {spec.name} has columns {list(spec.columns)}, not {list(target[spec.name].columns)}")
        later = target[spec.name].references & set(listed[listed.index(spec.name) :])
        if later:
            raise error(f"table {spec.name} comes before {sorted(later)}, which it references")
    return [target[name] for name in listed]


def _refuse_rows(conn: Connection, found: list[Table]) -> None:
    """Refuse a target that holds rows beyond those a new store has."""
    base = seeded()
    full = {t.name: n for t in found if (n := count(conn, t.name)) > base.get(t.name, 0)}
    if full:
        rows = ", ".join(f"{name} {n}" for name, n in sorted(full.items()))
        raise StoreNotEmpty(
            f"the target store is not empty ({rows} rows): import into a new store "
            "(a new [store] path or a new, empty PostgreSQL database)"
        )


def _payloads(reader: ArchiveReader, side: Side, added: list[str]) -> tuple[int, int]:
    """Store the archive's payloads through the target's payload store; note those it lacked."""
    n = total = 0
    for sha, size, blocks in reader.payloads():
        total += size
        if total > reader.manifest.payload_bytes:
            raise reader.error(f"its payloads pass the {reader.manifest.payload_bytes} bytes its manifest lists")
        had = side.has_payload(sha)
        got, _ = side.payloads.write(blocks, size)
        if got != sha:
            side.remove_payload(got)
            raise reader.error(f"payload {sha} is damaged: its bytes have sha256 {got}")
        if not had:
            added.append(sha)
        n += 1
    if total != reader.manifest.payload_bytes:
        raise reader.error(f"its payloads hold {total} bytes, but its manifest lists {reader.manifest.payload_bytes}")
    return n, total
