"""The correlation store: messages, their timelines and expectations, and payload files.

:class:`Store` is the protocol the rest of meshbridge uses; :class:`SQLiteStore` implements it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .payloads import Payloads
from .protocol import Store
from .records import Claimed, OverdueExpectation, RefusedLogin, StoredMessage
from .sqlite import SQLiteStore, new_lease, now

__all__ = [
    "Claimed",
    "OverdueExpectation",
    "Payloads",
    "RefusedLogin",
    "SQLiteStore",
    "Store",
    "StoredMessage",
    "new_lease",
    "now",
]

if TYPE_CHECKING:  # mypy checks that the SQLite store is a Store (tests/test_store_protocol.py at run time)

    def _conforms(store: SQLiteStore) -> Store:
        return store
