"""What only the SQLite store has: WAL, its files' modes, its migrations table, payload files, lazy
commits as ``synchronous``, several processes creating one file at once.

The contract both backends keep (events, transitions, claims, payloads) is tests/test_store_contract.py.
"""

from __future__ import annotations

import io
import multiprocessing
import stat
from pathlib import Path

import pytest

from meshbridge import StoreError
from meshbridge.store import SQLiteStore, migrating


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_files_are_private_and_wal(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "var" / "db" / "mb.db", inline_max=0)  # every payload a file
    sha, _ = store.payloads.write_file(io.BytesIO(b"hello"))
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert mode(tmp_path / "var" / "db") == 0o700
    assert mode(store.path) == 0o600
    assert mode(store.payloads.path(sha)) == 0o600
    assert mode(store.payloads.path(sha).parent) == 0o700
    assert mode(store.payloads.root) == 0o700
    store.close()


def test_migrations_apply_once(tmp_path: Path) -> None:
    SQLiteStore(tmp_path / "mb.db").close()
    store = SQLiteStore(tmp_path / "mb.db")  # reopening must not re-run or fail
    applied = [r["name"] for r in store.db.query("SELECT name FROM _sqlite_migrations")]
    assert applied[0] == "m001_messages_and_events" and len(applied) == len(set(applied)) >= 4
    assert migrating.pending(store.conn) == [] and store.migrated == []
    assert {"messages", "events", "expectations"} <= set(store.db.table_names())


def _open_fresh(paths: list[str], barrier) -> None:
    for path in paths:
        barrier.wait(20)  # all at once; a worker that died breaks the barrier for the others
        SQLiteStore(path).close()  # raises (the process exits non-zero) if the store cannot be opened


def test_processes_creating_one_store_at_once_all_open_it(tmp_path: Path) -> None:
    """Switching a new database to WAL needs it to itself, and SQLite's busy timeout does not cover that."""
    paths = [str(tmp_path / f"s{n}" / "mb.db") for n in range(15)]
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(3)
    workers = [ctx.Process(target=_open_fresh, args=(paths, barrier), daemon=True) for _ in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
        if w.exitcode is None:
            w.kill()
            w.join()
    assert [w.exitcode for w in workers] == [0, 0, 0]
    for path in paths:  # each built once under a temporary name and linked; the losers' builds gone
        # (the log and shared-memory files stay when the last to close raced another's open)
        files = {p.name for p in Path(path).parent.iterdir() if p.is_file()} - {"mb.db-wal", "mb.db-shm"}
        assert files == {"mb.db"}


def test_small_payloads_inline_big_ones_files(tmp_path: Path) -> None:
    """Up to ``inline_max`` bytes in the payloads table; past it, streamed to a file."""
    store = SQLiteStore(tmp_path / "mb.db", inline_max=1000)
    small, big = b"s" * 1000, bytes(range(256)) * 40  # 1000 and 10,240 bytes
    small_sha, _ = store.payloads.write(iter([small[:400], small[400:]]))
    big_sha, big_size = store.payloads.write(iter([big[:600], big[600:700], big[700:]]))  # crosses the line mid-stream
    assert big_size == len(big) and store.payloads.path(big_sha).read_bytes() == big
    assert not store.payloads.path(small_sha).exists()
    assert [r["sha256"] for r in store.db.query("SELECT sha256 FROM payloads")] == [small_sha]
    assert store.payloads.read(small_sha) == small and store.payloads.read(big_sha) == big
    assert b"".join(store.payloads.blocks(big_sha, 600, 100)) == big[600:700]  # a chunk's range
    with store.payloads.open(small_sha) as handle:
        handle.seek(10)
        assert handle.read(5) == small[10:15]
    assert list((store.payloads.root / "tmp").iterdir()) == []


def test_lazy_commits_keep_the_connection_durable(tmp_path: Path) -> None:
    """A lazy commit (or a payload insert) switches ``synchronous`` off for itself only, even when it fails."""
    store = SQLiteStore(tmp_path / "mb.db")
    message = store.add("in", "received", durable=False)
    assert store.db.execute("PRAGMA synchronous").fetchone()[0] == 2
    inside = []

    def fail() -> None:
        with store.immediate(durable=False):
            inside.append(store.db.execute("PRAGMA synchronous").fetchone()[0])
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fail()
    assert inside == [1]  # NORMAL inside
    assert store.db.execute("PRAGMA synchronous").fetchone()[0] == 2
    store.payloads.write([b"x"])
    assert store.db.execute("PRAGMA synchronous").fetchone()[0] == 2
    store.sync()
    with store.immediate(), pytest.raises(StoreError, match="before the transaction that records it"):
        store.payloads.write([b"inside a transaction"])
    assert store.get(message.id).state == "received"


def test_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "mb.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot open store"):
        SQLiteStore(path)
