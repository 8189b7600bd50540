"""The correlation store: messages, their timelines and expectations, and payload files.

:class:`Store` is the protocol the rest of meshbridge uses; :func:`connect` opens the configured
one: :class:`SQLiteStore` (``[store] path``) or :class:`~.postgres.PostgresStore` (``[store] url``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .payloads import Payloads
from .protocol import Row, Store
from .queries import new_lease, now
from .sqlite import SQLiteStore

if TYPE_CHECKING:
    from ..config import StoreConfig
    from .postgres import PostgresStore

__all__ = ["Payloads", "Row", "SQLiteStore", "Store", "connect", "new_lease", "now"]


def connect(config: StoreConfig, *, migrate: bool = True) -> Store:
    """Open the store ``[store]`` names: a SQLite file (``path``) or a PostgreSQL database (``url``,
    with ``password`` resolved now). An older store is migrated, or with ``migrate=False`` refused
    as :class:`~meshbridge.errors.StoreOutdated`."""
    if config.url is not None:
        from .postgres import PostgresStore

        password = config.password.reveal() if config.password is not None else None
        return PostgresStore(config.url, password=password, inline_max=config.inline_max, migrate=migrate)
    assert config.path is not None  # (the config has one or the other)
    return SQLiteStore(config.path, inline_max=config.inline_max, migrate=migrate)


if TYPE_CHECKING:  # mypy checks that both stores are Stores (tests/test_store_protocol.py at run time)

    def _conforms(store: SQLiteStore, other: PostgresStore) -> tuple[Store, Store]:
        return store, other
