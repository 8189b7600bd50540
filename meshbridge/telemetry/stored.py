"""Metrics read from the shared store at scrape time: one read of its counters
(:meth:`~meshbridge.store.Store.counts`, the same cost for any number of messages), never a
table scan. Every node on one store reports the same numbers (cluster-wide: ``max()`` them).

A scrape never waits for a store in trouble longer than :data:`STORE_DEADLINE`: the read runs in
a thread of its own; one not done by then (a PostgreSQL server gone silent, a SQLite file held
by a process in exclusive mode) is reported as ``meshbridge_store_up 0``, and no second read is
started while it hangs (each scrape meanwhile answers at once, store down)."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ..errors import MeshbridgeError
from ..models import Direction, State

if TYPE_CHECKING:
    from ..store import Store
    from ..store.records import Counts

log = logging.getLogger("meshbridge")


STORE_DEADLINE = 5.0  # seconds a scrape waits for the store's counters

KIND = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")  # an expectation kind: built-in or an ack protocol's (a plugin's) name


def enumerated(value: str, known: Mapping[Any, object]) -> str:
    """A stored state or direction as a label: itself if meshbridge knows it, else ``other``."""
    return value if value in known else "other"


class StoreCollector(Collector):
    """Messages by route, direction and state; open and overdue expectations by direction and kind."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._reading: threading.Thread | None = None
        self._read: list[Counts | BaseException] = []

    def counts(self) -> Counts:
        """The store's counters, read within :data:`STORE_DEADLINE` (else :class:`TimeoutError`)."""
        with self._lock:  # one read at a time: a scrape during a hung read waits for that one
            if self._reading is None or not self._reading.is_alive():
                read: list[Counts | BaseException] = []
                self._reading = threading.Thread(target=self._count, args=(read,), name="metrics-store", daemon=True)
                self._read = read
                self._reading.start()
            reading, read = self._reading, self._read
        reading.join(STORE_DEADLINE)
        if not read:
            raise TimeoutError(f"no answer within {STORE_DEADLINE:g} s")
        if isinstance(read[0], BaseException):
            raise read[0]
        return read[0]

    def _count(self, read: list[Counts | BaseException]) -> None:
        try:
            read.append(self.store.counts())
        except Exception as exc:  # reported by the scrape that waits for it
            read.append(exc)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("meshbridge_store_up", "1 if the store's counters could be read at this scrape")
        try:
            counts = self.counts()
        except Exception as exc:  # a MeshbridgeError says what; anything else (a driver's own) by its type
            reason = str(exc) if isinstance(exc, MeshbridgeError | TimeoutError) else type(exc).__name__
            log.warning("metrics: cannot read the store's counters: %s", reason)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        messages = GaugeMetricFamily(
            "meshbridge_messages",
            "Messages in the store by route ('' for none), direction and state",
            labels=["route", "direction", "state"],
        )
        states, directions = State._value2member_map_, Direction._value2member_map_
        for (direction, route, state), n in sorted(counts.messages.items(), key=lambda i: (i[0][1] or "", i[0])):
            messages.add_metric([route or "", enumerated(direction, directions), enumerated(state, states)], n)
        yield messages
        for counter, what, found in (
            ("open", "Expectations (acknowledgements owed) still open", counts.open),
            ("overdue", "Open expectations past their deadline", counts.overdue),
        ):
            family = GaugeMetricFamily(
                f"meshbridge_expectations_{counter}", f"{what}, by direction and kind", labels=["direction", "kind"]
            )
            for (direction, kind), n in sorted(found.items()):
                family.add_metric([enumerated(direction, directions), kind if KIND.fullmatch(kind) else "other"], n)
            yield family
        yield GaugeMetricFamily(
            "meshbridge_messages_overdue", "Messages with an overdue expectation", value=counts.overdue_messages
        )
