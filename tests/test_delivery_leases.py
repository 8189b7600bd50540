"""Delivery claims are judged on the lease clock, like send claims.

A delivery's claim is renewed while its destination works (a heartbeat from the worker waiting
for it), and lapses only when that stops: its worker died (a claim from an earlier boot), or no
heartbeat came for ``[service] delivery_lease`` on :mod:`meshbridge.clock`. The wall clock,
moved a day forward while an EPR takes its time, must not let a second worker deliver the same
message again. Two :class:`~meshbridge.Bridge` objects on one store play the two workers (each has
its own connection, as the service's workers do); the EPR is a real local HTTP server.
"""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any, ClassVar

import pytest
from conftest import OUT_IN

LEASE = 2.0  # seconds: a heartbeat comes every half second


class SlowEpr(http.server.BaseHTTPRequestHandler):
    """Records each POST's body at once; answers the first only when ``release`` is set."""

    received: ClassVar[list[bytes]] = []
    release = threading.Event()

    def do_POST(self) -> None:
        body = b""
        while True:  # chunked (the destination streams)
            size = int(self.rfile.readline().strip() or b"0", 16)
            if not size:
                self.rfile.readline()
                break
            body += self.rfile.read(size)
            self.rfile.readline()
        cls = type(self)
        cls.received.append(body)
        if len(cls.received) == 1:
            cls.release.wait(60)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def epr() -> Iterator[str]:
    SlowEpr.received, SlowEpr.release = [], threading.Event()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), SlowEpr)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/epr"
    SlowEpr.release.set()
    server.shutdown()
    server.server_close()


def config_for(meshbridge_config: Any, url: str) -> Any:
    routes = OUT_IN.replace('destination = { folder = "delivered" }', f'destination = {{ http = "{url}" }}')
    return meshbridge_config(routes + f'\n[service]\ndelivery_lease = "{LEASE:g}s"\n')


def wall_clock_jumps(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """The wall clock (``datetime`` in the store and the inbound pipeline) is ``seconds`` off from here on."""
    from meshbridge.pipeline import inbound
    from meshbridge.store import queries as sqlite  # the store's clock: now()

    real = sqlite.datetime

    class Jumped(real):  # type: ignore[misc, valid-type]
        @classmethod
        def now(cls, tz: Any = None) -> datetime:
            return real.now(tz) + timedelta(seconds=seconds)

    monkeypatch.setattr(sqlite, "datetime", Jumped)
    monkeypatch.setattr(inbound, "datetime", Jumped)


def wait_for(condition: Any, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def collected(bridge: Any, mesh_peer: Any, body: bytes) -> dict[str, Any]:
    """A message from X26ABC1 on route ``in``, collected and validated: ``valid``, due for delivery."""
    mesh_id = mesh_peer("X26ABC1").send_message("X26ABC2", body, workflow_id="TEST_WORKFLOW")
    bridge.collect("X26ABC2")
    message = bridge.store.find("in", mesh_id)
    assert message["state"] == "valid", message
    return message


@pytest.mark.parametrize("jump", [0, 86400], ids=["steady-clock", "wall-clock-forward-a-day"])
def test_a_delivery_in_progress_keeps_its_claim_whatever_the_wall_clock_says(
    jump: float, monkeypatch: pytest.MonkeyPatch, meshbridge_config, make_bridge, mesh_peer, epr: str
) -> None:
    config = config_for(meshbridge_config, epr)
    first, second = make_bridge(config), make_bridge(config)  # two workers on one store
    message = collected(first, mesh_peer, b"deliver me once")
    delivering = threading.Thread(target=lambda: first.deliver("in"), daemon=True)
    delivering.start()
    try:
        wait_for(lambda: SlowEpr.received, "the first worker's POST to reach the EPR")
        if jump:
            wall_clock_jumps(monkeypatch, jump)
        until = time.monotonic() + 2 * LEASE  # two leases of trying, the EPR still holding the first POST
        while time.monotonic() < until:
            assert second.deliver("in").delivered == [], "a delivery in progress was taken over"
            time.sleep(0.1)
        assert second.store.get(message["id"])["state"] == "valid" and len(SlowEpr.received) == 1
    finally:
        SlowEpr.release.set()
        delivering.join(60)
    assert second.store.get(message["id"])["state"] == "delivered"
    assert second.deliver("in").delivered == []
    assert SlowEpr.received == [b"deliver me once"]  # the EPR got it exactly once
    row = second.store.get(message["id"])
    assert row["lease_beat"] is None  # released on success


def test_a_dead_workers_delivery_claim_is_taken_over(
    monkeypatch: pytest.MonkeyPatch, meshbridge_config, make_bridge, mesh_peer, epr: str
) -> None:
    """A claim made in an earlier boot lapses at once; one without a heartbeat for the lease (the
    ``meshbridge.clock.now`` seam moved past it) lapses then, not before."""
    from meshbridge import clock

    SlowEpr.release.set()  # the EPR answers at once
    config = config_for(meshbridge_config, epr)
    dead, alive = make_bridge(config), make_bridge(config)
    rebooted = collected(dead, mesh_peer, b"claimed before a reboot")
    stalled = collected(dead, mesh_peer, b"claimed by a worker that stopped beating")
    # the dead worker claimed both, then died before delivering either
    assert set(dead.store.claim_deliveries([rebooted["id"], stalled["id"]], LEASE)) == {rebooted["id"], stalled["id"]}
    dead.store.db.execute("UPDATE messages SET lease_boot = 'an-earlier-boot' WHERE id = ?", [rebooted["id"]])

    assert alive.deliver("in").delivered == [rebooted["id"]]  # the other is still held
    assert alive.store.get(stalled["id"])["state"] == "valid"
    real = clock.now
    monkeypatch.setattr(clock, "now", lambda: real() + LEASE + 1)  # a lease with no heartbeat
    assert alive.deliver("in").delivered == [stalled["id"]]
    assert alive.deliver("in").delivered == []
    assert sorted(SlowEpr.received) == [b"claimed before a reboot", b"claimed by a worker that stopped beating"]
