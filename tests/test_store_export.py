"""Moving house (issue 12, point 4): ``meshbridge store export`` / ``store import`` carry a whole
store between backends without loss: every table (enumerated here from the database's own schema,
so a table added later fails these tests until it is carried and given a row in :func:`populate`),
events keeping their numbers, payloads compared by sha256. A damaged, cut-short or hostile archive
is refused in one line and the target is left as it was.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import sqlite3
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from store_workload import counters

from meshbridge.errors import ArchiveError, StoreNotEmpty
from meshbridge.models import State, TimelineKind
from meshbridge.store import SQLiteStore, Store
from meshbridge.store.archive import MANIFEST
from meshbridge.store.counters import DERIVED_TABLES
from meshbridge.store.migrating import MIGRATIONS_TABLE
from meshbridge.store.moving import export_store, import_store
from meshbridge.store.schema import ADDS_TABLES, DERIVED_ONLY
from meshbridge.store.sides import PAYLOAD_TABLES
from meshbridge.testing import run_cli

INLINE_MAX = 1000
BIG = 2_500_000  # a payload past inline_max: a file on SQLite, three chunks on PostgreSQL
KINDS = ["sqlite", "postgresql"]


# -- stores of each backend, and what their databases hold (read beside meshbridge's own code) --


class Backend:
    """Stores of one backend for a test, each new (a PostgreSQL one in a database of its own,
    dropped after the test); and their tables read straight from the database, beside meshbridge."""

    def __init__(self, kind: str, tmp: Path, databases: Callable[[], str] | None = None) -> None:
        self.kind, self.tmp, self.made, self._databases = kind, tmp, 0, databases
        self._urls: dict[int, str] = {}

    def new(self) -> Store:
        self.made += 1
        if self.kind == "sqlite":
            return SQLiteStore(self.tmp / f"store{self.made}" / "mb.db", inline_max=INLINE_MAX)
        from meshbridge.store.postgres import PostgresStore

        assert self._databases is not None
        url = self._databases()
        store = PostgresStore(url, inline_max=INLINE_MAX, spool=self.tmp / f"spool{self.made}")
        self._urls[id(store)] = url
        return store

    def url(self) -> str:
        """The URL of a new, empty PostgreSQL database (dropped after the test)."""
        assert self._databases is not None
        return self._databases()

    def connect(self, store: Store) -> Any:
        """A connection of the test's own to the store's database."""
        if isinstance(store, SQLiteStore):
            return sqlite3.connect(store.path)
        import psycopg

        return psycopg.connect(self._urls[id(store)], autocommit=True)

    def run(self, store: Store) -> Callable[[str], list[Any]]:
        """SQL (no parameters) on the store's database, each statement on a new connection: its rows."""

        def run(sql: str) -> list[Any]:
            conn = self.connect(store)
            try:
                return list(conn.execute(sql).fetchall())
            finally:
                conn.close()

        return run

    def tables(self, store: Store) -> dict[str, list[tuple[Any, ...]]]:
        """Every table of the store's schema (but the migrations' own) with its rows, sorted; the
        column names as the first row."""
        conn = self.connect(store)
        try:
            if isinstance(store, SQLiteStore):
                listed = "SELECT name FROM sqlite_master WHERE type = 'table'"
            else:
                listed = (
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
                )
            found = {}
            for (name,) in conn.execute(listed).fetchall():
                if name.startswith("sqlite_") or name == MIGRATIONS_TABLE:
                    continue
                cursor = conn.execute(f'SELECT * FROM "{name}"')
                columns = tuple(d[0] for d in cursor.description)
                rows = [tuple(_plain(v) for v in row) for row in cursor.fetchall()]
                found[name] = [columns, *sorted(rows, key=repr)]
            return found
        finally:
            conn.close()

    def payload_shas(self, store: Store) -> set[str]:
        """The payloads the store holds, from its database (and its folder, on SQLite)."""
        files = {p.name for p in store.payloads.root.glob("??/*")} if isinstance(store, SQLiteStore) else set()
        conn = self.connect(store)
        try:
            chunks = "payload_chunks" in self.tables(store)
            rows = conn.execute(
                "SELECT sha256 FROM payloads"
                + (" UNION SELECT sha256 FROM payload_chunks WHERE sha256 NOT LIKE 'tmp:%'" if chunks else "")
            ).fetchall()
            return files | {sha for (sha,) in rows}
        finally:
            conn.close()


def _plain(value: Any) -> Any:
    """A value as both backends give it (bytes, not a memoryview; a whole float as an int)."""
    if isinstance(value, memoryview):
        return bytes(value)
    return int(value) if isinstance(value, float) and value.is_integer() else value


@pytest.fixture
def backends(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[[str], Backend]]:
    made: dict[str, Backend] = {}
    with contextlib.ExitStack() as dropped:

        def database() -> str:
            from postgres_fixtures import fresh

            return dropped.enter_context(fresh(request.getfixturevalue("postgres_server")))

        def get(kind: str) -> Backend:
            if kind not in made:
                made[kind] = Backend(kind, tmp_path / kind, database)
            return made[kind]

        yield get


def populate(store: Store) -> dict[str, str]:
    """At least one row in every table, through the Store interface; the payloads' sha256 by name."""
    small, _ = store.payloads.write([b"small \x00\xff payload"])
    big, big_size = store.payloads.write([os.urandom(BIG // 3)] * 3)
    out = store.add(
        "out",
        State.ACCEPTED,
        {"why": "tést ✓"},
        route="r1",
        mailbox="X26ABC1",
        peer="X26ABC2",
        payload_sha256=big,
        payload_size=big_size,
        subject="ünïcode\nsubject",
        workflow_id="WF",
    )
    assert store.claim(out.id, 600) is not None  # lease_beat: a float column
    store.transition(out.id, State.SENT, kind=TimelineKind.SENT, mesh_message_id="MESH-1")
    store.expect(out.id, "inf-ack", "2030-01-01T00:00:00+00:00")
    store.expect(out.id, "bus-ack", None)
    store.meet(out.id, "inf-ack", "ok", text="fine")
    inbound = store.add("in", State.RECEIVED, None, payload_sha256=small, payload_size=20, mesh_message_id="MESH-2")
    store.event(inbound.id, "note", {"n": 1, "nested": {"a": [1, 2]}})
    store.remember_key("hl7", "MSG00001", inbound.id)
    store.sight_bad_body("X26ABC1", "MESH-3", "ab" * 32, "not gzip")
    store.logins.refused("X26ABC1", "bad password")  # and its mesh-auth notification queued (alerts)
    store.outbox.route(lambda notification: ["plugins", "webhook:teams"])  # its sends (alert_sends)
    store.sync()
    return {"small": small, "big": big}


def carry(source: Store, target: Store) -> bytes:
    archive = io.BytesIO()
    export_store(source, archive)
    import_store(target, io.BytesIO(archive.getvalue()), "test archive")
    return archive.getvalue()


def same_store(backend_a: Backend, a: Store, backend_b: Backend, b: Store) -> None:
    """Every table's rows equal (the payload tables by the payloads they hold, each read back by sha256;
    the counters, which the target's triggers made anew, by what they count)."""
    ta, tb = backend_a.tables(a), backend_b.tables(b)
    assert set(ta) - PAYLOAD_TABLES == set(tb) - PAYLOAD_TABLES
    assert set(ta) >= DERIVED_TABLES and counters(backend_a.run(a)) == counters(backend_b.run(b))
    for name in sorted(set(ta) - PAYLOAD_TABLES):
        assert len(ta[name]) > 1, f"populate() puts no row in table {name}: add one, so this test shows it is carried"
        if name in DERIVED_TABLES:  # (its rows: each connection's slot, counters that count nothing)
            continue
        columns_a, *rows_a = ta[name]
        columns_b, *rows_b = tb[name]
        as_dicts = [
            sorted((dict(zip(c, r, strict=True)) for r in rows), key=repr)
            for c, rows in ((columns_a, rows_a), (columns_b, rows_b))
        ]
        assert as_dicts[0] == as_dicts[1], f"table {name} differs"
    shas = backend_a.payload_shas(a)
    assert shas and backend_b.payload_shas(b) == shas
    for sha in shas:
        digest = hashlib.sha256()
        for block in b.payloads.blocks(sha):
            digest.update(block)
        assert digest.hexdigest() == sha


@pytest.fixture
def stores(backends: Callable[[str], Backend]) -> Iterator[Callable[[str], Store]]:
    opened: list[Store] = []

    def new(kind: str) -> Store:
        opened.append(backends(kind).new())
        return opened[-1]

    yield new
    for store in opened:
        store.close()


# -- both directions, every table ---------------------------------------------------------------


@pytest.mark.parametrize("source_kind", KINDS)
@pytest.mark.parametrize("target_kind", KINDS)
def test_every_table_moves_with_its_rows_and_every_payload_by_sha256(
    source_kind: str, target_kind: str, stores: Callable[[str], Store], backends: Callable[[str], Backend]
) -> None:
    source, target = stores(source_kind), stores(target_kind)
    shas = populate(source)
    carry(source, target)
    same_store(backends(source_kind), source, backends(target_kind), target)
    if isinstance(target, SQLiteStore):  # the target's own payload storage: a file for the big one
        assert target.payloads.path(shas["big"]).is_file() and not target.payloads.path(shas["small"]).exists()
    else:  # in chunks of 1 MiB
        conn = backends(target_kind).connect(target)
        chunks = conn.execute("SELECT count(*) FROM payload_chunks WHERE sha256 = %s", [shas["big"]]).fetchone()
        conn.close()
        assert chunks == (3,)
    again = stores(source_kind)  # and back again, unchanged
    carry(target, again)
    same_store(backends(source_kind), source, backends(source_kind), again)


@pytest.mark.parametrize("source_kind", KINDS)
@pytest.mark.parametrize("target_kind", KINDS)
def test_events_keep_their_numbers_and_new_ones_come_after(
    source_kind: str, target_kind: str, stores: Callable[[str], Store]
) -> None:
    source, target = stores(source_kind), stores(target_kind)
    populate(source)
    first = source.add("out", State.ACCEPTED, None, route="r")
    for n in range(3):
        source.event(first.id, "note", {"n": n})
    before = [e.seq for e in source.events(first.id)]
    carry(source, target)
    assert [e.seq for e in target.events(first.id)] == before
    target.event(first.id, "after", None)
    assert target.events(first.id)[-1].seq > max(before)
    newest = target.add("in", State.RECEIVED, None)
    assert target.events(newest.id)[0].seq > max(before)


@pytest.mark.parametrize("kind", KINDS)
def test_the_timeline_stays_append_only_after_an_import(
    kind: str, stores: Callable[[str], Store], backends: Callable[[str], Backend]
) -> None:
    source, target = stores("sqlite"), stores(kind)
    populate(source)
    carry(source, target)
    conn = backends(kind).connect(target)
    try:
        for sql in ("UPDATE events SET kind = 'forged'", "DELETE FROM events"):
            with pytest.raises(Exception, match="events are append-only"):
                conn.execute(sql)
    finally:
        conn.close()


def test_a_table_left_out_of_the_export_is_noticed(
    stores: Callable[[str], Store], backends: Callable[[str], Backend], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check above is not fooled: a table the export leaves out makes it fail."""
    from meshbridge.store import moving

    source, target = stores("sqlite"), stores("sqlite")
    populate(source)
    monkeypatch.setattr(moving, "PAYLOAD_TABLES", PAYLOAD_TABLES | {"ack_keys"})
    carry(source, target)
    with pytest.raises(AssertionError, match="ack_keys"):
        same_store(backends("sqlite"), source, backends("sqlite"), target)


# -- refusals -----------------------------------------------------------------------------------


def snapshot(backend: Backend, store: Store) -> tuple[dict[str, Any], set[str]]:
    return backend.tables(store), backend.payload_shas(store)


@pytest.mark.parametrize("kind", KINDS)
def test_a_store_that_holds_rows_is_refused_untouched(
    kind: str, stores: Callable[[str], Store], backends: Callable[[str], Backend]
) -> None:
    source, target = stores(kind), stores(kind)
    populate(source)
    target.add("in", State.RECEIVED, None)
    before = snapshot(backends(kind), target)
    archive = io.BytesIO()
    export_store(source, archive)
    with pytest.raises(StoreNotEmpty, match=r"not empty \(events 1, messages 1 rows\)"):
        import_store(target, io.BytesIO(archive.getvalue()), "a")
    assert snapshot(backends(kind), target) == before


# -- damaged and hostile archives ----------------------------------------------------------------


def members_of(archive: bytes) -> list[tuple[str, bytes]]:
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        return [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]  # type: ignore[union-attr]


def tar_of(members: list[tuple[str, bytes]], special: tarfile.TarInfo | None = None) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
            if special is not None and name == MANIFEST:
                tar.addfile(special)
    return out.getvalue()


def edit_manifest(
    members: list[tuple[str, bytes]], change: Callable[[dict[str, Any]], None]
) -> list[tuple[str, bytes]]:
    manifest = json.loads(members[0][1])
    change(manifest)
    return [(MANIFEST, json.dumps(manifest).encode()), *members[1:]]


def _replace(members: list[tuple[str, bytes]], name: str, data: bytes) -> list[tuple[str, bytes]]:
    return [(n, data if n == name else d) for n, d in members]


def _flip_payload(members: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    name, data = next((n, d) for n, d in members if n.startswith("payloads/") and len(d) > 100)
    return _replace(members, name, data[:50] + bytes([data[50] ^ 1]) + data[51:])


def _table(members: list[tuple[str, bytes]], table: str) -> bytes:
    return next(d for n, d in members if n == f"tables/{table}.jsonl")


def _orphan_event(members: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    lines = _table(members, "events").splitlines(keepends=True)
    row = json.loads(lines[0])
    row[0], row[1] = 999, "no-such-message"
    changed = _replace(members, "tables/events.jsonl", b"".join(lines[1:]) + json.dumps(row).encode() + b"\n")
    return changed


def _extra_row_line(members: list[tuple[str, bytes]], line: bytes) -> list[tuple[str, bytes]]:
    data = _table(members, "ack_keys").splitlines(keepends=True)
    return _replace(members, "tables/ack_keys.jsonl", b"".join(data[:-1]) + line)


def _many_payloads(members: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    fake = [(f"payloads/{hashlib.sha256(str(n).encode()).hexdigest()}", str(n).encode()) for n in range(5000)]
    return [members[0], *fake, *members[1:]]


def _unknown_table(manifest: dict[str, Any]) -> None:
    manifest["tables"].append({"name": "evil", "columns": ["a"], "rows": 0})


def _older_schema(manifest: dict[str, Any]) -> None:
    """Without the last migration that adds more than what triggers derive (an archive before one of
    those imports: test_store_counters)."""
    last = [name for name in manifest["schema"] if name not in DERIVED_ONLY | set(ADDS_TABLES)][-1]
    manifest["schema"].remove(last)


def _newer_schema(manifest: dict[str, Any]) -> None:
    manifest["schema"].append("m999_from_the_future")


HOSTILE: dict[str, tuple[Callable[[list[tuple[str, bytes]]], list[tuple[str, bytes]]], str]] = {
    "payload bytes unlike their sha256": (_flip_payload, "is damaged: its bytes have sha256"),
    "a path out of the archive": (
        lambda m: [*m[:2], ("../../escaped", b"x"), *m[2:]],
        "unexpected member '../../escaped'",
    ),
    "a payload path out of the archive": (
        lambda m: [m[0], ("payloads/../../" + "a" * 64, b"x"), *m[1:]],
        "unexpected member .payloads/../../",
    ),
    "an unknown table": (lambda m: edit_manifest(m, _unknown_table), r"unknown \['evil'\]"),
    "an unknown table's member": (lambda m: [*m, ("tables/evil.jsonl", b"[1]\n")], "unexpected member"),
    "an older schema": (lambda m: edit_manifest(m, _older_schema), "store migrate"),
    "a newer schema": (lambda m: edit_manifest(m, _newer_schema), "m999_from_the_future"),
    "no manifest first": (lambda m: m[1:], "its first member is not manifest.json"),
    "a manifest that is not JSON": (lambda m: [(MANIFEST, b"{not json"), *m[1:]], "manifest.json is not JSON"),
    "another format": (lambda m: edit_manifest(m, lambda d: d.update(format="zip")), "not a meshbridge store manifest"),
    "a later format version": (lambda m: edit_manifest(m, lambda d: d.update(version=2)), "format version 2"),
    "a malformed manifest": (lambda m: edit_manifest(m, lambda d: d.update(tables="x")), "malformed"),
    "a negative count": (lambda m: edit_manifest(m, lambda d: d["payloads"].update(count=-1)), "malformed"),
    "a missing payload": (lambda m: [m[0], *m[2:]], "payloads, but its manifest lists"),
    "more payloads than the manifest lists": (_many_payloads, "more payloads than the 2 its manifest lists"),
    "a payload count in the billions": (
        lambda m: edit_manifest(m, lambda d: d["payloads"].update(count=10**12)),
        "but its manifest lists",
    ),
    "a missing table": (lambda m: [x for x in m if x[0] != "tables/syncs.jsonl"], "where tables/syncs"),
    "a row of the wrong width": (lambda m: _extra_row_line(m, b'["hl7"]\n'), "not a list of 3 values"),
    "a row that is not JSON": (lambda m: _extra_row_line(m, b"[1, 2,\n"), "not JSON"),
    "a value of an unknown kind": (lambda m: _extra_row_line(m, b'["a", true, "b"]\n'), "unknown kind"),
    "bad base64": (lambda m: _extra_row_line(m, b'["a", {"base64": "!!"}, "b"]\n'), "bad base64"),
    "more rows than listed": (
        lambda m: _replace(m, "tables/ack_keys.jsonl", _table(m, "ack_keys") * 2),
        "more rows than the 1",
    ),
    "a row whose message is missing": (_orphan_event, "events: a row cannot be stored"),
    "a repeated row": (
        lambda m: edit_manifest(
            _replace(m, "tables/ack_keys.jsonl", _table(m, "ack_keys") * 2),
            lambda d: [t.update(rows=2) for t in d["tables"] if t["name"] == "ack_keys"],
        ),
        "ack_keys: a row cannot be stored",
    ),
}


@pytest.fixture
def good_archive(stores: Callable[[str], Store]) -> bytes:
    source = stores("sqlite")
    populate(source)
    archive = io.BytesIO()
    export_store(source, archive)
    return archive.getvalue()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_bad_archive_is_refused_and_the_target_left_as_it_was(
    case: str,
    kind: str,
    good_archive: bytes,
    stores: Callable[[str], Store],
    backends: Callable[[str], Backend],
    tmp_path: Path,
) -> None:
    change, expected = HOSTILE[case]
    archive = tar_of(change(members_of(good_archive)))
    target = stores(kind)
    before = snapshot(backends(kind), target)
    with pytest.raises(ArchiveError, match=expected):
        import_store(target, io.BytesIO(archive), "bad.tar")
    assert snapshot(backends(kind), target) == before
    assert not (tmp_path.parent / "escaped").exists()
    carry_again = io.BytesIO(good_archive)  # and the same store then takes a good archive
    import_store(target, carry_again, "good.tar")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("special", ["symlink", "hardlink", "directory", "fifo"])
def test_a_member_that_is_not_a_file_is_refused(
    special: str,
    kind: str,
    good_archive: bytes,
    stores: Callable[[str], Store],
    backends: Callable[[str], Backend],
) -> None:
    info = tarfile.TarInfo("payloads/" + "0" * 64)
    info.type = {
        "symlink": tarfile.SYMTYPE,
        "hardlink": tarfile.LNKTYPE,
        "directory": tarfile.DIRTYPE,
        "fifo": tarfile.FIFOTYPE,
    }[special]
    info.linkname = "/etc/passwd"
    archive = tar_of(members_of(good_archive), special=info)
    target = stores(kind)
    before = snapshot(backends(kind), target)
    with pytest.raises(ArchiveError, match="is not a regular file"):
        import_store(target, io.BytesIO(archive), "bad.tar")
    assert snapshot(backends(kind), target) == before


@pytest.mark.parametrize("kind", KINDS)
def test_an_archive_cut_short_anywhere_is_refused_and_the_target_left_as_it_was(
    kind: str, good_archive: bytes, stores: Callable[[str], Store], backends: Callable[[str], Backend]
) -> None:
    target = stores(kind)
    before = snapshot(backends(kind), target)
    ends = sorted({0, 10, 511, 512, 1024, 3000, *range(0, len(good_archive) - 1024, len(good_archive) // 17)})
    for end in ends:
        with pytest.raises(ArchiveError, match=r"^archive cut: "):
            import_store(target, io.BytesIO(good_archive[:end]), "cut")
        assert snapshot(backends(kind), target) == before, end


# -- the command line ---------------------------------------------------------------------------


def config_for(path: Path, store: Path | str) -> Path:
    where = f'url = "{store}"' if isinstance(store, str) else f'path = "{store}"'
    path.write_text(f'[store]\n{where}\n[mesh]\nurl = "http://127.0.0.1:9"\nshared_key = "unused"\n')
    return path


@pytest.mark.parametrize("kind", KINDS)
def test_the_command_line_moves_a_store_through_a_file_and_through_a_pipe(
    kind: str, tmp_path: Path, backends: Callable[[str], Backend]
) -> None:
    """SQLite to ``kind`` through a compressed file, and ``kind`` to SQLite through a pipe."""
    source = SQLiteStore(tmp_path / "a" / "mb.db", inline_max=INLINE_MAX)
    shas = populate(source)
    source.close()
    config_a = config_for(tmp_path / "a.toml", tmp_path / "a" / "mb.db")
    config_b = config_for(tmp_path / "b.toml", tmp_path / "b" / "mb.db" if kind == "sqlite" else backends(kind).url())
    archive = tmp_path / "store.tar.gz"
    done = run_cli(config_a, "store", "export", str(archive))
    assert done.returncode == 0 and done.stdout.startswith("exported ") and "2 payloads" in done.stdout, done
    with tarfile.open(archive, "r:gz") as tar:  # gzip, by its name
        assert tar.getnames()[0] == MANIFEST
    again = run_cli(config_a, "store", "export", str(archive))
    assert (
        again.returncode == 2
        and again.stderr == f"meshbridge: {archive} exists: name another file, or remove it first\n"
    )
    done = run_cli(config_b, "store", "import", str(archive))
    assert done.returncode == 0 and done.stdout.startswith("imported ") and "2 payloads" in done.stdout, done
    refused = run_cli(config_b, "store", "import", str(archive))
    assert refused.returncode == 1 and refused.stderr.startswith("meshbridge: the target store is not empty (")
    assert "Traceback" not in refused.stderr
    # a pipe: export to standard output, import from standard input
    import subprocess
    import sys

    config_c = config_for(tmp_path / "c.toml", tmp_path / "c" / "mb.db")
    cmd = [sys.executable, "-m", "meshbridge", "--config"]
    exporter = subprocess.Popen([*cmd, str(config_b), "store", "export", "-"], stdout=subprocess.PIPE)
    importer = subprocess.run(
        [*cmd, str(config_c), "store", "import", "-"],
        stdin=exporter.stdout,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert exporter.stdout is not None
    exporter.stdout.close()
    assert exporter.wait(timeout=120) == 0 and importer.returncode == 0, importer.stderr
    moved = SQLiteStore(tmp_path / "c" / "mb.db")
    try:
        assert moved.payloads.read(shas["small"]) == b"small \x00\xff payload"
        assert len(moved.messages()) == 2
    finally:
        moved.close()


def test_the_command_line_refuses_a_bad_archive_in_one_line(tmp_path: Path) -> None:
    config = config_for(tmp_path / "b.toml", tmp_path / "b" / "mb.db")
    bad = tmp_path / "bad.tar"
    bad.write_bytes(b"\x00" * 100 + b"not an archive")
    done = run_cli(config, "store", "import", str(bad))
    assert done.returncode == 1 and done.stdout == "", done
    assert done.stderr.startswith(f"meshbridge: archive {bad}: ") and done.stderr.count("\n") == 1, done.stderr
    missing = run_cli(
        config_for(tmp_path / "n.toml", tmp_path / "none" / "mb.db"), "store", "export", str(tmp_path / "x")
    )
    assert missing.returncode == 1 and "no store at" in missing.stderr and not (tmp_path / "x").exists()


def test_an_xz_archive_imports_as_a_plain_one(
    stores: Callable[[str], Store], backends: Callable[[str], Backend]
) -> None:
    source, target = stores("sqlite"), stores("sqlite")
    populate(source)
    archive = io.BytesIO()
    export_store(source, archive, "xz")
    assert archive.getvalue().startswith(b"\xfd7zXZ")
    import_store(target, io.BytesIO(archive.getvalue()), "a.tar.xz")
    same_store(backends("sqlite"), source, backends("sqlite"), target)
