"""One slow or broken destination never stops the rest: delivery claims, deadlines, backoff,
``undelivered``, separate workers in ``meshbridge run``, and SIGTERM with a delivery hanging."""

from __future__ import annotations

import http.server
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import ClassVar

import pytest
from conftest import OUT_IN
from store_backends import Backend

from meshbridge.bridge import Bridge
from meshbridge.config import load
from meshbridge.hookspecs import hookimpl
from meshbridge.models import stamp
from meshbridge.plugins import Plugins, make_plugin_manager
from meshbridge.store import Store, connect

# route "in" (X26ABC2, TEST_WORKFLOW) gets the destination under test; route "b" (X26ABC2,
# OTHER_WORKFLOW) delivers to a folder; route "out-3" sends files from "outbox" to X26ABC3
ROUTES = (
    OUT_IN
    + """
[[routes]]
name = "b"
direction = "inbound"
mailbox = "X26ABC2"
workflow_id = "OTHER_WORKFLOW"
payload_type = "binary"
destination = { folder = "delivered-b" }

[[routes]]
name = "out-3"
direction = "outbound"
from = "X26ABC1"
to = "X26ABC3"
workflow_id = "THIRD_WORKFLOW"
payload_type = "binary"
source = { folder = "outbox" }
"""
)


def routes(destination: str, service: str = "") -> str:
    text = ROUTES.replace('destination = { folder = "delivered" }', f"destination = {destination}", 1)
    return text + (f"\n[service]\n{service}" if service else "")


class Recorder:
    def __init__(self) -> None:
        self.events: list = []

    @hookimpl
    def meshbridge_on_event(self, event) -> None:
        self.events.append(event)


class PluginDestination:
    """A plugin's destination kind ``plugin``: raises, or waits for ``release``."""

    def __init__(self, behaviour: str) -> None:
        self.behaviour, self.calls, self.release = behaviour, 0, threading.Event()

    @hookimpl
    def meshbridge_destinations(self) -> dict:
        return {"plugin": self.deliver}

    def deliver(self, target, blocks, name, content_type) -> str:
        self.calls += 1
        if self.behaviour == "raise":
            raise TypeError("deliver() got an unexpected keyword argument 'timeout'")
        self.release.wait(30)
        return "late"


@pytest.fixture
def bridge_with(request) -> Iterator[Callable[..., Bridge]]:
    opened: list[Bridge] = []

    def make(config: Path, *plugins: object) -> Bridge:
        pm = make_plugin_manager(load_entrypoints=False)
        for n, plugin in enumerate(plugins):
            pm.register(plugin, name=f"test-plugin-{n}")
        bridge = Bridge(load(config), Plugins(pm))
        opened.append(bridge)
        return bridge

    yield make
    for bridge in opened:
        bridge.close()


class Endpoint(http.server.BaseHTTPRequestHandler):
    """An EPR: answers the next of ``statuses`` (then 200), or with ``hang`` trickles its answer for ever."""

    statuses: ClassVar[list[int]] = []
    received: ClassVar[list[bytes]] = []
    hang = False
    started = threading.Event()
    stop = threading.Event()

    def do_POST(self) -> None:
        type(self).started.set()
        if type(self).hang:  # a byte of header every second: no read timeout ever fires
            with suppress(OSError):
                self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                while not type(self).stop.wait(1):
                    self.wfile.write(b"x")
                    self.wfile.flush()
            return
        body = b""
        while True:  # chunked (the destination streams)
            size = int(self.rfile.readline().strip() or b"0", 16)
            if not size:
                self.rfile.readline()
                break
            body += self.rfile.read(size)
            self.rfile.readline()
        type(self).received.append(body)
        self.send_response(type(self).statuses.pop(0) if type(self).statuses else 200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def endpoint() -> Iterator[tuple[str, type[Endpoint]]]:
    Endpoint.statuses, Endpoint.received, Endpoint.hang = [], [], False
    Endpoint.started, Endpoint.stop = threading.Event(), threading.Event()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Endpoint)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/epr", Endpoint
    Endpoint.stop.set()
    server.shutdown()
    server.server_close()


def send_two(mesh_peer) -> tuple[str, str]:
    """A message for the route under test, then one for route ``b``."""
    peer = mesh_peer("X26ABC1")
    first = peer.send_message("X26ABC2", b"for the route under test", workflow_id="TEST_WORKFLOW")
    later = peer.send_message("X26ABC2", b"for route b", workflow_id="OTHER_WORKFLOW")
    return first, later


# -- in one pass (``meshbridge poll``) ------------------------------------------------------------


def test_a_plugin_destination_that_raises_is_a_failed_delivery_and_the_pass_goes_on(
    tmp_path: Path, meshbridge_config, mesh_peer, bridge_with
) -> None:
    plugin = PluginDestination("raise")
    bridge = bridge_with(meshbridge_config(routes('{ plugin = "anything" }')), plugin)
    first, later = send_two(mesh_peer)

    report = bridge.poll()  # the TypeError must not escape
    broken, fine = bridge.store.find("in", first), bridge.store.find("in", later)
    assert fine.state == "delivered" and report.delivered == [fine.id]
    assert (tmp_path / "delivered-b" / f"{later}_{later}.dat").read_bytes() == b"for route b"
    assert broken.state == "valid" and broken.attempts == 1
    assert "TypeError: deliver() got an unexpected keyword argument 'timeout'" in broken.last_error
    [failed] = [e for e in bridge.store.events(broken.id) if e.kind == "delivery-failed"]
    assert "TypeError" in failed.detail["reason"] and failed.detail["retry_at"] == stamp(broken.next_attempt_at)
    assert [p for p in report.problems if broken.id in p and "TypeError" in p]
    assert bridge.poll().delivered == [] and plugin.calls == 1  # not again before its backoff (30 s)


def test_a_plugin_destination_past_its_deadline_is_failed_and_abandoned(
    tmp_path: Path, meshbridge_config, mesh_peer, bridge_with
) -> None:
    plugin = PluginDestination("hang")
    bridge = bridge_with(meshbridge_config(routes('{ plugin = "anything" }', 'delivery_timeout = "1s"\n')), plugin)
    first, later = send_two(mesh_peer)
    try:
        report = bridge.poll()
        hung, fine = bridge.store.find("in", first), bridge.store.find("in", later)
        assert fine.state == "delivered" and report.delivered == [fine.id]
        assert hung.state == "valid" and plugin.calls == 1
        assert "plugin destination of route in did not finish within 1 s (abandoned)" in hung.last_error
    finally:
        plugin.release.set()  # the abandoned thread ends; what it returns is ignored
    time.sleep(0.5)
    assert bridge.store.get(hung.id).state == "valid"


def test_after_delivery_attempts_a_message_is_undelivered_with_an_event(
    meshbridge_config, mesh_peer, bridge_with, endpoint
) -> None:
    url, handler = endpoint
    handler.statuses = [500, 500]
    recorder = Recorder()
    config = meshbridge_config(routes(f'{{ http = "{url}" }}', 'delivery_attempts = 2\ndelivery_backoff = "0s"\n'))
    bridge = bridge_with(config, recorder)
    mesh_id = mesh_peer("X26ABC1").send_message("X26ABC2", b"the EPR refuses this", workflow_id="TEST_WORKFLOW")

    assert bridge.poll().undelivered == []
    assert bridge.store.find("in", mesh_id).state == "valid"
    report = bridge.poll()
    message = bridge.store.find("in", mesh_id)
    assert message.state == "undelivered" and report.undelivered == [message.id]
    assert "HTTP 500" in message.last_error and message.attempts == 2
    last = bridge.store.events(message.id)[-1]
    assert last.kind == "undelivered" and last.detail["attempts"] == 2 and "HTTP 500" in last.detail["reason"]
    [event] = [e for e in recorder.events if e.kind == "undelivered"]
    assert event.message_id == message.id and "not delivered after 2 attempts" in event.summary
    bridge.poll()
    assert len(handler.received) == 2  # given up: not tried again
    assert bridge.status().counts["in"] == {"undelivered": 1}

    assert bridge.retry(message.id).state == "valid"  # the operator fixed the EPR
    assert bridge.poll().delivered == [message.id]
    assert handler.received[-1] == b"the EPR refuses this"


def test_a_failed_delivery_waits_for_its_backoff(meshbridge_config, mesh_peer, bridge_with, endpoint) -> None:
    url, handler = endpoint
    handler.statuses = [503]
    bridge = bridge_with(meshbridge_config(routes(f'{{ http = "{url}" }}')))  # default backoff: 30 s
    mesh_id = mesh_peer("X26ABC1").send_message("X26ABC2", b"later, please", workflow_id="TEST_WORKFLOW")
    bridge.poll()
    bridge.poll()
    message = bridge.store.find("in", mesh_id)
    assert len(handler.received) == 1 and message.state == "valid"
    assert message.next_attempt_at > bridge.store.get(message.id).updated_at


def test_each_worker_has_its_own_store_connection(meshbridge_config) -> None:
    from meshbridge.service import Service

    with Bridge(load(meshbridge_config(routes('{ folder = "delivered" }')))) as bridge:
        service = Service(bridge)
        workers = service.build()
        try:
            assert sorted(service.workers) == ["alerts", "collect", "deliver:b", "deliver:in", "send"]
            connections = {id(w.bridge.store.db.conn) for w in workers} | {id(bridge.store.db.conn)}
            assert len(connections) == len(workers) + 1
            assert all(w.bridge.stopping is bridge.stopping for w in workers)  # one stop for all
        finally:
            service.close()


# -- the service (``meshbridge run``) ---------------------------------------------------------------


def start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("w") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "meshbridge", "--config", str(config), "--log-level", "INFO", "run"],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )


def wait_for(condition: Callable[[], object], what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@contextmanager
def opened(config: Path) -> Iterator[Store]:
    """The config's store (whichever backend), as another process opens it."""
    store = connect(load(config).store)
    try:
        yield store
    finally:
        store.close()


def state(config: Path, direction: str, mesh_id: str | None = None, route: str | None = None) -> str | None:
    with opened(config) as store:
        if mesh_id:
            row = store.find(direction, mesh_id)
            return row.state if row else None
        rows = [m for m in store.messages(direction=direction) if m.route == route]
        return rows[0].state if rows else None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("kind", ["command", "http"])
def test_a_hanging_destination_holds_only_its_route_and_sigterm_still_stops_the_service(
    kind: str, tmp_path: Path, meshbridge_config, mesh_peer, endpoint
) -> None:
    url, handler = endpoint
    handler.hang = True
    pidfile = tmp_path / "hanging.pid"
    hanging = {
        "command": f'{{ command = ["sh", "-c", "echo $$ > {pidfile}; exec sleep 600", "{{path}}"] }}',
        "http": f'{{ http = "{url}" }}',
    }[kind]
    started = {"command": pidfile.exists, "http": handler.started.is_set}[kind]
    service = 'send_interval = "1s"\nsource_settle = "0s"\n'
    config = meshbridge_config(routes(hanging, service))
    config.write_text(config.read_text().replace('poll_interval = "5s"', 'poll_interval = "1s"'))
    (tmp_path / "outbox").mkdir()
    log = tmp_path / "service.log"
    process = start(config, log)
    peer = mesh_peer("X26ABC1")
    try:
        first = peer.send_message("X26ABC2", b"for the hanging destination", workflow_id="TEST_WORKFLOW")
        wait_for(started, "the delivery to the hanging destination to start")
        # while it hangs: collecting, the other route and sending go on
        later = peer.send_message("X26ABC2", b"for route b", workflow_id="OTHER_WORKFLOW")
        (tmp_path / "outbox" / "letter.bin").write_bytes(b"to X26ABC3")
        wait_for(lambda: (tmp_path / "delivered-b" / f"{later}_{later}.dat").exists(), "route b's delivery")
        wait_for(lambda: state(config, "out", route="out-3") in ("sent", "delivered"), "the send to X26ABC3")
        assert state(config, "in", first) == "valid"  # still in the hands of its destination
        assert kind != "command" or alive(int(pidfile.read_text()))

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=90) == 0, log.read_text()[-3000:]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if pidfile.exists():
            with suppress(ProcessLookupError):
                os.kill(int(pidfile.read_text()), signal.SIGKILL)
        handler.stop.set()
    text = log.read_text()
    assert "meshbridge stopped" in text.splitlines()[-1] and "Traceback" not in text
    assert "meshbridge stopped while it was still working" in text  # the interrupted delivery is reported
    with opened(config) as store:
        message = store.find("in", first)
        assert message.state == "valid" and message.next_attempt_at is None  # due at the next start
        assert store.events(message.id)[-1].kind == "delivery-interrupted"
        assert store.find("in", later).state == "delivered"

    # the next start, with the destination mended, delivers it
    config.write_text(config.read_text().replace(f"destination = {hanging}", 'destination = { folder = "delivered" }'))
    done = subprocess.run(
        [sys.executable, "-m", "meshbridge", "--config", str(config), "run", "--once"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "delivered" / f"{first}_{first}.dat").read_bytes() == b"for the hanging destination"
    listed = json.loads(
        subprocess.run(
            [sys.executable, "-m", "meshbridge", "--config", str(config), "messages", "--json"],
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
    )
    assert {m["state"] for m in listed if m["direction"] == "in" and m["workflow_id"] != "THIRD_WORKFLOW"} == {
        "delivered"
    }


def group_alive(pgid: int) -> bool:
    """Does any live process (not a zombie) of this process group remain? (From /proc.)"""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                return True
    return False


def test_sigterm_kills_a_command_destinations_process_group_and_the_restart_delivers_once(
    tmp_path: Path, meshbridge_config, mesh_peer
) -> None:
    """A command still working when the service stops is killed with its whole group (a background
    child included): it cannot complete a delivery that meshbridge records as not made, so the
    next start delivers it, once."""
    pidfile, marker = tmp_path / "command.pid", tmp_path / "delivered.log"
    script = tmp_path / "deliver.sh"  # slow, with a background child, and appends what it delivers
    script.write_text(f'echo $$ > {pidfile}\nsleep 600 &\nsleep 4\ncat "$1" >> {marker}\necho >> {marker}\n')
    config = meshbridge_config(routes(f'{{ command = ["sh", "{script}", "{{path}}"] }}'))
    config.write_text(config.read_text().replace('poll_interval = "5s"', 'poll_interval = "1s"'))
    log = tmp_path / "service.log"
    process = start(config, log)
    try:
        mesh_id = mesh_peer("X26ABC1").send_message("X26ABC2", b"once only", workflow_id="TEST_WORKFLOW")
        wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), "the command to start")
        pgid = int(pidfile.read_text())
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=90) == 0, log.read_text()[-3000:]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    try:
        # SIGKILLed processes end when next scheduled (a loaded machine takes a moment); a group
        # nobody killed would live on for its `sleep 600`
        wait_for(lambda: not group_alive(pgid), "the command's process group to end after the service", timeout=15)
        time.sleep(6)  # past the moment the command would have finished
        assert not marker.exists(), "the command completed a delivery after the service stopped"
    finally:
        with suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
    assert state(config, "in", mesh_id) == "valid"

    done = subprocess.run(
        [sys.executable, "-m", "meshbridge", "--config", str(config), "run", "--once"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert state(config, "in", mesh_id) == "delivered"
    assert marker.read_text() == "once only\n"  # delivered exactly once


@pytest.mark.parametrize("command", ["poll", "run --once"])
def test_sigterm_to_a_foreground_pass_kills_the_command_and_the_next_pass_delivers_once(
    command: str, tmp_path: Path, meshbridge_config, mesh_peer
) -> None:
    """``poll`` and ``run --once`` (cron) stop the same way as the service: the delivery in hand
    is left, its command's process group killed, and the next pass delivers it once."""
    pidfile, marker = tmp_path / "command.pid", tmp_path / "delivered.log"
    script = tmp_path / "deliver.sh"
    script.write_text(f'echo $$ > {pidfile}\nsleep 600 &\nsleep 4\ncat "$1" >> {marker}\necho >> {marker}\n')
    config = meshbridge_config(routes(f'{{ command = ["sh", "{script}", "{{path}}"] }}'))
    mesh_id = mesh_peer("X26ABC1").send_message("X26ABC2", b"once only", workflow_id="TEST_WORKFLOW")
    argv = [sys.executable, "-m", "meshbridge", "--config", str(config), *command.split()]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), "the command to start")
        pgid = int(pidfile.read_text())
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=90)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    try:
        assert b"Traceback" not in err, err.decode()
        wait_for(lambda: not group_alive(pgid), f"the command's process group to end after {command}", timeout=15)
        time.sleep(6)  # past the moment the command would have finished
        assert not marker.exists(), f"the command completed a delivery after {command} stopped"
    finally:
        with suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
    assert state(config, "in", mesh_id) == "valid"
    script.write_text(f'cat "$1" >> {marker}\necho >> {marker}\n')  # quick now
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert "Traceback" not in done.stderr
    assert state(config, "in", mesh_id) == "delivered"
    assert marker.read_text() == "once only\n"  # delivered exactly once


@pytest.mark.parametrize("when", ["while it runs", "before it starts"])
def test_an_abandoned_deliverys_command_is_killed_with_its_group(when: str, tmp_path: Path) -> None:
    """``kill_commands(thread)``, as an interrupted or abandoned delivery calls it, kills the
    process group of the command that thread runs, or will start (given up while starting)."""
    from meshbridge.destinations import DeliveryError, kill_commands, to_command

    pidfile, marker = tmp_path / "command.pid", tmp_path / "delivered"
    script = tmp_path / "deliver.sh"
    script.write_text(f"echo $$ > {pidfile}\nsleep 600 &\nsleep 3\ntouch {marker}\n")
    go, outcome = threading.Event(), []

    def deliver() -> None:
        go.wait(30)
        try:
            outcome.append(to_command(["sh", str(script), "{path}"], [b"payload"], "a.dat"))
        except DeliveryError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=deliver, daemon=True)
    thread.start()
    if when == "before it starts":
        assert not kill_commands(thread)  # it has run no command yet
        go.set()
    else:
        go.set()
        wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), "the command to start")
        assert kill_commands(thread)
    thread.join(30)
    pgid = int(pidfile.read_text()) if pidfile.exists() and pidfile.read_text().strip() else None
    try:
        assert not thread.is_alive() and isinstance(outcome[0], DeliveryError)
        assert "exited -9" in str(outcome[0])
        wait_for(lambda: pgid is None or not group_alive(pgid), "the command's process group to end", timeout=15)
        time.sleep(4)  # past the moment the command would have finished
        assert not marker.exists()
    finally:
        if pgid is not None:
            with suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)


class HangingNotifier:
    """A plugin whose event hook hangs: a step no stop event can interrupt."""

    def __init__(self) -> None:
        self.started, self.release = threading.Event(), threading.Event()

    @hookimpl
    def meshbridge_on_event(self, event) -> None:
        self.started.set()
        self.release.wait(60)


def test_sigterm_stops_the_service_even_when_a_step_hangs(
    meshbridge_config, mesh_peer, bridge_with, monkeypatch, caplog
) -> None:
    import meshbridge.service

    monkeypatch.setattr(meshbridge.service, "STOP_WAIT", 1.0, raising=False)  # the bound, made short for the test
    notifier = HangingNotifier()
    bridge = bridge_with(meshbridge_config(routes('{ folder = "delivered" }')), notifier)
    mesh_id = mesh_peer("X26ABC1").send_message("X26ABC2", b"nobody routes this", workflow_id="NO_ROUTE")

    def terminate() -> None:
        if notifier.started.wait(60):  # the alerts worker (the dispatcher) is stuck in the hook
            os.kill(os.getpid(), signal.SIGTERM)

    killer = threading.Thread(target=terminate, daemon=True)
    killer.start()
    service = meshbridge.service.Service(bridge)
    try:
        with caplog.at_level("INFO", logger="meshbridge"):
            service.run()  # returns: the stop does not wait for the hung step
        assert notifier.started.is_set() and not notifier.release.is_set()
        stopped = [r.getMessage() for r in caplog.records]
        assert any("still busy" in m and "meshbridge-alerts" in m for m in stopped), stopped
        assert stopped[-1] == "meshbridge stopped"
        assert bridge.store.find("in", mesh_id).state == "unrouted"  # what the step did is recorded
    finally:
        notifier.release.set()
        killer.join(60)
        for worker in getattr(service, "workers", {}).values():
            worker.join(60)  # the abandoned worker ends once its step does
        if hasattr(service, "close"):  # not on the base commit
            service.close()


def test_a_delivery_claim_is_won_once_and_lapses_with_its_lease(backend: Backend) -> None:
    one, two = backend.open(), backend.open()  # two workers, two connections (on SQLite and PostgreSQL)
    try:
        sha, size = one.payloads.write_file(io.BytesIO(b"payload"))
        ids = [
            one.add("in", "valid", mailbox="X26ABC2", workflow_id="WF", payload_sha256=sha, payload_size=size).id
            for _ in range(3)
        ]
        assert [m.id for m in two.deliverable("X26ABC2", "WF", 600)] == ids
        assert set(one.claim_deliveries(ids[:2], lease=600)) == set(ids[:2])
        assert set(two.claim_deliveries(ids, lease=600)) == {ids[2]}  # the others are taken
        assert two.deliverable("X26ABC2", "WF", 600) == []
        assert one.claim_deliveries(ids, lease=600) == {}
        backend.execute("UPDATE messages SET lease_boot = 'an-earlier-boot' WHERE id = ?", [ids[0]])
        assert set(two.claim_deliveries(ids, lease=600)) == {ids[0]}  # its worker died: the lease lapsed
        one.transition(ids[1], "delivered", from_states=("valid",))
        backend.execute("UPDATE messages SET lease_beat = NULL")  # released
        assert set(two.claim_deliveries(ids, lease=600)) == {ids[0], ids[2]}  # a delivered one is never claimed
    finally:
        one.close()
        two.close()


@pytest.mark.parametrize(
    ("setting", "problem"),
    [
        ("delivery_attempts = 0", "service.delivery_attempts: expected a whole number of at least 1, got 0"),
        ('delivery_timeout = "0s"', "service.delivery_timeout: must be more than 0 s"),
        ('delivery_backoff = "soon"', "service.delivery_backoff:"),
    ],
)
def test_delivery_settings_are_checked(meshbridge_config, setting: str, problem: str) -> None:
    from meshbridge.errors import ConfigError

    config = meshbridge_config(routes('{ folder = "delivered" }', setting + "\n"))
    with pytest.raises(ConfigError) as raised:
        load(config)
    assert problem in str(raised.value)
    defaults = load(meshbridge_config(routes('{ folder = "delivered" }'))).service
    assert (defaults.delivery_attempts, defaults.delivery_timeout, defaults.delivery_lease) == (10, 300.0, 600.0)
