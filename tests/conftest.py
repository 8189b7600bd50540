"""Shared helpers for meshbridge's own tests (the sandbox fixtures come from meshbridge.testing)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

TRACK_NOW = 'tracking_interval = "0s"\n'  # track on every poll (MESH asks for it rarely; tests want it now)

OUT_IN = """
[[routes]]
name = "out"
direction = "outbound"
from = "X26ABC1"
to = "X26ABC2"
workflow_id = "TEST_WORKFLOW"
payload_type = "binary"

[[routes]]
name = "in"
direction = "inbound"
mailbox = "X26ABC2"
workflow_id = "TEST_WORKFLOW"
payload_type = "binary"
destination = { folder = "delivered" }
"""


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_random(path: Path, size: int) -> Path:
    """A file of ``size`` pseudo-random bytes, written in blocks."""
    with path.open("wb") as f:
        left = size
        while left:
            block = os.urandom(min(left, 1 << 20))
            f.write(block)
            left -= len(block)
    return path
