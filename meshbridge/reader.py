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
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, BinaryIO

from .errors import Refused, StoreError
from .kinds import BUS_OWED
from .models import Direction, Message, MessageSummary, Page, State, Status, stored
from .store import Store, connect

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
        *,
        state: str | None = None,
        direction: str | None = None,
        overdue: bool = False,
        owed: bool = False,
        limit: int | None = None,
        after: str | None = None,
        newest: bool = False,
    ) -> Page:
        """One page of messages, oldest first (or ``newest`` first), without their timelines: at
        most ``limit`` (all when None), from just after the cursor ``after`` (a page's ``next``).
        ``overdue``: with an expectation past its deadline and unmet; ``owed``: inbound ITK
        messages still owing our business ack."""
        return self.store.page(
            state=state,
            direction=direction,
            overdue=overdue,
            expecting=BUS_OWED if owed else None,
            limit=limit,
            after=after,
            newest=newest,
        )

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

    def export(self, message_id: str, out: BinaryIO, *, check_first: bool = False) -> Exported:
        """Write a message's stored payload (by meshbridge id or MESH message id) to ``out``, block
        by block (one block in memory), checked against its sha256: a changed or missing payload
        raises :class:`~meshbridge.errors.StoreError` (after what was read was written; with
        ``check_first`` it is read whole and checked before the first byte is written, and again as
        it goes). A payload removed by retention is :class:`~meshbridge.errors.Refused`; an unknown
        id :class:`~meshbridge.UnknownMessage`. ``out`` is neither flushed nor closed."""
        message = self.store.get(message_id)
        sha = message.payload_sha256
        if not sha:
            raise Refused(f"{message.id}: its payload was removed by retention")
        if check_first:
            self.store.payloads.verify(sha)
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
    """Counts by direction and state; ``overdue``: overdue expectations (the store's one definition,
    as of now), ``overdue_messages``: the messages they belong to; ``owed``: inbound ITK messages
    still owing our business ack."""
    expectations, messages = store.overdue_count()
    counts = {
        stored(Direction, direction): {stored(State, state): n for state, n in states.items()}
        for direction, states in store.counts().items()
    }
    return Status(counts, expectations, messages, store.expecting_count(BUS_OWED))
