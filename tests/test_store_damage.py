"""A damaged store file (empty, cut short, not a store) is refused with one line and left untouched.

Real ``meshbridge`` processes on real SQLite files; a new store is built under a temporary name and
only then given its name, so a process killed while building one leaves no store file behind.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from meshbridge.store import SQLiteStore

STORE = "var/meshbridge.db"


def meshbridge(config: Path, *args: str, crash_at: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "MESHBRIDGE_CRASH_AT"}
    if crash_at:
        env["MESHBRIDGE_CRASH_AT"] = crash_at
    return subprocess.run(
        [sys.executable, "-m", "meshbridge", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file in the store's folder (not below it) and its bytes."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def store_with_history(path: Path, messages: int = 100, close: bool = True) -> None:
    store = SQLiteStore(path)
    for n in range(messages):
        store.add("in", "received", mailbox="X26ABC2", peer="X26ABC1", mesh_message_id=f"MESH-{n}")
    if close:
        store.close()
    else:  # killed: the history stays in the write-ahead log
        os._exit(0)


def refused(config: Path, store: Path, command: tuple[str, ...] = ("status",)) -> str:
    """Run ``command``: it must exit 2 with one line naming the store file; return that line."""
    done = meshbridge(config, *command)
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert str(store) in lines[0] and "left untouched" in lines[0]
    return lines[0]


@pytest.mark.parametrize("command", [("status",), ("messages",), ("poll",)])
def test_an_empty_store_file_is_refused_and_left_untouched(meshbridge_config, command: tuple[str, ...]) -> None:
    config = meshbridge_config()
    store = config.parent / STORE
    store.parent.mkdir(parents=True)
    store.touch()
    line = refused(config, store, command)
    assert "is empty (0 bytes)" in line and "backup" in line
    assert snapshot(store.parent) == {"meshbridge.db": b""}  # not made into a new, empty store


def test_an_empty_store_file_beside_its_log_is_refused_and_the_log_kept(meshbridge_config) -> None:
    """A process killed with the history still in the write-ahead log; then the store file is emptied.
    SQLite would take the empty file for a new database and drop the log."""
    config = meshbridge_config()
    store = config.parent / STORE
    code = f"import test_store_damage as t; t.store_with_history(t.Path({str(store)!r}), close=False)"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parent)
    log = Path(f"{store}-wal").read_bytes()
    assert log
    store.write_bytes(b"")
    before = snapshot(store.parent)
    line = refused(config, store)
    assert "is empty (0 bytes)" in line
    assert snapshot(store.parent) == before
    assert Path(f"{store}-wal").read_bytes() == log


@pytest.mark.parametrize("keep", ["half", "one page", "50 bytes"])
def test_a_truncated_store_is_refused_and_left_untouched(meshbridge_config, keep: str) -> None:
    config = meshbridge_config()
    store = config.parent / STORE
    store_with_history(store)
    whole = store.read_bytes()
    cut = {"half": len(whole) // 2, "one page": 4096, "50 bytes": 50}[keep]
    store.write_bytes(whole[:cut])
    before = snapshot(store.parent)
    line = refused(config, store)
    assert "is cut short" in line and f'sqlite3 {store} ".recover"' in line and "backup" in line
    assert snapshot(store.parent) == before  # nothing re-created, nothing written
    store.write_bytes(whole)  # the operator restores the backup: all 100 messages are there
    done = meshbridge(config, "status", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["counts"] == {"in": {"received": 100}}


def test_a_file_that_is_not_sqlite_is_refused_and_left_untouched(meshbridge_config) -> None:
    config = meshbridge_config()
    store = config.parent / STORE
    store.parent.mkdir(parents=True)
    store.write_bytes(b"this is not a store\n" * 500)
    before = snapshot(store.parent)
    line = refused(config, store)
    assert "is not a SQLite database" in line and "[store] path" in line
    assert snapshot(store.parent) == before


@pytest.mark.parametrize("kind", ["folder", "fifo", "link to nothing"])
def test_a_store_path_that_is_not_a_file_is_refused_and_left_untouched(meshbridge_config, kind: str) -> None:
    """A FIFO would block opening it for ever; a folder or a dangling link gave exit 1 and an OS error."""
    config = meshbridge_config()
    store = config.parent / STORE
    store.parent.mkdir(parents=True)
    if kind == "folder":
        store.mkdir()
    elif kind == "fifo":
        os.mkfifo(store)
    else:
        store.symlink_to(config.parent / "elsewhere.db")
    line = refused(config, store)
    what = "a symbolic link to" if kind == "link to nothing" else "not a file"
    assert what in line and "check [store] path" in line
    assert [p.name for p in store.parent.iterdir()] == ["meshbridge.db"]  # nothing built beside it
    assert not (config.parent / "elsewhere.db").exists()


def test_a_sqlite_database_that_is_not_a_store_is_refused_and_left_untouched(meshbridge_config) -> None:
    config = meshbridge_config()
    store = config.parent / STORE
    store.parent.mkdir(parents=True)
    with sqlite3.connect(store) as db:
        db.execute("CREATE TABLE patients (nhs_number TEXT)")
    db.close()
    before = snapshot(store.parent)
    line = refused(config, store)
    assert "not a meshbridge store" in line
    assert snapshot(store.parent) == before


def test_a_store_missing_beside_its_log_is_refused(meshbridge_config) -> None:
    config = meshbridge_config()
    store = config.parent / STORE
    store.parent.mkdir(parents=True)
    Path(f"{store}-wal").write_bytes(b"\x37\x7f\x06\x82" + bytes(28))
    before = snapshot(store.parent)
    line = refused(config, store)
    assert "meshbridge.db-wal" in line
    assert snapshot(store.parent) == before


def test_a_process_killed_while_building_a_new_store_leaves_no_store(meshbridge_config) -> None:
    """Built under a temporary name and then named: killed in between, there is no half store at the
    path to be taken for a whole one; the next start removes the leftover and builds it anew."""
    config = meshbridge_config()
    store = config.parent / STORE
    done = meshbridge(config, "status", crash_at="store:built")
    assert done.returncode == -signal.SIGKILL, (done.returncode, done.stderr)
    assert not store.exists()
    assert [p.name.startswith(".meshbridge.db.new-") for p in store.parent.iterdir()] == [True]
    done = meshbridge(config, "status")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in store.parent.iterdir() if p.is_file()) == ["meshbridge.db"]
    with sqlite3.connect(store) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("SELECT count(*) FROM _sqlite_migrations").fetchone()[0] >= 6
    db.close()


def test_damage_found_while_reading_is_one_line(meshbridge_config) -> None:
    """Pages overwritten inside the file (its size is right): SQLite finds it when it reads them."""
    config = meshbridge_config()
    store = config.parent / STORE
    store_with_history(store, messages=300)
    with store.open("r+b") as f:
        for offset in range(3 * 4096, store.stat().st_size - 4096, 2 * 4096):
            f.seek(offset + 100)
            f.write(b"\xff" * 2000)
    done = meshbridge(config, "messages")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert f"store {store} is damaged" in line and ".recover" in line and "backup" in line


@pytest.mark.parametrize("kind", ["folder", "fifo", "symlink"])
def test_a_payload_file_replaced_by_something_else_is_one_line(
    meshbridge_config, make_bridge, mesh_peer, kind: str
) -> None:
    """A payload file swapped for a folder (a traceback), a FIFO (replay and delivery blocked for
    ever) or a link (read as if it were the payload) is named as damaged, in one line."""
    from conftest import OUT_IN

    config = meshbridge_config(OUT_IN)
    config.write_text(config.read_text().replace("[store]\n", "[store]\ninline_max = 0\n", 1))  # payloads as files
    bridge = make_bridge(config)
    mesh_id = mesh_peer("X26ABC1").send_message("X26ABC2", b"x" * 5000, workflow_id="TEST_WORKFLOW")
    bridge.poll()
    message = bridge.store.find("in", mesh_id)
    assert message.state == "delivered"
    payload = bridge.store.payloads.path(message.payload_sha256)
    bridge.close()
    payload.unlink()
    if kind == "folder":
        payload.mkdir()
    elif kind == "fifo":
        os.mkfifo(payload)
    else:
        payload.symlink_to(config)
    done = meshbridge(config, "replay", message.id)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    what = (
        "cannot be read: a symbolic link, not a payload file" if kind == "symlink" else "is damaged: not a regular file"
    )
    assert done.stderr == f"meshbridge: payload file {payload} {what}\n"
    shown = meshbridge(config, "show", message.id)
    assert shown.returncode == 0 and f"payload file {payload}" in shown.stdout  # the failed replay's error


def test_a_folder_where_the_stores_shared_memory_file_goes_is_one_line(meshbridge_config) -> None:
    """SQLite then opens the store read-only, and the first write raised SQLITE_READONLY as a traceback."""
    config = meshbridge_config()
    store = config.parent / STORE
    store_with_history(store, messages=3)
    Path(f"{store}-shm").mkdir()
    before = store.read_bytes()
    done = meshbridge(config, "status")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr == (
        f"meshbridge: store {store} cannot be written: attempt to write a readonly database (SQLITE_READONLY): "
        "check the file, its folder and the -wal and -shm files beside it\n"
    )
    assert store.read_bytes() == before  # (SQLite may add an empty -wal)
    Path(f"{store}-shm").rmdir()  # the operator removes it: all there
    done = meshbridge(config, "status", "--json")
    assert done.returncode == 0 and json.loads(done.stdout)["counts"] == {"in": {"received": 3}}


@pytest.mark.parametrize("how", ["changed", "missing"])
def test_show_says_a_payload_was_changed_or_lost_before_anything_meets_it(
    meshbridge_config, make_bridge, mesh_peer, how: str
) -> None:
    from conftest import OUT_IN

    config = meshbridge_config(OUT_IN)
    config.write_text(config.read_text().replace("[store]\n", "[store]\ninline_max = 0\n", 1))  # payloads as files
    bridge = make_bridge(config)
    mesh_id = mesh_peer("X26ABC1").send_message("X26ABC2", b"x" * 5000, workflow_id="TEST_WORKFLOW")
    bridge.poll()
    message = bridge.store.find("in", mesh_id)
    payload = bridge.store.payloads.path(message.payload_sha256)
    bridge.close()
    if how == "changed":
        payload.write_bytes(b"y" * 5000)  # the same size: only its sha256 tells
        line = f"payload: payload file {payload} is corrupt: sha256 is "
    else:
        payload.unlink()
        line = f"payload: payload {message.payload_sha256} is missing (no row, no file {payload})"
    shown = meshbridge(config, "show", message.id)
    assert shown.returncode == 0 and "Traceback" not in shown.stderr
    said = [text for text in shown.stdout.splitlines() if text.startswith("payload:")]
    assert len(said) == 1 and said[0].startswith(line)
    replayed = meshbridge(config, "replay", message.id)
    assert replayed.returncode == 1 and replayed.stderr.startswith(f"meshbridge: {line[len('payload: ') :]}")
    assert len(replayed.stderr.splitlines()) == 1
