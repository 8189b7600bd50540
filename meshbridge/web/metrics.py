"""``GET /metrics``: the Bridge's metrics in Prometheus' text format (docs/metrics.md).

The numbers are the core's (:mod:`meshbridge.telemetry`); this only renders them. A scrape reads
the store's counters once (no table scan) and the configured certificate files when they changed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

if TYPE_CHECKING:
    from ..bridge import Bridge


def exposition(bridge: Bridge) -> tuple[bytes, str]:
    """The exposition body and its content type."""
    return generate_latest(bridge.telemetry.registry), CONTENT_TYPE_LATEST
