"""The correlation store on PostgreSQL (psycopg 3: ``pip install 'meshbridge[postgresql]'``).

The queries are :class:`~.sql.SQLStore`'s, the same as SQLite's; here is what is PostgreSQL's own:
the connection and its redacted errors (:mod:`.pgconn`), payload bytes in the database
(:mod:`.pgpayloads`), the schema built or migrated under an advisory lock, and
:meth:`PostgresStore.exclusive` as a session advisory lock on a connection of its own (dropped
when its process dies, as a file lock is).

Several processes (or nodes) share one store: a conditional UPDATE waits for a concurrent one on
the same row and then finds its condition false, so one wins; rows to claim are picked with
``FOR UPDATE SKIP LOCKED`` in short transactions, and the claim itself (lease holder, boot,
heartbeat) is the lease: no transaction is held across an upload or a delivery.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import psycopg

from ..config import INLINE_MAX
from . import migrating
from .dialects import POSTGRESQL
from .logins import Logins
from .pgconn import Link
from .pgpayloads import PgPayloads
from .queries import Row, Session
from .space import Space
from .sql import SQLStore
from .sqlite import outdated


class PostgresStore(SQLStore):
    """The :class:`~.protocol.Store` on a PostgreSQL database (see the module docstring).

    Durability (see :class:`~.sql.SQLStore`): a durable commit waits for the server's disk; a lazy
    one is ``synchronous_commit = off``, durable with the next durable commit.
    ``spool``: the local folder for downloads and uploads under way (default: one per user and
    store in the system's temp folder).
    """

    dialect = POSTGRESQL
    integrity_errors: ClassVar[tuple[type[Exception], ...]] = (psycopg.IntegrityError,)

    def __init__(
        self,
        url: str,
        *,
        password: str | None = None,
        inline_max: int = INLINE_MAX,
        migrate: bool = True,
        spool: Path | None = None,
    ) -> None:
        """Open the store in the database at ``url`` (built there if the database is empty). An
        older store is migrated, or with ``migrate=False`` refused as :class:`StoreOutdated`."""
        self.link = Link(url, password)
        self._init_sql()
        self.created, self.migrated = self._schema(migrate)
        spool = spool or Path(tempfile.gettempdir()) / f"meshbridge-{os.getuid()}-{self.tag}"
        self.space = Space(spool / "store")
        try:
            self.payloads = PgPayloads(self.link, spool / "payloads", inline_max)
        except BaseException:
            self.link.close()
            raise
        self._payload_rows = self.payloads
        self.logins = Logins(self)

    @property
    def where(self) -> str:
        return self.link.where

    @property
    def tag(self) -> str:
        """A short name for this store, unique per database (e.g. for its temp files elsewhere)."""
        return hashlib.sha256(self.link.where.encode()).hexdigest()[:8]

    def _schema(self, migrate: bool) -> tuple[bool, list[str]]:
        """Build the store in an empty database, or apply the migrations it lacks (refused with
        ``migrate=False``), one process at a time: ``(created, applied)``."""
        try:
            with self.link.transaction() as db:
                self.link.advisory(db.conn, "meshbridge migrate", transaction=True)
                conn = db.conn
                missing = migrating.pending(conn, POSTGRESQL)
                created = missing == list(migrating.NAMES)
                if missing and not created and not migrate:
                    raise outdated(self.where, missing)
                return created, migrating.apply(conn, POSTGRESQL) if missing else []
        except BaseException:
            self.link.close()
            raise

    def keep_reserve(self) -> None:
        """Nothing to keep: the database's disk is the server's (a full one is a :class:`DiskFull`)."""

    def close(self) -> None:
        self.link.close()

    def _transaction(self, durable: bool) -> Any:
        return self.link.transaction(durable)

    def _rows(self, sql: str, params: list[Any] | tuple[Any, ...] = (), *, replan: bool = False) -> list[Row]:
        return self.link.rows(sql, params, prepare=False if replan else None)

    def _serialize(self, db: Session, key: str) -> None:
        db.execute("SELECT pg_advisory_xact_lock(hashtextextended(?, 0))", [key])

    @contextmanager
    def exclusive(self, name: str) -> Iterator[None]:
        """Work only one process at a time may do on this store (others wait): a session advisory
        lock on a connection of its own, which the server drops if this process dies."""
        conn = self.link.connect()
        try:
            self.link.advisory(conn, f"meshbridge exclusive {name}")
            yield
        finally:
            conn.close()
