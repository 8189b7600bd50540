"""Reading a configured store without the pipeline: what ``meshbridge status`` shows, started fast.

A :class:`~meshbridge.Bridge` loads plugins, payload types and the MESH client; a :class:`Reader`
loads the config and opens the store, nothing else (no requests, lxml, fhir.resources, mesh-client,
sqlite-utils). It never migrates: a store older than this meshbridge is refused as
:class:`~meshbridge.errors.StoreOutdated` (``meshbridge store migrate``, or opening a Bridge,
migrates it). Plugins are not loaded, so a route naming a payload type or destination kind that is
not installed does not stop a reader.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, BinaryIO

from .actors import Actor
from .errors import InvalidRequest, Refused, StoreError
from .kinds import BUS_OWED
from .models import Direction, Message, MessageSummary, Page, State, TimelineKind, stored
from .store import Store, connect
from .views import Filters, RouteCount, Status

if TYPE_CHECKING:
    from .config import Config


@dataclass(frozen=True)
class Exported:
    """What :meth:`Reading.export` wrote: the message's meshbridge id, its payload's sha256 and size."""

    message_id: str
    sha256: str
    size: int


class Reading:
    """What reading a store gives, the same on a :class:`Reader` and a :class:`~meshbridge.Bridge`
    (each has a ``store``)."""

    store: Store

    def status(self) -> Status:
        """See :func:`status`."""
        return status(self.store)

    def messages(
        self,
        filters: Filters | None = None,
        *,
        limit: int | None = 50,
        after: str | None = None,
        oldest_first: bool = False,
        **narrowed: Any,
    ) -> Page:
        """One page of messages, newest first (or ``oldest_first``), without their timelines: at
        most ``limit`` (None: all), from just after the cursor ``after`` (a page's ``next``).
        ``filters``, or its fields as keywords (``state="sent"``, ``route=…``, ``overdue=True``,
        ``owed=True``, ``since=…``; see :class:`~meshbridge.Filters`)."""
        return self.store.page(filters or Filters(**narrowed), limit=limit, after=after, newest=not oldest_first)

    def pages(
        self,
        filters: Filters | None = None,
        *,
        limit: int | None = None,
        after: str | None = None,
        oldest_first: bool = False,
        page: int = 500,
    ) -> Iterator[Page]:
        """The pages of :meth:`messages`' listing from the cursor ``after``, ``page`` messages at a
        time (one page in memory), until ``limit`` messages (None: all) have come. The last page's
        ``next`` is None at the end of the listing, else the cursor of what follows. A ``limit`` or
        ``page`` below 1 is an :class:`~meshbridge.errors.InvalidRequest`."""
        for name, value in (("limit", limit), ("page", page)):
            if value is not None and value < 1:
                raise InvalidRequest(f"a listing's {name} must be at least 1, not {value}")
        left = limit
        while True:
            size = page if left is None else min(page, left)
            found = self.messages(filters, limit=size, after=after, oldest_first=oldest_first)
            after, left = found.next, None if left is None else left - len(found)
            yield found
            del found  # let go before the next is read
            if after is None or left == 0:
                return

    def each(
        self, filters: Filters | None = None, *, after: str | None = None, oldest_first: bool = False, page: int = 500
    ) -> Iterator[MessageSummary]:
        """Every message ``filters`` selects, page by page (``page`` at a time in memory), in
        :meth:`messages`' order: for listings of any length."""
        for found in self.pages(filters, after=after, oldest_first=oldest_first, page=page):
            yield from found

    def lookup(self, key: str, limit: int = 20) -> list[MessageSummary]:
        """The messages ``key`` names, newest first, at most ``limit``: a meshbridge id, MESH message
        id, ITK id, local id or source file (see :meth:`~meshbridge.store.Store.lookup`)."""
        return self.store.lookup(key, limit)

    def show(self, message_id: str) -> Message:
        """One message (by meshbridge id, or MESH message id) with its timeline and expectations;
        :class:`~meshbridge.UnknownMessage` if there is none."""
        return self.store.message(message_id)

    def payload_problem(self, message: MessageSummary) -> str | None:
        """What is wrong with a message's stored payload (missing, changed, not a file), or None
        (also when retention removed it): read whole and its sha256 checked."""
        if not message.payload_sha256:
            return None
        try:
            self.store.payloads.verify(message.payload_sha256)
        except StoreError as exc:
            return str(exc)
        return None

    def export(self, message_id: str, out: BinaryIO, *, check_first: bool = False, by: Actor | None = None) -> Exported:
        """Write a message's stored payload (by meshbridge id or MESH message id) to ``out``, block
        by block (one block in memory), checked against its sha256: a changed or missing payload
        raises :class:`~meshbridge.errors.StoreError` (after what was read was written; with
        ``check_first`` it is read whole and checked before the first byte is written, and again as
        it goes). A payload removed by retention is :class:`~meshbridge.errors.Refused`; an unknown
        id :class:`~meshbridge.UnknownMessage`. ``out`` is neither flushed nor closed. With ``by``
        (who asked), a ``downloaded`` timeline entry names them before the first byte is written."""
        message = self.store.get(message_id)
        sha = message.payload_sha256
        if not sha:
            raise Refused(f"{message.id}: its payload was removed by retention")
        if check_first:
            self.store.payloads.verify(sha)
        if by is not None:
            detail = {"sha256": sha, "size": message.payload_size, **by.detail()}
            self.store.event(message.id, TimelineKind.DOWNLOADED, detail)
        size = 0
        for block in self.store.payloads.blocks(sha):  # raises at the end if the sha256 does not match
            out.write(block)
            size += len(block)
        return Exported(message.id, sha, size)


class Reader(Reading):
    """The store of a config, opened for reading: ``with Reader.from_file() as r: r.status()``."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.store = connect(config.store, migrate=False)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str] | None = None) -> Reader:
        from .config import load

        return cls(load(path))

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def status(store: Store) -> Status:
    """Counts by direction and state, and by route; ``overdue``: overdue expectations (the store's
    one definition, as of now), ``overdue_messages``: the messages they belong to; ``owed``: inbound
    ITK messages still owing our business ack. From the store's counters: no table is scanned."""
    counts = store.counts()
    by_direction: dict[Direction, dict[State, int]] = {}
    by_route = []
    for (direction, route, state), n in sorted(counts.messages.items(), key=lambda item: (item[0][1] or "", item[0])):
        d, s = stored(Direction, direction), stored(State, state)
        by_direction.setdefault(d, {})
        by_direction[d][s] = by_direction[d].get(s, 0) + n
        by_route.append(RouteCount(route, d, s, n))
    ordered = {d: dict(sorted(states.items())) for d, states in sorted(by_direction.items())}
    owed = sum(n for (_, kind), n in counts.open.items() if kind == BUS_OWED)
    return Status(ordered, sum(counts.overdue.values()), counts.overdue_messages, owed, tuple(by_route))
