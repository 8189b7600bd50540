"""What moving a store (:mod:`.moving`) needs of each backend beyond the :class:`~.protocol.Store`:
its database connection in a snapshot or a transaction, its payloads listed, rows streamed in and out.
"""

from __future__ import annotations

import heapq
import os
import re
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Protocol

from ..errors import StoreError
from .dialects import SQLITE, Dialect
from .migrating import Connection
from .protocol import PayloadStore, Store
from .sqlite import SQLiteStore
from .tables import quoted

PAYLOAD_TABLES = frozenset({"payloads", "payload_chunks"})  # payload bytes (any backend): carried as payloads
_SHA = re.compile(r"[0-9a-f]{64}")


class Side(Protocol):
    """One backend's store, as export and import use it."""

    dialect: Dialect
    errors: tuple[type[Exception], ...]  # the driver's errors
    refusals: tuple[type[Exception], ...]  # those that are a row's fault (a key, a value), not the database's

    @property
    def payloads(self) -> PayloadStore: ...
    def error(self, exc: Exception) -> StoreError: ...
    def snapshot(self) -> AbstractContextManager[Connection]: ...
    def transaction(self) -> AbstractContextManager[Connection]: ...
    def listed(self, conn: Connection) -> Iterator[tuple[str, int]]: ...
    def rows(self, conn: Connection, sql: str) -> Iterator[Sequence[Any]]: ...
    def insert(self, conn: Connection, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None: ...
    def has_payload(self, sha256: str) -> bool: ...
    def remove_payload(self, sha256: str) -> None: ...


def side_of(store: Store) -> Side:
    """The :class:`Side` of a store of any backend."""
    if isinstance(store, SQLiteStore):
        return SQLiteSide(store)
    if type(store).__name__ == "PostgresStore":  # (psycopg is imported only for one)
        from .pgside import PostgresSide
        from .postgres import PostgresStore

        assert isinstance(store, PostgresStore)
        return PostgresSide(store)
    raise StoreError(f"a {type(store).__name__} cannot be exported or imported")


class SQLiteSide:
    """A :class:`SQLiteStore`: one connection; small payloads in the ``payloads`` table, big ones files."""

    dialect = SQLITE
    errors: tuple[type[Exception], ...] = (sqlite3.Error,)
    refusals: tuple[type[Exception], ...] = (sqlite3.IntegrityError, sqlite3.DataError, sqlite3.InterfaceError)

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store

    @property
    def payloads(self) -> PayloadStore:
        return self.store.payloads

    def error(self, exc: Exception) -> StoreError:
        return StoreError(f"store {self.store.path}: {exc}")

    @contextmanager
    def snapshot(self) -> Iterator[Connection]:
        """A read transaction: every read in it sees the store as it was at its first (WAL mode)."""
        conn = self.store.conn
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            if conn.in_transaction:
                conn.execute("COMMIT")

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A write transaction (the write lock taken up front), committed at the end of the block."""
        conn = self.store.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def listed(self, conn: Connection) -> Iterator[tuple[str, int]]:
        """Every payload, ``(sha256, size)`` in sha256 order, once: the table's rows and the files."""
        inline = ((sha, size) for sha, size in conn.execute("SELECT sha256, size FROM payloads ORDER BY sha256"))
        last = None
        for sha, size in heapq.merge(inline, self._files()):
            if sha != last:
                yield sha, size
                last = sha

    def _files(self) -> Iterator[tuple[str, int]]:
        root = self.store.payloads.root
        for folder in sorted(os.listdir(root)):
            if len(folder) != 2 or not (root / folder).is_dir() or folder == "tmp":
                continue
            for name in sorted(os.listdir(root / folder)):
                if _SHA.fullmatch(name) and name.startswith(folder):
                    yield name, (root / folder / name).stat().st_size

    def rows(self, conn: Connection, sql: str) -> Iterator[Sequence[Any]]:
        cursor = conn.execute(sql)
        with self.store.conn.reading():
            yield from cursor

    def insert(self, conn: Connection, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        names = ", ".join(quoted(c) for c in columns)
        self.store.conn.executemany(
            f"INSERT INTO {quoted(table)} ({names}) VALUES ({', '.join('?' for _ in columns)})", rows
        )

    def has_payload(self, sha256: str) -> bool:
        return self.store.payloads.exists(sha256)

    def remove_payload(self, sha256: str) -> None:
        self.store.payloads.remove(sha256)
