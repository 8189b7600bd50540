"""The command line in real processes: send, a restart, poll, status, messages --json, show, demo."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from conftest import OUT_IN, TRACK_NOW

from meshbridge.testing import run_cli as cli

JSON_FIELDS = {
    "id", "direction", "state", "route", "mesh_message_id", "workflow_id", "payload_type", "itk_message_id",
    "inf_ack_code", "bus_ack_code", "overdue", "created_at", "updated_at",
}  # fmt: skip


def test_send_restart_poll_in_separate_processes(tmp_path: Path, meshbridge_config) -> None:
    config = meshbridge_config(OUT_IN, mesh=TRACK_NOW)
    payload = tmp_path / "note.txt"
    payload.write_text("sent by one process, collected by another")

    sent = cli(config, "send", str(payload), "--route", "out")
    assert sent.returncode == 0, sent.stderr
    message_id = sent.stdout.strip()

    # a new process (the restart) collects, acknowledges, delivers, tracks
    polled = cli(config, "poll")
    assert polled.returncode == 0, polled.stderr
    assert "received: 1" in polled.stdout and "delivered: 1" in polled.stdout

    listing = json.loads(cli(config, "messages", "--json").stdout)
    assert len(listing) == 2
    assert all(set(item) >= JSON_FIELDS for item in listing)
    out = next(m for m in listing if m["direction"] == "out")
    inbound = next(m for m in listing if m["direction"] == "in")
    assert out["id"] == message_id and out["state"] == "delivered" and out["overdue"] is False
    assert inbound["mesh_message_id"] == out["mesh_message_id"] and inbound["state"] == "delivered"
    assert (tmp_path / "delivered" / f"{out['mesh_message_id']}_note.txt").read_text() == payload.read_text()

    only_in = json.loads(cli(config, "messages", "--json", "--direction", "in").stdout)
    assert [m["id"] for m in only_in] == [inbound["id"]]
    assert json.loads(cli(config, "messages", "--json", "--state", "unrouted").stdout) == []

    status = json.loads(cli(config, "status", "--json").stdout)
    assert status == {
        "counts": {"in": {"delivered": 1}, "out": {"delivered": 1}},
        "overdue": 0,
        "overdue_messages": 0,
        "owed": 0,
        "by_route": [
            {"route": "in", "direction": "in", "state": "delivered", "messages": 1},
            {"route": "out", "direction": "out", "state": "delivered", "messages": 1},
        ],
    }

    shown = json.loads(cli(config, "show", message_id, "--json").stdout)
    assert [e["kind"] for e in shown["events"]] == ["accepted", "sending", "sent", "delivered"]
    # sent to a mailbox of our own: the MESH id names both ends, and show lists them
    by_mesh_id = cli(config, "show", out["mesh_message_id"].lower())
    assert by_mesh_id.returncode == 2 and by_mesh_id.stdout == ""
    assert f"names 2 messages: {inbound['id']} (in, delivered, " in by_mesh_id.stderr
    assert f", {message_id} (out, delivered, " in by_mesh_id.stderr

    table = cli(config, "messages")
    assert table.returncode == 0 and [row.split()[0] for row in table.stdout.splitlines()[2:]] == [
        inbound["id"],
        message_id,
    ]  # newest first, ids whole


def test_show_unknown_is_exit_1(meshbridge_config) -> None:
    done = cli(meshbridge_config(OUT_IN), "show", "does-not-exist")
    assert done.returncode == 1
    assert done.stderr.strip() == "meshbridge: no message with id 'does-not-exist'"


def test_send_errors_are_one_line(tmp_path: Path, meshbridge_config) -> None:
    config = meshbridge_config(OUT_IN)
    missing = cli(config, "send", str(tmp_path / "nope.txt"), "--route", "out")
    assert missing.returncode == 1 and "cannot read" in missing.stderr and "Traceback" not in missing.stderr
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    refused = cli(config, "send", str(empty), "--route", "out")
    assert refused.returncode == 1 and "payload is empty" in refused.stderr
    no_route = cli(config, "send", str(empty), "--route", "nope")
    assert no_route.returncode == 2 and "no route named 'nope'" in no_route.stderr
    usage = cli(config, "send", str(empty))
    assert usage.returncode == 2 and "--route" in usage.stderr
    [stored] = json.loads(cli(config, "messages", "--json").stdout)  # only the empty one, quarantined
    assert (stored["id"], stored["state"]) == (refused.stdout.strip(), "rejected")


def test_unknown_recipient_is_refused_and_kept(tmp_path: Path, meshbridge_config) -> None:
    config = meshbridge_config(OUT_IN)
    payload = tmp_path / "p.txt"
    payload.write_text("x")
    done = cli(config, "send", str(payload), "--from", "X26ABC1", "--to", "NOSUCHBOX", "--workflow", "WF")
    assert done.returncode == 1
    assert "MESH refused" in done.stderr and "12" in done.stderr and "Unregistered" in done.stderr
    [failed] = json.loads(cli(config, "messages", "--json", "--state", "failed").stdout)
    assert failed["peer"] == "NOSUCHBOX" and "Unregistered" in failed["last_error"]


def test_demo_passes_and_leaves_nothing_behind() -> None:
    """(Its wall time is reported by tests/bench/bench_timings.py.)"""
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    done = subprocess.run([sys.executable, "-m", "meshbridge", "demo"], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "demo passed" in done.stdout and "sha256 matches" in done.stdout
    assert "7 chunk(s)" in done.stdout  # the chunked one really was chunked
    # The ITK3 exchange: three infrastructure acks, a business ack and a nack given with `ack`, one overdue.
    itk = done.stdout.split("ITK3: ")[1]
    assert itk.count("infrastructure ack 20013 sent") == 3
    assert itk.count("$ meshbridge --config practice.toml ack ") == 2
    assert ": bus-acked (30001) sent to X26ABC1" in itk and ": bus-nacked (30002) sent to X26ABC1" in itk
    [late] = re.findall(r"trust: (\w+) is OVERDUE: no bus-ack from X26ABC2 within 3s", itk)
    assert f"trust: {late} is inf-acked: infrastructure ack 20013, no business ack" in itk
    assert "business ack 30001 (Patient known here." in itk and "business nack 30002 (Patient not known here." in itk
    status, show = itk.split("$ meshbridge --config trust.toml status")[1].split(
        "$ meshbridge --config trust.toml show"
    )
    assert "bus-nacked" in status and "complete" in status and "inf-acked" in status
    assert "bus-nack" in show and "Patient not known here: no record matches this NHS number" in show
    assert {p.pid for p in psutil.Process().children(recursive=True)} == before
    workspace = done.stdout.split("workspace ")[1].split()[0]
    assert not Path(workspace).exists()
    leftover = [p for p in psutil.process_iter(["cmdline"]) if workspace in " ".join(p.info["cmdline"] or [])]
    assert leftover == []


@pytest.mark.parametrize("when", ["at the start", "in the ITK exchange"])
def test_demo_stopped_by_sigterm_stops_its_sandbox_and_removes_its_workspace(when: str) -> None:
    """The sandbox runs in its own session: a SIGTERM to the demo must not strand it (it did)."""
    demo = subprocess.Popen(
        [sys.executable, "-m", "meshbridge", "demo"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert demo.stdout is not None
        first = demo.stdout.readline()  # "mesh-sandbox running on URL; workspace PATH"
        assert "mesh-sandbox running on" in first, first
        workspace = Path(first.split("workspace ")[1].split()[0])
        sandboxes = psutil.Process(demo.pid).children(recursive=True)
        assert sandboxes  # the sandbox server, in its own process group
        while when == "in the ITK exchange" and not demo.stdout.readline().startswith("ITK3: "):
            assert demo.poll() is None
        demo.send_signal(signal.SIGTERM)
        _, err = demo.communicate(timeout=60)
    finally:
        if demo.poll() is None:
            demo.kill()
    assert demo.returncode == 130, err
    assert err.strip().splitlines()[-1] == "meshbridge: demo stopped; its sandbox was stopped and its workspace removed"
    _, alive = psutil.wait_procs(sandboxes, timeout=10)
    assert not alive, [p.pid for p in alive]
    assert not workspace.exists()
