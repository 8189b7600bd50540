"""Memory and disk stay bounded whatever a peer sends (issue 9, point 5).

A hostile peer posts through the real mesh-sandbox: an ITK message too big to read, a response too
big to read, a gzip bomb, a corrupt gzip body, a cut that repeats, an empty body. Nothing is read
whole into memory past its cap, nothing over the decode limit is written, and a body that cannot be
decoded is left in MESH once, then stored as received, ``invalid`` with its reason, and acknowledged.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest
from conftest import OUT_IN, PATIENT, WORKFLOW, write_random

from meshbridge import itk
from meshbridge.faultproxy import FaultProxy, truncate

ITK_IN = f"""
[[routes]]
name = "toc-in"
direction = "inbound"
mailbox = "X26ABC2"
workflow_id = "{WORKFLOW}"
payload_type = "fhir"
itk = {{}}
destination = {{ folder = "in" }}
"""
ITK_OUT = f"""
[[routes]]
name = "toc-out"
direction = "outbound"
from = "X26ABC1"
to = "X26ABC2"
workflow_id = "{WORKFLOW}"
payload_type = "fhir"
itk = {{ inf_ack = true, bus_ack = false, event = "ITK006D" }}
"""


def post_raw(peer: Any, to: str, body: bytes, workflow: str = "TEST_WORKFLOW", gzipped: bool = True) -> str:
    """Post ``body`` exactly as given (a peer can put anything behind ``Content-Encoding: gzip``)."""
    headers = {"Content-Type": "application/octet-stream", "Mex-To": to, "Mex-WorkflowID": workflow}
    if gzipped:
        headers["Content-Encoding"] = "gzip"
    response = peer._session.post(f"{peer.mailbox_url}/outbox", data=body, headers=headers, timeout=60)
    response.raise_for_status()
    return str(response.json()["message_id"])


def bomb(mebibytes: int) -> bytes:
    """A gzip bomb: ``mebibytes`` MiB of zeros as that many ~1 KB gzip members."""
    return gzip.compress(b"\0" * (1 << 20), compresslevel=9) * mebibytes


def written() -> int:
    """Bytes this process has passed to write() so far (files, not sockets)."""
    return int(psutil.Process().io_counters().write_chars)


def tmp_files(bridge: Any) -> list[Path]:
    return [p for p in (bridge.store.payloads.root / "tmp").iterdir()]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def assert_stored_invalid(bridge: Any, raw: bytes, reason: str) -> dict[str, Any]:
    """The raw bytes, as received, in an ``invalid`` message whose reason and finding say why."""
    [message] = bridge.messages(direction="in")
    assert message.state == "invalid"
    assert (message.payload_sha256, message.payload_size) == (sha(raw), len(raw))
    assert bridge.store.payloads.read(message.payload_sha256) == raw
    assert reason in message.last_error, message.last_error
    [finding] = [f.as_dict() for f in message.findings]
    assert finding["code"] == "payload.undecodable" and reason in finding["message"]
    kinds = [e.kind for e in bridge.store.events(message.id)]
    assert kinds == ["received", "mesh-acked", "invalid"]
    assert bridge.status().counts["in"] == {"invalid": 1}
    return message


def test_a_gzip_bomb_is_never_written_past_the_limit_then_kept_as_received(
    meshbridge_config, make_bridge, mesh_peer
) -> None:
    raw = bomb(400)  # ~400 KB that inflates to 400 MiB
    mesh_id = post_raw(mesh_peer("X26ABC1"), "X26ABC2", raw)
    bridge = make_bridge(meshbridge_config(OUT_IN))
    limit = 100 * len(raw)  # the default max_compression_ratio, over the compressed bytes

    before = written()
    first = bridge.poll(mailbox="X26ABC2")

    assert written() - before < limit + (1 << 20), "wrote past the decode limit"
    [problem] = first.problems
    assert f"cannot download {mesh_id}" in problem and "max_compression_ratio" in problem, problem
    assert "download 1 of at most 5" in problem and "\n" not in problem
    assert list(bridge.messages(direction="in")) == []
    assert mesh_peer("X26ABC2").list_messages() == [mesh_id]  # not acknowledged on first sight
    assert tmp_files(bridge) == []  # the partial file is gone

    second = bridge.poll(mailbox="X26ABC2")

    assert second.problems == [] and len(second.invalid) == 1
    assert_stored_invalid(bridge, raw, "max_compression_ratio")
    assert mesh_peer("X26ABC2").list_messages() == []  # acknowledged
    assert bridge.poll(mailbox="X26ABC2").problems == []
    assert tmp_files(bridge) == []


def test_the_absolute_decode_limit_is_a_config_key(meshbridge_config, make_bridge, mesh_peer) -> None:
    """3 MB of text (compresses ~30 times, under the ratio) is over a 2 MB max_decoded_size."""
    text = b"".join(b"line %08d of an ordinary text file\n" % i for i in range(80_000))
    raw = gzip.compress(text)
    post_raw(mesh_peer("X26ABC1"), "X26ABC2", raw)
    bridge = make_bridge(meshbridge_config(OUT_IN, mesh='max_decoded_size = "2MB"\n'))

    before = written()
    [problem] = bridge.poll().problems

    assert written() - before < 2_000_000 + (1 << 20)
    assert "decodes to more than 2000000 bytes ([mesh] max_decoded_size)" in problem
    bridge.poll()
    assert_stored_invalid(bridge, raw, "max_decoded_size")


def test_a_corrupt_gzip_body_is_kept_as_received_and_shown(
    tmp_path: Path, meshbridge_config, make_bridge, mesh_peer
) -> None:
    good = gzip.compress(os.urandom(300_000))
    raw = good[:1000] + bytes(b ^ 0x5A for b in good[1000:1100]) + good[1100:]
    mesh_id = post_raw(mesh_peer("X26ABC1"), "X26ABC2", raw)
    path = meshbridge_config(OUT_IN)
    bridge = make_bridge(path)

    [problem] = bridge.poll().problems
    assert "is not valid gzip" in problem and mesh_id in problem
    assert mesh_peer("X26ABC2").list_messages() == [mesh_id]
    bridge.poll()

    message = assert_stored_invalid(bridge, raw, "not valid gzip")
    assert mesh_peer("X26ABC2").list_messages() == []
    assert not (tmp_path / "delivered").exists() or list((tmp_path / "delivered").iterdir()) == []

    def cli(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "meshbridge", "--config", str(path), *args], capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert "invalid" in cli("status")
    [listed] = json.loads(cli("messages", "--state", "invalid", "--json"))
    assert listed["id"] == message.id
    assert "not valid gzip" in cli("show", message.id)


def test_a_body_cut_the_same_way_twice_is_kept_as_received(
    mesh_fault_proxy: FaultProxy, meshbridge_config, make_bridge, mesh_peer, tmp_path: Path
) -> None:
    """A middlebox that always cuts chunk 2 of 3 (with a Content-Length to match): the same raw
    bytes twice, so it is no passing fault: stored as received, invalid, acknowledged."""
    proxy = mesh_fault_proxy
    payload = write_random(tmp_path / "payload.bin", 200_000)
    mesh_id = mesh_peer("X26ABC1").send_message(
        "X26ABC2", payload.read_bytes(), max_chunk_size=80_000, compress=True, workflow_id="TEST_WORKFLOW"
    )
    bridge = make_bridge(meshbridge_config(OUT_IN, url=proxy.url))
    proxy.add("GET", r"/X26ABC2/inbox/\w+/2$", truncate(20_000, framed=True), times=None)

    [problem] = bridge.poll(mailbox="X26ABC2").problems
    assert "chunk 2/3 was cut short" in problem
    assert proxy.seen("PUT") == []

    bridge.poll(mailbox="X26ABC2")

    [message] = bridge.messages(direction="in")
    assert message.state == "invalid" and "chunk 2/3 was cut short" in message.last_error
    assert message.chunks_total == 3 and message.mesh_message_id == mesh_id
    assert 20_000 < message.payload_size < 200_000  # the gzip bytes as received: chunk 2 cut
    assert len(proxy.seen("PUT")) == 1
    assert mesh_peer("X26ABC2").list_messages() == []


def test_different_bad_bodies_are_retried_at_most_five_times(
    mesh_fault_proxy: FaultProxy, meshbridge_config, make_bridge, mesh_peer
) -> None:
    """Cut at a different place each poll (never the same bytes twice): kept after the 5th try."""
    proxy = mesh_fault_proxy
    raw = gzip.compress(os.urandom(50_000))
    mesh_id = post_raw(mesh_peer("X26ABC1"), "X26ABC2", raw)
    bridge = make_bridge(meshbridge_config(OUT_IN, url=proxy.url))
    for attempt in range(1, 6):
        proxy.add("GET", r"/X26ABC2/inbox/\w+$", truncate(10_000 + attempt * 1000, framed=True))
        report = bridge.poll(mailbox="X26ABC2")
        if attempt < 5:
            [problem] = report.problems
            assert f"download {attempt} of at most 5" in problem
            assert mesh_peer("X26ABC2").list_messages() == [mesh_id]
    [message] = bridge.messages(direction="in")
    assert (message.state, message.payload_size) == ("invalid", 15_000)
    assert mesh_peer("X26ABC2").list_messages() == []


@pytest.mark.parametrize(
    "routes", [OUT_IN, OUT_IN.replace('"binary"', '"text"'), ITK_IN], ids=["binary", "text", "itk"]
)
def test_an_empty_body_is_refused_on_every_route_type(routes: str, meshbridge_config, make_bridge, mesh_peer) -> None:
    workflow = WORKFLOW if "itk" in routes else "TEST_WORKFLOW"
    post_raw(mesh_peer("X26ABC1"), "X26ABC2", gzip.compress(b""), workflow=workflow)
    bridge = make_bridge(meshbridge_config(routes))

    report = bridge.poll(mailbox="X26ABC2")

    [message] = bridge.messages(direction="in")
    assert (message.state, message.payload_size) == ("invalid", 0), report.problems
    assert message.id in report.invalid
    assert "empty" in message.findings[0].message
    assert report.delivered == []


def itk_message(size: int) -> tuple[bytes, str]:
    """An ITK3 message asking for an infrastructure ack, carrying ``size`` bytes of base64."""
    small, header_id = itk.build_message(
        b"%PDF-1.4 x",
        media_type="application/pdf",
        event_code="ITK006D",
        event_display="ITK Outpatient Letter",
        handling=itk.Handling(
            bus_ack=False,
            inf_ack=True,
            recipient_type="FA",
            message_definition=f"{itk.MESSAGE_DEFINITION_BASE}/ITK-OPL-MessageDefinition-4",
            sender_reference="ref-1",
            local_extension="None",
        ),
        sender_mailbox="X26ABC1",
        sender_ods="X26",
    )
    encoded = base64.b64encode(b"%PDF-1.4 x")
    filler = base64.b64encode(os.urandom(size * 3 // 4))
    assert encoded in small
    return small.replace(encoded, filler), header_id


@pytest.mark.slow
def test_an_itk_message_over_the_cap_is_nacked_20015_without_being_read(
    tmp_path: Path, meshbridge_config, mesh_peer, make_bridge
) -> None:
    """150 MB (over the 100 MB default cap) is downloaded to disk, never into memory: the poll
    stays far below the payload's size and the sender gets 20015 naming its MessageHeader.id."""
    data, header_id = itk_message(150_000_000)
    mesh_peer("X26ABC1").send_message("X26ABC2", data, max_chunk_size=50_000_000, workflow_id=WORKFLOW)
    del data
    path = meshbridge_config(ITK_IN)
    measure = (  # VmHWM: the peak resident memory of this process image (ru_maxrss keeps the parent's)
        "import re, sys\n"
        "from meshbridge.cli import main\n"
        "try:\n"
        f"    main(['--config', {str(path)!r}, 'poll'])\n"
        "except SystemExit as exit:\n"
        "    code = exit.code\n"
        "hwm = re.search(r'VmHWM:\\s+(\\d+) kB', open('/proc/self/status').read())[1]\n"
        "print('peak', hwm, file=sys.stderr)\n"
        "sys.exit(code)\n"
    )
    done = subprocess.run([sys.executable, "-c", measure], capture_output=True, text=True)

    assert done.returncode == 0, done.stderr
    peak_kib = int(done.stderr.rsplit("peak", 1)[1].split()[0])
    assert peak_kib < 150_000, f"the poll peaked at {peak_kib} KiB for a 150 MB message"
    bridge = make_bridge(path)
    [message] = bridge.messages(direction="in")
    assert (message.state, message.inf_ack_code, message.itk_message_id) == ("invalid", "20015", header_id)
    [finding] = [f.as_dict() for f in message.findings]
    assert "over the 100000000-byte cap" in finding["message"] and finding["code"] == "itk.20015"
    [response] = bridge.messages(direction="out")
    answer = itk.parse(bridge.store.payloads.read(response.payload_sha256))
    assert (answer.response_identifier, answer.itk_code) == (header_id, "20015")
    assert answer.handling and answer.handling.sender_reference is not None
    assert response.peer == "X26ABC1" and response.workflow_id == WORKFLOW + "_ACK"


def test_an_itk_message_over_the_route_cap_is_nacked_20015(meshbridge_config, make_bridge, mesh_peer) -> None:
    data, header_id = itk_message(300_000)
    mesh_peer("X26ABC1").send_message("X26ABC2", data, workflow_id=WORKFLOW)
    routes = ITK_IN.replace("itk = {}", "itk = {}\noptions = { max_size = 200000 }")
    bridge = make_bridge(meshbridge_config(routes))

    report = bridge.poll(mailbox="X26ABC2")

    [message] = bridge.messages(direction="in")
    assert (message.state, message.inf_ack_code) == ("invalid", "20015"), report.problems
    assert message.id in report.invalid
    [response] = bridge.messages(direction="out")
    answer = itk.parse(bridge.store.payloads.read(response.payload_sha256))
    assert (answer.response_identifier, answer.itk_code) == (header_id, "20015")


def test_a_response_over_the_cap_is_an_orphan_never_read(meshbridge_config, make_bridge, mesh_peer) -> None:
    wire, _ = itk.build_response(
        original_id="6f1c0000-0000-4000-8000-000000000000", code="20013", sender_mailbox="X26ABC2"
    )
    padded = wire.replace(b"</Bundle>", b"<!--" + base64.b64encode(os.urandom(900_000)) + b"--></Bundle>")
    mesh_peer("X26ABC2").send_message("X26ABC1", padded, workflow_id=WORKFLOW + "_ACK")
    bridge = make_bridge(meshbridge_config(ITK_OUT))

    bridge.poll(mailbox="X26ABC1")

    [orphan] = bridge.messages(state="orphan")
    [event] = [e for e in bridge.store.events(orphan.id) if e.kind == "orphan"]
    assert "over the 1000000-byte cap: not read" in event.detail["reason"]


def test_decode_limits_are_checked_at_config_load(meshbridge_config) -> None:
    from meshbridge import ConfigError, load

    assert load(meshbridge_config(OUT_IN)).mesh.max_decoded_size == 200_000_000
    assert load(meshbridge_config(OUT_IN)).mesh.max_compression_ratio == 100
    with pytest.raises(ConfigError, match=r"mesh\.max_compression_ratio: expected a number of at least 1"):
        load(meshbridge_config(OUT_IN, mesh="max_compression_ratio = 0\n"))
    with pytest.raises(ConfigError, match=r"mesh\.max_decoded_size: bad size"):
        load(meshbridge_config(OUT_IN, mesh='max_decoded_size = "lots"\n'))


def small_itk_message() -> tuple[bytes, str]:
    return itk.build_message(
        PATIENT,
        media_type=itk.FHIR_XML,
        event_code="ITK006D",
        event_display="ITK Outpatient Letter",
        handling=itk.Handling(
            bus_ack=False,
            inf_ack=True,
            recipient_type="FA",
            message_definition=f"{itk.MESSAGE_DEFINITION_BASE}/ITK-OPL-MessageDefinition-4",
            sender_reference="ref-2",
            local_extension="None",
        ),
        sender_mailbox="X26ABC1",
        sender_ods="X26",
    )


@pytest.mark.slow
def test_running_out_of_memory_on_one_message_does_not_block_the_next(
    meshbridge_config, make_bridge, mesh_peer
) -> None:
    """A cap raised past what the process can hold (address space limited in the child): the big
    message is refused 20015, and the message behind it is still answered and delivered."""
    big, big_id = itk_message(60_000_000)
    peer = mesh_peer("X26ABC1")
    peer.send_message("X26ABC2", big, max_chunk_size=30_000_000, workflow_id=WORKFLOW)
    del big
    small, small_id = small_itk_message()
    peer.send_message("X26ABC2", small, workflow_id=WORKFLOW)
    path = meshbridge_config(ITK_IN.replace("itk = {}", 'itk = {}\nmax_size = "1GB"'))
    poll = (
        "import re, resource, sys\n"
        "from meshbridge.cli import main\n"
        "import meshbridge.bridge, meshbridge.acks, lxml.etree, fhir.resources\n"
        "size = int(re.search(r'VmSize:\\s+(\\d+) kB', open('/proc/self/status').read())[1]) * 1024\n"
        "resource.setrlimit(resource.RLIMIT_AS, (size + 40_000_000, resource.RLIM_INFINITY))\n"
        f"main(['--config', {str(path)!r}, 'poll'])\n"
    )
    done = subprocess.run([sys.executable, "-c", poll], capture_output=True, text=True)

    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    bridge = make_bridge(path)
    by_itk = {m.itk_message_id: m for m in bridge.messages(direction="in")}
    assert (by_itk[big_id].state, by_itk[big_id].inf_ack_code) == ("invalid", "20015")
    assert any("more than this process has the memory to read" in f.message for f in by_itk[big_id].findings)
    assert (by_itk[small_id].state, by_itk[small_id].inf_ack_code) == ("delivered", "20013")


def test_an_undecodable_itk_message_is_answered_10009(meshbridge_config, make_bridge, mesh_peer) -> None:
    small, _ = small_itk_message()
    raw = gzip.compress(small)[:-20]  # cut short, the same way every time
    post_raw(mesh_peer("X26ABC1"), "X26ABC2", raw, workflow=WORKFLOW)
    bridge = make_bridge(meshbridge_config(ITK_IN))

    assert len(bridge.poll(mailbox="X26ABC2").problems) == 1
    assert list(bridge.messages(direction="out")) == []
    bridge.poll(mailbox="X26ABC2")

    [message] = bridge.messages(direction="in")
    assert (message.state, message.inf_ack_code, message.route) == ("invalid", "10009", "toc-in")
    [response] = bridge.messages(direction="out")
    answer = itk.parse(bridge.store.payloads.read(response.payload_sha256))
    assert (answer.response_identifier, answer.itk_code) == (itk.UNREADABLE, "10009")
    assert response.peer == "X26ABC1" and response.workflow_id == WORKFLOW + "_ACK"
