"""``/metrics``: the Prometheus text exposition (a minimal seam: the process's default registry)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..bridge import Bridge


def exposition(bridge: Bridge) -> tuple[bytes, str]:
    """The metrics body and its content type."""
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
