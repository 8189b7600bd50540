"""``meshbridge retry``: several ids, or filters (``--state failed --since 2h``), one line per message.

Failed messages are made for real: MESH (the sandbox, behind the fault proxy) answers every send
503 until the proxy is cleared, and ``send_attempts = 1`` gives up at once.
"""

from __future__ import annotations

import gc
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from conftest import OUT_IN

from meshbridge import Bridge, TransportError, load
from meshbridge.faultproxy import FaultProxy, answer
from meshbridge.sandbox import PASSWORD, Sandbox

MESH = 'send_attempts = 1\nretry_backoff = "0s"\ntracking_interval = "0s"\ntimeout = "10s"\n'


def meshbridge(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "meshbridge", "--config", str(config), *args], capture_output=True, text=True
    )


def failed_messages(path: Path, proxy: FaultProxy, tmp_path: Path, n: int) -> list[str]:
    """``n`` outbound messages left ``failed`` by a MESH that answers 503."""
    proxy.add("POST", r"/X26ABC1/outbox$", answer(503), times=None)
    ids = []
    with Bridge(load(path)) as bridge:
        for i in range(n):
            payload = tmp_path / f"p{i}.txt"
            payload.write_text(f"payload {i}")
            with pytest.raises(TransportError):
                bridge.send(payload, route="out")
        for message in bridge.messages(direction="out", oldest_first=True):
            assert message.state == "failed"
            ids.append(message.id)
    proxy.clear()  # MESH is healthy again
    return ids


@pytest.fixture
def config(meshbridge_config, mesh_fault_proxy: FaultProxy) -> Path:
    return meshbridge_config(OUT_IN, url=mesh_fault_proxy.url, mesh=MESH)


def test_retry_takes_several_ids_and_says_what_it_could_not_retry(
    config: Path, mesh_fault_proxy: FaultProxy, tmp_path: Path
) -> None:
    first, second = failed_messages(config, mesh_fault_proxy, tmp_path, 2)
    done = meshbridge(config, "retry", first, "no-such-id", second)
    assert done.returncode == 1, done.stderr  # one given id could not be retried
    assert done.stdout.splitlines() == [f"{first}: sent", f"{second}: sent"]
    assert "no-such-id: not retried: no message with id 'no-such-id'" in done.stderr
    again = meshbridge(config, "retry", first)  # sent now: nothing to retry
    assert again.returncode == 1
    assert f"{first}: not retried: it is out and sent: only a failed outbound message" in again.stderr
    assert again.stdout == ""
    with Bridge(load(config)) as bridge:
        for message_id in (first, second):
            message = bridge.store.get(message_id)
            assert (message.state, message.attempts) == ("sent", 1)
            kinds = [e.kind for e in bridge.store.events(message_id)]
            assert kinds.count("retry") == 1 and kinds[-1] == "sent"
        assert mesh_fault_proxy.seen("POST", r"/X26ABC1/outbox$") and bridge.poll().problems == []
        assert len(bridge.messages(direction="in", state="delivered")) == 2  # each arrived once


def test_a_send_mesh_answers_503_leaves_no_connection_open(
    config: Path, mesh_fault_proxy: FaultProxy, tmp_path: Path
) -> None:
    """mesh-client gives up on an outbox POST before urllib3 gives its connection back: the
    answer is read and the connection pooled (closed with the bridge), not left to the GC."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        failed_messages(config, mesh_fault_proxy, tmp_path, 2)
        gc.collect()
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []


def test_retry_by_state_and_time(config: Path, mesh_fault_proxy: FaultProxy, tmp_path: Path) -> None:
    ids = failed_messages(config, mesh_fault_proxy, tmp_path, 2)

    nothing = meshbridge(config, "retry", "--state", "failed", "--until", "2000-01-01T00:00:00+00:00")
    assert nothing.returncode == 0, nothing.stderr
    assert nothing.stdout.startswith("nothing to retry: no failed message until 2000-01-01 ")
    none_inbound = meshbridge(config, "retry", "--state", "undelivered")
    assert (none_inbound.returncode, none_inbound.stdout) == (0, "nothing to retry: no undelivered message\n")

    done = meshbridge(config, "retry", "--state", "failed", "--since", "2h")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"{i}: sent" for i in ids]
    after = meshbridge(config, "retry", "--since", "2h")  # both states; none left
    assert after.returncode == 0 and after.stdout.startswith("nothing to retry: no failed outbound or undelivered")


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ([], "give message ids, or --state/--since/--until"),
        (["abc", "--state", "failed"], "not both"),
        (["--state", "sent"], "Invalid value for '--state'"),
        (["--since", "yesterday"], "bad time 'yesterday'"),
        (["--since", "2026-11-28T09:00:00"], "has no offset"),
        (["--since", "999999999d"], "time '999999999d' is out of range"),  # before year 1: no traceback
        (["--until", "0001-01-01T00:00:00+01:00"], "is out of range"),  # year 0 in UTC
        (["--since", "9999-12-31T23:00:00-05:00"], "is out of range"),  # year 10000 in UTC
    ],
)
def test_retry_usage_errors_exit_2(config: Path, args: list[str], error: str) -> None:
    done = meshbridge(config, "retry", *args)
    assert done.returncode == 2, done.stderr
    assert error in done.stderr and "Traceback" not in done.stderr


def test_retry_with_a_refused_login_queues_the_message_and_exits_4(
    config: Path, mesh_fault_proxy: FaultProxy, mesh_sandbox: Sandbox, tmp_path: Path
) -> None:
    [message_id] = failed_messages(config, mesh_fault_proxy, tmp_path, 1)
    good = config.read_text()
    config.write_text(good.replace(f'password = "{PASSWORD}"', 'password = "not-the-password"', 1))
    done = meshbridge(config, "retry", message_id)
    assert done.returncode == 4, done.stderr
    assert done.stdout.startswith(f"{message_id}: accepted (not sent yet: ")
    assert "MESH refused the login" in done.stdout and "not-the-password" not in done.stdout + done.stderr
    with Bridge(load(config)) as bridge:
        message = bridge.store.get(message_id)
        assert (message.state, message.attempts) == ("accepted", 0)
    config.write_text(good)
    assert meshbridge(config, "poll").returncode == 0
    with Bridge(load(config)) as bridge:
        assert bridge.store.get(message_id).state in ("sent", "delivered")


def test_a_retry_that_spends_its_attempts_again_says_failed_not_that_poll_sends_it(
    config: Path, mesh_fault_proxy: FaultProxy, tmp_path: Path
) -> None:
    """With ``send_attempts = 1`` an unreachable MESH fails the retried message again at once: poll
    does not send a failed message, so the line must not say it will."""
    [message_id] = failed_messages(config, mesh_fault_proxy, tmp_path, 1)
    mesh_fault_proxy.add("POST", r"/X26ABC1/outbox$", answer(503), times=None)
    done = meshbridge(config, "retry", message_id)
    assert done.returncode == 1, done.stderr
    [line] = [line for line in done.stderr.splitlines() if line.startswith(f"{message_id}: ")]
    assert line.startswith(f"{message_id}: failed (not sent: ") and "gave up after 1 attempts" in line
    assert "poll sends it" not in done.stderr and done.stdout == ""
    assert [line for line in done.stderr.splitlines() if message_id in line] == [line]  # said once, not logged too
    with Bridge(load(config)) as bridge:
        assert bridge.store.get(message_id).state == "failed"
