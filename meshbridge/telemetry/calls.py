"""What one MESH mailbox's calls did: each HTTP request by operation and answer status, each call
that failed, handshakes, bytes and upload time (:class:`MeshCalls`, fed by :mod:`meshbridge.mesh`).

The operation is the call :class:`~meshbridge.mesh.MeshMailbox` was making (one of
:data:`OPERATIONS`), kept per thread while the call runs; the status is the HTTP status MESH
answered (a number, never MESH's text), ``none`` when no answer came.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from .inbox import InboxWatch

OPERATIONS = frozenset(
    {"handshake", "send", "send_chunk", "find_sent", "inbox", "download", "acknowledge", "track", "other"}
)


def status_label(code: object) -> str:
    """An HTTP status as a label: its number, or ``invalid`` for anything that is not one."""
    return str(code) if isinstance(code, int) and 100 <= code <= 599 else "invalid"


SECONDS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)


@dataclass(frozen=True)
class MeshMetrics:
    """The metrics MESH calls update, on one registry."""

    requests: Counter
    errors: Counter
    handshake_failures: Counter
    handshake_ok: Gauge
    sent_bytes: Counter
    received_bytes: Counter
    send_seconds: Histogram

    @classmethod
    def on(cls, registry: CollectorRegistry) -> MeshMetrics:
        r, box = registry, ["mailbox"]
        return cls(
            Counter(
                "meshbridge_mesh_requests",
                "HTTP requests to MESH, by answer status",
                [*box, "operation", "status"],
                registry=r,
            ),
            Counter(
                "meshbridge_mesh_errors",
                "MESH calls that failed, by the HTTP status of MESH's last answer (none: no answer)",
                [*box, "operation", "status"],
                registry=r,
            ),
            Counter(
                "meshbridge_mesh_handshake_failures",
                "MESH handshakes (mailbox validations) that failed",
                box,
                registry=r,
            ),
            Gauge(
                "meshbridge_mesh_handshake_last_success_timestamp_seconds",
                "When a MESH handshake last succeeded (Unix time)",
                box,
                registry=r,
            ),
            Counter(
                "meshbridge_mesh_sent_bytes", "Payload bytes MESH took from us (before compression)", box, registry=r
            ),
            Counter("meshbridge_mesh_received_bytes", "Payload bytes downloaded from MESH (decoded)", box, registry=r),
            Histogram(
                "meshbridge_send_duration_seconds",
                "Uploading one message to MESH, all its chunks",
                box,
                buckets=SECONDS,
                registry=r,
            ),
        )


class MeshCalls:
    """The recorder of one mailbox's MESH calls (one per :class:`~meshbridge.mesh.MeshMailbox`)."""

    def __init__(self, mailbox: str, metrics: MeshMetrics | None = None, inbox: InboxWatch | None = None) -> None:
        """Without ``metrics``, counted on a registry of its own (a mailbox outside any Bridge)."""
        self.mailbox = mailbox
        self.metrics = metrics or MeshMetrics.on(CollectorRegistry())
        self.inbox = inbox or InboxWatch()
        self._local = threading.local()  # per thread: the operations in progress and the last status

    def _stack(self) -> list[list[str]]:
        stack: list[list[str]] | None = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        return stack

    def begin(self, operation: str) -> list[str]:
        """A call starts (calls nest: a listing's generator stays open while each message
        downloads); hand what it returns to :meth:`end`."""
        call = [operation if operation in OPERATIONS else "other", "none"]  # [operation, last status]
        self._stack().append(call)
        return call

    def end(self, call: list[str], exc: BaseException | None) -> None:
        """The call ends; ``exc`` (an Exception, not a generator closed early) counts it as failed,
        with the last status it got."""
        stack = self._stack()
        if any(c is call for c in stack):
            stack[:] = [c for c in stack if c is not call]
        operation, status = call
        if isinstance(exc, Exception):
            self.metrics.errors.labels(self.mailbox, operation, status).inc()
            if operation == "handshake":
                self.metrics.handshake_failures.labels(self.mailbox).inc()
        elif operation == "handshake":
            self.metrics.handshake_ok.labels(self.mailbox).set(time.time())

    def responded(self, response: Any, *args: Any, **kwargs: Any) -> None:
        """A ``requests`` response hook: count the request under the call in progress."""
        stack = self._stack()
        operation = stack[-1][0] if stack else "other"
        status = status_label(getattr(response, "status_code", None))
        if stack:
            stack[-1][1] = status
        self.metrics.requests.labels(self.mailbox, operation, status).inc()

    def sent(self, size: int) -> None:
        """MESH took ``size`` payload bytes (one chunk)."""
        self.metrics.sent_bytes.labels(self.mailbox).inc(size)

    def counted(self, blocks: Iterable[bytes]) -> Iterator[bytes]:
        """Pass a download's decoded blocks through, counting their bytes as received."""
        received = self.metrics.received_bytes.labels(self.mailbox)
        for block in blocks:
            received.inc(len(block))
            yield block

    def timed_send(self) -> Callable[[], None]:
        """Start timing an upload; call the result when MESH took all of it."""
        started = time.monotonic()
        histogram = self.metrics.send_seconds.labels(self.mailbox)
        return lambda: histogram.observe(time.monotonic() - started)

    def listing(self) -> None:
        """A listing of the inbox starts."""
        self.inbox.started(self.mailbox)

    def listed(self, message_id: str) -> None:
        self.inbox.listed(self.mailbox, message_id)

    def listing_done(self) -> None:
        self.inbox.complete(self.mailbox)

    def acknowledged(self, message_id: str) -> None:
        self.inbox.collected(self.mailbox, message_id)
