"""Attacks on the store's import (issue 12): two imports racing into one empty store, and tar
headers that would make the reader hold an attacker's bytes in memory. Each refusal leaves the
target as it was, and an import that succeeded keeps every payload its rows name.
"""

from __future__ import annotations

import io
import json
import tarfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_store_export import (  # (its fixtures, used here by name)
    KINDS,
    Backend,
    backends,
    config_for,
    good_archive,
    members_of,
    populate,
    snapshot,
    stores,
    tar_of,
)

from meshbridge.errors import ArchiveError, StoreNotEmpty
from meshbridge.models import State
from meshbridge.store import Store
from meshbridge.store.archive import MANIFEST
from meshbridge.store.moving import export_store, import_store
from meshbridge.testing import run_cli

__all__ = ["backends", "good_archive", "populate", "stores"]


class _Hooked(io.BytesIO):
    """An archive that calls ``hook`` once, when its reader first reaches ``offset``."""

    def __init__(self, data: bytes, offset: int, hook: Callable[[], None]) -> None:
        super().__init__(data)
        self._offset, self._hook = offset, hook

    def read(self, size: int | None = -1, /) -> bytes:
        if self._hook is not None and self.tell() + (size if size and size > 0 else 1 << 40) > self._offset:
            hook, self._hook = self._hook, None  # type: ignore[assignment]
            hook()
        return super().read(size)


def _first_table_offset(archive: bytes) -> int:
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        return next(m.offset for m in tar.getmembers() if m.name.startswith("tables/"))


@pytest.mark.parametrize("kind", KINDS)
def test_two_imports_racing_into_one_store_leave_every_payload_of_the_one_that_won(
    kind: str,
    good_archive: bytes,
    stores: Callable[[str], Store],
    backends: Callable[[str], Backend],
    tmp_path: Path,
) -> None:
    """B has stored its payloads when A imports the same archive whole; B is then refused (the store
    holds rows) and must not remove the payloads A's rows name."""
    backend = backends(kind)
    first = stores(kind)
    if kind == "sqlite":
        from meshbridge.store import SQLiteStore

        assert isinstance(first, SQLiteStore)
        second: Store = SQLiteStore(first.path, inline_max=first.payloads.inline_max)
    else:
        from meshbridge.store.postgres import PostgresStore

        assert isinstance(first, PostgresStore)
        second = PostgresStore(first.link.url, inline_max=first.payloads.inline_max, spool=tmp_path / "second")
    outcomes: dict[str, Any] = {}

    def run(name: str, store: Store, source: io.BytesIO) -> None:
        try:
            outcomes[name] = import_store(store, source, name)
        except StoreNotEmpty as exc:
            outcomes[name] = exc

    racer = threading.Thread(target=run, args=("A", second, io.BytesIO(good_archive)))

    def a_runs_now() -> None:
        racer.start()
        racer.join(3)  # A finishes now (no lock between imports), or waits for B (then it is refused)

    try:
        run("B", first, _Hooked(good_archive, _first_table_offset(good_archive), a_runs_now))
        racer.join()
    finally:
        second.close()
    refused = [name for name, got in outcomes.items() if isinstance(got, StoreNotEmpty)]
    assert len(outcomes) == 2 and len(refused) == 1, outcomes
    shas = backend.payload_shas(first)
    assert len(shas) == 2
    for sha in shas:  # every payload the store's rows name is there, whole
        assert first.payloads.exists(sha), f"payload {sha} of the import that won was removed by the one refused"
        assert b"".join(first.payloads.blocks(sha))


def _with_header(members: list[tuple[str, bytes]], kind: bytes, size: int) -> bytes:
    """The archive with a pax (``x``) or GNU long-name (``L``) header of ``size`` bytes before the manifest."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in members:
            if name == MANIFEST:
                header = tarfile.TarInfo("././@header")
                header.type, header.size = kind, size
                body = b"" if kind == tarfile.XHDTYPE else b"manifest.json\0"
                if kind == tarfile.XHDTYPE:  # one record, "comment", that a reader ignores
                    text = b" comment=" + b"x" * (size - 40) + b"\n"
                    n = len(text) + 1
                    while len(str(n)) + len(text) != n:
                        n = len(str(n)) + len(text)
                    body = str(n).encode() + text
                    header.size = len(body)
                else:
                    body += b"\0" * (size - len(body))
                tar.fileobj.write(header.tobuf(tarfile.GNU_FORMAT))  # type: ignore[union-attr]
                tar.fileobj.write(body + b"\0" * (-len(body) % 512))  # type: ignore[union-attr]
                tar.offset += 512 + len(body) + (-len(body) % 512)
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("header", [tarfile.XHDTYPE, tarfile.GNUTYPE_LONGNAME], ids=["pax", "gnu-longname"])
def test_a_huge_extended_header_is_refused_unread(
    header: bytes,
    kind: str,
    good_archive: bytes,
    stores: Callable[[str], Store],
    backends: Callable[[str], Backend],
) -> None:
    """tarfile reads a pax or long-name header whole into memory: one of 8 MB (a gzip of a few KB;
    it could be gigabytes) is refused before it is read, and the target is left as it was."""
    members = members_of(good_archive)
    small = _with_header(members, header, 2000)  # an ordinary one still works: the header is honoured
    with tarfile.open(fileobj=io.BytesIO(small)) as tar:
        assert tar.getnames()[0] == MANIFEST
    archive = _with_header(members, header, 8 * 1024 * 1024)
    target = stores(kind)
    before = snapshot(backends(kind), target)
    with pytest.raises(ArchiveError, match=r"header .*too big"):
        import_store(target, io.BytesIO(archive), "bomb.tar")
    assert snapshot(backends(kind), target) == before
    import_store(target, io.BytesIO(small), "small.tar")


def _table_offset(archive: bytes, nth: int) -> int:
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        return [m.offset for m in tar.getmembers() if m.name.startswith("tables/")][nth]


def test_a_service_writing_while_an_import_runs_waits_for_it_on_postgresql(
    stores: Callable[[str], Store], tmp_path: Path
) -> None:
    """A service adds a message (and its first event) while the import inserts rows: it waits for
    the import to commit (as on SQLite, whose write lock the import holds), so the events it took
    numbers from do not collide with the archive's, which would fail the import as a bad archive."""
    from meshbridge.store.postgres import PostgresStore

    source = stores("sqlite")
    populate(source)
    first = source.add("in", State.RECEIVED, None)
    for n in range(500):  # an events member longer than the reader's buffer: read inside the transaction
        source.event(first.id, "note", {"n": n})
    archive = io.BytesIO()
    export_store(source, archive)
    good_archive = archive.getvalue()
    tables = [name for name, _ in members_of(good_archive) if name.startswith("tables/")]
    after_events = tables.index("tables/events.jsonl") + 1  # read while the events go in
    target = stores("postgresql")
    assert isinstance(target, PostgresStore)
    service = PostgresStore(target.link.url, inline_max=target.payloads.inline_max, spool=tmp_path / "service")
    added: list[Any] = []
    writer = threading.Thread(target=lambda: added.append(service.add("out", State.ACCEPTED, None, route="late")))

    def service_writes_now() -> None:
        writer.start()
        writer.join(3)  # it writes now (no lock), or waits for the import to commit

    try:
        hooked = _Hooked(good_archive, _table_offset(good_archive, after_events), service_writes_now)
        moved = import_store(target, hooked, "a")
        writer.join()
    finally:
        service.close()
    assert moved.tables["events"] > 0 and len(added) == 1
    seqs = [row["seq"] for row in target.link.rows("SELECT seq FROM events ORDER BY seq")]
    assert len(seqs) == moved.tables["events"] + 1
    late = target.link.rows("SELECT seq FROM events WHERE message_id = ?", [added[0].id])
    assert [row["seq"] for row in late] == [max(seqs)]


def _forged(archive: bytes, column: str, value: str) -> bytes:
    """The archive with its first message's ``column`` forged: ``value``, as JSON text."""
    members = members_of(archive)
    manifest = json.loads(members[0][1])
    columns = next(t["columns"] for t in manifest["tables"] if t["name"] == "messages")
    forged = []
    for name, data in members:
        if name == "tables/messages.jsonl":
            rows = [json.loads(line) for line in data.splitlines()]
            rows[0][columns.index(column)] = "FORGED"
            data = b"".join(json.dumps(row).encode() + b"\n" for row in rows).replace(b'"FORGED"', value.encode())
        forged.append((name, data))
    return tar_of(forged)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (str(10**30), "out of a 64-bit integer's range"),  # SQLite's OverflowError, a traceback
        (str(-(2**63) - 1), "out of a 64-bit integer's range"),
        ("NaN", "NaN is not a number"),
        ("Infinity", "Infinity is not a number"),
        ('"\\ud800"', "not Unicode text"),  # (a UnicodeEncodeError traceback on SQLite)
    ],
)
def test_a_value_no_store_holds_is_refused_in_one_line(
    value: str,
    expected: str,
    kind: str,
    good_archive: bytes,
    stores: Callable[[str], Store],
    backends: Callable[[str], Backend],
) -> None:
    target = stores(kind)
    before = snapshot(backends(kind), target)
    with pytest.raises(ArchiveError, match=rf"^archive forged: table messages, row 1: .*{expected}"):
        import_store(target, io.BytesIO(_forged(good_archive, "payload_size", value)), "forged")
    assert snapshot(backends(kind), target) == before


@pytest.mark.parametrize("kind", KINDS)
def test_a_forged_state_imported_is_a_one_line_error_not_a_traceback(
    kind: str, good_archive: bytes, backends: Callable[[str], Backend], tmp_path: Path
) -> None:
    """An archive whose rows hold a state no meshbridge stores imports (its values are not checked
    one by one), but reading the store then says what is wrong with it in one line."""
    store: Path | str = tmp_path / "s" / "mb.db" if kind == "sqlite" else backends(kind).url()
    config = config_for(tmp_path / "c.toml", store)
    forged = tmp_path / "forged.tar"
    forged.write_bytes(_forged(good_archive, "state", '"pwned"'))
    assert run_cli(config, "store", "import", str(forged)).returncode == 0
    for command in (["status"], ["messages"]):
        done = run_cli(config, *command)
        assert done.returncode == 1, done
        assert done.stderr == "meshbridge: the store holds 'pwned' where a state belongs\n", done.stderr


def test_a_connection_dropped_mid_import_leaves_the_store_as_it_was(
    good_archive: bytes, stores: Callable[[str], Store], backends: Callable[[str], Backend]
) -> None:
    """PostgreSQL ends the import's session while its rows go in (``pg_terminate_backend``): a
    one-line StoreError, the rows rolled back, the payloads it stored removed (on a new connection),
    and the same store then takes the archive whole."""
    from meshbridge.errors import StoreError
    from meshbridge.store.postgres import PostgresStore

    backend = backends("postgresql")
    target = stores("postgresql")
    assert isinstance(target, PostgresStore)
    before = snapshot(backend, target)
    admin = backend.connect(target)
    pid = target.link.conn.info.backend_pid

    def drop() -> None:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])

    try:
        with pytest.raises(StoreError) as raised:
            import_store(target, _Hooked(good_archive, _table_offset(good_archive, -1), drop), "a")
    finally:
        admin.close()
    assert not isinstance(raised.value, ArchiveError) and "\n" not in str(raised.value), raised.value
    assert target.link.conn.info.backend_pid != pid  # a new session
    assert snapshot(backend, target) == before
    import_store(target, io.BytesIO(good_archive), "again")
    assert len(backend.payload_shas(target)) == 2


def test_a_payload_whose_connection_was_lost_mid_write_is_refused_not_stored_damaged(
    stores: Callable[[str], Store], backends: Callable[[str], Backend], tmp_path: Path
) -> None:
    """A big payload's chunks are written under an advisory lock on the store's connection. That
    connection is lost mid-way and another thread of the process (a heartbeat) meets the loss first,
    so the link opens a new one; another meshbridge opening the store then removes the chunks no
    lock guards. The write must fail, not return a sha256 whose chunks are gone."""
    import os

    from meshbridge.errors import StoreError
    from meshbridge.store.pgpayloads import CHUNK
    from meshbridge.store.postgres import PostgresStore

    backend = backends("postgresql")
    store = stores("postgresql")
    assert isinstance(store, PostgresStore)
    admin = backend.connect(store)

    def blocks() -> Any:
        yield os.urandom(CHUNK * 2 + 10)
        yield os.urandom(CHUNK * 2)  # two chunks are written meanwhile
        admin.execute("SELECT pg_terminate_backend(%s)", [store.link.conn.info.backend_pid])
        with pytest.raises(StoreError, match="terminating connection"):
            store.link.rows("SELECT 1")  # the heartbeat's statement
        PostgresStore(store.link.url, spool=tmp_path / "other").close()  # its clean() runs
        yield os.urandom(CHUNK * 2)

    try:
        with pytest.raises(StoreError, match="connection was lost while a payload was written"):
            store.payloads.write(blocks())
    finally:
        admin.close()
    assert backend.payload_shas(store) == set()
