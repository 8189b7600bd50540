"""A PostgreSQL store as moving a store (:mod:`.moving`) uses it: see :class:`~.sides.Side`.

Export reads in one ``REPEATABLE READ`` transaction on the store's own connection, so the rows and
the payloads it reads through the store (which use that connection too) are one snapshot; rows
stream through a server-side cursor. Import writes rows with ``COPY``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg

from ..errors import StoreError
from .dialects import POSTGRESQL
from .migrating import Connection
from .postgres import PostgresStore
from .protocol import PayloadStore
from .tables import quoted


class PostgresSide:
    """A :class:`PostgresStore`: small payloads in ``payloads``, big ones in ``payload_chunks``."""

    dialect = POSTGRESQL
    errors: tuple[type[Exception], ...] = (psycopg.Error,)
    refusals: tuple[type[Exception], ...] = (psycopg.IntegrityError, psycopg.DataError)

    def __init__(self, store: PostgresStore) -> None:
        self.store = store
        self._cursors = 0

    @property
    def payloads(self) -> PayloadStore:
        return self.store.payloads

    def error(self, exc: Exception) -> StoreError:
        if isinstance(exc, psycopg.Error):
            return self.store.link.error(exc)
        return StoreError(f"store {self.store.where}: {exc}")

    @contextmanager
    def snapshot(self) -> Iterator[Connection]:
        """A read-only transaction that sees the store as it was at its first read."""
        link = self.store.link
        with link.lock:
            conn = link.conn
            with conn.transaction():
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                yield conn

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A write transaction, committed at the end of the block (rolled back on an error)."""
        link = self.store.link
        with link.lock:
            conn = link.conn
            with conn.transaction():
                yield conn

    def listed(self, conn: Connection) -> Iterator[tuple[str, int]]:
        """Every payload, ``(sha256, size)`` in sha256 order, once (none being written: ``tmp:`` keys)."""
        last = None
        for sha, size in self.rows(
            conn,
            "SELECT sha256, size FROM payloads UNION ALL "
            "SELECT sha256, sum(octet_length(data)) FROM payload_chunks WHERE sha256 NOT LIKE 'tmp:%' "
            "GROUP BY sha256 ORDER BY 1",
        ):
            if sha != last:
                yield sha, int(size)
                last = sha

    def rows(self, conn: Connection, sql: str) -> Iterator[Sequence[Any]]:
        """The rows of ``sql``, streamed through a server-side cursor (in the open transaction)."""
        assert isinstance(conn, psycopg.Connection)
        self._cursors += 1
        with conn.cursor(name=f"meshbridge_export_{self._cursors}") as cursor:
            cursor.itersize = 1000
            cursor.execute(sql)
            for row in cursor:
                yield tuple(bytes(v) if isinstance(v, memoryview) else v for v in row)

    def insert(self, conn: Connection, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        assert isinstance(conn, psycopg.Connection)
        names = ", ".join(quoted(c) for c in columns)
        with conn.cursor() as cursor, cursor.copy(f"COPY {quoted(table)} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def has_payload(self, sha256: str) -> bool:
        return self.store.payloads.exists(sha256)

    def remove_payload(self, sha256: str) -> None:
        with self.store.link.lock:
            self.store.payloads.remove(sha256)
