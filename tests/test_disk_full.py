"""A full or failing store disk: one clear problem per pass, nothing lost, recovery when space returns.

Three real ways to fill it: a small tmpfs mounted for the test (needs root, as in CI), SQLite's
``PRAGMA max_page_count`` (``SQLITE_FULL``) and ``RLIMIT_FSIZE`` on a ``meshbridge`` process
(``EFBIG``); the last two need no privilege. And the temp files a killed download or upload
leaves in ``payloads/tmp``: removed when the store opens and by housekeeping, never one that a live
process is still writing.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import OUT_IN

from meshbridge import pipeline
from meshbridge.service import Service
from meshbridge.store import SQLiteStore

MiB = 1024 * 1024
WORKFLOW = "TEST_WORKFLOW"
SENDER, RECIPIENT, ELSEWHERE = "X26ABC1", "X26ABC2", "X26ABC3"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 MiB tmpfs mounted for this test only."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64m,mode=0700", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def free(folder: Path) -> int:
    stat = os.statvfs(folder)
    return stat.f_bavail * stat.f_frsize


def fill(disk: Path, leave: int) -> Path:
    """Take all the free space of ``disk`` but ``leave`` bytes, as another program would."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_CREAT | os.O_WRONLY, 0o600)
    try:
        os.posix_fallocate(fd, 0, free(disk) - leave)
    finally:
        os.close(fd)
    return filler


def inbox(mesh_peer, mailbox: str) -> list[str]:
    return list(mesh_peer(mailbox).list_messages())


def disk_problems(problems: list[str]) -> list[str]:
    return [p for p in problems if p.startswith("store disk")]


def delivered_once(store: SQLiteStore, folder: Path, payloads: list[bytes]) -> None:
    """Each payload is a file in ``folder`` and a ``delivered`` message, once."""
    assert sorted(p.read_bytes() for p in folder.iterdir()) == sorted(payloads)
    delivered = store.messages(state="delivered", direction="in")
    assert len(delivered) == len(payloads)
    for message in delivered:
        assert [e.kind for e in store.events(message.id)].count("delivered") == 1


# -- a small file system ---------------------------------------------------------------------


FROM_FOLDER = f"""
[[routes]]
name = "from-folder"
direction = "outbound"
from = "{SENDER}"
to = "{ELSEWHERE}"
workflow_id = "{WORKFLOW}"
payload_type = "binary"
source = {{ folder = "outbox" }}
"""


def test_a_full_disk_pauses_collecting_while_stored_work_goes_on(
    small_disk: Path, tmp_path: Path, meshbridge_config, make_bridge, mesh_peer
) -> None:
    routes = OUT_IN + FROM_FOLDER
    config = meshbridge_config(routes, store=f"{small_disk}/var/meshbridge.db", mailboxes=(SENDER, RECIPIENT))
    bridge = make_bridge(config)
    service = Service(bridge)  # the service keeps a reserve for state changes
    reserve = small_disk / "var" / "meshbridge.db.reserve"
    reserved = reserve.stat().st_size if reserve.exists() else 0
    delivered = tmp_path / "delivered"  # on another file system than the store
    early = [f"early {n}".encode() for n in range(3)]
    for data in early:
        mesh_peer(SENDER).send_message(RECIPIENT, data, workflow_id=WORKFLOW)
    mesh = bridge.mailbox(RECIPIENT)
    for mesh_id in mesh.inbox():  # collected, not yet delivered (as if a pass stopped there)
        pipeline.acknowledge(bridge.store, mesh, pipeline.download(bridge.store, mesh, mesh_id))
    assert inbox(mesh_peer, RECIPIENT) == [] and len(bridge.store.messages(state="mesh-acked")) == 3
    waiting = pipeline.accept(  # stored, to be sent by a later pass
        bridge.store,
        io.BytesIO(b"stored before the disk filled"),
        route="out",
        mailbox=SENDER,
        to=ELSEWHERE,
        workflow_id=WORKFLOW,
        payload_type="binary",
        filename="out.bin",
    )
    filler = fill(small_disk, leave=0)  # really full: the next write meets ENOSPC
    late = [f"late {n}".encode() for n in range(3)]
    for data in late:
        mesh_peer(SENDER).send_message(RECIPIENT, data, workflow_id=WORKFLOW)

    report = bridge.poll()
    assert len(disk_problems(report.problems)) == 1 and report.problems == disk_problems(report.problems)
    assert "store disk full" in report.problems[0] and str(small_disk) in report.problems[0]
    assert len(inbox(mesh_peer, RECIPIENT)) == 3 and report.received == []  # left in MESH, not acknowledged
    delivered_once(bridge.store, delivered, early)  # what was stored is delivered ...
    assert bridge.store.get(waiting.id).state == "sent"  # ... and sent
    assert len(inbox(mesh_peer, ELSEWHERE)) == 1
    assert reserved == 8 * MiB and not reserve.exists()  # released: those state changes used its room
    source = tmp_path / "new.bin"
    source.write_bytes(b"a new message")
    with pytest.raises(Exception, match="store disk full") as refused:
        bridge.send(source, route="out")
    assert type(refused.value).__name__ == "DiskFull"
    assert len(bridge.store.messages(direction="out")) == 1 and len(inbox(mesh_peer, ELSEWHERE)) == 1
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    for n in range(2):
        (outbox / f"letter{n}.txt").write_bytes(f"from the folder {n}".encode())
        os.utime(outbox / f"letter{n}.txt", (time.time() - 60, time.time() - 60))  # complete files
    service.housekeeping()  # the service's jobs go on ...
    service.run_once()
    assert sorted(p.name for p in outbox.iterdir() if p.is_file()) == ["letter0.txt", "letter1.txt"]  # ... they wait
    assert len(bridge.store.messages(direction="out")) == 1 and len(inbox(mesh_peer, ELSEWHERE)) == 1

    filler.unlink()  # space returns: the next pass takes everything, once
    report = bridge.poll()
    assert report.problems == [] and len(report.received) == 3
    assert inbox(mesh_peer, RECIPIENT) == []
    delivered_once(bridge.store, delivered, early + late)
    service.send()
    assert not [p for p in outbox.iterdir() if p.is_file()] and len(inbox(mesh_peer, ELSEWHERE)) == 3
    assert reserve.stat().st_size == 8 * MiB  # kept again for the next time
    assert not list((small_disk / "var" / "payloads" / "tmp").iterdir())


def test_a_download_that_would_fill_the_disk_stops_and_stays_in_mesh(
    small_disk: Path, tmp_path: Path, meshbridge_config, make_bridge, mesh_peer
) -> None:
    config = meshbridge_config(OUT_IN, store=f"{small_disk}/var/meshbridge.db", mailboxes=(SENDER, RECIPIENT))
    bridge = make_bridge(config)
    big = os.urandom(24 * MiB)
    mesh_id = mesh_peer(SENDER).send_message(RECIPIENT, big, workflow_id=WORKFLOW)
    filler = fill(small_disk, leave=30 * MiB)  # room to start, not to finish with the margin kept
    report = bridge.poll()
    assert len(report.problems) == 1 and report.problems[0].startswith("store disk full")
    assert inbox(mesh_peer, RECIPIENT) == [mesh_id] and bridge.store.find("in", mesh_id) is None
    assert not list((small_disk / "var" / "payloads" / "tmp").iterdir())  # no partial file kept
    assert free(small_disk) >= 16 * MiB  # stopped while the margin was still there
    filler.unlink()
    report = bridge.poll()
    assert report.problems == [] and inbox(mesh_peer, RECIPIENT) == []
    delivered_once(bridge.store, tmp_path / "delivered", [big])


def test_the_raw_copy_of_an_undecodable_body_stops_at_the_margin(
    small_disk: Path, tmp_path: Path, meshbridge_config, make_bridge, mesh_peer
) -> None:
    """A peer's 20 MiB body that is not gzip from its first bytes: the second download keeps a raw
    copy, which is new data like any payload: it stops while the margin is still free (one store
    disk problem, left in MESH, not counted as a sighting), and is kept once space returns."""
    raw = b"\x1f\x8b\x08\x00" + os.urandom(20 * MiB)  # a gzip header, then garbage
    headers = {"Content-Type": "application/octet-stream", "Mex-To": RECIPIENT, "Mex-WorkflowID": WORKFLOW}
    peer = mesh_peer(SENDER)
    posted = peer._session.post(
        f"{peer.mailbox_url}/outbox", data=raw, headers={**headers, "Content-Encoding": "gzip"}, timeout=120
    )
    posted.raise_for_status()
    mesh_id = str(posted.json()["message_id"])
    config = meshbridge_config(OUT_IN, store=f"{small_disk}/var/meshbridge.db", mailboxes=(SENDER, RECIPIENT))
    bridge = make_bridge(config)
    filler = fill(small_disk, leave=18 * MiB)  # room to start collecting, not for a 20 MiB copy
    [problem] = bridge.poll().problems  # the first sight: nothing kept, left in MESH
    assert "is not valid gzip" in problem and "download 1 of at most 5" in problem

    report = bridge.poll()
    assert disk_problems(report.problems) == report.problems and len(report.problems) == 1, report.problems
    assert "store disk full" in report.problems[0]
    assert inbox(mesh_peer, RECIPIENT) == [mesh_id] and bridge.store.find("in", mesh_id) is None
    assert free(small_disk) >= 16 * MiB
    filler.unlink()
    report = bridge.poll()  # the second sight of the same bytes: kept as received, invalid
    assert report.problems == [] and inbox(mesh_peer, RECIPIENT) == []
    [message] = bridge.messages(direction="in")
    assert message.state == "invalid" and message.payload_size == len(raw)


ITK_WORKFLOW = "TOC_FHIR_OP_ATTEN"
ITK_PAIR = f"""
[[routes]]
name = "toc-out"
direction = "outbound"
from = "{SENDER}"
to = "{RECIPIENT}"
workflow_id = "{ITK_WORKFLOW}"
payload_type = "fhir"
itk = {{ inf_ack = true, bus_ack = false, event = "ITK006D" }}
"""


def test_an_itk_message_collected_before_the_disk_filled_is_answered_once_space_returns(
    small_disk: Path, tmp_path: Path, meshbridge_config, make_bridge, mesh_peer
) -> None:
    """Its 20013 is new data: on a full disk the message waits (still ``mesh-acked``), never
    ``valid`` with an ack code recorded and no ack stored or sent."""
    sender = make_bridge(meshbridge_config(ITK_PAIR, name="sender.toml", store="sender/mb.db", mailboxes=(SENDER,)))
    inbound = f"""
[[routes]]
name = "toc-in"
direction = "inbound"
mailbox = "{RECIPIENT}"
workflow_id = "{ITK_WORKFLOW}"
payload_type = "fhir"
itk = {{}}
destination = {{ folder = "{tmp_path / "in"}" }}
"""
    config = meshbridge_config(inbound, store=f"{small_disk}/var/meshbridge.db", mailboxes=(RECIPIENT,))
    ours = make_bridge(config)
    source = tmp_path / "p.xml"
    source.write_bytes(b'<Patient xmlns="http://hl7.org/fhir"><id value="p1"/><gender value="unknown"/></Patient>')
    sent = sender.send(source, route="toc-out")
    mesh = ours.mailbox(RECIPIENT)
    for mesh_id in mesh.inbox():  # collected, not yet answered (as if a pass stopped there)
        pipeline.acknowledge(ours.store, mesh, pipeline.download(ours.store, mesh, mesh_id))
    [message] = ours.store.messages(state="mesh-acked")
    filler = fill(small_disk, leave=MiB)

    report = ours.poll(track=False)
    assert len(disk_problems(report.problems)) == 1, report.problems
    message = ours.store.get(message.id)
    assert (message.state, message.inf_ack_code) == ("mesh-acked", None)
    assert ours.store.messages(direction="out") == []

    filler.unlink()
    report = ours.poll(track=False)
    assert report.problems == []
    message = ours.store.get(message.id)
    assert (message.state, message.inf_ack_code) == ("delivered", "20013")
    [ack] = ours.store.messages(direction="out")
    assert ack.state == "sent" and ack.answers == message.id
    sender.poll(track=False)
    assert sender.store.get(sent.id).state == "complete"


def test_an_undecodable_itk_message_stored_before_the_disk_filled_is_answered_once_space_returns(
    small_disk: Path, tmp_path: Path, meshbridge_config, make_bridge, mesh_peer
) -> None:
    """Its 10009 is new data: on a full disk it stays ``received`` (not acknowledged in MESH, not
    recorded answered), and is acknowledged, ``invalid`` and answered once space returns."""
    from meshbridge.errors import UndecodableBody

    inbound = f"""
[[routes]]
name = "toc-in"
direction = "inbound"
mailbox = "{RECIPIENT}"
workflow_id = "{ITK_WORKFLOW}"
payload_type = "fhir"
itk = {{}}
destination = {{ folder = "{tmp_path / "in"}" }}
"""
    raw = b"\x1f\x8b\x08\x00" + os.urandom(1000)  # a gzip header, then garbage
    headers = {"Content-Type": "application/octet-stream", "Mex-To": RECIPIENT, "Mex-WorkflowID": ITK_WORKFLOW}
    peer = mesh_peer(SENDER)
    posted = peer._session.post(
        f"{peer.mailbox_url}/outbox", data=raw, headers={**headers, "Content-Encoding": "gzip"}, timeout=60
    )
    posted.raise_for_status()
    mesh_id = str(posted.json()["message_id"])
    ours = make_bridge(meshbridge_config(inbound, store=f"{small_disk}/var/meshbridge.db", mailboxes=(RECIPIENT,)))
    mesh = ours.mailbox(RECIPIENT)
    with pytest.raises(UndecodableBody):
        pipeline.download(ours.store, mesh, mesh_id)
    stored = pipeline.download(ours.store, mesh, mesh_id)  # seen twice: stored as received (a pass stopped here)
    assert stored.state == "received"
    filler = fill(small_disk, leave=MiB)

    report = ours.poll(track=False)
    assert len(disk_problems(report.problems)) == 1, report.problems
    message = ours.store.get(stored.id)
    assert (message.state, message.inf_ack_code) == ("received", None)
    assert inbox(mesh_peer, RECIPIENT) == [mesh_id] and ours.store.messages(direction="out") == []

    filler.unlink()
    report = ours.poll(track=False)
    assert report.problems == [] and inbox(mesh_peer, RECIPIENT) == []
    message = ours.store.get(stored.id)
    assert (message.state, message.inf_ack_code) == ("invalid", "10009")
    [answer] = ours.store.messages(direction="out")
    assert answer.state == "sent" and answer.answers == message.id
    assert answer.filename == "ITK-Response-10009.xml"


def test_the_service_keeps_running_on_a_full_disk_and_recovers_by_itself(
    small_disk: Path, tmp_path: Path, meshbridge_config, mesh_peer
) -> None:
    config = meshbridge_config(OUT_IN, store=f"{small_disk}/var/meshbridge.db", mailboxes=(SENDER, RECIPIENT))
    assert meshbridge(config, "status").returncode == 0
    filler = fill(small_disk, leave=256 * 1024)  # room for SQLite's shared-memory file, not for messages
    sent = [f"while full {n}".encode() for n in range(3)]
    for data in sent:
        mesh_peer(SENDER).send_message(RECIPIENT, data, workflow_id=WORKFLOW)
    log = tmp_path / "service.log"  # on another file system than the store
    with log.open("w") as err:
        service = subprocess.Popen(
            [sys.executable, "-m", "meshbridge", "--config", str(config), "--log-format", "json", "run"],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        wait_for(lambda: "store disk full" in log.read_text(), "the service to report the full disk")
        assert service.poll() is None and len(inbox(mesh_peer, RECIPIENT)) == 3
        filler.unlink()
        delivered = tmp_path / "delivered"
        wait_for(lambda: delivered.is_dir() and len(list(delivered.iterdir())) == 3, "the deliveries")
        wait_for(lambda: (small_disk / "var" / "meshbridge.db.reserve").exists(), "the reserve")
        assert service.poll() is None and inbox(mesh_peer, RECIPIENT) == []
        assert sorted(p.read_bytes() for p in delivered.iterdir()) == sorted(sent)
    finally:
        service.send_signal(signal.SIGTERM)
        service.wait(60)
    assert service.returncode == 0
    assert "Traceback" not in log.read_text()


def wait_for(condition, what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.2)


# -- no privilege needed ---------------------------------------------------------------------


def test_sqlite_full_leaves_messages_in_mesh_with_one_problem(meshbridge_config, make_bridge, mesh_peer) -> None:
    bridge = make_bridge(meshbridge_config(OUT_IN, mailboxes=(SENDER, RECIPIENT)))
    sent = [os.urandom(10_000) for _ in range(5)]  # stored inline: each needs new database pages
    for data in sent:
        mesh_peer(SENDER).send_message(RECIPIENT, data, workflow_id=WORKFLOW)
    conn = bridge.store.db.conn
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")  # the store can grow no more: SQLITE_FULL
    report = bridge.poll()
    assert len(report.problems) == 1 and report.problems[0].startswith("store disk full")
    assert "SQLITE_FULL" in report.problems[0]
    stored = bridge.store.messages(direction="in")
    assert len(inbox(mesh_peer, RECIPIENT)) + len(stored) == 5 and len(stored) < 5
    assert all(m.state != "received" for m in stored)  # a stored one was acknowledged
    conn.execute("PRAGMA max_page_count = 1073741823")
    report = bridge.poll()
    assert report.problems == [] and inbox(mesh_peer, RECIPIENT) == []
    delivered_once(bridge.store, Path(bridge.config.file).parent / "delivered", sent)


LIMITED = """
import os, resource, signal, sys
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # kept across exec: a write past the limit fails with EFBIG
os.execv(sys.executable, [sys.executable, "-m", "meshbridge", *sys.argv[2:]])
"""


def meshbridge(config: Path, *args: str, limit: int | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``meshbridge``; with ``limit``, under that ``RLIMIT_FSIZE`` (set in the child, then exec)."""
    command = ["-m", "meshbridge"] if limit is None else ["-c", LIMITED, str(limit)]
    return subprocess.run(
        [sys.executable, *command, "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_file_size_limit_is_handled_like_a_full_disk(meshbridge_config, mesh_peer) -> None:
    config = meshbridge_config(OUT_IN, mailboxes=(SENDER, RECIPIENT))
    assert meshbridge(config, "status").returncode == 0  # the store exists (its creation is not limited)
    small = [f"small {n}".encode() for n in range(3)]
    big = [os.urandom(2 * MiB) for _ in range(2)]  # payload files past the limit
    for data in small + big:
        mesh_peer(SENDER).send_message(RECIPIENT, data, workflow_id=WORKFLOW)
    done = meshbridge(config, "poll", limit=MiB)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    problems = [line for line in done.stderr.splitlines() if line.startswith("problem:")]
    assert len(problems) == 1 and "store disk" in problems[0] and "EFBIG" in problems[0], done.stderr
    assert len(inbox(mesh_peer, RECIPIENT)) >= 1  # what could not be stored is still in MESH
    done = meshbridge(config, "poll")
    assert done.returncode == 0 and "problem:" not in done.stderr, done.stderr
    assert inbox(mesh_peer, RECIPIENT) == []
    store = SQLiteStore(config.parent / "var" / "meshbridge.db")
    try:
        delivered_once(store, config.parent / "delivered", small + big)
        assert not list((config.parent / "var" / "payloads" / "tmp").iterdir())
    finally:
        store.close()


# -- temp files of killed downloads and uploads ------------------------------------------------

WRITER = """
import sys, time
from pathlib import Path
from meshbridge.store import SQLiteStore

store = SQLiteStore(sys.argv[1], inline_max=0)
ready, go = Path(sys.argv[2]), Path(sys.argv[3])

def blocks():
    for n in range(4):
        yield bytes([n]) * 1024 * 1024
    ready.touch()  # 4 MiB written to the temp file: a slow download, or a killed one
    while not go.exists():
        time.sleep(0.05)
    yield b"the end"

sha, size = store.payloads.write(blocks())
print(sha, size)
"""


def start_writer(store: Path, tmp_path: Path, name: str) -> tuple[subprocess.Popen[str], Path]:
    ready, go = tmp_path / f"{name}.ready", tmp_path / f"{name}.go"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(store), str(ready), str(go)], stdout=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert writer.poll() is None and time.monotonic() < deadline, "the writer did not start"
        time.sleep(0.05)
    return writer, go


def temp_files(store: Path) -> list[Path]:
    return sorted((store.parent / "payloads" / "tmp").iterdir())


def kill(writer: subprocess.Popen[str]) -> None:
    writer.send_signal(signal.SIGKILL)
    writer.communicate(timeout=30)


def test_temp_files_of_killed_writers_are_removed_at_start_up_and_live_ones_kept(tmp_path: Path) -> None:
    path = tmp_path / "var" / "mb.db"
    SQLiteStore(path).close()
    kill(start_writer(path, tmp_path, "first")[0])  # a download killed ...
    [leftover] = temp_files(path)
    assert leftover.stat().st_size >= 4 * MiB
    live, go = start_writer(path, tmp_path, "live")  # (its start-up removed the leftover)
    try:
        assert not leftover.exists() and len(temp_files(path)) == 1
        kill(start_writer(path, tmp_path, "second")[0])  # ... and killed again, while another runs
        assert len(temp_files(path)) == 2

        store = SQLiteStore(path)  # start-up
        try:
            assert len(temp_files(path)) == 1  # the killed one went; the one being written stays
            go.touch()
            out, _ = live.communicate(timeout=60)
            assert live.returncode == 0
            sha, size = out.split()
            assert int(size) == 4 * MiB + len(b"the end")
            store.payloads.verify(sha)  # whole, under its name
            assert temp_files(path) == []
        finally:
            store.close()
    finally:
        if live.poll() is None:
            kill(live)


def test_housekeeping_removes_temp_files_of_killed_writers(tmp_path: Path, meshbridge_config, make_bridge) -> None:
    bridge = make_bridge(meshbridge_config(OUT_IN))
    service = Service(bridge)
    live, go = start_writer(bridge.store.path, tmp_path, "live")
    try:
        kill(start_writer(bridge.store.path, tmp_path, "killed")[0])
        assert len(temp_files(bridge.store.path)) == 2
        service.housekeeping()
        assert len(temp_files(bridge.store.path)) == 1
        go.touch()
        out, _ = live.communicate(timeout=60)
        assert live.returncode == 0 and temp_files(bridge.store.path) == []
        bridge.store.payloads.verify(out.split()[0])
    finally:
        if live.poll() is None:
            kill(live)


def test_a_store_on_a_read_only_file_system_is_one_line_saying_so(meshbridge_config, small_disk: Path) -> None:
    """A failing disk the kernel remounted read-only: SQLite says only "unable to open database
    file", the file system says why. Nothing changes."""
    store = small_disk / "var" / "meshbridge.db"
    config = meshbridge_config(store=str(store))
    from test_store_damage import meshbridge, snapshot, store_with_history

    store_with_history(store, messages=3)
    before = snapshot(store.parent)
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    for command in ("status", "messages", "poll"):
        done = meshbridge(config, command)
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
        lines = done.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("meshbridge: ") and str(store) in lines[0]
        assert lines[0].endswith(
            ": its file system is read-only (a store writes beside itself, its -wal and -shm, even to be read)"
        )
    assert snapshot(store.parent) == before
