"""The store's contract, on each backend (SQLite and PostgreSQL, see tests/store_backends.py):
migrations, append-only events, race-free transitions and claims, checked payloads.

What only SQLite has (WAL, file modes, lazy commits as ``synchronous``, damaged files) is in
tests/test_store.py and tests/test_store_damage.py.
"""

from __future__ import annotations

import io
import multiprocessing
import os

import pytest
from store_backends import Backend, Spec, reopen

from meshbridge import SourceTaken, StoreError, UnknownMessage
from meshbridge.store import Store

MIB = 1024 * 1024


def test_a_new_store_is_built_and_reopening_applies_nothing(backend: Backend) -> None:
    first = backend.open()
    assert first.created
    first.close()
    again = backend.open()
    assert not again.created and again.migrated == []
    assert again.messages() == []


def test_events_are_append_only(backend: Backend, store: Store) -> None:
    message = store.add("out", "accepted", route="r")
    with pytest.raises(backend.database_error, match="append-only"):
        backend.execute("UPDATE events SET kind = 'forged'")
    with pytest.raises(backend.database_error, match="append-only"):
        backend.execute("DELETE FROM events")
    assert [e.kind for e in store.events(message.id)] == ["accepted"]


def test_transition_is_conditional(store: Store) -> None:
    message = store.add("out", "accepted")
    assert store.transition(message.id, "sending", from_states=("accepted",))
    assert not store.transition(message.id, "sending", from_states=("accepted",))
    assert store.get(message.id).state == "sending"
    assert [e.state for e in store.events(message.id)] == ["accepted", "sending"]


def _claim(spec: Spec, ids: list[str], queue: multiprocessing.Queue) -> None:
    store = reopen(spec)
    won = [i for i in ids if store.transition(i, "sending", from_states=("accepted",))]
    store.close()
    queue.put(won)


def test_two_processes_never_claim_the_same_message(backend: Backend, store: Store) -> None:
    ids = [store.add("out", "accepted", durable=False).id for _ in range(200)]
    store.sync()
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    workers = [ctx.Process(target=_claim, args=(backend.spec(), ids, queue)) for _ in range(3)]
    for w in workers:
        w.start()
    results = [queue.get(timeout=60) for _ in workers]
    for w in workers:
        w.join(30)
    claimed = [i for won in results for i in won]
    assert sorted(claimed) == sorted(ids)  # every message claimed exactly once
    assert all(len(store.events(i)) == 2 for i in ids)


def _claim_sends(spec: Spec, ids: list[str], queue: multiprocessing.Queue) -> None:
    store = reopen(spec)
    won = [i for i in ids if store.claim(i, 600) is not None]
    store.close()
    queue.put(won)


def _claim_deliveries(spec: Spec, ids: list[str], queue: multiprocessing.Queue) -> None:
    store = reopen(spec)
    won = [i for n in range(0, len(ids), 7) for i in store.claim_deliveries(ids[n : n + 7], 600)]
    store.close()
    queue.put(won)


@pytest.mark.parametrize("kind", ["send", "delivery"])
def test_processes_claiming_at_once_each_win_other_messages(backend: Backend, store: Store, kind: str) -> None:
    """Sends (``claim`` of messages a dead process left ``sending``) and deliveries (``claim_deliveries``
    of ``valid`` ones, in batches): three processes at once, each message won by one of them."""
    if kind == "send":
        ids = [store.add("out", "sending", lease_boot="an-earlier-boot", durable=False).id for _ in range(120)]
        target = _claim_sends
    else:
        ids = [store.add("in", "valid", mailbox="X26ABC2", workflow_id="WF", durable=False).id for _ in range(120)]
        target = _claim_deliveries
    store.sync()
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    workers = [ctx.Process(target=target, args=(backend.spec(), ids, queue)) for _ in range(3)]
    for w in workers:
        w.start()
    results = [queue.get(timeout=60) for _ in workers]
    for w in workers:
        w.join(30)
    claimed = [i for won in results for i in won]
    assert sorted(claimed) == sorted(ids)  # each exactly once


def _open_new(spec: Spec, barrier) -> None:
    barrier.wait(20)  # all at once; a worker that died breaks the barrier for the others
    reopen(spec).close()  # raises (the process exits non-zero) if the store cannot be opened


def test_processes_opening_a_new_store_at_once_build_it_once(backend: Backend) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(3)
    workers = [ctx.Process(target=_open_new, args=(backend.spec(), barrier), daemon=True) for _ in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
        if w.exitcode is None:
            w.kill()
            w.join()
    assert [w.exitcode for w in workers] == [0, 0, 0]
    store = backend.open()
    assert not store.created and store.migrated == []
    message = store.add("out", "accepted")
    assert [e.kind for e in store.events(message.id)] == ["accepted"]


def test_a_source_file_is_stored_once(store: Store) -> None:
    first = store.add("out", "sending", source_file="outbox/a.txt@1:2@ab")
    with pytest.raises(SourceTaken):  # a second process that checked before the first stored it
        store.add("out", "sending", source_file="outbox/a.txt@1:2@ab")
    assert [m.id for m in store.messages()] == [first.id]
    store.add("out", "sending", source_file="outbox/a.txt@1:3@ab")  # a new file of that name


@pytest.mark.parametrize("inline_max", [0, 1024], ids=["big", "inline"])
def test_payload_sha256_checked_on_read(backend: Backend, inline_max: int) -> None:
    store = backend.open(inline_max=inline_max)
    sha, size = store.payloads.write_file(io.BytesIO(b"original bytes"))
    assert size == 14 and store.payloads.read(sha) == b"original bytes"
    backend.tamper(store, sha, b"tampered bytes")
    with pytest.raises(StoreError, match=f"{sha}.* is corrupt: sha256 is "):
        store.payloads.read(sha)
    assert store.payloads.remove(sha)
    with pytest.raises(StoreError, match=f"payload {sha} is missing"):
        store.payloads.verify(sha)
    assert not store.payloads.remove(sha)


def test_small_payloads_inline_big_ones_streamed(backend: Backend) -> None:
    """Up to ``inline_max`` bytes in the payloads table; past it, streamed out of it (a file, or chunks)."""
    store = backend.open(inline_max=1000)
    small, big = b"s" * 1000, bytes(range(256)) * 40  # 1000 and 10,240 bytes
    small_sha, _ = store.payloads.write(iter([small[:400], small[400:]]))
    big_sha, big_size = store.payloads.write(iter([big[:600], big[600:700], big[700:]]))  # crosses the line mid-stream
    assert big_size == len(big)
    assert [sha for (sha,) in backend.execute("SELECT sha256 FROM payloads")] == [small_sha]
    assert store.payloads.read(small_sha) == small and store.payloads.read(big_sha) == big
    assert b"".join(store.payloads.blocks(big_sha, 600, 100)) == big[600:700]  # a chunk's range
    with store.payloads.open(small_sha) as handle:
        handle.seek(10)
        assert handle.read(5) == small[10:15]
    assert list((store.payloads.root / "tmp").iterdir()) == []


def test_a_payload_of_several_megabytes_reads_back_by_range(store: Store) -> None:
    """Bigger than a database chunk (1 MiB on PostgreSQL): ranges across chunk boundaries, seeks, sha256."""
    data = os.urandom(MIB // 2) * 5 + b"tail"
    blocks = (data[n : n + 300_000] for n in range(0, len(data), 300_000))
    sha, size = store.payloads.write(blocks, len(data))
    assert size == len(data) and store.payloads.read(sha) == data
    store.payloads.verify(sha)
    start = MIB - 10
    assert b"".join(store.payloads.blocks(sha, start, MIB + 20)) == data[start : start + MIB + 20]
    assert b"".join(store.payloads.blocks(sha, 2 * MIB)) == data[2 * MIB :]
    with store.payloads.open(sha) as handle:
        handle.seek(len(data) - 4)
        assert handle.read() == b"tail"
        handle.seek(MIB + 3)
        assert handle.read(10) == data[MIB + 3 : MIB + 13]


def test_a_payload_is_stored_before_the_transaction_that_records_it(store: Store) -> None:
    message = store.add("in", "received", durable=False)
    store.payloads.write([b"x"])
    with store.immediate(), pytest.raises(StoreError, match="before the transaction that records it"):  # type: ignore[attr-defined]
        store.payloads.write([b"inside a transaction"])
    assert store.get(message.id).state == "received"


@pytest.mark.parametrize("inline_max", [0, 1024], ids=["big", "inline"])
def test_same_bytes_stored_once(backend: Backend, inline_max: int) -> None:
    store = backend.open(inline_max=inline_max)
    a, _ = store.payloads.write_file(io.BytesIO(b"x" * 10))
    b, _ = store.payloads.write_file(io.BytesIO(b"x" * 10))
    assert a == b and store.payloads.read(a) == b"x" * 10
    assert list((store.payloads.root / "tmp").iterdir()) == []


def test_unknown_message(store: Store) -> None:
    with pytest.raises(UnknownMessage, match="no message with id 'nope'"):
        store.get("nope")


def test_housekeeping_never_strands_a_new_message_without_its_bytes(backend: Backend, store: Store) -> None:
    """New identical bytes are written, old ones removed by housekeeping, then the new row comes:
    the row is refused (the caller keeps the message, e.g. MESH still holds it) instead of pointing at nothing."""
    sha, size = store.payloads.write([b"same bytes twice"])
    old = store.add("in", "delivered", payload_sha256=sha, payload_size=size)
    backend.execute("UPDATE messages SET updated_at = '2000-01-01T00:00:00+00:00'")
    assert store.payloads.write([b"same bytes twice"]) == (sha, size)  # a new message's download ...
    assert store.remove_old_payloads(3600) == 1  # ... and housekeeping in between
    with pytest.raises(StoreError, match=f"payload {sha} was removed by housekeeping before its message"):
        store.add("in", "received", payload_sha256=sha, payload_size=size)
    assert [m.id for m in store.messages()] == [old.id]  # nothing recorded
    assert store.get(old.id).payload_sha256 is None
    assert [e.kind for e in store.events(old.id)][-1] == "payload-removed"


def test_make_durable_is_not_fooled_by_a_commit_that_wrote_nothing(
    backend: Backend, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
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
    other = backend.open()  # rows another process wrote are unknown here: synced once
    other_syncs = []
    other_real = other.sync
    monkeypatch.setattr(other, "sync", lambda: other_syncs.append(1) or other_real())
    other.make_durable(lazy.id, durable.id)
    other.make_durable(lazy.id)
    assert len(other_syncs) == 1
    assert backend.execute("SELECT count FROM syncs") == [(2,)]


@pytest.mark.parametrize("inline_max", [0, 1024], ids=["big", "inline"])
def test_a_damaged_payload_is_repaired_by_the_same_bytes(backend: Backend, inline_max: int) -> None:
    store = backend.open(inline_max=inline_max)
    sha, _ = store.payloads.write([b"precious"])
    backend.tamper(store, sha, b"damaged!")
    with pytest.raises(StoreError, match="corrupt"):
        store.payloads.read(sha)
    store.payloads.write([b"precious"])
    assert store.payloads.read(sha) == b"precious"


def test_another_connection_sees_every_commit(backend: Backend, store: Store) -> None:
    """Two connections (two workers): what one commits, durable or lazy, the other reads at once."""
    other = backend.open()
    durable = store.add("in", "received", mailbox="X26ABC2")
    lazy = store.add("in", "received", mailbox="X26ABC2", durable=False)
    assert {m.id for m in other.messages()} == {durable.id, lazy.id}
    assert other.transition(lazy.id, "valid", from_states=("received",))
    assert store.get(lazy.id).state == "valid"
    assert other.counts().messages == {("in", None, "received"): 1, ("in", None, "valid"): 1}
