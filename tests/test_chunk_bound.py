"""The per-chunk raw bound on downloads: a full-size chunk that MESH gzips on the fly still arrives,
a chunk really over the bound is refused.

mesh-sandbox (``handlers/inbox.py`` ``_retrieve_message_or_chunk``) gzips a chunk stored plain when a
v2 client accepts gzip, as every client does; for incompressible bytes that makes the served chunk a
little bigger than the chunk sent. The real bound (100 MB) is too big for a test, so it is lowered
through ``meshbridge.mesh.MESH_CHUNK_MAX`` together with ``[mesh] chunk_size``: the real sandbox
then serves exactly the case of a full 100 MB chunk.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest
from conftest import OUT_IN, sha256, write_random
from test_bounded_inbound import post_raw

from meshbridge import mesh

SMALL = 64 * 1024  # the lowered per-chunk bound, and the chunk size sent


@pytest.fixture
def small_bound(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(mesh, "MESH_CHUNK_MAX", SMALL)
    return SMALL


def test_full_chunks_gzipped_by_mesh_on_the_fly_are_received(
    tmp_path: Path, small_bound: int, meshbridge_config, make_bridge, mesh_peer
) -> None:
    bridge = make_bridge(meshbridge_config(OUT_IN, mesh=f"chunk_size = {small_bound}\n"))
    payload = write_random(tmp_path / "payload.bin", 3 * small_bound - 1000)  # 2 full chunks and a short one
    sent = bridge.send(payload, route="out")
    assert sent.state == "sent" and sent.chunks_total == 3

    served = mesh_peer("X26ABC2").retrieve_message_chunk(sent.mesh_message_id, 1)
    served.close()  # the case itself: a full plain chunk served gzipped, bigger than it was sent
    assert served.headers["Content-Encoding"] == "gzip"
    assert small_bound < int(served.headers["Content-Length"]) <= mesh.gzip_bound(small_bound)

    report = bridge.poll()

    assert report.problems == []
    inbound = bridge.store.find("in", sent.mesh_message_id)
    assert inbound.state == "delivered" and inbound.chunks_total == 3
    assert sha256(Path(inbound.destination)) == sha256(payload) == inbound.payload_sha256
    assert mesh_peer("X26ABC2").list_messages() == []


def test_a_gzipped_chunk_over_the_bound_is_refused(small_bound: int, meshbridge_config, make_bridge, mesh_peer) -> None:
    raw = gzip.compress(os.urandom(small_bound + 1000))  # what no full chunk can gzip to
    assert len(raw) > mesh.gzip_bound(small_bound)
    mesh_id = post_raw(mesh_peer("X26ABC1"), "X26ABC2", raw)
    bridge = make_bridge(meshbridge_config(OUT_IN, mesh=f"chunk_size = {small_bound}\n"))

    [problem] = bridge.poll().problems

    assert f"cannot download {mesh_id}" in problem, problem
    bound = mesh.gzip_bound(small_bound)
    assert f"chunk 1/1 is over MESH's {small_bound} bytes per chunk ({bound} gzip-encoded)" in problem, problem
    assert list(bridge.messages(direction="in")) == []
    assert mesh_peer("X26ABC2").list_messages() == [mesh_id]  # not acknowledged on first sight


@pytest.mark.parametrize("size", [0, 1, 16_383, 65_535, 65_536, 1_000_000, 10_000_000])
@pytest.mark.parametrize("level", [1, 6, 9])
def test_gzip_bound_holds_for_incompressible_bytes(size: int, level: int) -> None:
    """zlib's own worst case (random bytes) stays within the bound at every level."""
    assert len(gzip.compress(os.urandom(size), compresslevel=level)) <= mesh.gzip_bound(size)


def test_stored_blocks_of_65535_bytes_would_be_too_tight() -> None:
    """zlib stores incompressible input in blocks of at most 16,383 bytes, not 65,535."""
    size = 1_000_000
    served = len(gzip.compress(os.urandom(size), compresslevel=9))
    assert served > size + 5 * -(-size // 65_535) + 18
