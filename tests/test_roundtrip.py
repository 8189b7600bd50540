"""Payloads through a real mesh-sandbox: sent, collected, acknowledged, delivered, byte for byte."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from conftest import OUT_IN, TRACK_NOW, sha256, write_random


@pytest.mark.parametrize(
    ("size", "mesh"),
    [
        pytest.param(1, "", id="1-byte"),
        pytest.param(1_000_000, "", id="1MB"),
        pytest.param(1_000_000, "compress = true", id="1MB-gzip"),
        pytest.param(25_000_000, 'chunk_size = "4MB"', id="25MB-7-chunks", marks=pytest.mark.slow),
    ],
)
def test_round_trip(tmp_path: Path, meshbridge_config, make_bridge, mesh_peer, size: int, mesh: str) -> None:
    bridge = make_bridge(meshbridge_config(OUT_IN, mesh=mesh + "\n" + TRACK_NOW))
    payload = write_random(tmp_path / "payload.bin", size)

    sent = bridge.send(payload, route="out")
    assert sent.state == "sent" and sent.mesh_message_id
    expected_chunks = -(-size // bridge.config.mesh.chunk_size)
    assert (sent.chunks_total or 1) == expected_chunks

    report = bridge.poll()
    assert report.problems == []
    inbound = bridge.store.find("in", sent.mesh_message_id)
    assert inbound.state == "delivered" and inbound.chunks_total == expected_chunks
    delivered = Path(inbound.destination)
    assert delivered.parent == tmp_path / "delivered"
    assert sha256(delivered) == sha256(payload) == inbound.payload_sha256 == sent.payload_sha256
    assert bridge.store.get(sent.id).state == "delivered"  # from MESH tracking: acknowledged
    assert mesh_peer("X26ABC2").list_messages() == []  # acknowledged, gone from the inbox
    kinds = [e.kind for e in bridge.store.events(inbound.id)]
    assert kinds == ["received", "mesh-acked", "valid", "delivered"]


def test_gzip_payload_is_not_decompressed(tmp_path: Path, meshbridge_config, make_bridge) -> None:
    """The sandbox sets mex-Content-Compressed whenever it serves gzip; only Content-Encoding counts."""
    bridge = make_bridge(meshbridge_config(OUT_IN))
    payload = tmp_path / "extract.csv.gz"
    payload.write_bytes(gzip.compress(b"nhs_number,name\n" * 1000))
    sent = bridge.send(payload, route="out")
    bridge.poll()
    inbound = bridge.store.find("in", sent.mesh_message_id)
    assert Path(inbound.destination).read_bytes() == payload.read_bytes()
    assert inbound.destination.endswith("_extract.csv.gz")


def test_foreign_sender_headers_are_recorded(meshbridge_config, make_bridge, mesh_peer) -> None:
    bridge = make_bridge(meshbridge_config(OUT_IN))
    mesh_id = mesh_peer("X26ABC1").send_message(
        "X26ABC2", b"from a plain mesh-client", workflow_id="TEST_WORKFLOW", filename="../../etc/passwd",
        subject="hello", local_id="their-ref",
    )  # fmt: skip
    bridge.poll()
    inbound = bridge.store.find("in", mesh_id)
    assert (inbound.peer, inbound.subject, inbound.filename) == ("X26ABC1", "hello", "../../etc/passwd")
    # the sender's file name never escapes the destination folder
    assert Path(inbound.destination).name == f"{mesh_id}_passwd"
    assert Path(inbound.destination).read_bytes() == b"from a plain mesh-client"
