"""The SQLite store: WAL, migrations, permissions, append-only events, race-free transitions, checked payloads."""

from __future__ import annotations

import io
import multiprocessing
import sqlite3
import stat
from pathlib import Path

import pytest

from meshbridge import SourceTaken, StoreError, UnknownMessage
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


def test_events_are_append_only(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "mb.db")
    message = store.add("out", "accepted", route="r")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        store.db.execute("UPDATE events SET kind = 'forged'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        store.db.execute("DELETE FROM events")
    assert [e.kind for e in store.events(message.id)] == ["accepted"]


def test_transition_is_conditional(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "mb.db")
    message = store.add("out", "accepted")
    assert store.transition(message.id, "sending", from_states=("accepted",))
    assert not store.transition(message.id, "sending", from_states=("accepted",))
    assert store.get(message.id).state == "sending"
    assert [e.state for e in store.events(message.id)] == ["accepted", "sending"]


def _claim(path: str, ids: list[str], queue: multiprocessing.Queue) -> None:
    store = SQLiteStore(path)
    won = [i for i in ids if store.transition(i, "sending", from_states=("accepted",))]
    queue.put(won)


def test_two_processes_never_claim_the_same_message(tmp_path: Path) -> None:
    path = tmp_path / "mb.db"
    store = SQLiteStore(path)
    ids = [store.add("out", "accepted").id for _ in range(200)]
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    workers = [ctx.Process(target=_claim, args=(str(path), ids, queue)) for _ in range(3)]
    for w in workers:
        w.start()
    results = [queue.get(timeout=60) for _ in workers]
    for w in workers:
        w.join(30)
    claimed = [i for won in results for i in won]
    assert sorted(claimed) == sorted(ids)  # every message claimed exactly once
    assert all(len(store.events(i)) == 2 for i in ids)


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


def test_a_source_file_is_stored_once(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "mb.db")
    first = store.add("out", "sending", source_file="outbox/a.txt@1:2@ab")
    with pytest.raises(SourceTaken):  # a second process that checked before the first stored it
        store.add("out", "sending", source_file="outbox/a.txt@1:2@ab")
    assert [m.id for m in store.messages()] == [first.id]
    store.add("out", "sending", source_file="outbox/a.txt@1:3@ab")  # a new file of that name


@pytest.mark.parametrize("inline_max", [0, 1024], ids=["file", "inline"])
def test_payload_sha256_checked_on_read(tmp_path: Path, inline_max: int) -> None:
    store = SQLiteStore(tmp_path / "mb.db", inline_max=inline_max)
    sha, size = store.payloads.write_file(io.BytesIO(b"original bytes"))
    assert size == 14 and store.payloads.read(sha) == b"original bytes"
    path = store.payloads.path(sha)
    assert path.exists() is (inline_max == 0)
    if inline_max:
        store.db.execute("UPDATE payloads SET data = ? WHERE sha256 = ?", [b"tampered bytes", sha])
    else:
        path.chmod(0o600)
        path.write_bytes(b"tampered bytes")
    with pytest.raises(StoreError, match=f"{sha}.* is corrupt: sha256 is "):
        store.payloads.read(sha)
    assert store.payloads.remove(sha)
    with pytest.raises(StoreError, match=f"payload {sha} is missing"):
        store.payloads.verify(sha)
    assert not store.payloads.remove(sha)


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


def test_same_bytes_stored_once(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "mb.db")
    a, _ = store.payloads.write_file(io.BytesIO(b"x" * 10))
    b, _ = store.payloads.write_file(io.BytesIO(b"x" * 10))
    assert a == b
    assert list((store.payloads.root / "tmp").iterdir()) == []


def test_unknown_message(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "mb.db")
    with pytest.raises(UnknownMessage, match="no message with id 'nope'"):
        store.get("nope")


def test_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "mb.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot open store"):
        SQLiteStore(path)


def test_housekeeping_never_strands_a_new_message_without_its_bytes(tmp_path: Path) -> None:
    """New identical bytes are written, old ones removed by housekeeping, then the new row comes:
    the row is refused (the caller keeps the message, e.g. MESH still holds it) instead of pointing at nothing."""
    store = SQLiteStore(tmp_path / "mb.db")
    sha, size = store.payloads.write([b"same bytes twice"])
    old = store.add("in", "delivered", payload_sha256=sha, payload_size=size)
    store.db.execute("UPDATE messages SET updated_at = '2000-01-01T00:00:00+00:00'")
    assert store.payloads.write([b"same bytes twice"]) == (sha, size)  # a new message's download ...
    assert store.remove_old_payloads(3600) == 1  # ... and housekeeping in between
    with pytest.raises(StoreError, match=f"payload {sha} was removed by housekeeping before its message"):
        store.add("in", "received", payload_sha256=sha, payload_size=size)
    assert [m.id for m in store.messages()] == [old.id]  # nothing recorded
    assert store.get(old.id).payload_sha256 is None
    assert [e.kind for e in store.events(old.id)][-1] == "payload-removed"


def test_make_durable_is_not_fooled_by_a_commit_that_wrote_nothing(tmp_path: Path, monkeypatch) -> None:
    store = SQLiteStore(tmp_path / "mb.db")
    syncs = []
    real = store.sync
    monkeypatch.setattr(store, "sync", lambda: syncs.append(1) or real())
    lazy = store.add("in", "received", durable=False)
    assert not store.transition(lazy.id, "delivered", from_states=("valid",))  # durable, but a no-op
    store.make_durable(lazy.id)
    assert len(syncs) == 1
    store.make_durable(lazy.id)  # known durable now
    durable = store.add("in", "received")
    store.make_durable(durable.id)
    assert len(syncs) == 1
    other = SQLiteStore(tmp_path / "mb.db")  # rows another process wrote are unknown here: synced once
    other_syncs = []
    other_real = other.sync
    monkeypatch.setattr(other, "sync", lambda: other_syncs.append(1) or other_real())
    other.make_durable(lazy.id, durable.id)
    other.make_durable(lazy.id)
    assert len(other_syncs) == 1
    assert store.db.execute("SELECT count FROM syncs").fetchone()[0] == 2


def test_a_damaged_inline_payload_is_repaired_by_the_same_bytes(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "mb.db")
    sha, _ = store.payloads.write([b"precious"])
    store.db.execute("UPDATE payloads SET data = ? WHERE sha256 = ?", [b"damaged!", sha])
    with pytest.raises(StoreError, match="corrupt"):
        store.payloads.read(sha)
    store.payloads.write([b"precious"])
    assert store.payloads.read(sha) == b"precious"
