"""What a mailbox's MESH inbox still holds that we have not collected, against MESH's 5-day expiry.

Each listing of an inbox (:meth:`~meshbridge.mesh.MeshMailbox.inbox`) names its messages; each one
we acknowledge (collected: stored and acknowledged in MESH) leaves the set. A message's age is
from the timestamp MESH puts at the start of its id (``yyyymmddHHMMSSffffff_…``, UTC: when MESH
took it, where its expiry counts from), or, for an id without one, from when this process first
saw it listed. A complete listing replaces the set, so a message collected by another node (or
expired) leaves it at this node's next poll.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

MESH_ID = re.compile(r"(\d{20})_")
SKEW = 86400.0  # an id's timestamp more than a day ahead of our clock is not believed


def taken_at(message_id: str, seen: float) -> float:
    """When MESH took a message (Unix time), from its id's timestamp; else ``seen``."""
    found = MESH_ID.match(message_id)
    if found:
        try:
            at = datetime.strptime(found[1], "%Y%m%d%H%M%S%f").replace(tzinfo=UTC).timestamp()
        except ValueError:
            return seen
        if at <= time.time() + SKEW:
            return at
    return seen


class InboxWatch:
    """Per mailbox: the messages listed in its inbox and not collected since, with when MESH took each."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[str, dict[str, float]] = {}  # mailbox -> MESH id -> when MESH took it
        self._listing: dict[str, set[str]] = {}  # mailbox -> the ids of the listing in progress

    def started(self, mailbox: str) -> None:
        with self._lock:
            self._listing[mailbox] = set()

    def listed(self, mailbox: str, message_id: str) -> None:
        with self._lock:
            self._listing.setdefault(mailbox, set()).add(message_id)
            waiting = self._waiting.setdefault(mailbox, {})
            if message_id not in waiting:
                waiting[message_id] = taken_at(message_id, time.time())

    def complete(self, mailbox: str) -> None:
        """A listing reached its end: what it did not list is no longer waiting."""
        with self._lock:
            listing = self._listing.pop(mailbox, set())
            waiting = self._waiting.get(mailbox, {})
            self._waiting[mailbox] = {i: at for i, at in waiting.items() if i in listing}

    def collected(self, mailbox: str, message_id: str) -> None:
        with self._lock:
            self._waiting.get(mailbox, {}).pop(message_id, None)

    def snapshot(self) -> dict[str, tuple[int, float | None]]:
        """Per mailbox: how many are waiting, and when MESH took the oldest (None: none waiting)."""
        with self._lock:
            return {box: (len(w), min(w.values()) if w else None) for box, w in self._waiting.items()}


class InboxCollector(Collector):
    """``meshbridge_mesh_inbox_uncollected`` and ``..._oldest_uncollected_age_seconds``, per mailbox."""

    def __init__(self, watch: InboxWatch) -> None:
        self.watch = watch

    def collect(self) -> Iterator[GaugeMetricFamily]:
        count = GaugeMetricFamily(
            "meshbridge_mesh_inbox_uncollected",
            "Messages MESH listed in the inbox at this process's last poll and not collected since",
            labels=["mailbox"],
        )
        age = GaugeMetricFamily(
            "meshbridge_mesh_inbox_oldest_uncollected_age_seconds",
            "Age of the oldest of those (from MESH's timestamp in its id; MESH expires them after 5 days); 0: none",
            labels=["mailbox"],
        )
        now = time.time()
        for mailbox, (n, oldest) in sorted(self.watch.snapshot().items()):
            count.add_metric([mailbox], n)
            age.add_metric([mailbox], 0.0 if oldest is None else max(0.0, now - oldest))
        yield count
        yield age
