"""The counters (issue 13: the ``counts`` table, each message's ``overdue_open`` and ``owes``) stay
true through a move and a migration, on both backends: derived from the rows by triggers, they are
never carried by an archive, an import makes them anew from the rows it stores (once: not the
archive's and the triggers' both), and m015 makes them from the rows an older store holds.
(tests/store_workload.py: the rows, and the check against a GROUP BY of them.)
"""

from __future__ import annotations

import io
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from store_backends import Backend as StoreBackend
from store_workload import FLAGS, PAST, Run, assert_derived_true, counters, flags, workload
from test_store_export import (  # (its fixtures, used here by name)
    KINDS,
    Backend,
    backends,
    carry,
    members_of,
    stores,
)

from meshbridge import Filters
from meshbridge.store import Store, migrating
from meshbridge.store.dialects import POSTGRESQL
from meshbridge.store.migrating import NAMES
from meshbridge.store.moving import export_store, import_store

__all__ = ["backends", "stores"]  # (the fixtures test_store_export defines, used here by name)
M015 = "m015_counters_and_listing_indexes"
M016 = "m016_counting_in_place"
BEFORE_M015 = Path(__file__).parent / "data" / "store_archive_m014.tar.gz"  # made by meshbridge before m015


def assert_workload_counted(store: Store, run: Run) -> None:
    """The workload's counters and flags, as the rows say and as :data:`FLAGS` lists them, and the
    reads that use them."""
    assert_derived_true(run)
    assert flags(run) == FLAGS
    counted = store.counts()
    assert counted.overdue == {("out", "inf-ack"): 2, ("out", "bus-ack"): 1}  # swept's two, unswept's one
    assert counted.overdue_messages == 2 and counted.open[("in", "bus-ack-owed")] == 1
    assert counted.messages[("out", None, "bus-nacked")] == 1 and counted.messages[("out", "r1", "sent")] == 2
    assert [m.id for m in store.page(Filters(overdue=True), newest=False)] == ["swept", "unswept"]
    assert [m.id for m in store.page(Filters(owed=True))] == ["owed"]


@pytest.mark.parametrize("source_kind", KINDS)
@pytest.mark.parametrize("target_kind", KINDS)
def test_an_import_makes_the_counters_from_its_rows_and_the_archive_carries_none(
    source_kind: str, target_kind: str, stores: Callable[[str], Store], backends: Callable[[str], Backend]
) -> None:
    source, target = stores(source_kind), stores(target_kind)
    workload(source)
    archive = carry(source, target)
    run = backends(target_kind).run(target)
    assert_workload_counted(target, run)
    assert counters(run) == counters(backends(source_kind).run(source)) and target.counts() == source.counts()
    manifest = json.loads(members_of(archive)[0][1])
    columns = {t["name"]: t["columns"] for t in manifest["tables"]}
    assert "counts" not in columns and "tables/counts.jsonl" not in [name for name, _ in members_of(archive)]
    assert "state" in columns["messages"] and not {"overdue_open", "owes"} & set(columns["messages"])


@pytest.mark.parametrize("kind", KINDS)
def test_an_archive_that_carries_the_counters_is_counted_once(
    kind: str, stores: Callable[[str], Store], backends: Callable[[str], Backend], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An archive written while exports still carried them (issue 13's first cut): the import leaves them."""
    from meshbridge.store import moving

    source, target = stores("sqlite"), stores(kind)
    workload(source)
    archive = io.BytesIO()
    with monkeypatch.context() as patched:
        patched.setattr(moving, "DERIVED_TABLES", frozenset())
        patched.setattr(moving, "DERIVED_COLUMNS", {})
        export_store(source, archive)
    columns = {t["name"]: t["columns"] for t in json.loads(members_of(archive.getvalue())[0][1])["tables"]}
    assert "counts" in columns and "overdue_open" in columns["messages"]  # (it does carry them)
    moved = import_store(target, io.BytesIO(archive.getvalue()), "carrying.tar")
    assert "counts" not in moved.tables and moved.tables["messages"] == len(FLAGS)
    assert_workload_counted(target, backends(kind).run(target))


@pytest.mark.parametrize("kind", KINDS)
def test_an_archive_made_before_the_counters_imports_and_is_counted(
    kind: str, stores: Callable[[str], Store], backends: Callable[[str], Backend]
) -> None:
    target = stores(kind)
    with BEFORE_M015.open("rb") as source:
        moved = import_store(target, source, str(BEFORE_M015))
    assert moved.tables["messages"] == len(FLAGS) and moved.tables["expectations"] == 9
    assert_workload_counted(target, backends(kind).run(target))
    target.meet("owed", "bus-ack-owed", "sent")  # and they go on counting
    target.expect("in-time", "bus-ack", PAST)
    target.sweep_overdue()
    run = backends(kind).run(target)
    assert_derived_true(run)
    assert flags(run)["owed"] == (0, 0) and flags(run)["in-time"] == (1, 0)


# -- a store an older meshbridge left, migrated ------------------------------------------------


def old_store(backend: StoreBackend, stop_before: str) -> None:
    """The test's store as the meshbridge before ``stop_before`` left it: :data:`FLAGS`' messages
    and their expectations as rows (the API of the time wrote them so), swept where they are."""
    if backend.name == "sqlite":
        backend.path.parent.mkdir(parents=True, exist_ok=True)  # type: ignore[attr-defined]
        with sqlite3.connect(backend.path) as conn:  # type: ignore[attr-defined]
            migrating.apply(conn, stop_before=stop_before)
        conn.close()
    else:
        import psycopg

        with psycopg.connect(backend.url) as pg:  # type: ignore[attr-defined]
            migrating.apply(pg, POSTGRESQL, stop_before=stop_before)
    at, swept = "2024-01-01T00:00:00.000000+00:00", "2024-01-02T00:00:00.000000+00:00"
    for ident, direction, state, route in (
        ("swept", "out", "sent", "r1"),
        ("late", "out", "sent", "r1"),
        ("in-time", "out", "sent", "r2"),
        ("closed", "out", "bus-nacked", None),
        ("owed", "in", "delivered", "in"),
        ("paid", "in", "delivered", "in"),
        ("unswept", "out", "sent", "r2"),
    ):
        backend.execute(
            "INSERT INTO messages (id, direction, state, route, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
            [ident, direction, state, route, at, at],
        )
    for row in (  # message, kind, due, met, overdue_at
        ("swept", "inf-ack", PAST, None, swept),
        ("swept", "bus-ack", PAST, None, swept),
        ("late", "inf-ack", PAST, swept, swept),
        ("late", "bus-ack", "2999-01-01T00:00:00.000000+00:00", None, None),
        ("in-time", "inf-ack", PAST, PAST, None),
        ("closed", "bus-ack", PAST, swept, swept),
        ("owed", "bus-ack-owed", None, None, None),
        ("paid", "bus-ack-owed", None, swept, None),
        ("unswept", "inf-ack", PAST, None, None),
    ):
        backend.execute(
            "INSERT INTO expectations (message_id, kind, due_at, met_at, overdue_at) VALUES (?, ?, ?, ?, ?)", list(row)
        )


def test_m015_counts_the_rows_an_older_store_holds(backend: StoreBackend) -> None:
    old_store(backend, M015)
    store = backend.open()
    assert store.migrated == list(NAMES[NAMES.index(M015) :]) and M016 in NAMES
    assert_workload_counted(store, lambda sql: backend.execute(sql))
    store.fold_counts()
    assert_workload_counted(store, lambda sql: backend.execute(sql))  # folded: the same counts
    store.meet("swept", "inf-ack", "20013")  # the triggers carry on from the migration's counts
    store.add("in", "received", id="new", route="in")
    assert_derived_true(lambda sql: backend.execute(sql))
    assert store.counts().overdue_messages == 2 and store.counts().overdue[("out", "inf-ack")] == 1


@pytest.mark.parametrize("kind", KINDS)
def test_an_overdue_listing_misses_none_the_sweep_flags_while_it_reads(
    kind: str, stores: Callable[[str], Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The overdue listing reads the flagged and the not yet flagged in two statements: a sweep run
    between them (another node's, a minute's) must not hide a message from both."""
    store = stores(kind)
    workload(store)
    swept_between: list[int] = []
    for name in ("_rows", "_select"):
        read = getattr(store, name)

        def then_sweep(*args: object, _read: Callable[..., object] = read, **kwargs: object) -> object:
            found = _read(*args, **kwargs)
            if not swept_between:
                swept_between.append(-1)  # (the sweep's own reads sweep nothing)
                swept_between[0] = len(store.sweep_overdue())  # after the listing's first statement
            return found

        monkeypatch.setattr(store, name, then_sweep, raising=False)
    listed = [m.id for m in store.page(Filters(overdue=True), newest=False)]
    assert swept_between == [1]  # "unswept" was flagged between the two reads
    assert listed == ["swept", "unswept"]


def test_m016_counts_on_from_what_m015_counted(backend: StoreBackend) -> None:
    """A store m015's triggers counted, its triggers rewritten (m016): the counts go on from there,
    through each way a row changes them (state, route, direction, an overdue message moved, met, owed)."""
    old_store(backend, M016)
    store = backend.open()
    assert store.migrated == list(NAMES[NAMES.index(M016) :])
    assert_workload_counted(store, lambda sql: backend.execute(sql))
    store.add("out", "received", id="bare", route="r1")
    for sql in (
        "UPDATE messages SET route = 'r9' WHERE id = 'swept'",  # overdue: its overdue_messages row moves
        "UPDATE messages SET state = 'acked' WHERE id = 'swept'",  # overdue, its route kept
        "UPDATE messages SET route = NULL WHERE id = 'in-time'",
        "UPDATE messages SET route = '' WHERE id = 'in-time'",  # (the same counter row: none changes)
        "UPDATE messages SET route = 'x', state = 'received' WHERE id = 'unswept'",
        "UPDATE messages SET direction = 'in', route = 'x' WHERE id = 'bare'",  # (one with no expectations)
        "UPDATE messages SET state = 'sent', route = 'r9' WHERE id = 'late'",
    ):
        backend.execute(sql)
        assert_derived_true(lambda sql: backend.execute(sql))
    store.meet("swept", "inf-ack", "20013")  # overdue met: the message leaves overdue_messages
    store.meet("owed", "bus-ack-owed", "sent")
    store.expect("in-time", "bus-ack", PAST)
    store.sweep_overdue()
    store.add("in", "received", id="new", route="in")
    assert_derived_true(lambda sql: backend.execute(sql))
    flagged = flags(lambda sql: backend.execute(sql))
    assert flagged["owed"] == (0, 0) and flagged["in-time"] == (1, 0)
