"""Fault injection between meshbridge and MESH: 429, 5xx, timeouts, resets, lost answers and cut bodies.

A loopback fault proxy (``meshbridge.faultproxy``, the ``mesh_fault_proxy`` fixture) sits between
meshbridge (``[mesh] url``) and a real mesh-sandbox. Every case breaks one request and then lets the
rest through: the payload must arrive exactly once, whole, with every state right, and the failures
that reached meshbridge on the timeline. mesh-client retries 425/429/502/503/504, resets and
timeouts itself, except on the first POST to /outbox; meshbridge retries the rest on the next poll.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import OUT_IN, sha256, write_random

from meshbridge import Bridge, TransportError
from meshbridge.faultproxy import Fault, FaultProxy, Rule, answer, delay, drop_after, reset, truncate
from meshbridge.sandbox import PASSWORD, Sandbox

CHUNK = 100_000
SIZE = 2 * CHUNK + 4321  # three chunks
FAST = f'retry_backoff = "0s"\ntracking_interval = "0s"\nchunk_size = {CHUNK}\n'
TIMEOUT = 1.0  # [mesh] timeout for the timeout cases; the proxy holds the answer longer
SECRETS = (PASSWORD, "TestKey", "NHSMESH", "Authorization")  # password, shared key, the auth header

CALLS = {  # (method, request-target pattern) of each MESH call meshbridge makes
    "send": ("POST", r"/X26ABC1/outbox$"),
    "chunk-2": ("POST", r"/X26ABC1/outbox/\w+/2$"),
    "chunk-3": ("POST", r"/X26ABC1/outbox/\w+/3$"),  # the last: it finalises the message
    "lookup": ("GET", r"/X26ABC1/outbox/tracking/\w+$"),  # find_sent, by local id
    "inbox": ("GET", r"/X26ABC2/inbox\?"),
    "download": ("GET", r"/X26ABC2/inbox/\w+$"),
    "download-2": ("GET", r"/X26ABC2/inbox/\w+/2$"),
    "acknowledge": ("PUT", r"/X26ABC2/inbox/\w+/status/acknowledged$"),
    "track": ("GET", r"/X26ABC1/outbox/tracking\?messageID="),
}
DOING = {  # what the error line names
    "send": "cannot send chunk 1/3 to X26ABC2",
    "chunk-2": "cannot send chunk 2/3 to X26ABC2",
    "chunk-3": "cannot send chunk 3/3 to X26ABC2",
    "lookup": "cannot look up local id",
    "inbox": "cannot list the inbox",
    "download": "cannot download",
    "download-2": "cannot download",
    "acknowledge": "cannot acknowledge",
    "track": "cannot track",
}
FAULTS: dict[str, Fault] = {
    "429": answer(429),
    "500": answer(500),
    "502": answer(502),
    "503": answer(503),
    "504": answer(504),
    "502-after": answer(502, after=True),  # MESH did it; the answer became a 502
    "500-after": answer(500, after=True),
    "drop-after": drop_after(),  # MESH did it; the connection closed without an answer
    "timeout": delay(TIMEOUT + 1.5),  # MESH did it; the answer came after the client gave up
    "reset": reset(),  # a TCP reset before anything reached MESH
    "truncate": truncate(2),  # the answer's body cut after 2 bytes (an upload's is "null")
}
RETRIED_BY_MESH_CLIENT = {"429", "502", "503", "504", "502-after", "drop-after", "timeout", "reset"}
EMPTY = {"acknowledge"}  # its answer has no body: nothing to cut
SENDING = ("send", "chunk-2", "chunk-3", "lookup")  # the calls of a send attempt


def config(meshbridge_config: Any, proxy: FaultProxy, mesh: str = "", timeout: float = 10.0) -> Path:
    return meshbridge_config(OUT_IN, url=proxy.url, mesh=f'{FAST}timeout = "{timeout}s"\n{mesh}')


def deliver(bridge: Bridge, payload: Path, polls: int = 4) -> tuple[str, list[str]]:
    """Send (a failure leaves it stored), then poll until it is delivered; the problems reported."""
    problems = []
    try:
        message_id = bridge.send(payload, route="out").id
    except TransportError as exc:
        problems.append(str(exc))
        [row] = bridge.messages(direction="out")
        message_id = row.id
    for _ in range(polls):
        problems += bridge.poll().problems
        inbound = bridge.messages(direction="in")
        if bridge.store.get(message_id).state == "delivered" and [m.state for m in inbound] == ["delivered"]:
            break
    return message_id, problems


def mesh_outbox(peer: Any) -> list[dict[str, Any]]:
    """Every message this mailbox sent, as MESH (the sandbox's rich outbox) has them."""
    response = peer._session.get(f"{peer.mailbox_url}/outbox/rich", timeout=10)
    response.raise_for_status()
    return list(response.json()["messages"])


def assert_delivered_once(bridge: Bridge, message_id: str, payload: Path, proxy: FaultProxy, mesh_peer: Any) -> None:
    """Sent and delivered, one MESH message, collected once, whole, acknowledged, delivered once."""
    message = bridge.store.get(message_id)
    assert (message.state, message.last_error) == ("delivered", None)
    [sent] = mesh_outbox(mesh_peer("X26ABC1"))
    assert (sent["message_id"], sent["local_id"], sent["status"]) == (
        message.mesh_message_id,
        message_id,
        "acknowledged",
    )
    assert len([h for h in proxy.seen("POST", CALLS["send"][1]) if h.upstream_status == 202]) == 1
    [inbound] = bridge.messages(direction="in")
    assert (inbound.state, inbound.mesh_message_id) == ("delivered", message.mesh_message_id)
    assert inbound.payload_sha256 == sha256(payload)
    [file] = (bridge.config.file.parent / "delivered").iterdir()
    assert sha256(file) == sha256(payload)
    assert mesh_peer("X26ABC2").list_messages() == []


def assert_plain(line: str, mailbox: str, doing: str) -> None:
    """One line naming the mailbox and the operation, with no secret in it."""
    assert "\n" not in line and "Traceback" not in line
    assert f"MESH mailbox {mailbox}: {doing}" in line, line
    assert not [s for s in SECRETS if s in line], line


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("call", CALLS)
def test_one_fault_on_one_call(
    call: str, fault: str, mesh_fault_proxy: FaultProxy, meshbridge_config, make_bridge, mesh_peer, tmp_path: Path
) -> None:
    proxy = mesh_fault_proxy
    bridge = make_bridge(config(meshbridge_config, proxy, timeout=TIMEOUT if fault == "timeout" else 10.0))
    payload = write_random(tmp_path / "payload.bin", SIZE)
    method, path = CALLS[call]
    if call == "lookup":  # MESH is asked by local id before a send is tried again
        proxy.add("POST", CALLS["send"][1], answer(503))
    proxy.add(method, path, FAULTS[fault])

    message_id, problems = deliver(bridge, payload)

    assert proxy.fired(method, path) == 1
    assert_delivered_once(bridge, message_id, payload, proxy, mesh_peer)
    # Did the fault reach meshbridge, or did mesh-client's own retry absorb it?
    surfaced = call == "send" or (fault not in RETRIED_BY_MESH_CLIENT and not (fault == "truncate" and call in EMPTY))
    mine = [p for p in problems if DOING[call] in p]
    assert len(mine) == surfaced, problems
    for line in mine:
        assert_plain(line, "X26ABC1" if call in SENDING or call == "track" else "X26ABC2", DOING[call])
    # The timeline: one send-failed per failed attempt, with its reason; nothing when absorbed.
    failed = [e.detail["reason"] for e in bridge.store.events(message_id) if e.kind == "send-failed"]
    expected = [DOING["send"]] if call == "lookup" else []  # the 503 that made it look
    expected += [DOING[call]] if surfaced and call in SENDING else []
    assert len(failed) == len(expected), failed
    for doing in expected:
        [reason] = [r for r in failed if doing in r]
        assert_plain(reason, "X26ABC1", doing)
    assert bridge.store.get(message_id).attempts == len(expected) + 1


@pytest.mark.parametrize("fault", ["502-after", "drop-after", "timeout", "truncate"])
@pytest.mark.parametrize("size", [CHUNK // 2, SIZE], ids=["one-chunk", "three-chunks"])
def test_mesh_took_it_but_the_answer_was_lost(
    fault: str, size: int, mesh_fault_proxy: FaultProxy, meshbridge_config, make_bridge, mesh_peer, tmp_path: Path
) -> None:
    """The first POST reached MESH, the client never learned the id: found by local id, not sent twice."""
    proxy = mesh_fault_proxy
    bridge = make_bridge(config(meshbridge_config, proxy, timeout=TIMEOUT if fault == "timeout" else 10.0))
    payload = write_random(tmp_path / "payload.bin", size)
    proxy.add("POST", CALLS["send"][1], FAULTS[fault])

    message_id, _ = deliver(bridge, payload)

    [first] = proxy.seen("POST", CALLS["send"][1])  # MESH was asked once, and said yes
    assert (first.fault, first.upstream_status) == (FAULTS[fault], 202)
    assert_delivered_once(bridge, message_id, payload, proxy, mesh_peer)
    events = bridge.store.events(message_id)
    kinds = [e.kind for e in events]
    assert kinds.count("send-failed") == 1 and kinds.index("send-failed") < kinds.index("sent")
    [failed] = [e.detail["reason"] for e in events if e.kind == "send-failed"]
    assert_plain(failed, "X26ABC1", f"cannot send chunk 1/{1 if size < CHUNK else 3} to X26ABC2")
    if size < CHUNK:  # recorded sent from MESH's own record of the local id
        assert [e.detail.get("found_by_local_id") for e in events if e.kind == "sent"] == [True]
    else:  # chunk 1 found in MESH by local id, the upload continued from chunk 2
        assert [e for e in events if e.detail.get("found_by_local_id") or e.detail.get("found_in_mesh")]
        assert len(proxy.seen("POST", r"/outbox/\w+/[23]$")) == 2


@pytest.mark.parametrize("fault", [reset(), delay(TIMEOUT + 1.5, upstream=False)], ids=["reset", "black-hole"])
def test_a_send_that_never_reached_mesh_is_sent_again_once(
    fault: Fault, mesh_fault_proxy: FaultProxy, meshbridge_config, make_bridge, mesh_peer, tmp_path: Path
) -> None:
    """The first POST never got to MESH: MESH knows no such local id, so the next attempt sends it."""
    proxy = mesh_fault_proxy
    bridge = make_bridge(config(meshbridge_config, proxy, timeout=TIMEOUT))
    payload = write_random(tmp_path / "payload.bin", SIZE)
    proxy.add("POST", CALLS["send"][1], fault)

    message_id, _ = deliver(bridge, payload)

    assert [h.upstream_status for h in proxy.seen("POST", CALLS["send"][1])] == [None, 202]
    assert [h.upstream_status for h in proxy.seen("GET", CALLS["lookup"][1])][-1] == 404
    assert_delivered_once(bridge, message_id, payload, proxy, mesh_peer)
    kinds = [e.kind for e in bridge.store.events(message_id)]
    assert kinds.count("send-failed") == 1 and kinds.count("chunk-sent") == 3


@pytest.mark.parametrize("framed", [False, True], ids=["connection-closed", "length-agrees"])
def test_a_download_cut_short_once_is_neither_stored_nor_acknowledged(
    framed: bool, mesh_fault_proxy: FaultProxy, meshbridge_config, make_bridge, mesh_peer, tmp_path: Path
) -> None:
    """Chunk 2 of 3 cut mid-body (the connection closed, or a middlebox sent a shorter body with a
    Content-Length to match): on first sight nothing recorded, nothing acknowledged (a cut may be a
    passing fault); the next poll gets it whole. (A cut seen twice the same way is stored as
    received and ``invalid``: tests/test_bounded_inbound.py.)"""
    proxy = mesh_fault_proxy
    payload = write_random(tmp_path / "payload.bin", SIZE)
    mesh_id = mesh_peer("X26ABC1").send_message(
        "X26ABC2", payload.read_bytes(), max_chunk_size=CHUNK, workflow_id="TEST_WORKFLOW"
    )
    bridge = make_bridge(config(meshbridge_config, proxy))
    proxy.add("GET", CALLS["download-2"][1], truncate(CHUNK // 3, framed=framed))

    first = bridge.poll(mailbox="X26ABC2")

    [problem] = first.problems
    assert_plain(problem, "X26ABC2", f"cannot download {mesh_id}")
    assert (
        ("cut short" in problem and "download 1 of at most 5" in problem) if framed else ("IncompleteRead" in problem)
    )
    assert list(bridge.messages(direction="in")) == []
    assert proxy.seen("PUT") == []
    assert mesh_peer("X26ABC2").list_messages() == [mesh_id]
    assert [p for p in bridge.config.store.path.parent.rglob("*") if p.is_file() and "payloads" in str(p)] == []

    second = bridge.poll(mailbox="X26ABC2")

    assert second.problems == []
    [message] = bridge.messages(direction="in")
    assert (message.state, message.payload_sha256) == ("delivered", sha256(payload))
    assert mesh_peer("X26ABC2").list_messages() == []
    assert len(proxy.seen("PUT")) == 1
    assert not bridge.store.bad_body_seen(mesh_id)  # the sighting is done with


def test_persistent_503_fails_the_message_then_retry_sends_it_once(
    mesh_fault_proxy: FaultProxy, meshbridge_config, make_bridge, mesh_peer, tmp_path: Path
) -> None:
    proxy = mesh_fault_proxy
    path = config(meshbridge_config, proxy, mesh="send_attempts = 3\n")
    bridge = make_bridge(path)
    payload = write_random(tmp_path / "payload.bin", SIZE)
    proxy.add("POST", CALLS["send"][1], answer(503), times=None)

    message_id, problems = deliver(bridge, payload, polls=2)

    message = bridge.store.get(message_id)
    assert (message.state, message.attempts) == ("failed", 3)
    assert_plain(message.last_error, "X26ABC1", "cannot send chunk 1/3 to X26ABC2")
    assert "503" in message.last_error
    assert any("gave up after 3 attempts" in p for p in problems), problems
    kinds = [e.kind for e in bridge.store.events(message_id)]
    assert kinds.count("send-failed") == 2 and kinds[-1] == "failed"
    assert proxy.fired() == 3 and mesh_outbox(mesh_peer("X26ABC1")) == []

    proxy.clear()  # MESH is healthy again
    done = subprocess.run(
        [sys.executable, "-m", "meshbridge", "--config", str(path), "retry", message_id],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert f"{message_id}: sent" in done.stdout
    bridge.poll()
    assert_delivered_once(bridge, message_id, payload, proxy, mesh_peer)


def test_random_faults_on_every_call_lose_and_duplicate_nothing(
    mesh_fault_proxy: FaultProxy, meshbridge_config, make_bridge, mesh_peer, tmp_path: Path
) -> None:
    """A seeded storm: every call fails now and then, in every way; four payloads still arrive once each."""
    proxy = mesh_fault_proxy
    bridge = make_bridge(config(meshbridge_config, proxy, timeout=TIMEOUT))
    for seed, (name, fault) in enumerate(FAULTS.items()):
        for method, path in CALLS.values():
            proxy.add(
                method, path, fault, probability=0.02, seed=seed * 100 + len(path), times=1 if name == "timeout" else 2
            )
    payloads = [write_random(tmp_path / f"p{i}.bin", SIZE - i * 7000) for i in range(4)]
    for payload in payloads:
        with contextlib.suppress(TransportError):  # stored: a poll sends it
            bridge.send(payload, route="out")
    ids = [m.id for m in bridge.messages(direction="out")]
    assert len(ids) == len(payloads)
    for _ in range(10):
        bridge.poll()
        if {bridge.store.get(i).state for i in ids} == {"delivered"} and all(
            m.state == "delivered" for m in bridge.messages(direction="in")
        ):
            break

    assert len({str(h.fault) for h in proxy.seen(faulted=True)}) >= 4  # it did storm, in several ways
    assert {bridge.store.get(i).state for i in ids} == {"delivered"}
    outbox = mesh_outbox(mesh_peer("X26ABC1"))
    assert sorted(m["local_id"] for m in outbox) == sorted(ids)
    inbound = bridge.messages(direction="in")
    assert sorted(m.payload_sha256 for m in inbound) == sorted(sha256(p) for p in payloads)
    assert {m.state for m in inbound} == {"delivered"}
    assert len(list((bridge.config.file.parent / "delivered").iterdir())) == len(payloads)
    recorded = bridge.store.db.execute(
        "SELECT group_concat(detail, ' ') FROM events UNION ALL SELECT group_concat(last_error, ' ') FROM messages"
    ).fetchall()
    assert not [secret for secret in SECRETS if secret in str(recorded)]


def test_several_megabytes_compressed_chunks_through_resets_and_cuts(
    mesh_fault_proxy: FaultProxy, meshbridge_config, make_bridge, mesh_peer, tmp_path: Path
) -> None:
    """6 MB in 2 MB chunks, gzip on the wire (chunked request bodies): a reset mid-upload, a cut download."""
    proxy = mesh_fault_proxy
    bridge = make_bridge(
        meshbridge_config(
            OUT_IN,
            url=proxy.url,
            mesh='retry_backoff = "0s"\ntracking_interval = "0s"\nchunk_size = "2MB"\ncompress = true\n',
        )
    )
    payload = write_random(tmp_path / "big.bin", 6_000_000)
    proxy.add("POST", r"/outbox/\w+/2$", reset())
    proxy.add("GET", r"/inbox/\w+/3$", truncate(500_000))

    message_id, problems = deliver(bridge, payload)

    assert proxy.fired() == 2
    assert_delivered_once(bridge, message_id, payload, proxy, mesh_peer)
    assert "send-failed" not in [e.kind for e in bridge.store.events(message_id)]  # mesh-client re-sent chunk 2
    [cut] = problems
    assert_plain(cut, "X26ABC2", "cannot download")


def test_several_messages_with_one_local_id_are_not_guessed_at(meshbridge_config, make_bridge, mesh_peer) -> None:
    """MESH answers 300 when a local id is not unique: find_sent says so rather than guess (and send again)."""
    peer = mesh_peer("X26ABC1")
    for _ in range(2):
        peer.send_message("X26ABC2", b"twice", workflow_id="TEST_WORKFLOW", local_id="same-local-id")
    bridge = make_bridge(meshbridge_config(OUT_IN))
    with pytest.raises(TransportError) as info:
        bridge.mailbox("X26ABC1").find_sent("same-local-id")
    assert_plain(str(info.value), "X26ABC1", "several messages carry local id same-local-id")


def test_the_proxy_forwards_untouched_when_no_rule_matches(mesh_fault_proxy: FaultProxy, mesh_sandbox: Sandbox) -> None:
    import requests

    mesh_fault_proxy.add("GET", r"/never$", answer(503))
    direct = requests.get(f"{mesh_sandbox.url}/health", timeout=5)
    proxied = requests.get(f"{mesh_fault_proxy.url}/health", timeout=5)
    assert (proxied.status_code, proxied.json()) == (direct.status_code, direct.json())
    assert mesh_fault_proxy.fired() == 0 and len(mesh_fault_proxy.seen("GET", "/health")) == 1


def test_a_rule_with_a_probability_and_a_seed_fires_the_same_way_every_run() -> None:
    def pattern(seed: int) -> list[bool]:
        rule = Rule("GET", r"/inbox", answer(503), times=None, probability=0.3, seed=seed)
        return [rule.take("GET", "/messageexchange/X26ABC2/inbox") for _ in range(50)]

    assert pattern(7) == pattern(7) != pattern(8)
    assert 5 < sum(pattern(7)) < 25
    rule = Rule("PUT", r"/acknowledged$", drop_after(), times=2)
    assert [rule.take("PUT", "/x/status/acknowledged") for _ in range(3)] == [True, True, False]
    assert not rule.take("GET", "/x/status/acknowledged")


@pytest.mark.parametrize("way", ["upload", "download"])
def test_a_throttled_link_carries_every_byte_no_faster_than_its_rate(
    way: str, mesh_fault_proxy: FaultProxy, meshbridge_config, make_bridge, mesh_peer, tmp_path: Path
) -> None:
    from meshbridge.faultproxy import throttle

    proxy, rate = mesh_fault_proxy, 100_000  # bytes a second: each 100 KB chunk takes a second
    bridge = make_bridge(config(meshbridge_config, proxy))
    payload = write_random(tmp_path / "payload.bin", SIZE)
    if way == "upload":
        proxy.add("POST", r"/X26ABC1/outbox", throttle(rate, download=False), times=None)
    else:
        proxy.add("GET", r"/X26ABC2/inbox/\w+(/\d+)?$", throttle(rate, upload=False), times=None)

    started = time.monotonic()
    message_id, problems = deliver(bridge, payload)
    took = time.monotonic() - started

    assert problems == []
    assert_delivered_once(bridge, message_id, payload, proxy, mesh_peer)
    throttled = proxy.seen(faulted=True)
    assert len(throttled) == 3 and {str(h.fault) for h in throttled} == {f"throttle-100000Bps-{way[:-4]}"}
    if way == "upload":  # every byte of each chunk went through the throttle
        assert [h.forwarded for h in throttled] == [CHUNK, CHUNK, SIZE - 2 * CHUNK]
    assert took >= (SIZE - 3 * rate / 10) / rate  # a lower bound: each body paced, a tenth of a second ahead at most


def test_latency_answers_late_then_normally(mesh_fault_proxy: FaultProxy, mesh_sandbox: Sandbox) -> None:
    import requests

    from meshbridge.faultproxy import latency

    proxy = mesh_fault_proxy
    direct = requests.get(f"{mesh_sandbox.url}/health", timeout=5)
    proxy.add("GET", r"/health$", latency(1.0), times=2)
    with pytest.raises(requests.Timeout):  # a client less patient than the latency gives up
        requests.get(f"{proxy.url}/health", timeout=0.3)
    started = time.monotonic()
    late = requests.get(f"{proxy.url}/health", timeout=10)
    took = time.monotonic() - started
    assert (late.status_code, late.json()) == (direct.status_code, direct.json())  # then forwarded normally
    assert took >= 1.0
    assert [str(h.fault) for h in proxy.seen("GET", "/health")] == ["latency-1s", "latency-1s"]
    assert requests.get(f"{proxy.url}/health", timeout=0.3).status_code == direct.status_code  # spent: no delay
