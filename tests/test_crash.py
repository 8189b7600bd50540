"""Crash tests: real ``meshbridge`` processes, a real mesh-sandbox, a real store; no mocks.

The store is read through the :class:`~meshbridge.store.Store` interface only, so the tests run on
SQLite and on PostgreSQL (the ``backend`` fixture, tests/store_backends.py). PostgreSQL runs every
crash point once (its first occurrence), a chunked upload killed mid-way, the process killed again
and again, the two services and the SIGTERM mid chunked send; SQLite also runs every point's later
occurrence and the other chunk counts (the same store code: CI time), and MESH stopped mid-run
(MESH's doing, not the store's).

1. A process is SIGKILLed at every named step boundary (:data:`meshbridge.faults.POINTS`), at the
   first and at a later pass, then restarted without the fault: every payload is delivered exactly
   once, nothing is lost, and MESH never had an acknowledge before the bytes and row were durable.
2. A chunked upload killed after chunk k continues from chunk k, on the same MESH message.
3. The sandbox (file store) stopped and restarted mid-run: nothing is lost.
4. Two ``meshbridge run`` services on one store: each message is sent once and delivered once.
5. SIGTERM in the middle of a large chunked send: the upload stops after the chunk in hand, exit 0,
   no half-written files; the next run resumes it from there, each chunk sent once.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import OUT_IN, sha256, write_random
from mesh_client import MeshClient
from store_backends import Backend

from meshbridge.config import load
from meshbridge.faults import POINTS
from meshbridge.sandbox import PASSWORD, Sandbox, config_text
from meshbridge.store import Store, StoredMessage, connect

SENDER, RECIPIENT = "X26ABC1", "X26ABC2"
MAILBOXES = (SENDER, RECIPIENT)
WORKFLOW, ITK_WORKFLOW = "TEST_WORKFLOW", "TOC_FHIR_OP_ATTEN"
ACK_WORKFLOW = ITK_WORKFLOW + "_ACK"


def with_source(routes: str) -> str:
    """OUT_IN-style routes whose outbound route takes files from the folder ``outbox``."""
    return routes.replace('payload_type = "binary"\n', 'payload_type = "binary"\nsource = { folder = "outbox" }\n', 1)


# plain binary payloads from a folder, and ITK3 ones from another: the recipient answers 20013
ROUTES = with_source(OUT_IN) + (
    f"""
[[routes]]
name = "itk-out"
direction = "outbound"
from = "{SENDER}"
to = "{RECIPIENT}"
workflow_id = "{ITK_WORKFLOW}"
payload_type = "fhir"
itk = {{ inf_ack = true, bus_ack = false, event = "ITK006D" }}
source = {{ folder = "itk-outbox" }}

[[routes]]
name = "itk-in"
direction = "inbound"
mailbox = "{RECIPIENT}"
workflow_id = "{ITK_WORKFLOW}"
payload_type = "fhir"
itk = {{}}
destination = {{ folder = "itk-delivered" }}
"""
)
# a dead process's send claim is resumed at once (not after 15 minutes); tracking on every run
FAST = 'send_lease = "0s"\ntracking_interval = "0s"\nretry_backoff = "0s"\ntimeout = "20s"\n'
SERVICE = '\n[service]\nsource_settle = "0s"\ndelivery_lease = "0s"\n'

PATIENT = """<Patient xmlns="http://hl7.org/fhir"><id value="crash{n}"/><gender value="unknown"/>
<birthDate value="1970-01-01"/></Patient>"""


# -- helpers -------------------------------------------------------------------------------


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


def crash(config: Path, point: str, *args: str) -> None:
    """Run (``run --once`` unless told otherwise) with the fault set; it must die there."""
    done = meshbridge(config, *(args or ("run", "--once")), crash_at=point)
    assert done.returncode == -signal.SIGKILL, f"{point} was not reached (exit {done.returncode}):\n{done.stderr}"


@contextmanager
def opened(config: Path) -> Iterator[Store]:
    """The config's store (SQLite or PostgreSQL), as another meshbridge process would open it."""
    store = connect(load(config).store)
    try:
        yield store
    finally:
        store.close()


def event_count(config: Path) -> int:
    with opened(config) as store:
        return sum(len(store.events(m.id)) for m in store.messages())


def run_until_quiet(config: Path, most: int = 6) -> int:
    """``run --once`` until a run changes nothing in the store: a quiet run re-sends nothing."""
    before = event_count(config)
    for runs in range(1, most + 1):
        done = meshbridge(config, "run", "--once")
        assert done.returncode == 0, done.stderr
        after = event_count(config)
        if after == before:
            return runs
        before = after
    raise AssertionError(f"still busy after {most} runs")


def peer(sandbox: Sandbox, mailbox: str) -> MeshClient:
    return MeshClient(sandbox.url, mailbox, PASSWORD, shared_key=sandbox.shared_key.encode())


def inbox(sandbox: Sandbox, mailbox: str) -> list[str]:
    with peer(sandbox, mailbox) as client:
        return list(client.list_messages())


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []


def assert_timelines(store: Store, rows: list[StoredMessage]) -> None:
    """No step twice on any timeline (one ``sent``, one ``delivered``...), each chunk recorded once."""
    for m in rows:
        events = store.events(m.id)
        kinds = Counter(e.kind for e in events)
        twice = {k: n for k, n in kinds.items() if n > 1 and k not in ("resending", "chunk-sent")}
        assert twice == {}, f"{m.id} ({m.direction} {m.workflow_id} {m.state}): {twice}"
        chunks = [e.detail["chunk"] for e in events if e.kind == "chunk-sent"]
        assert len(chunks) == len(set(chunks)), f"{m.id}: a chunk recorded twice: {chunks}"


# -- 1. every crash point, at the first and a later pass --------------------------------------


def drop_payloads(root: Path, plain: int, itk: int) -> dict[str, list[bytes]]:
    """Payload files in the two source folders, oldest first (the order sources take them)."""
    made: dict[str, list[bytes]] = {"outbox": [], "itk-outbox": []}
    stamp = time.time() - 100
    for folder, count in (("outbox", plain), ("itk-outbox", itk)):
        (root / folder).mkdir(exist_ok=True)
        for n in range(count):
            data = os.urandom(1000 + 997 * n) if folder == "outbox" else PATIENT.format(n=n).encode()
            path = root / folder / (f"plain-{n}.bin" if folder == "outbox" else f"patient-{n}.xml")
            path.write_bytes(data)
            stamp += 1
            os.utime(path, (stamp, stamp))
            made[folder].append(data)
    return made


def assert_each_once(root: Path, config: Path, sandbox: Sandbox, made: dict[str, list[bytes]]) -> None:
    """Every payload sent once and delivered once, byte for byte; nothing left anywhere."""
    plain, itk = made["outbox"], made["itk-outbox"]
    for folder in ("outbox", "itk-outbox"):
        assert files(root / folder) == [], f"{folder} still holds a payload"
        assert len(files(root / folder / ".meshbridge" / "sent")) == len(made[folder])
    for mailbox in MAILBOXES:
        assert inbox(sandbox, mailbox) == [], f"{mailbox}'s MESH inbox is not empty"
    with opened(config) as store:
        rows = store.messages()
        # one MESH message per payload (a second send would be a second inbound row), one 20013 each
        states = Counter((m.direction, m.workflow_id, m.state) for m in rows)
        assert states == {
            ("out", WORKFLOW, "delivered"): len(plain),
            ("in", WORKFLOW, "delivered"): len(plain),
            ("out", ITK_WORKFLOW, "complete"): len(itk),
            ("in", ITK_WORKFLOW, "delivered"): len(itk),
            ("out", ACK_WORKFLOW, "delivered"): len(itk),
            ("in", ACK_WORKFLOW, "correlated"): len(itk),
        }, states
        assert Counter(map(sha256, files(root / "delivered"))) == Counter(map(digest, plain))
        wrapped = [m.payload_sha256 for m in rows if m.route == "itk-out"]
        assert Counter(map(sha256, files(root / "itk-delivered"))) == Counter(wrapped)
        bundles = [store.payloads.read(sha).decode() for sha in wrapped]
        assert sorted(n for n in range(len(itk)) for b in bundles if f'<id value="crash{n}"/>' in b) == list(
            range(len(itk))
        )  # each patient wrapped and delivered once
        assert_timelines(store, rows)
        assert not list((store.payloads.root / "tmp").iterdir())  # no half-written payload file
    assert not [p for p in root.rglob("*") if p.name.endswith(".part")]


def assert_no_ack_before_durable(config: Path, sandbox: Sandbox) -> None:
    """Every message MESH says was acknowledged has its row and its verified bytes in the store."""
    with opened(config) as store, peer(sandbox, SENDER) as client:
        for m in store.messages(direction="out"):
            if not (m.mesh_message_id and m.peer == RECIPIENT):
                continue
            if str(client.track_message(m.mesh_message_id)["status"]).lower() == "acknowledged":
                received = store.find("in", m.mesh_message_id)
                assert received is not None, f"{m.mesh_message_id} acknowledged, never stored"
                store.payloads.verify(received.payload_sha256)


@pytest.fixture
def flow(tmp_path: Path, backend_config) -> tuple[Path, dict[str, list[bytes]]]:
    """Two plain payloads and two ITK3 ones in source folders; X26ABC1 sends, X26ABC2 receives.

    One ``run --once`` passes each send point 4 times (5 with the 20013 answers), each receive and
    deliver point 4 times, ``source:stored`` 4 times and ``respond:stored`` twice.
    """
    config = backend_config(ROUTES, mesh=FAST, mailboxes=MAILBOXES)
    with config.open("a") as f:
        f.write(SERVICE)
    return config, drop_payloads(tmp_path, plain=2, itk=2)


LATER = {"respond:stored": 2}
CASES = [(point, 1) for point in POINTS] + [(point, LATER.get(point, 3)) for point in POINTS]


# Every crash point on PostgreSQL too, once each (its first occurrence): the points are in the shared
# store code, and the repeated-kill test below runs on both; the later occurrences on SQLite only (CI time).
BACKEND_CASES = [("sqlite", p, n) for p, n in CASES] + [("postgresql", p, 1) for p in POINTS]


@pytest.mark.parametrize(
    ("backend", "point", "nth"), BACKEND_CASES, indirect=["backend"], ids=[f"{b}-{p}#{n}" for b, p, n in BACKEND_CASES]
)
def test_killed_at_a_step_then_restarted_delivers_each_payload_once(
    point: str, nth: int, flow, tmp_path: Path, mesh_sandbox: Sandbox
) -> None:
    config, made = flow
    crash(config, f"{point}#{nth}")

    assert_no_ack_before_durable(config, mesh_sandbox)
    if point in ("send:chunk", "send:accepted"):  # MESH has the n-th message, the store not its id
        with opened(config) as store:
            assert len([m for m in store.messages(direction="out") if m.mesh_message_id]) == nth - 1
        assert len(inbox(mesh_sandbox, RECIPIENT)) == nth  # after the restart: still one each
    if point.startswith("receive:"):  # a batch is downloaded and recorded, made durable, then acknowledged
        with opened(config) as store:
            sent = [m for m in store.messages(direction="out") if m.mesh_message_id and m.peer == RECIPIENT]
            received = store.messages(direction="in")
        acked = [m for m in received if m.state != "received"]
        in_hand = [m for m in received if m.state == "received"]
        waiting = inbox(mesh_sandbox, RECIPIENT)
        if point == "receive:downloaded":  # the n-th one's bytes on disk, no row; nothing acknowledged yet
            assert len(received) == nth - 1 and not acked
            assert len(waiting) == len(sent)
        elif point == "receive:stored":  # the batch's rows durable; n - 1 acknowledged, the n-th not yet
            assert len(acked) == nth - 1 and in_hand
            assert all(m.mesh_message_id in waiting for m in in_hand)
            assert len(waiting) == len(sent) - (nth - 1)
        else:  # the n-th acknowledged after its row was durable; only the state change was lost
            assert len(acked) == nth - 1
            assert [m.mesh_message_id in waiting for m in in_hand].count(False) == 1
            assert len(waiting) == len(sent) - nth

    run_until_quiet(config)
    assert_each_once(tmp_path, config, mesh_sandbox, made)


def test_killed_again_and_again_while_recovering(flow, tmp_path: Path, mesh_sandbox: Sandbox) -> None:
    """Each restart dies too, somewhere else, before a clean run finishes the work."""
    config, made = flow
    for point in (
        "send:accepted#3",  # MESH took an ITK message, nobody knows
        "receive:stored#2",
        "respond:stored#1",  # before delivering: a pass answers every message it collected first
        "send:chunk#1",
        "deliver:written#1",
        "receive:acknowledged#1",
        "deliver:recorded#1",
    ):
        crash(config, point)
        assert_no_ack_before_durable(config, mesh_sandbox)
    run_until_quiet(config)
    assert_each_once(tmp_path, config, mesh_sandbox, made)


# -- 2. a chunked upload killed mid-way continues where MESH left off ---------------------------


@pytest.fixture
def file_sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    """A sandbox of our own with a file store: it keeps messages across a restart, and its chunk
    files show which chunks were uploaded when (``<store>/<recipient>/in/<message id>/<n>``)."""
    with Sandbox(store_mode="file", store_dir=tmp_path / "mesh-store") as sandbox:
        yield sandbox


def write_config(backend: Backend, sandbox: Sandbox, routes: str, mesh: str = FAST) -> Path:
    path = backend.tmp_path / "meshbridge.toml"
    path.write_text(backend.config(config_text(sandbox, routes, mesh=mesh, mailboxes=MAILBOXES)) + SERVICE)
    return path


def chunk_files(sandbox: Sandbox) -> dict[str, dict[str, int]]:
    """``{MESH message id: {chunk number: mtime ns}}`` for every message the recipient was sent."""
    assert sandbox.store_dir is not None
    folder = sandbox.store_dir / RECIPIENT / "in"
    return {d.name: {c.name: c.stat().st_mtime_ns for c in d.iterdir()} for d in folder.iterdir() if d.is_dir()}


@pytest.mark.parametrize(
    ("backend", "nth"), [("sqlite", 1), ("sqlite", 3), ("sqlite", 5), ("postgresql", 3)], indirect=["backend"]
)
def test_an_interrupted_chunked_upload_continues_from_the_recorded_chunk(
    nth: int, tmp_path: Path, file_sandbox: Sandbox, backend: Backend
) -> None:
    """5 MB in 1 MB chunks, killed after MESH took chunk ``nth`` and before that was recorded."""
    config = write_config(backend, file_sandbox, OUT_IN, mesh=FAST + 'chunk_size = "1MB"\n')
    big = write_random(tmp_path / "big.bin", 5_000_000)
    crash(config, f"send:chunk#{nth}", "send", str(big), "--route", "out")
    [(mesh_id, before)] = chunk_files(file_sandbox).items()  # one MESH message, chunks 1..nth uploaded
    assert sorted(before) == [str(n) for n in range(1, nth + 1)]

    run_until_quiet(config)
    [(again, after)] = chunk_files(file_sandbox).items()  # still that one MESH message, now whole
    assert again == mesh_id and sorted(after) == [str(n) for n in range(1, 6)]
    # Chunks meshbridge had recorded are not uploaded again, nor is the first one (it made the
    # message id, so MESH found it by local id), nor the last one when MESH already has it.
    kept = range(1, nth + 1) if nth in (1, 5) else range(1, nth)
    assert {n: after[str(n)] for n in kept} == {n: before[str(n)] for n in kept}
    assert all(after[str(n)] > max(before.values()) for n in range(max(kept) + 1, 6))

    [delivered] = files(tmp_path / "delivered")
    assert sha256(delivered) == sha256(big)
    with opened(config) as store:
        [out] = store.messages(direction="out")
        [received] = store.messages(direction="in")
        events = store.events(out.id)
        assert_timelines(store, [out, received])
    assert (out.state, out.mesh_message_id, out.chunks_done) == ("delivered", mesh_id, 5)
    assert (received.state, received.mesh_message_id) == ("delivered", mesh_id)
    assert [e.kind for e in events if e.kind in ("sending", "resending")] == ["sending", "resending"]
    assert [e.detail["chunk"] for e in events if e.kind == "chunk-sent"] == [f"{n}/5" for n in range(1, 6)]
    found = [e.detail["chunk"] for e in events if e.detail.get("found_in_mesh")]
    assert found == {1: ["1/5"], 3: [], 5: ["5/5"]}[nth]


# -- 3. the sandbox stopped and restarted mid-run (file store) ----------------------------------


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # (MESH's doing, not the store's)
def test_mesh_stopped_and_restarted_mid_run_loses_nothing(
    tmp_path: Path, file_sandbox: Sandbox, backend: Backend
) -> None:
    # tracking once a minute, so that the poll while MESH is down does not also try (and retry) it
    mesh = FAST.replace('tracking_interval = "0s"', 'tracking_interval = "1m"') + 'chunk_size = "1MB"\n'
    config = write_config(backend, file_sandbox, with_source(OUT_IN), mesh=mesh)
    (tmp_path / "outbox").mkdir()
    plain = [os.urandom(500), os.urandom(700), os.urandom(2_500_000)]  # the last in three chunks
    for n, data in enumerate(plain):
        (tmp_path / "outbox" / f"p{n}.bin").write_bytes(data)
        os.utime(tmp_path / "outbox" / f"p{n}.bin", (time.time() - 10 + n,) * 2)
    foreign = b"from a sender that is not meshbridge"
    with peer(file_sandbox, "X26ABC3") as other:
        other.send_message(RECIPIENT, foreign, workflow_id=WORKFLOW)

    # a run sends all three, stores all four, acknowledges one and dies before acknowledging the next
    crash(config, "receive:stored#2")
    with opened(config) as store:
        assert [m.state for m in store.messages(direction="in")] == ["mesh-acked", *["received"] * 3]
    file_sandbox.stop()

    down = meshbridge(config, "poll", "--mailbox", RECIPIENT, "--json")  # MESH is down: reported
    assert down.returncode == 3, down.stderr  # MESH could not be reached: cron and systemd see it
    problems = json.loads(down.stdout)["problems"]
    assert problems and all("ConnectionError" in p for p in problems), problems
    with opened(config) as store:  # local work goes on; the stored ones wait, not acknowledged
        assert [m.state for m in store.messages(direction="in")] == ["delivered", *["received"] * 3]

    file_sandbox.start()  # same port, same files: what was sent before the stop is still there
    assert len(inbox(file_sandbox, RECIPIENT)) == 3  # the three stored, not yet acknowledged
    run_until_quiet(config)
    assert inbox(file_sandbox, RECIPIENT) == []
    assert sorted(map(sha256, files(tmp_path / "delivered"))) == sorted(map(digest, [*plain, foreign]))
    with opened(config) as store:
        rows = store.messages()
        assert Counter((m.direction, m.state) for m in rows) == {("out", "sent"): 3, ("in", "delivered"): 4}
        assert_timelines(store, rows)
    with peer(file_sandbox, SENDER) as client:  # and MESH says the recipient took each one
        assert {client.track_message(m.mesh_message_id)["status"] for m in rows if m.direction == "out"} == {
            "acknowledged"
        }


# -- 4. two services on one store ---------------------------------------------------------------


def service(config: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "MESHBRIDGE_CRASH_AT"}
    with log.open("w") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "meshbridge", "--config", str(config), "--log-level", "INFO", "run"],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=env,
        )


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


# Each delivery runs a command that copies the payload to a new file: a second delivery of the
# same message shows as a second file (a folder destination would overwrite the first).
COPY = 'cp "$1" "$2/$(basename "$1").$$"'


def test_two_services_on_one_store_send_and_deliver_each_message_once(
    tmp_path: Path, mesh_sandbox: Sandbox, backend: Backend
) -> None:
    copies = tmp_path / "copies"
    copies.mkdir()
    command = f'command = ["sh", "-c", \'{COPY}\', "sh", "{{path}}", "{copies}"]'
    routes = with_source(OUT_IN).replace('destination = { folder = "delivered" }', f"destination = {{ {command} }}")
    text = config_text(mesh_sandbox, routes, mailboxes=MAILBOXES).replace('"5s"', '"1s"')  # poll every second
    text = backend.config(text)
    config = tmp_path / "meshbridge.toml"
    config.write_text(text + '\n[service]\nsend_interval = "1s"\nsource_settle = "0s"\n')
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    payloads = [os.urandom(200 + n) for n in range(24)]
    for n, data in enumerate(payloads[:16]):
        (outbox / f"p{n:02}.bin").write_bytes(data)

    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    processes = [service(config, log) for log in logs]
    try:
        time.sleep(1.5)
        for n, data in enumerate(payloads[16:], start=16):  # more while both run, written then renamed
            (outbox / f"p{n:02}.bin.part").write_bytes(data)
            os.replace(outbox / f"p{n:02}.bin.part", outbox / f"p{n:02}.bin")
        wait_for(lambda: len(files(copies)) >= len(payloads), 60, "every payload delivered")
        time.sleep(2.5)  # more polls by both: nothing may come twice
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        codes = [process.wait(60) for process in processes]
    assert codes == [0, 0], [log.read_text()[-2000:] for log in logs]

    assert sorted(map(sha256, files(copies))) == sorted(map(digest, payloads))  # each delivered once
    assert files(outbox) == []
    assert len(files(outbox / ".meshbridge" / "sent")) == len(payloads)
    assert inbox(mesh_sandbox, RECIPIENT) == []
    with opened(config) as store:
        rows = store.messages()
        assert Counter(m.direction for m in rows) == {"out": len(payloads), "in": len(payloads)}  # sent once
        assert {m.state for m in rows if m.direction == "in"} == {"delivered"}
        assert {m.state for m in rows if m.direction == "out"} <= {"sent", "delivered"}
        assert_timelines(store, rows)
        assert not any(e.kind == "resending" for m in rows for e in store.events(m.id))
    text = "".join(log.read_text() for log in logs)
    assert "Traceback" not in text and "WARNING meshbridge" not in text and "ERROR meshbridge" not in text, text


# -- 5. SIGTERM in the middle of a large chunked send -------------------------------------------


def test_sigterm_mid_chunked_send_stops_between_chunks_and_the_next_run_resumes(
    tmp_path: Path, file_sandbox: Sandbox, backend: Backend
) -> None:
    # the default send lease (15 min): the stopped send's claim is released, not left to lapse
    mesh = 'chunk_size = "500KB"\n' + FAST.replace('send_lease = "0s"\n', "")
    config = write_config(backend, file_sandbox, with_source(OUT_IN), mesh=mesh)
    (tmp_path / "outbox").mkdir()
    big = write_random(tmp_path / "outbox" / "big.bin.part", 20_000_000).rename(tmp_path / "outbox" / "big.bin")
    original = sha256(big)
    watching = connect(load(config).store)  # the store, opened before the service: another reader

    def chunks_done() -> int:
        return max((m.chunks_done or 0 for m in watching.messages(direction="out")), default=0)

    log = tmp_path / "service.log"
    process = service(config, log)
    try:
        wait_for(lambda: chunks_done() >= 2, 60, "the upload to start")
        assert chunks_done() < 40  # mid-upload (40 chunks)
        process.send_signal(signal.SIGTERM)
        code = process.wait(60)
    finally:
        watching.close()
        if process.poll() is None:
            process.kill()
            process.wait()
    assert code == 0, log.read_text()[-2000:]
    assert "stopping on signal 15" in log.read_text() and "Traceback" not in log.read_text()
    # nothing half-written: no temp files in the destination, the outbox or the payload store
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".part") or p.name.startswith(".meshbridge-")]
    with opened(config) as store:  # stopped after the chunk in hand: still sending, its claim released
        assert not list((store.payloads.root / "tmp").iterdir())
        [out] = store.messages(direction="out")
        stopped_at = out.chunks_done
        assert out.state == "sending" and 2 <= stopped_at < 40
        [interrupted] = [e for e in store.events(out.id) if e.kind == "send-interrupted"]
        assert interrupted.detail == {"reason": "stopping", "chunk": f"{stopped_at}/40"}
        assert store.stale_sending(900.0) == [out]  # resumable at once, not after the lease

    run_until_quiet(config)
    [delivered] = files(tmp_path / "delivered")
    assert sha256(delivered) == original
    with opened(config) as store:
        [out] = store.messages(direction="out")
        [received] = store.messages(direction="in")
        assert (out.state, out.chunks_done, received.state) == ("delivered", 40, "delivered")
        events = store.events(out.id)
        chunks = [e.detail["chunk"] for e in events if e.kind == "chunk-sent"]
        assert chunks == [f"{n}/40" for n in range(1, 41)]  # each chunk once: resumed where it stopped
        assert [e.kind for e in events if e.kind in ("sending", "resending")] == ["sending", "resending"]
        assert_timelines(store, [out, received])
    assert inbox(file_sandbox, RECIPIENT) == []
