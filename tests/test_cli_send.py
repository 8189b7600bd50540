"""`meshbridge send` in real processes: a route contradicted by --to/--from/--workflow exits 2 and
stores nothing; the stored message's id is on stdout whatever the exit code (0, 1, 3)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import OUT_IN

from meshbridge.sandbox import free_port
from meshbridge.testing import run_cli as cli


def stored(config: Path) -> list[dict]:
    done = cli(config, "messages", "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    return done.stderr


@pytest.fixture
def payload(tmp_path: Path) -> Path:
    path = tmp_path / "note.txt"
    path.write_text("for the route's recipient only")
    return path


@pytest.mark.parametrize(
    ("flag", "value", "named"),
    [
        ("--to", "X26ABC3", "recipient X26ABC3 (the route's is X26ABC2)"),
        ("--from", "X26ABC2", "sender X26ABC2 (the route's is X26ABC1)"),
        ("--workflow", "OTHER_WORKFLOW", "workflow OTHER_WORKFLOW (the route's is TEST_WORKFLOW)"),
    ],
)
def test_a_route_contradicted_exits_2_and_stores_nothing(
    flag: str, value: str, named: str, payload: Path, meshbridge_config, mesh_peer
) -> None:
    config = meshbridge_config(OUT_IN)
    done = cli(config, "send", str(payload), "--route", "out", flag, value)
    assert done.returncode == 2 and done.stdout == ""
    assert "route 'out' contradicts the " + named in one_line(done)
    assert stored(config) == []
    assert mesh_peer("X26ABC3").list_messages() == [] and mesh_peer("X26ABC2").list_messages() == []


def test_every_contradiction_is_named_in_one_line(payload: Path, meshbridge_config) -> None:
    config = meshbridge_config(OUT_IN)
    done = cli(config, "send", str(payload), "--route", "out", "--to", "X26ABC3", "--workflow", "W2")
    assert done.returncode == 2
    line = one_line(done)
    assert "recipient X26ABC3" in line and "workflow W2" in line and "sender" not in line
    assert stored(config) == []


def test_the_route_s_own_values_beside_it_are_fine(payload: Path, meshbridge_config, mesh_peer) -> None:
    config = meshbridge_config(OUT_IN)
    same = ("--from", "X26ABC1", "--to", "X26ABC2", "--workflow", "TEST_WORKFLOW")
    done = cli(config, "send", str(payload), "--route", "out", *same)
    assert done.returncode == 0, done.stderr
    [message] = stored(config)
    assert done.stdout == message["id"] + "\n"
    assert (message["state"], message["peer"], message["route"]) == ("sent", "X26ABC2", "out")
    assert len(mesh_peer("X26ABC2").list_messages()) == 1


def test_refused_by_validation_prints_the_quarantined_id(tmp_path: Path, meshbridge_config) -> None:
    config = meshbridge_config(OUT_IN)
    broken = tmp_path / "broken.xml"
    broken.write_text("<letter><unclosed></letter>")
    args = ("--from", "X26ABC1", "--to", "X26ABC2", "--workflow", "TEST_WORKFLOW", "--type", "xml")
    done = cli(config, "send", str(broken), *args)
    assert done.returncode == 1
    [message] = stored(config)
    assert done.stdout == message["id"] + "\n" and message["state"] == "rejected"
    assert f"quarantined as {message['id']}" in done.stderr


def test_refused_by_mesh_prints_the_failed_message_s_id(payload: Path, meshbridge_config) -> None:
    config = meshbridge_config(OUT_IN)
    done = cli(config, "send", str(payload), "--from", "X26ABC1", "--to", "NOSUCHBOX", "--workflow", "WF")
    assert done.returncode == 1 and "MESH refused it" in one_line(done)
    [message] = stored(config)
    assert done.stdout == message["id"] + "\n" and message["state"] == "failed"


def test_stored_but_mesh_unreachable_prints_the_id(payload: Path, meshbridge_config) -> None:
    config = meshbridge_config(OUT_IN, url=f"http://127.0.0.1:{free_port()}")  # nothing listens there
    done = cli(config, "send", str(payload), "--route", "out")
    assert done.returncode == 3 and "`meshbridge poll` will retry" in one_line(done)
    [message] = stored(config)
    assert done.stdout == message["id"] + "\n" and message["state"] == "accepted"


def test_a_send_abandoned_at_once_is_exit_1_with_the_failed_id(payload: Path, meshbridge_config) -> None:
    """``send_attempts = 1``: the first failure is the last, so "poll will retry" (exit 3) would be untrue."""
    config = meshbridge_config(OUT_IN, url=f"http://127.0.0.1:{free_port()}", mesh="send_attempts = 1\n")
    done = cli(config, "send", str(payload), "--route", "out")
    assert done.returncode == 1 and "not sent (message kept in state failed)" in one_line(done)
    [message] = stored(config)
    assert done.stdout == message["id"] + "\n" and message["state"] == "failed"
