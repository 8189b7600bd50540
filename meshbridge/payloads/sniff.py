"""Detect what a payload is: gzip, then every payload type's sniffer on the head.

The route's configured type is *confirmed*, never overridden: MESH receivers know what a
workflow carries, so a payload that another type clearly claims (confidence >= 0.5) while its
route's type does not is a finding. When nothing claims it, the route's validator says what is wrong.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import PayloadTooLarge
from .base import Finding, PayloadType

HEAD = 64 * 1024
GZIP_MAGIC = b"\x1f\x8b"
AUTO = "auto"
FALLBACK = "binary"  # what nothing else claims


def gunzip(data: bytes, cap: int) -> bytes:
    """Decompress gzip (all members), refusing to produce more than ``cap`` bytes."""
    out, rest = bytearray(), data
    while rest[:2] == GZIP_MAGIC:
        decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
        chunk = rest
        while chunk:
            out += decompressor.decompress(chunk, cap + 1 - len(out))
            if len(out) > cap:
                raise PayloadTooLarge(f"decompresses to more than {cap} bytes")
            chunk = decompressor.unconsumed_tail
        if not decompressor.eof:
            raise zlib.error("gzip data is truncated")
        rest = decompressor.unused_data
    return bytes(out)


@dataclass(frozen=True)
class Detection:
    """The payload type chosen, the bytes validators should see, and any findings on the way."""

    payload_type: str
    content: bytes
    compressed: bool
    confidence: float
    findings: tuple[Finding, ...] = ()


def best_guess(head: bytes, types: Mapping[str, PayloadType]) -> tuple[str, float]:
    scores = {name: _score(t, head) for name, t in types.items()}
    name = max(scores, key=lambda n: scores[n], default=FALLBACK)
    return (name, scores[name]) if scores and scores[name] > 0 else (FALLBACK, 0.0)


def _score(payload_type: PayloadType, head: bytes) -> float:
    try:
        return float(payload_type.sniff(head))
    except Exception:  # a broken sniffer must not stop detection
        return 0.0


def detect(data: bytes, declared: str, types: Mapping[str, PayloadType], cap: int) -> Detection:
    """Choose the payload type for ``data``; ``declared`` is a type name or ``"auto"``."""
    content, compressed = data, data[:2] == GZIP_MAGIC
    if compressed:
        try:
            content = gunzip(data, cap)
        except PayloadTooLarge as exc:
            return Detection(declared, b"", True, 0.0, (Finding(f"gzip payload {exc}", code="payload.gzip-bomb"),))
        except zlib.error as exc:
            return Detection(
                declared, b"", True, 0.0, (Finding(f"gzip payload is corrupt: {exc}", code="payload.gzip"),)
            )
    head = content[:HEAD]
    if declared == AUTO:
        name, confidence = best_guess(head, types)
        return Detection(name, content, compressed, confidence)
    if declared not in types:
        known = ", ".join(sorted(types))
        return Detection(
            declared,
            content,
            compressed,
            0.0,
            (Finding(f"unknown payload type {declared!r} (installed: {known})", code="payload.type"),),
        )
    confidence = _score(types[declared], head)
    guess, guess_confidence = best_guess(head, types)
    if confidence == 0 and guess != declared and guess_confidence >= 0.5:
        finding = Finding(f"expected payload type {declared!r}, but this looks like {guess}", code="payload.mismatch")
        return Detection(declared, content, compressed, 0.0, (finding,))
    # nothing else claims it: the declared type's own validator says what is wrong
    return Detection(declared, content, compressed, confidence)
