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
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .kinds import BUS_OWED
from .store import Store

if TYPE_CHECKING:
    from .config import Config


class Reader:
    """The store of a config, opened for reading: ``with Reader.from_file() as r: r.status()``."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.store = Store(config.store.path, inline_max=config.store.inline_max, migrate=False)

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

    def status(self) -> dict[str, Any]:
        """See :func:`status`."""
        return status(self.store)


def status(store: Store) -> dict[str, Any]:
    """Counts by direction and state; ``overdue``: overdue expectations (the store's one definition,
    as of now), ``overdue_messages``: the messages they belong to; ``owed``: inbound ITK messages
    still owing our business ack."""
    expectations, messages = store.overdue_count()
    return {
        "counts": store.counts(),
        "overdue": expectations,
        "overdue_messages": messages,
        "owed": store.expecting_count(BUS_OWED),
    }
