"""The store on PostgreSQL: races between two stores (two connections, as two processes have),
payloads streamed through the database, a bridge's round trip, and a password that never shows.

What both backends share (conditional transitions raced by processes, the protocol, a payload
written before its transaction) is in tests/test_store_contract.py and tests/test_store_protocol.py.

Each module gets a database of its own (tests/postgres_fixtures.py); tests that need an empty one
make their own.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import OUT_IN, TRACK_NOW, sha256, write_random
from postgres_fixtures import PostgresServer, fresh

from meshbridge.config import load
from meshbridge.errors import ConfigError, StoreError, StoreOutdated
from meshbridge.models import State
from meshbridge.sandbox import mesh_text
from meshbridge.store import connect, migrating
from meshbridge.store.dialects import POSTGRESQL
from meshbridge.store.migrating import NAMES
from meshbridge.store.pgconn import Link
from meshbridge.store.pgpayloads import CHUNK, NAMESPACE
from meshbridge.store.postgres import PostgresStore
from meshbridge.testing import run_cli
from meshbridge.views import Filters

MiB = 1024 * 1024
SECRET = "s3cret-Pa55word-never-shown"


@pytest.fixture
def stores(postgres_url: str, tmp_path: Path) -> Iterator[Callable[[], PostgresStore]]:
    """Open stores on the module's database, each with a connection of its own (closed after)."""
    opened: list[PostgresStore] = []

    def make() -> PostgresStore:
        store = PostgresStore(postgres_url, spool=tmp_path / f"spool{len(opened)}")
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


def race(*calls: Callable[[], Any]) -> list[Any]:
    """Run the calls at once, each in its own thread, and return what each returned."""
    start = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        start.wait()
        try:
            results[i] = calls[i]()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    return results


def outbound(store: PostgresStore, n: int, state: str = State.ACCEPTED) -> list[str]:
    return [store.add("out", state, mailbox="X26ABC1", peer="X26ABC2", workflow_id="W").id for _ in range(n)]


# -- races between two stores ----------------------------------------------------------------


def test_of_two_stores_one_claims_each_message_and_no_transaction_outlives_the_claim(
    stores: Callable[[], PostgresStore],
) -> None:
    a, b = stores(), stores()
    ids = outbound(a, 30)

    def claim_all(store: PostgresStore) -> list[str]:
        return [i for i in ids if store.claim(i, lease=900) is not None]

    won_a, won_b = race(lambda: claim_all(a), lambda: claim_all(b))
    assert sorted(won_a + won_b) == sorted(ids) and not set(won_a) & set(won_b)
    for store in (a, b):  # the claim is the lease: no transaction is left open for the upload
        assert store.link.conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    holders = {a.get(i).lease_holder for i in ids}
    assert len(holders) == 30 and None not in holders
    assert a.claim(ids[0], lease=900) is None  # a live claim is not taken over
    assert b.release(ids[0], a.get(ids[0]).lease_holder, "stopped")  # released: due again at once
    resumed = b.claim(ids[0], lease=900)
    assert resumed is not None and resumed.resumed is True


def test_of_two_stores_one_claims_each_delivery(stores: Callable[[], PostgresStore]) -> None:
    a, b = stores(), stores()
    ids = [a.add("in", State.VALID, mailbox="X26ABC2", workflow_id="WD").id for _ in range(40)]
    due = [row.id for row in b.deliverable("X26ABC2", "WD", lease=900)]
    assert sorted(due) == sorted(ids)

    def claim(store: PostgresStore) -> dict[str, str]:
        taken: dict[str, str] = {}
        for start in range(0, len(ids), 5):  # in batches, as the workers do
            taken |= store.claim_deliveries(ids[start : start + 5], lease=900)
        return taken

    took_a, took_b = race(lambda: claim(a), lambda: claim(b))
    assert sorted([*took_a, *took_b]) == sorted(ids) and not set(took_a) & set(took_b)
    assert a.deliverable("X26ABC2", "WD", lease=900) == []  # all claimed, none due
    assert all(a.renew(i, holder, State.VALID) for i, holder in took_a.items())
    assert not any(a.renew(i, "someone-else", State.VALID) for i in took_b)


def test_exclusive_work_waits_for_the_other_store_and_ends_with_its_connection(
    stores: Callable[[], PostgresStore],
) -> None:
    a, b = stores(), stores()
    inside, entered = threading.Event(), threading.Event()
    with a.exclusive("sweep"):

        def other() -> None:
            inside.set()
            with b.exclusive("sweep"):
                entered.set()

        thread = threading.Thread(target=other)
        thread.start()
        assert inside.wait(10)
        assert not entered.wait(0.5)  # a holds it
        with b.exclusive("another job"):  # another name is another lock
            pass
    thread.join(10)
    assert entered.is_set()


def test_a_source_file_is_stored_once_and_keys_and_sightings_are_shared(stores: Callable[[], PostgresStore]) -> None:
    a, b = stores(), stores()
    source = f"/in/a.txt@{os.urandom(4).hex()}"
    outcomes = race(*(lambda s=s: _try_add(s, source) for s in (a, b, a, b)))
    assert sorted(outcomes) == ["SourceTaken", "SourceTaken", "SourceTaken", "stored"]
    ident = a.from_source(source).id
    a.remember_key("itk", "KEY-1", ident)
    b.remember_key("itk", "KEY-1", ident)
    assert b.by_key("itk", "KEY-1").id == ident
    assert a.sight_bad_body("X26ABC2", "MESH-1", "raw1", "bad gzip") == (1, 1)
    assert b.sight_bad_body("X26ABC2", "MESH-1", "raw2", "bad gzip") == (1, 2)
    assert b.sight_bad_body("X26ABC2", "MESH-1", "raw1", "bad gzip") == (2, 3)
    assert a.bad_body_seen("MESH-1")
    b.forget_bad_body("MESH-1")
    assert not a.bad_body_seen("MESH-1")
    assert race(lambda: a.logins.refused("X26ABC9", "no"), lambda: b.logins.refused("X26ABC9", "no")) in (
        [1, 2],
        [2, 1],
    )
    cleared = race(lambda: a.logins.accepted("X26ABC9"), lambda: b.logins.accepted("X26ABC9"))
    assert sorted(c is None for c in cleared) == [False, True]  # one clears it, once


def _try_add(store: PostgresStore, source: str) -> str:
    try:
        store.add("out", State.ACCEPTED, source_file=source)
    except StoreError as exc:
        return type(exc).__name__ if "already stored" in str(exc) else str(exc)
    return "stored"


def test_expectations_are_met_once_and_swept_once(stores: Callable[[], PostgresStore]) -> None:
    a, b = stores(), stores()
    [ident] = outbound(a, 1, State.SENT)
    a.expect(ident, "inf-ack", "2000-01-01T00:00:00+00:00")
    b.expect(ident, "inf-ack", "2000-01-01T00:00:00+00:00")  # the same expectation: nothing new
    a.expect(ident, "bus-ack", None)
    swept = race(a.sweep_overdue, b.sweep_overdue)
    assert sorted(len([r for r in rows if r.message_id == ident]) for rows in swept) == [0, 1]
    assert [m.id for m in a.messages(Filters(overdue=True))].count(ident) == 1
    assert race(lambda: a.meet(ident, "inf-ack", "0"), lambda: b.meet(ident, "inf-ack", "0")) in (
        [True, False],
        [False, True],
    )
    assert a.close_expectations(ident, "closed by nack") == 1 and b.open_expectations(ident) == []
    assert [e.kind for e in a.events(ident)] == ["sent", "overdue"]
    shown = b.message(ident)
    assert [e.kind for e in shown.expectations] == ["bus-ack", "inf-ack"]


# -- payloads in the database -----------------------------------------------------------------


def _blocks(total: int, size: int = 64 * 1024, seed: bytes = b"") -> Iterator[bytes]:
    """``total`` bytes in blocks, the same each time for the same ``seed``."""
    seed = hashlib.sha256(seed).digest() * (size // 32)
    for n in range(total // size):
        yield n.to_bytes(8, "big") + seed[8:]


def test_a_20mb_payload_streams_in_and_out_in_chunks(stores: Callable[[], PostgresStore]) -> None:
    store, other = stores(), stores()
    total = 20 * MiB
    expected = hashlib.sha256(b"".join(_blocks(total))).hexdigest()  # (built once, outside the measure)
    tracemalloc.start()
    try:
        sha, size = store.payloads.write(_blocks(total))
        _, written_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        digest = hashlib.sha256()
        for block in other.payloads.blocks(sha):  # another connection: the bytes are in the database
            digest.update(block)
        _, read_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (sha, size) == (expected, total) and digest.hexdigest() == expected
    assert written_peak < total / 5 and read_peak < total / 5, (written_peak, read_peak)  # a chunk or so, not 20 MB
    rows = store.link.conn.execute("SELECT count(*) FROM payload_chunks WHERE sha256 = %s", [sha]).fetchone()
    assert rows == (total // CHUNK,)
    part = b"".join(other.payloads.blocks(sha, CHUNK - 10, 20))  # a range across two chunks
    assert part == b"".join(_blocks(total))[CHUNK - 10 : CHUNK + 10]
    with other.payloads.open(sha) as handle:
        handle.seek(5 * MiB + 3)
        assert handle.read(5) == b"".join(_blocks(total))[5 * MiB + 3 : 5 * MiB + 8]
    assert store.payloads.write(_blocks(total)) == (sha, total)  # the same bytes again: one copy
    assert store.link.conn.execute("SELECT count(*) FROM payload_chunks WHERE sha256 = %s", [sha]).fetchone() == rows


def test_a_damaged_or_missing_payload_is_an_error_naming_it(stores: Callable[[], PostgresStore]) -> None:
    store = stores()
    sha, _ = store.payloads.write(_blocks(3 * MiB, seed=b"damage"))
    small, _ = store.payloads.write([b"small payload " + os.urandom(8)])
    assert store.payloads.read(small).startswith(b"small payload ")
    store.link.conn.execute("UPDATE payload_chunks SET data = %s WHERE sha256 = %s AND seq = 1", [b"x" * CHUNK, sha])
    with pytest.raises(StoreError, match=f"payload {sha} is corrupt: sha256 is "):
        store.payloads.verify(sha)
    store.link.conn.execute("DELETE FROM payload_chunks WHERE sha256 = %s AND seq = 2", [sha])  # cut short
    with pytest.raises(StoreError, match=f"payload {sha} is corrupt: sha256 is "):
        store.payloads.verify(sha)
    store.link.conn.execute("INSERT INTO payload_chunks VALUES (%s, 2, 'x')", [sha])
    store.link.conn.execute("DELETE FROM payload_chunks WHERE sha256 = %s AND seq = 1", [sha])
    with pytest.raises(StoreError, match="chunks are missing"):
        store.payloads.open(sha)
    with pytest.raises(StoreError, match="is missing"):
        store.payloads.open("0" * 64)


def test_clean_removes_what_a_dead_writer_left_never_what_a_live_one_writes(
    stores: Callable[[], PostgresStore], postgres_url: str
) -> None:
    store = stores()
    conn = store.link.conn
    conn.execute("INSERT INTO payload_chunks (sha256, seq, data) VALUES ('tmp:101', 0, 'dead')")
    with psycopg.connect(postgres_url, autocommit=True) as live:
        live.execute("SELECT pg_advisory_lock(%s, 202)", [NAMESPACE])
        live.execute("INSERT INTO payload_chunks (sha256, seq, data) VALUES ('tmp:202', 0, 'live')")
        assert store.payloads.clean() == 1
        left = conn.execute("SELECT sha256 FROM payload_chunks WHERE sha256 LIKE 'tmp:%%'").fetchall()
        assert left == [("tmp:202",)]
        conn.execute("SELECT pg_terminate_backend(%s, 10000)", [live.info.backend_pid])  # the writer dies
    store.payloads.clean()
    assert conn.execute("SELECT count(*) FROM payload_chunks WHERE sha256 LIKE 'tmp:%%'").fetchone() == (0,)


def test_a_payload_whose_source_fails_midway_leaves_no_chunks_and_no_lock(stores: Callable[[], PostgresStore]) -> None:
    store = stores()

    def failing() -> Iterator[bytes]:
        yield from _blocks(3 * MiB, seed=b"cut off")
        raise OSError("the source went away")

    with pytest.raises(OSError, match="the source went away"):
        store.payloads.write(failing())
    conn = store.link.conn
    assert conn.execute("SELECT count(*) FROM payload_chunks WHERE sha256 LIKE 'tmp:%%'").fetchone() == (0,)
    held = conn.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = %s::oid AND pid = pg_backend_pid()",
        [NAMESPACE],
    )
    assert held.fetchone() == (0,)
    sha, size = store.payloads.write(_blocks(3 * MiB, seed=b"cut off"))  # the whole one, afterwards
    assert size == 3 * MiB and store.payloads.exists(sha)


def test_retention_removes_old_payloads_of_finished_messages(stores: Callable[[], PostgresStore]) -> None:
    store = stores()
    big, size = store.payloads.write(_blocks(2 * MiB, seed=b"retention"))
    small, _ = store.payloads.write([os.urandom(100)])
    old = store.add("in", State.DELIVERED, payload_sha256=big, payload_size=size).id
    kept = store.add("in", State.VALID, payload_sha256=small, payload_size=100).id
    store.link.conn.execute(
        "UPDATE messages SET updated_at = '2000-01-01T00:00:00+00:00' WHERE id = ANY(%s)", [[old, kept]]
    )
    assert store.remove_old_payloads(86400) == 1
    assert store.get(old).payload_sha256 is None and not store.payloads.exists(big)
    assert store.payloads.exists(small) and store.get(kept).payload_sha256 == small
    assert [e.kind for e in store.events(old)][-1] == "payload-removed"
    with pytest.raises(StoreError, match="removed by housekeeping"):
        store.add("out", State.ACCEPTED, payload_sha256=big, payload_size=size)


# -- opening, migrating, config -------------------------------------------------------------


def test_a_store_is_built_in_an_empty_database_and_an_outdated_one_refused_or_migrated(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    last = NAMES[-1]
    with fresh(postgres_server) as url:
        store = PostgresStore(url, spool=tmp_path)
        assert store.created and store.migrated == list(NAMES) and store.where == url
        store.close()
    with fresh(postgres_server) as url, psycopg.connect(url) as conn:  # as the meshbridge before the last left it
        migrating.apply(conn, POSTGRESQL, stop_before=last)
        conn.commit()
        with pytest.raises(StoreOutdated, match=f"store {url} is older than this meshbridge"):
            PostgresStore(url, spool=tmp_path, migrate=False)
        again = PostgresStore(url, spool=tmp_path)
        assert not again.created and again.migrated == [last]
        again.close()


def test_store_migrate_on_postgresql_and_a_password_in_the_url_refused(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    config = tmp_path / "meshbridge.toml"
    mesh = '[mesh]\nurl = "https://localhost:1"\nshared_key = "k"\n'
    with fresh(postgres_server) as url:
        config.write_text(f'[store]\nurl = "{url}"\npassword = {{ env = "MB_TEST_PG_PASSWORD" }}\n\n{mesh}')
        os.environ["MB_TEST_PG_PASSWORD"] = SECRET
        try:
            built, again = run_cli(config, "store", "migrate"), run_cli(config, "store", "migrate")
        finally:
            del os.environ["MB_TEST_PG_PASSWORD"]
    assert built.returncode == 0 and built.stdout == f"store {url}: created (schema {NAMES[-1]})\n", built
    assert again.returncode == 0 and again.stdout == f"store {url}: up to date (schema {NAMES[-1]})\n"
    unset = run_cli(config, "store", "migrate")  # the password's variable is not set: named, no traceback
    assert unset.returncode != 0 and "store.password" in unset.stderr and "Traceback" not in unset.stderr
    config.write_text(f'[store]\nurl = "postgresql://me:{SECRET}@db.example/mb"\n\n{mesh}')
    with pytest.raises(ConfigError, match=r"store\.url: the URL holds a password: put it in \[store\] password") as e:
        load(config)
    assert SECRET not in str(e.value)


def test_driver_errors_are_one_line_without_the_password_or_the_conninfo(postgres_server: PostgresServer) -> None:
    conninfo = postgres_server.url_of("meshbridge_no_such_database")
    with pytest.raises(StoreError) as caught:
        PostgresStore(conninfo, password=SECRET)
    text = str(caught.value)
    assert text.startswith(f"cannot connect to store {conninfo}: ") and "\n" not in text
    assert SECRET not in text and "password=" not in text
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    link = Link("postgresql://me@db.example:5433/mb?sslmode=require", SECRET)
    worded = link.error(psycopg.OperationalError(f"FATAL: password {SECRET} refused\ndetail"))
    assert str(worded) == "store postgresql://me@db.example:5433/mb: FATAL: password ******** refused"


# -- a bridge on PostgreSQL -------------------------------------------------------------------


def test_a_bridge_round_trip_on_postgresql_never_logs_the_password(
    tmp_path: Path,
    mesh_sandbox: Any,
    make_bridge: Any,
    postgres_server: PostgresServer,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MB_TEST_PG_PASSWORD", SECRET)
    with fresh(postgres_server) as url:
        config = tmp_path / "meshbridge.toml"
        config.write_text(
            f'[store]\nurl = "{url}"\npassword = {{ env = "MB_TEST_PG_PASSWORD" }}\ninline_max = "64KiB"\n\n'
            + mesh_text(mesh_sandbox, mesh=TRACK_NOW)
            + OUT_IN
        )
        caplog.set_level(logging.DEBUG, logger="meshbridge")
        bridge = make_bridge(config)
        assert isinstance(bridge.store, PostgresStore)
        for size in (100, 3 * MiB):  # inline, and chunks
            payload = write_random(tmp_path / f"payload-{size}.bin", size)
            sent = bridge.send(payload, route="out")
            assert sent.state == State.SENT and sent.mesh_message_id
            report = bridge.poll()
            assert report.problems == []
            inbound = bridge.store.find("in", sent.mesh_message_id)
            assert inbound is not None and inbound.state == State.DELIVERED
            assert sha256(Path(inbound.destination)) == sha256(payload) == inbound.payload_sha256
            assert bridge.store.get(sent.id).state == State.DELIVERED  # tracked: acknowledged
            kinds = [e.kind for e in bridge.store.events(inbound.id)]
            assert kinds == ["received", "mesh-acked", "valid", "delivered"]
        reader = connect(load(config).store, migrate=False)  # another process's view (as `status` opens it)
        try:
            assert reader.counts().messages == {("in", "in", State.DELIVERED): 2, ("out", "out", State.DELIVERED): 2}
        finally:
            reader.close()
    assert caplog.records and SECRET not in caplog.text
