"""The PostgreSQL store's connection: opened from ``[store] url`` and its password, its errors as
meshbridge's own, redacted (never the password, never the full conninfo), and transactions.

One connection per store, in autocommit mode: a read is a statement, a write is an explicit
transaction (:meth:`Link.transaction`) held only for its statements. A lock keeps the threads of
one process (a delivery and its heartbeat) from mixing their statements into one transaction.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql as pgsql

from ..errors import DiskFull, StoreError

Row = dict[str, Any]
DISK_FULL = "53100"  # SQLSTATE disk_full


def redacted(url: str) -> str:
    """The URL to name the store by: scheme, user, host, port and database, no query, no password."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{parts.username}@{host}" if parts.username else host
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


@lru_cache(maxsize=512)
def marked(sql: str) -> str:
    """The store's ``?`` markers as psycopg's ``%s`` (a literal ``%`` doubled)."""
    return sql.replace("%", "%%").replace("?", "%s")


class Link:
    """The connection to a PostgreSQL store (reopened if it broke), its lock, its error wording."""

    def __init__(self, url: str, password: str | None = None) -> None:
        self.url, self._password = url, password
        self.where = redacted(url)
        self.lock = threading.RLock()
        self._conn: psycopg.Connection[Any] | None = None

    def connect(self) -> psycopg.Connection[Any]:
        """A new autocommit connection (the store's own, or one for a lock). Without parallel plans:
        each of the store's reads touches a page of rows or fewer through an index, and a plan the
        planner makes parallel (misjudging how many rows a partial index holds) waits for its
        workers to start, ten times what the read costs."""
        try:
            conn = psycopg.connect(
                self.url, password=self._password, autocommit=True, connect_timeout=10, application_name="meshbridge"
            )
            conn.execute("SET max_parallel_workers_per_gather = 0")
            return conn
        except psycopg.Error as exc:
            raise self.error(exc, "cannot connect to store") from None

    @property
    def conn(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = self.connect()
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()

    def error(self, exc: psycopg.Error, doing: str = "store") -> StoreError | DiskFull:
        """The one-line meshbridge error for a driver error, without the password or the conninfo."""
        text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if self._password:
            text = text.replace(self._password, "********")
        if getattr(exc, "sqlstate", None) == DISK_FULL:
            return DiskFull(f"store disk full: {self.where}: {text}")
        return StoreError(f"{doing} {self.where}: {text}")

    @contextmanager
    def errors(self) -> Iterator[None]:
        """Driver errors in the block as :meth:`error`; an integrity error stays (the caller words it)."""
        try:
            yield
        except psycopg.IntegrityError:
            raise
        except psycopg.Error as exc:
            raise self.error(exc) from None

    @contextmanager
    def transaction(self, durable: bool = True) -> Iterator[Session]:
        """A transaction; ``durable=False`` commits without waiting for the disk (the log is written
        in order: it is durable with the next commit that does wait)."""
        with self.lock, self.errors():
            conn = self.conn
            if durable:
                with conn.transaction():
                    yield Session(self, conn)  # its statements on this connection only, never a new one
                return
            # BEGIN and the setting in one round trip (most of the pipeline's commits are lazy ones)
            conn.execute("BEGIN; SET LOCAL synchronous_commit TO OFF")
            try:
                yield Session(self, conn)
            except BaseException:
                if not (conn.closed or conn.broken):
                    with suppress(psycopg.Error):
                        conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def rows(self, sql: str, params: list[Any] | tuple[Any, ...] = (), *, prepare: bool | None = None) -> list[Row]:
        """A read outside any transaction (``prepare``: see :meth:`Session.rows`)."""
        with self.lock:
            return Session(self, self.conn).rows(sql, params, prepare=prepare)

    def advisory(self, conn: psycopg.Connection[Any], key: str, *, transaction: bool = False) -> None:
        """Wait for the advisory lock named ``key``: until commit, or (a session lock) until unlocked or closed."""
        function = "pg_advisory_xact_lock" if transaction else "pg_advisory_lock"
        with self.errors():
            conn.execute(pgsql.SQL("SELECT {}(hashtextextended(%s, 0))").format(pgsql.Identifier(function)), [key])


class Session:
    """Statements with ``?`` markers on the store's connection (see :class:`~.sql.Session`)."""

    def __init__(self, link: Link, conn: psycopg.Connection[Any]) -> None:
        self.link, self.conn = link, conn

    def execute(self, sql: str, params: list[Any] | tuple[Any, ...] = ()) -> psycopg.Cursor[Any]:
        with self.link.errors():
            return self.conn.execute(marked(sql), params)

    def rows(self, sql: str, params: list[Any] | tuple[Any, ...] = (), *, prepare: bool | None = None) -> list[Row]:
        """Its rows. ``prepare`` as psycopg's: None prepares a statement that runs often (False: never)."""
        with self.link.errors():
            cursor = self.conn.execute(marked(sql), params, prepare=prepare)
            names = [column.name for column in cursor.description or ()]
            return [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]
