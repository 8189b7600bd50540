"""Plain values of the config, importable without pydantic: defaults and limits, the parsers of
durations (``"5m"``) and sizes (``"100MB"``), and :class:`DestinationOptions`."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..secret import Secret

MESH_MIN_POLL = 300.0  # seconds: MESH guidance is at most one inbox poll per 5 minutes
DEFAULT_CHUNK_SIZE = 100_000_000  # MESH's limit for one request (100 MB)
MIN_CHUNK_SIZE = 5 * 1024 * 1024  # live MESH wants every chunk but the last of at least 5 MB (read as MiB)
DEFAULT_MAX_DECODED = 2 * DEFAULT_CHUNK_SIZE  # a gzip chunk decodes to at most twice what MESH carries in one
DEFAULT_MAX_RATIO = 100.0  # text, XML and FHIR compress 5-20 times; a gzip bomb 1000 times
INLINE_MAX = 64 * 1024  # ``[store] inline_max``: payloads up to this size live in the database
INLINE_LIMIT = 1024 * 1024  # held whole in memory on the way in, so kept small
DELIVERY_TIMEOUT = 300.0  # seconds, total, for one delivery: [service] delivery_timeout's default

DURATION_PATTERN = r"^\s*\d+(\.\d+)?\s*[smhd]\s*$"
SIZE_PATTERN = r"^\s*\d+\s*(([kKmMgG][iI]?)?[bB])?\s*$"

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_SIZES = {"": 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "kib": 1024, "mib": 1024**2, "gib": 1024**3}


def parse_duration(text: str | int | float) -> float:
    """``"90s"``, ``"5m"``, ``"1h"``, ``"2d"`` or a number of seconds -> seconds."""
    if isinstance(text, bool):
        raise ValueError("expected a duration such as '5m', got a boolean")
    if isinstance(text, int | float):
        if text < 0:
            raise ValueError(f"duration must not be negative, got {text}")
        return float(text)
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*", str(text))
    if not match:
        raise ValueError(f"bad duration {text!r}: use a number and a unit s, m, h or d, e.g. '5m'")
    return float(match[1]) * _UNITS[match[2]]


def parse_size(text: str | int) -> int:
    """``"100MB"``, ``"5MiB"`` or a number of bytes -> bytes."""
    if isinstance(text, bool):
        raise ValueError("expected a size such as '100MB', got a boolean")
    if isinstance(text, int):
        value = text
    else:
        match = re.fullmatch(r"\s*(\d+)\s*([a-zA-Z]*)\s*", str(text))
        if not match or match[2].lower() not in _SIZES:
            raise ValueError(f"bad size {text!r}: use bytes or a unit KB, MB, GB, KiB, MiB, GiB")
        value = int(match[1]) * _SIZES[match[2].lower()]
    if value < 1:
        raise ValueError(f"size must be positive, got {text!r}")
    return value


HEADER_VALUE = re.compile(r"[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?")  # printable ASCII, no space at the ends


@dataclass(frozen=True)
class DestinationOptions:
    """Settings beside a destination's kind, e.g. ``{ http = "...", timeout = "30s", headers = {...} }``.

    ``timeout`` is the total deadline of one delivery (None: ``[service] delivery_timeout``);
    ``headers`` and ``auth`` (user name and password, HTTP basic) are sent with an HTTP POST;
    ``env`` names the environment variables a command destination is given besides ``PATH`` and ``LANG``.
    """

    timeout: float | None = None
    headers: dict[str, Secret] = field(default_factory=dict)
    auth: tuple[str, Secret] | None = None
    env: tuple[str, ...] = ()
