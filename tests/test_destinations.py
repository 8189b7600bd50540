"""Destinations: folder batches, HTTP POST (2xx = delivered, retried otherwise) and command (exit 0 = delivered)."""

from __future__ import annotations

import http.server
import os
import stat
import tempfile
import threading
import typing
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import OUT_IN

from meshbridge.destinations import DeliveryError, FolderBatch


class Endpoint(http.server.BaseHTTPRequestHandler):
    statuses: typing.ClassVar[list[int]] = []
    received: typing.ClassVar[list[tuple[bytes, str]]] = []

    def do_POST(self) -> None:
        assert self.headers["Transfer-Encoding"] == "chunked"  # streamed, not held in memory
        body = b""
        while size := int(self.rfile.readline().strip(), 16):
            body += self.rfile.read(size)
            self.rfile.readline()
        self.rfile.readline()
        status = self.statuses.pop(0) if self.statuses else 204
        if status < 300:
            self.received.append((body, self.headers["X-Meshbridge-Name"]))
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def endpoint() -> Iterator[tuple[str, type[Endpoint]]]:
    Endpoint.statuses, Endpoint.received = [], []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Endpoint)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/epr", Endpoint
    server.shutdown()
    server.server_close()


def test_http_destination_retries_until_2xx(meshbridge_config, make_bridge, mesh_peer, endpoint, monkeypatch) -> None:
    url, handler = endpoint
    handler.statuses = [503]  # the EPR is down at first
    routes = OUT_IN.replace('destination = { folder = "delivered" }', f'destination = {{ http = "{url}" }}')
    bridge = make_bridge(meshbridge_config(routes + '\n[service]\ndelivery_backoff = "0s"\n'))  # retried at once
    recorded = []  # a POST is not repeated lightly: its delivery is recorded durably, not left to a later sync
    real = bridge.store.transition
    monkeypatch.setattr(
        bridge.store, "transition", lambda i, to, **k: recorded.append((to, k.get("durable", True))) or real(i, to, **k)
    )
    mesh_id = mesh_peer("X26ABC1").send_message("X26ABC2", b"to the EPR", workflow_id="TEST_WORKFLOW")
    first = bridge.poll()
    message = bridge.store.find("in", mesh_id)
    assert message["state"] == "valid" and "answered HTTP 503" in message["last_error"]
    assert "POST" in first.problems[0] and handler.received == []
    second = bridge.poll()
    assert second.delivered == [message["id"]] and second.problems == []
    assert handler.received == [(b"to the EPR", f"{mesh_id}_{mesh_id}.dat")]
    assert bridge.store.get(message["id"])["state"] == "delivered"
    assert ("delivered", True) in recorded
    bridge.poll()
    assert len(handler.received) == 1  # once


def test_command_destination(tmp_path: Path, meshbridge_config, make_bridge, mesh_peer) -> None:
    target = tmp_path / "imported.txt"
    command = f'["/bin/sh", "-c", "cat \\"$0\\" >> {target}; test -s {target}", "{{path}}"]'
    routes = OUT_IN.replace('destination = { folder = "delivered" }', f"destination = {{ command = {command} }}")
    bridge = make_bridge(meshbridge_config(routes))
    mesh_peer("X26ABC1").send_message("X26ABC2", b"via a command\n", workflow_id="TEST_WORKFLOW")
    assert bridge.poll().problems == []
    assert target.read_bytes() == b"via a command\n"
    failing = OUT_IN.replace('destination = { folder = "delivered" }', 'destination = { command = ["false"] }')
    other = make_bridge(meshbridge_config(failing, name="other.toml", store="other/mb.db"))
    mesh_peer("X26ABC1").send_message("X26ABC2", b"refused", workflow_id="TEST_WORKFLOW")
    report = other.poll()
    assert report.delivered == [] and "command false exited 1" in report.problems[0]


def test_folder_batch_shows_nothing_until_every_file_is_durable(tmp_path: Path) -> None:
    batch, outbox = FolderBatch("cafe0123"), tmp_path / "epr" / "in"
    done: list[object] = []
    for n in range(3):
        batch.add(outbox, [b"part one, ", f"part two of {n}".encode()], f"m{n}.dat", done.append)
    assert len(batch) == 3 and batch.size == sum(len(f"part one, part two of {n}") for n in range(3))
    assert all(p.name.startswith(".meshbridge-cafe0123-") and p.suffix == ".part" for p in outbox.iterdir())
    batch.finish()
    assert done == [str(outbox / f"m{n}.dat") for n in range(3)]
    expected = [f"part one, part two of {n}".encode() for n in range(3)]
    assert [(outbox / f"m{n}.dat").read_bytes() for n in range(3)] == expected
    assert stat.S_IMODE((outbox / "m0.dat").stat().st_mode) == 0o640
    assert sorted(p.name for p in outbox.iterdir()) == ["m0.dat", "m1.dat", "m2.dat"] and len(batch) == 0


def test_folder_batch_failures_are_per_file_and_leftovers_are_cleaned(tmp_path: Path) -> None:
    batch, good, gone = FolderBatch("cafe0123"), tmp_path / "good", tmp_path / "gone"
    done: list[object] = []
    batch.add(good, [b"kept"], "a.dat", done.append)
    batch.add(gone, [b"lost"], "b.dat", done.append)
    (gone / "b.dat").mkdir()  # a folder where the file should go: the rename fails
    batch.finish()
    assert done[0] == str(good / "a.dat") and (good / "a.dat").read_bytes() == b"kept"
    assert isinstance(done[1], DeliveryError) and f"cannot write to folder {gone}" in str(done[1])
    assert [p.name for p in gone.iterdir()] == ["b.dat"]  # the failed one's temp file is gone

    crashed = FolderBatch("cafe0123")  # a pass dies with files staged ...
    crashed.add(good, [b"half a pass"], "c.dat", done.append)
    os.close(crashed._staged[0].fd)  # (the dead process's descriptor)
    (good / ".meshbridge-0ther5t0re-inflight.part").write_bytes(b"another store's")
    FolderBatch("cafe0123").clean([good, gone])  # ... the next one removes what it left, only that
    assert sorted(p.name for p in good.iterdir()) == [".meshbridge-0ther5t0re-inflight.part", "a.dat"]


def test_folder_batch_records_every_file_when_one_record_fails(tmp_path: Path) -> None:
    batch, done = FolderBatch("cafe0123"), []

    def refuse(outcome: object) -> None:
        raise RuntimeError("database is locked")

    batch.add(tmp_path, [b"one"], "1.dat", refuse)
    batch.add(tmp_path, [b"two"], "2.dat", done.append)
    with pytest.raises(RuntimeError, match="database is locked"):
        batch.finish()
    assert done == [str(tmp_path / "2.dat")] and (tmp_path / "1.dat").read_bytes() == b"one"


def test_folder_batch_files_take_the_folders_group(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to give the folder another group")
    shared = tmp_path / "epr"
    shared.mkdir()
    os.chown(shared, -1, 65534)
    shared.chmod(0o2770)  # setgid: files made here belong to the EPR's group
    batch, done = FolderBatch("cafe0123"), []
    batch.add(shared, [b"for the EPR"], "m.dat", done.append)
    batch.finish()
    assert (shared / "m.dat").stat().st_gid == 65534


def test_a_folder_on_another_file_system_than_the_store(meshbridge_config, make_bridge, mesh_peer) -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir():
        pytest.skip("needs /dev/shm")
    with tempfile.TemporaryDirectory(dir=shm) as other:
        routes = OUT_IN.replace('destination = { folder = "delivered" }', f'destination = {{ folder = "{other}" }}')
        bridge = make_bridge(meshbridge_config(routes))
        mesh_id = mesh_peer("X26ABC1").send_message("X26ABC2", b"to tmpfs", workflow_id="TEST_WORKFLOW")
        report = bridge.poll()
        message = bridge.store.find("in", mesh_id)
        assert report.problems == [] and report.delivered == [message["id"]]
        assert message["state"] == "delivered" and Path(message["destination"]).read_bytes() == b"to tmpfs"
        assert Path(message["destination"]).parent == Path(other)
