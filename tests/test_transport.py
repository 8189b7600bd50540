"""MESH failures: bad credentials, no server, a crash between storing and acknowledging; secrets kept out."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import OUT_IN, TRACK_NOW

from meshbridge import Bridge, TransportError, load
from meshbridge.pipeline import download
from meshbridge.sandbox import Sandbox, config_text, free_port


def test_wrong_password_is_a_clear_error_without_the_password(tmp_path: Path, mesh_sandbox: Sandbox) -> None:
    text = config_text(mesh_sandbox, OUT_IN).replace('password = "password"', 'password = "Wr0ng-Pa55-xyz"')
    path = tmp_path / "meshbridge.toml"
    path.write_text(text)
    with Bridge(load(path)) as bridge:
        with pytest.raises(TransportError) as info:
            bridge.mailbox("X26ABC1").handshake()
        report = bridge.poll(mailbox="X26ABC2")
    message = str(info.value)
    assert "MESH mailbox X26ABC1: cannot handshake: HTTP 403" in message
    assert "check the mailbox password" in message
    assert "Wr0ng-Pa55-xyz" not in message
    assert len(report.problems) == 1 and "HTTP 403" in report.problems[0]


def test_unreachable_mesh_keeps_the_message_for_the_next_poll(tmp_path: Path, mesh_sandbox: Sandbox) -> None:
    path = tmp_path / "meshbridge.toml"
    down = config_text(mesh_sandbox, OUT_IN).replace(mesh_sandbox.url, f"http://127.0.0.1:{free_port()}")
    path.write_text(down.replace("sandbox = true", 'sandbox = true\ntimeout = 5\nretry_backoff = "0s"'))
    payload = tmp_path / "p.txt"
    payload.write_text("wait for MESH")
    done = subprocess.run(
        [sys.executable, "-m", "meshbridge", "--config", str(path), "send", str(payload), "--route", "out"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 3
    assert "stored, not sent yet" in done.stderr and "ConnectionError" in done.stderr
    assert "Traceback" not in done.stderr

    path.write_text(config_text(mesh_sandbox, OUT_IN, mesh=TRACK_NOW + 'retry_backoff = "0s"'))  # MESH is back
    with Bridge(load(path)) as bridge:
        [waiting] = bridge.messages(state="accepted")
        assert waiting.attempts == 1 and "ConnectionError" in waiting.last_error
        report = bridge.poll()
        assert report.sent == [waiting.id] and report.problems == []
        assert bridge.store.get(waiting.id).state == "delivered"
        assert len(bridge.messages(direction="in", state="delivered")) == 1


def test_crash_after_storing_before_acknowledging(meshbridge_config, make_bridge, mesh_peer) -> None:
    """The inbox still lists a stored message: the next poll acknowledges it once and delivers it once."""
    mesh_id = mesh_peer("X26ABC1").send_message("X26ABC2", b"stored, then crash", workflow_id="TEST_WORKFLOW")
    config = meshbridge_config(OUT_IN)
    first = make_bridge(config)
    download(first.store, first.mailbox("X26ABC2"), mesh_id)  # ... and the process dies before the acknowledge
    assert mesh_peer("X26ABC2").list_messages() == [mesh_id]

    second = make_bridge(config)
    report = second.poll()
    assert report.problems == []
    [message] = second.messages(direction="in")
    assert message.state == "delivered"
    assert [e.kind for e in second.store.events(message.id)] == ["received", "mesh-acked", "valid", "delivered"]
    assert mesh_peer("X26ABC2").list_messages() == []
    assert second.poll().received == []


def test_secrets_never_reach_output_logs_or_store(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "Shared-Key-Unmistakable-31337"
    with Sandbox(shared_key=key) as sandbox:
        path = tmp_path / "meshbridge.toml"
        path.write_text(config_text(sandbox, OUT_IN).replace(f'shared_key = "{key}"', 'shared_key = { env = "SK" }'))
        env = {"SK": key, "PATH": "", "PYTHONPATH": ""}
        runs = []
        payload = tmp_path / "p.txt"
        payload.write_text("x" * 100)
        for args in (["send", str(payload), "--route", "out"], ["poll"], ["messages", "--json"], ["status"]):
            runs.append(
                subprocess.run(
                    [sys.executable, "-m", "meshbridge", "--log-level", "DEBUG", "--config", str(path), *args],
                    capture_output=True,
                    text=True,
                    env=env,
                )
            )
        assert [r.returncode for r in runs] == [0, 0, 0, 0], [r.stderr for r in runs]
        monkeypatch.setenv("SK", key)
        with caplog.at_level(logging.DEBUG), Bridge(load(path)) as bridge:
            bridge.poll()
            details = bridge.store.db.execute("SELECT group_concat(detail) FROM events").fetchone()[0]
    text = "".join(r.stdout + r.stderr for r in runs) + caplog.text
    assert "DEBUG" in text  # the debug logs really were captured
    assert key not in text
    stored = b"".join(p.read_bytes() for p in (tmp_path / "var").rglob("*") if p.is_file())
    assert len(stored) > 0 and key.encode() not in stored
    assert "password" not in details


def test_a_send_whose_sender_died_is_resumed_after_the_lease(tmp_path: Path, meshbridge_config, make_bridge) -> None:
    import io

    from meshbridge import pipeline

    bridge = make_bridge(meshbridge_config(OUT_IN))
    fresh = pipeline.accept(
        bridge.store,
        io.BytesIO(b"claimed just now"),
        route="out",
        mailbox="X26ABC1",
        to="X26ABC2",
        workflow_id="TEST_WORKFLOW",
        payload_type="binary",
        filename="a",
        claim=True,
    )
    dead = pipeline.accept(
        bridge.store,
        io.BytesIO(b"claimed by a process that died"),
        route="out",
        mailbox="X26ABC1",
        to="X26ABC2",
        workflow_id="TEST_WORKFLOW",
        payload_type="binary",
        filename="b",
        claim=True,
    )
    # a claim made in an earlier boot of the machine: its process is gone
    bridge.store.db.execute("UPDATE messages SET lease_boot = 'an-earlier-boot' WHERE id = ?", [dead.id])
    report = bridge.flush()
    assert report.sent == [dead.id]  # the live claim is left alone
    assert bridge.store.get(fresh.id).state == "sending"
    assert [e.kind for e in bridge.store.events(dead.id)] == ["accepted", "sending", "resending", "sent"]


def test_retries_back_off_then_give_up(tmp_path: Path, mesh_sandbox: Sandbox) -> None:
    from meshbridge import hookimpl
    from meshbridge.plugins import Plugins, make_plugin_manager

    events = []

    class Listener:
        @hookimpl
        def meshbridge_on_event(self, event):
            events.append(event)

    pm = make_plugin_manager(load_entrypoints=False)
    pm.register(Listener(), name="listener")
    path = tmp_path / "meshbridge.toml"
    down = config_text(mesh_sandbox, OUT_IN, mesh='send_attempts = 3\nretry_backoff = "1h"\ntimeout = 5\n')
    path.write_text(down.replace(mesh_sandbox.url, f"http://127.0.0.1:{free_port()}"))
    payload = tmp_path / "p.txt"
    payload.write_text("never gets through")
    with Bridge(load(path), Plugins(pm)) as bridge:
        with pytest.raises(TransportError):
            bridge.send(payload, route="out")
        [message] = bridge.messages(state="accepted")
        assert message.attempts == 1 and message.next_attempt_at > message.updated_at
        assert bridge.flush().sent == []  # not due for an hour: nothing tried
        assert bridge.store.get(message.id).attempts == 1
        for attempt in (2, 3):  # make it due, as an hour passing would
            bridge.store.db.execute("UPDATE messages SET next_attempt_at = NULL WHERE id = ?", [message.id])
            report = bridge.flush()
            assert bridge.store.get(message.id).attempts == attempt
        assert bridge.store.get(message.id).state == "failed"
        assert "gave up after 3 attempts" in report.problems[0]
        assert [e.kind for e in events] == ["failed"]


def test_proxy_credentials_from_the_environment_never_reach_a_mesh_error(
    meshbridge_config, make_bridge, monkeypatch, caplog
) -> None:
    """The proxy URL, password and all, was quoted in each mailbox's problem line and log."""
    caplog.set_level(logging.DEBUG)
    bridge = make_bridge(meshbridge_config(OUT_IN))
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.setenv(name, "http://proxyuser:Proxy-Secret-77@127.0.0.1:99999")
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    report = bridge.poll()
    assert report.problems and all(p.startswith("MESH mailbox") for p in report.problems)
    assert "cannot list the inbox: InvalidURL: Failed to parse: http://127.0.0.1:99999" in report.problems[0]
    assert "Proxy-Secret" not in " ".join(report.problems) + caplog.text
