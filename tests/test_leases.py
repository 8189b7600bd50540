"""Send leases: a claim lives while its upload makes progress, judged on a clock the wall clock cannot move.

A real ``meshbridge send`` child process uploads a two-chunk message through a throttled link (the
fault proxy) with a short ``send_lease``; this test process is a second meshbridge on the same
store (a :class:`~meshbridge.Bridge`) trying to take the send over, as ``flush`` does. While the
first chunk is in flight, with no progress recorded, every try is refused; once the uploader is
SIGKILLed the second takes over after the lease; the recipient gets the message exactly once.
The wall clock is moved in the second process only (``meshbridge.store.sqlite``'s ``datetime``,
as a jump seen by a reader after the uploader wrote): it must change nothing.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import OUT_IN, sha256, write_random

from meshbridge.faultproxy import FaultProxy

CHUNK = 8_000_000
SIZE = CHUNK + 2_000_000  # two chunks
RATE = 1_000_000  # bytes a second through the throttled link: the first chunk takes eight seconds
LEASE = 3.0  # seconds: the uploader's heartbeat comes every 0.75 s of reading
MESH = f'chunk_size = {CHUNK}\nsend_lease = "{LEASE:g}s"\ntracking_interval = "0s"\nretry_backoff = "0s"\n'
FIRST = r"/X26ABC1/outbox$"  # the first chunk's POST: it makes the MESH message


def uploader(config: Path, payload: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "meshbridge", "--config", str(config), "send", str(payload), "--route", "out"],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def forwarded(proxy: FaultProxy) -> int:
    """Bytes of the first chunk the throttled link has carried to MESH so far."""
    hits = proxy.seen("POST", FIRST)
    return hits[0].forwarded if hits else 0


def wall_clock_jumps(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """The store's wall clock (its ``datetime``) is ``seconds`` off from here on, in this process."""
    from meshbridge.store import queries as sqlite  # the store's clock: now()

    real = sqlite.datetime

    class Jumped(real):  # type: ignore[misc, valid-type]
        @classmethod
        def now(cls, tz: Any = None) -> datetime:
            return real.now(tz) + timedelta(seconds=seconds)

    monkeypatch.setattr(sqlite, "datetime", Jumped)


def assert_arrived_once(bridge: Any, payload: Path, mesh_peer: Any, tmp_path: Path) -> None:
    """One message in the recipient's inbox, whole, and it is the one the store recorded sent."""
    recipient = mesh_peer("X26ABC2")
    [mesh_id] = recipient.list_messages()
    received = tmp_path / "received.bin"
    with recipient.retrieve_message(mesh_id) as message:
        received.write_bytes(message.read())
    assert sha256(received) == sha256(payload)
    [row] = bridge.messages(direction="out")
    assert (row.state, row.mesh_message_id, row.chunks_done) == ("sent", mesh_id, 2)


def upload_in_flight(proxy: FaultProxy, config: Path, payload: Path, tmp_path: Path) -> subprocess.Popen[bytes]:
    """A child process uploading ``payload``, its first chunk through the throttled link and under way."""
    from meshbridge.faultproxy import throttle

    proxy.add("POST", FIRST, throttle(RATE, download=False))
    child = uploader(config, payload, tmp_path / "uploader.log")
    wait_for(lambda: forwarded(proxy) >= 300_000 or child.poll() is not None, 60, "the first chunk's upload")
    assert child.poll() is None, (tmp_path / "uploader.log").read_text()
    return child


@pytest.mark.parametrize("jump", [0, 86400, -86400], ids=["steady-clock", "clock-forward-a-day", "clock-back-a-day"])
def test_a_slow_upload_keeps_its_claim_and_a_dead_one_is_taken_over_once(
    jump: float,
    monkeypatch: pytest.MonkeyPatch,
    mesh_fault_proxy: FaultProxy,
    meshbridge_config,
    make_bridge,
    mesh_peer,
    tmp_path: Path,
) -> None:
    proxy = mesh_fault_proxy
    config = meshbridge_config(OUT_IN, url=proxy.url, mesh=MESH)
    payload = write_random(tmp_path / "big.bin", SIZE)
    other = make_bridge(config)  # the second process on the same store
    child = upload_in_flight(proxy, config, payload, tmp_path)
    try:
        if jump:
            wall_clock_jumps(monkeypatch, jump)
        tries = 0
        until = time.monotonic() + 1.5 * LEASE  # more than a lease of trying, all within the first chunk
        while time.monotonic() < until:
            assert other.flush().sent == [], "a live upload's send was taken over"
            tries += 1
            time.sleep(0.1)
        # the tries were made while the first chunk was in flight, with no progress recorded
        assert child.poll() is None and forwarded(proxy) < CHUNK - 1_500_000 and tries > 5
        [row] = other.messages(direction="out")
        assert (row.state, row.chunks_done, row.mesh_message_id) == ("sending", 0, None)
    finally:
        child.kill()  # SIGKILL: no clean-up, its claim is left behind
        child.wait()
    proxy.clear()  # the link is fast again

    # after the lease (on the lease clock, whatever the wall clock says) the claim is taken over
    wait_for(lambda: other.flush().sent, 30, "the dead uploader's claim to be taken over")
    assert_arrived_once(other, payload, mesh_peer, tmp_path)
    [row] = other.messages(direction="out")
    kinds = [e["kind"] for e in other.store.events(row.id)]
    assert kinds == ["accepted", "sending", "resending", "chunk-sent", "chunk-sent", "sent"]
    assert len([h for h in proxy.seen("POST", FIRST) if h.upstream_status == 202]) == 1  # one MESH message made


def test_an_uploader_that_lost_its_claim_stops_mid_chunk(
    monkeypatch: pytest.MonkeyPatch, mesh_fault_proxy: FaultProxy, meshbridge_config, make_bridge, mesh_peer, tmp_path
) -> None:
    """An uploader stalled past its lease (here: the second process's lease clock moved on, the
    ``meshbridge.clock.now`` seam) is taken over; at its next heartbeat it finds the claim gone and
    stops mid-chunk, so MESH never completes its copy: one message arrives."""
    from meshbridge import clock

    proxy = mesh_fault_proxy
    config = meshbridge_config(OUT_IN, url=proxy.url, mesh=MESH)
    payload = write_random(tmp_path / "big.bin", SIZE)
    other = make_bridge(config)
    child = upload_in_flight(proxy, config, payload, tmp_path)
    try:
        real = clock.now
        monkeypatch.setattr(clock, "now", lambda: real() + LEASE + 1)
        assert other.flush().sent  # taken over: MESH had nothing by local id, so sent whole
        child.wait(30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    error = (tmp_path / "uploader.log").read_text()
    assert child.returncode != 0 and "another process took over its send" in error and "Traceback" not in error
    assert_arrived_once(other, payload, mesh_peer, tmp_path)
    assert [h.upstream_status for h in proxy.seen("POST", FIRST)] == [None, 202]  # the stale upload never landed


def test_a_claim_lapses_on_the_lease_clock_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Judged on ``meshbridge.clock``: a heartbeat keeps a claim; the lease clock moving past the
    lease, a release, or an earlier boot lapse it; the wall clock, moved either way, does neither."""
    import io

    from meshbridge import clock, pipeline
    from meshbridge.store import SQLiteStore

    store = SQLiteStore(tmp_path / "var" / "meshbridge.db")
    try:
        fields = dict(route="out", mailbox="X26ABC1", to="X26ABC2", workflow_id="WF", payload_type="binary")
        row = pipeline.accept(store, io.BytesIO(b"payload"), filename="a", claim=True, **fields)
        holder = row["lease_holder"]
        for jump in (86400, -86400):  # a day either way on the wall clock: still held
            wall_clock_jumps(monkeypatch, jump)
            assert store.claim(row["id"], 60) is None and store.stale_sending(60) == []
        real = clock.now
        monkeypatch.setattr(clock, "now", lambda: real() + 59)
        assert store.renew(row["id"], holder)  # a heartbeat at +59 s
        monkeypatch.setattr(clock, "now", lambda: real() + 118)
        assert store.claim(row["id"], 60) is None  # 59 s after that heartbeat: still held
        monkeypatch.setattr(clock, "now", lambda: real() + 120)
        assert [m["id"] for m in store.stale_sending(60)] == [row["id"]]  # a lease after it: lapsed
        taken = store.claim(row["id"], 60)
        assert taken is not None and taken["resumed"] and taken["lease_holder"] != holder
        assert not store.renew(row["id"], holder)  # the first holder learns it lost the claim

        assert store.release(row["id"], taken["lease_holder"], "send-interrupted", {"reason": "stopping"})
        assert store.claim(row["id"], 60) is not None  # released: taken at once
        store.db.execute("UPDATE messages SET lease_boot = 'an-earlier-boot' WHERE id = ?", [row["id"]])
        assert store.claim(row["id"], 60) is not None  # claimed before a reboot: its process is gone
        kinds = [e["kind"] for e in store.events(row["id"])]
        assert kinds == ["accepted", "sending", "resending", "send-interrupted", "resending", "resending"]
    finally:
        store.close()
