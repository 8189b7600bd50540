"""A refused MESH login (wrong password, wrong shared key) is about the mailbox, not the message.

The message waits (``accepted``, its attempts not counted, a backoff capped at
``retry_backoff_max``, the error on its timeline); ``mesh-auth`` is raised once per mailbox until a
call succeeds again (``mesh-auth-cleared``); ``send``, ``poll`` and ``run --once`` exit 4 (3 when
MESH cannot be reached); once the config is fixed the next pass sends it. Against the real
mesh-sandbox, which checks every login (``AUTH_MODE=full``, see ``meshbridge.sandbox``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import OUT_IN, TRACK_NOW

from meshbridge import Bridge, TransportError, hookimpl, load
from meshbridge.plugins import Plugins, make_plugin_manager
from meshbridge.sandbox import PASSWORD, Sandbox, config_text, free_port

WRONG_PASSWORD = "Wr0ng-Pa55-xyz"
WRONG_KEY = "Wr0ngSharedKey"
FIXED = config_text  # the sandbox's own credentials


def wrong(sandbox: Sandbox, which: str, mesh: str = "") -> str:
    """A config whose X26ABC1 password, or whose shared key (every mailbox), MESH refuses."""
    text = config_text(sandbox, OUT_IN, mesh=mesh)
    if which == "password":
        first = text.index(f'password = "{PASSWORD}"')  # X26ABC1's: the first mailbox
        return text[:first] + f'password = "{WRONG_PASSWORD}"' + text[first + len(f'password = "{PASSWORD}"') :]
    return text.replace(f'shared_key = "{sandbox.shared_key}"', f'shared_key = "{WRONG_KEY}"')


def meshbridge(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "meshbridge", "--config", str(config), *args], capture_output=True, text=True
    )


class Listener:
    def __init__(self) -> None:
        self.events: list = []

    @hookimpl
    def meshbridge_on_event(self, event) -> None:
        self.events.append(event)

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]


def bridge_with(path: Path) -> tuple[Bridge, Listener]:
    pm = make_plugin_manager(load_entrypoints=False)
    listener = Listener()
    pm.register(listener, name="listener")
    return Bridge(load(path), Plugins(pm)), listener


@pytest.mark.parametrize("which", ["password", "shared key"])
def test_refused_login_keeps_the_message_waiting_and_the_fixed_config_sends_it(
    which: str, tmp_path: Path, mesh_sandbox: Sandbox
) -> None:
    path = tmp_path / "meshbridge.toml"
    backoff = 'send_attempts = 2\nretry_backoff = "1h"\nretry_backoff_max = "2m"\n'
    path.write_text(wrong(mesh_sandbox, which, mesh=backoff))
    payload = tmp_path / "letter.txt"
    payload.write_text("for X26ABC2")

    sent = meshbridge(path, "send", str(payload), "--route", "out")
    assert sent.returncode == 4, sent.stderr
    assert "stored, not sent yet" in sent.stderr and "MESH refused the login" in sent.stderr
    assert "check the mailbox password and [mesh] shared_key" in sent.stderr
    assert "HTTP 403 Invalid Authentication Token" in sent.stderr
    assert sent.stderr.count("mesh-auth: MESH refused the login of mailbox X26ABC1") == 1
    assert "Traceback" not in sent.stderr
    assert WRONG_PASSWORD not in sent.stderr + sent.stdout and WRONG_KEY not in sent.stderr + sent.stdout

    with Bridge(load(path)) as bridge:
        [message] = bridge.messages(direction="out")
        assert (message.state, message.attempts) == ("accepted", 0)
        assert "Invalid Authentication Token" in message.last_error
        events = bridge.store.events(message.id)
        [refused] = [e for e in events if e.kind == "login-refused"]
        assert refused.state == "accepted" and "Invalid Authentication Token" in refused.detail["reason"]
        retry_at = message.next_attempt_at
        assert 0 < (retry_at - refused.at).total_seconds() <= 120  # capped: 2m, not 1h

    for n in range(2):  # cron's next passes: still refused, raised no more, never counted
        polled = meshbridge(path, "poll")
        assert polled.returncode == 4, polled.stderr
        assert "MESH refused the login" in polled.stderr
        assert "mesh-auth: MESH refused the login of mailbox X26ABC1" not in polled.stderr
        if n:  # (a wrong shared key: the first poll met X26ABC2 and X26ABC3 refused too, and said so once)
            assert "mesh-auth:" not in polled.stderr
        with Bridge(load(path)) as bridge:
            again = bridge.store.get(message.id)
            assert (again.state, again.attempts) == ("accepted", 0)

    path.write_text(FIXED(mesh_sandbox, OUT_IN, mesh=backoff + TRACK_NOW))  # the operator fixes the config
    fixed = meshbridge(path, "--log-level", "INFO", "poll")
    assert fixed.returncode == 0, fixed.stderr
    assert "mesh-auth-cleared: MESH takes the login of mailbox X26ABC1 again" in fixed.stderr
    assert "sent: 1" in fixed.stdout
    with Bridge(load(path)) as bridge:
        done = bridge.store.get(message.id)
        assert done.state in ("sent", "delivered") and done.attempts == 1
        [received] = bridge.messages(direction="in")
        assert received.state == "delivered"
        assert bridge.store.logins.refusing() == {}


def test_refused_sends_never_spend_attempts_and_mesh_auth_is_raised_once_across_processes(
    tmp_path: Path, mesh_sandbox: Sandbox
) -> None:
    path = tmp_path / "meshbridge.toml"
    path.write_text(wrong(mesh_sandbox, "password", mesh='send_attempts = 2\nretry_backoff = "0s"\n'))
    payloads = [tmp_path / f"p{i}.txt" for i in range(3)]
    for p in payloads:
        p.write_text(p.name)
    first, heard = bridge_with(path)
    with first:
        for p in payloads:
            with pytest.raises(TransportError, match="MESH refused the login"):
                first.send(p, route="out")
        for _ in range(3):  # more passes than send_attempts: none of them counts
            report = first.flush()
            assert report.login_refused == ["X26ABC1"] and report.sent == []
            assert len(report.problems) == 1  # one refused send a pass: the others wait, untried
        other, heard_there = bridge_with(path)  # another process on the same store
        with other:
            assert other.flush().login_refused == ["X26ABC1"]
            states = {(m.state, m.attempts) for m in other.messages(direction="out")}
        assert states == {("accepted", 0)}
        assert heard.kinds() == ["mesh-auth"] and heard_there.kinds() == []
        [event] = heard.events
        assert event.message_id is None and event.detail["mailbox"] == "X26ABC1"
        assert "Invalid Authentication Token" in event.detail["reason"] and WRONG_PASSWORD not in event.summary
        assert first.store.logins.refusing()["X26ABC1"].refusals >= 6

    path.write_text(FIXED(mesh_sandbox, OUT_IN))
    fixed, heard_fixed = bridge_with(path)
    with fixed:
        report = fixed.poll()
        assert sorted(report.sent) == sorted(m.id for m in fixed.messages(direction="out"))
        assert report.login_refused == [] and report.unreachable == []
        assert heard_fixed.kinds() == ["mesh-auth-cleared"]
        assert heard_fixed.events[0].message_id is None and heard_fixed.events[0].detail["mailbox"] == "X26ABC1"
        assert {m.attempts for m in fixed.messages(direction="out")} == {1}


def test_one_refused_mailbox_does_not_stop_the_others_and_poll_exits_4(
    tmp_path: Path, mesh_sandbox: Sandbox, mesh_peer
) -> None:
    path = tmp_path / "meshbridge.toml"
    path.write_text(wrong(mesh_sandbox, "password"))
    mesh_peer("X26ABC3").send_message("X26ABC2", b"for the working mailbox", workflow_id="TEST_WORKFLOW")
    polled = meshbridge(path, "poll", "--json")
    assert polled.returncode == 4, polled.stderr
    summary = json.loads(polled.stdout)
    assert (summary["login_refused"], summary["unreachable"]) == (["X26ABC1"], [])
    with Bridge(load(path)) as bridge:
        [received] = bridge.messages(direction="in")
        assert received.state == "delivered"  # X26ABC2's work was done
    once = meshbridge(path, "run", "--once")
    assert once.returncode == 4, once.stderr
    assert "Traceback" not in once.stderr


def test_unreachable_mesh_makes_poll_and_run_once_exit_3(tmp_path: Path, mesh_sandbox: Sandbox) -> None:
    path = tmp_path / "meshbridge.toml"
    down = config_text(mesh_sandbox, OUT_IN, mesh="timeout = 5\n")
    path.write_text(down.replace(mesh_sandbox.url, f"http://127.0.0.1:{free_port()}"))
    for command in (["poll"], ["run", "--once"]):
        done = meshbridge(path, *command)
        assert done.returncode == 3, (command, done.stderr)
        assert "ConnectionError" in done.stderr and "Traceback" not in done.stderr
    path.write_text(config_text(mesh_sandbox, OUT_IN))
    assert meshbridge(path, "poll").returncode == 0


def test_a_refusal_about_the_message_still_fails_it(tmp_path: Path, mesh_sandbox: Sandbox) -> None:
    path = tmp_path / "meshbridge.toml"
    path.write_text(config_text(mesh_sandbox, OUT_IN))
    payload = tmp_path / "p.txt"
    payload.write_text("nobody there")
    done = meshbridge(path, "send", str(payload), "--from", "X26ABC1", "--to", "X26ZZZ9", "--workflow", "TEST_WORKFLOW")
    assert done.returncode == 1, done.stderr
    assert "Unregistered to address" in done.stderr
    with Bridge(load(path)) as bridge:
        [message] = bridge.messages(direction="out")
        assert (message.state, message.attempts) == ("failed", 1)
        assert bridge.store.logins.refusing() == {}


@pytest.mark.parametrize(
    ("status", "code", "text", "about_message", "refused"),
    [
        (403, "", "Invalid Authentication Token", False, True),
        (403, "", "Invalid Authentication Token", True, True),  # on a download: still the login
        (403, "", "Mailbox id does not match token", True, True),
        (403, "EPL-151", "No mailbox matched", True, True),
        (403, "", "Error reading from Authorization header", False, True),
        (403, "", "Forbidden", False, True),  # a bare 403 on a handshake, inbox or first chunk
        (403, "", "Forbidden", True, False),  # a bare 403 on someone else's message: not the login
        (401, "", "Unauthorized", True, True),
        (417, "12", "Unregistered to address", False, False),
        (400, "", "Bad Request", False, False),
    ],
)
def test_which_answers_are_a_refused_login(
    status: int, code: str, text: str, about_message: bool, refused: bool
) -> None:
    from meshbridge.mesh import login_refused

    assert login_refused(status, code, text, about_message) is refused
