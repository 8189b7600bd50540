"""Prometheus metrics of one :class:`~meshbridge.Bridge`: its own registry (no global state, so
two bridges in one process, or in one test run, never mix their numbers).

Two sorts (docs/metrics.md): counted *in this process* as it works (MESH calls and errors,
durations, bytes, acknowledgement latencies, handshakes, what the inbox still holds), and read
*from the shared store* at scrape time (messages by route, direction and state; open and overdue
expectations), the same on every node of a cluster. Labels come only from the config (route
names, mailbox ids) and from fixed enumerations (state, direction, kind, operation, status):
never from anything a peer sends. The web package's ``/metrics`` only renders :attr:`Telemetry.registry`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Gauge, Histogram
from prometheus_client.process_collector import ProcessCollector

from .._version import __version__
from .calls import OPERATIONS, SECONDS, MeshCalls, MeshMetrics
from .certificates import CertificateCollector
from .inbox import InboxCollector, InboxWatch
from .stored import StoreCollector

if TYPE_CHECKING:
    from ..config import Config
    from ..models import Event
    from ..store import Store

__all__ = ["OPERATIONS", "InboxWatch", "MeshCalls", "MeshMetrics", "Telemetry"]

# acknowledgements: a minute to MESH's five days
ACK_SECONDS = (60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 43200.0, 86400.0, 172800.0, 432000.0)
LEVELS = {"infrastructure": "infrastructure", "business": "business"}


class Telemetry:
    """The metrics of one Bridge: counters it updates as it works, and collectors read at scrape."""

    def __init__(self, config: Config, store: Store) -> None:
        self.registry = r = CollectorRegistry()
        self.mesh_metrics = MeshMetrics.on(r)
        self.poll_seconds = Histogram(
            "meshbridge_poll_duration_seconds",
            "One poll pass (send, collect, deliver, track, sweep)",
            buckets=SECONDS,
            registry=r,
        )
        self.ack_seconds = Histogram(
            "meshbridge_ack_latency_seconds",
            "From sent (MESH took it) to the ITK response correlated, by level and outcome",
            ["route", "level", "outcome"],
            buckets=ACK_SECONDS,
            registry=r,
        )
        Gauge("meshbridge_build_info", "meshbridge's version", ["version"], registry=r).labels(__version__).set(1)
        self.inbox = InboxWatch()
        r.register(StoreCollector(store))
        r.register(CertificateCollector(config.mesh))
        r.register(InboxCollector(self.inbox))
        ProcessCollector(registry=r)
        for box in config.mailboxes:  # every configured mailbox shows, zero until something happens
            m = self.mesh_metrics
            for metric in (m.handshake_failures, m.sent_bytes, m.received_bytes):
                metric.labels(box)

    def mesh(self, mailbox: str) -> MeshCalls:
        """The recorder a :class:`~meshbridge.mesh.MeshMailbox` reports its calls to."""
        return MeshCalls(mailbox, self.mesh_metrics, self.inbox)

    @contextmanager
    def polling(self) -> Iterator[None]:
        """Time one poll pass."""
        started = time.monotonic()
        try:
            yield
        finally:
            self.poll_seconds.observe(time.monotonic() - started)

    def correlated(self, route: str | None, level: str, positive: bool, timeline: Callable[[], list[Event]]) -> None:
        """An ITK response at ``level`` applied to a message of ours on ``route``: observe the time
        since it was sent (its last ``sent`` entry on ``timeline``; none: not observed)."""
        from ..models import TimelineKind

        sent = [e.at for e in timeline() if e.kind == TimelineKind.SENT]
        if not sent:
            return
        seconds = max(0.0, (datetime.now(UTC) - sent[-1]).total_seconds())
        outcome = "ack" if positive else "nack"
        self.ack_seconds.labels(route or "", LEVELS.get(level, "other"), outcome).observe(seconds)
