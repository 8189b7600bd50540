"""`meshbridge run`: folder sources, run --once, SIGTERM, JSON logs with secrets redacted, housekeeping."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import OUT_IN, TRACK_NOW

from meshbridge.sources import complete_files

SOURCE = OUT_IN.replace('payload_type = "binary"\n', 'payload_type = "text"\nsource = { folder = "outbox" }\n', 1)


def cli(config: Path, *args: str, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "meshbridge", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
        **kwargs,
    )


def test_only_complete_files_are_taken(tmp_path: Path) -> None:
    for name in ("done.txt", "writing.txt.part", ".hidden", "copy.tmp", "fresh.txt"):
        (tmp_path / name).write_text(name)
    old = time.time() - 10
    for name in ("done.txt", "writing.txt.part", ".hidden", "copy.tmp"):
        os.utime(tmp_path / name, (old, old))
    assert [p.name for p in complete_files(tmp_path, settle=2)] == ["done.txt"]  # fresh.txt is still settling


def test_run_once_takes_sources_sends_collects_and_delivers(tmp_path: Path, meshbridge_config) -> None:
    config = meshbridge_config(SOURCE, mesh='tracking_interval = "0s"')
    with open(config, "a") as f:
        f.write('\n[service]\nsource_settle = "0s"\n')
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    (outbox / "letter.txt").write_text("from the EPR's folder\n")
    (outbox / "half-written.txt.part").write_text("not yet")
    (outbox / "bad.txt").write_bytes(b"\xff\xfe not text")

    done = cli(config, "run", "--once")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in outbox.iterdir()) == [".meshbridge", "half-written.txt.part"]
    [sent] = list((outbox / ".meshbridge" / "sent").iterdir())
    [rejected] = list((outbox / ".meshbridge" / "rejected").iterdir())
    assert sent.name.endswith("_letter.txt") and rejected.name.endswith("_bad.txt")
    [delivered] = list((tmp_path / "delivered").iterdir())
    assert delivered.read_text() == "from the EPR's folder\n"
    states = {m["direction"] + ":" + m["state"] for m in json.loads(cli(config, "messages", "--json").stdout)}
    assert states == {"out:delivered", "out:rejected", "in:delivered"}

    (outbox / "letter.txt").write_text("from the EPR's folder\n")  # the same file again is a new message
    assert cli(config, "run", "--once").returncode == 0
    assert len(list((outbox / ".meshbridge" / "sent").iterdir())) == 2


def test_a_file_stored_before_a_crash_is_not_sent_twice(tmp_path: Path, meshbridge_config) -> None:
    config = meshbridge_config(SOURCE)
    with open(config, "a") as f:
        f.write('\n[service]\nsource_settle = "0s"\n')
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    (outbox / "letter.txt").write_text("once only\n")
    crashed = cli(config, "run", "--once", env={**os.environ, "MESHBRIDGE_CRASH_AT": "source:stored"})
    assert crashed.returncode == -signal.SIGKILL
    assert (outbox / "letter.txt").exists()  # stored and sent, but never moved aside
    assert cli(config, "run", "--once").returncode == 0
    assert not (outbox / "letter.txt").exists()
    outbound = [m for m in json.loads(cli(config, "messages", "--json").stdout) if m["direction"] == "out"]
    assert len(outbound) == 1


def test_sigterm_stops_cleanly_and_logs_are_json_without_secrets(tmp_path: Path, meshbridge_config) -> None:
    config = meshbridge_config(OUT_IN)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "meshbridge",
            "--config",
            str(config),
            "--log-format",
            "json",
            "--log-level",
            "INFO",
            "run",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(3)
    assert process.poll() is None  # running
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    messages = [entry["message"] for entry in lines]
    assert any(m.startswith("meshbridge running") for m in messages)
    assert any(m.startswith("stopping on signal 15") for m in messages) and messages[-1] == "meshbridge stopped"
    assert "TestKey" not in stderr
    assert not list(tmp_path.rglob("*.part"))  # no half-written files


def test_housekeeping_removes_old_payloads_only(tmp_path: Path, meshbridge_config, make_bridge, mesh_peer) -> None:
    bridge = make_bridge(meshbridge_config(OUT_IN, mesh=TRACK_NOW))
    payload = tmp_path / "p.bin"
    payload.write_bytes(b"old and finished")
    sent = bridge.send(payload, route="out")
    bridge.poll()
    inbound = bridge.store.find("in", sent.mesh_message_id)
    assert bridge.store.remove_old_payloads(3600) == 0  # nothing is old yet
    bridge.store.db.execute("UPDATE messages SET updated_at = '2000-01-01T00:00:00+00:00'")
    assert bridge.store.remove_old_payloads(3600) == 1  # the same bytes, stored once
    assert not bridge.store.payloads.exists(inbound.payload_sha256)
    assert bridge.store.get(inbound.id).payload_sha256 is None
    assert bridge.store.events(inbound.id)[-1].kind == "payload-removed"
    assert bridge.store.get(sent.id).state == "delivered"
    unfinished = (
        bridge.send(payload.with_name("q.bin"), route="out")
        if payload.with_name("q.bin").write_bytes(b"young")
        else None
    )
    bridge.store.db.execute("UPDATE messages SET updated_at = '2000-01-01T00:00:00+00:00'")
    assert bridge.store.remove_old_payloads(3600) == 0  # sent, not yet delivered: not finished, kept
    assert unfinished is not None and bridge.store.payloads.exists(unfinished.payload_sha256)
