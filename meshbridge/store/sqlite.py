"""The correlation store on SQLite: one file, its payload files beside it (see :class:`SQLiteStore`).

The queries are :class:`~.sql.SQLStore`'s; here is what is SQLite's own: opening the file
(:mod:`.opening`), ``BEGIN IMMEDIATE`` write transactions (the write lock up front, so two
processes on one file never both win the same transition), lazy commits as
``synchronous=NORMAL``, and :meth:`SQLiteStore.exclusive` as an OS file lock.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext, suppress
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ..config import INLINE_MAX
from ..errors import DiskFull, StoreOutdated
from . import migrating
from .dialects import SQLITE
from .logins import Logins
from .opening import StoreConnection, open_store
from .payloads import Payloads, secure_dir, unsynced
from .queries import Row
from .space import Space
from .sql import SQLStore

if TYPE_CHECKING:
    from sqlite_utils import Database


class Session:
    """A transaction in hand on a SQLite connection (see :class:`~.sql.Session`)."""

    def __init__(self, conn: StoreConnection) -> None:
        self.conn = conn

    def execute(self, sql: str, params: list[Any] | tuple[Any, ...] = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, params)

    def rows(self, sql: str, params: list[Any] | tuple[Any, ...] = ()) -> list[Row]:
        cursor = self.conn.execute(sql, params)
        names = [d[0] for d in cursor.description]
        with self.conn.reading():
            return [dict(zip(names, values, strict=True)) for values in cursor]


class SQLiteStore(SQLStore):
    """The :class:`~.protocol.Store` on SQLite: messages, their events and expectations, and their
    payloads (see :class:`Payloads`).

    Durability (see :class:`~.sql.SQLStore`): a durable commit waits for the disk
    (``synchronous=FULL``); a lazy one does not (``synchronous=NORMAL``), and the write-ahead
    log, written in order, makes it durable with the next durable commit.
    """

    dialect = SQLITE
    integrity_errors: ClassVar[tuple[type[Exception], ...]] = (sqlite3.IntegrityError,)

    def __init__(self, path: str | os.PathLike[str], *, inline_max: int = INLINE_MAX, migrate: bool = True) -> None:
        """Open (or build) the store at ``path``. An existing store older than this meshbridge is
        migrated, or with ``migrate=False`` refused as :class:`StoreOutdated`, untouched."""
        self.path = Path(path)
        secure_dir(self.path.parent)
        self.created = not self.path.exists()  # (for ``store migrate``'s report)
        conn = open_store(self.path, timeout=30)  # refuses a damaged file; builds a new one whole
        self.conn: StoreConnection = conn
        self.space = Space(self.path)
        conn.on_full = self.space.release  # the disk is full: state changes may use the reserve
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        self._init_sql()
        self._statements = Session(conn)
        try:
            self.migrated = self._schema(migrate)  # the migrations opening applied
        except BaseException:
            conn.close()
            raise
        # A statement that fires a trigger keeps a statement journal: the original of every page it
        # changes, ~20 with the listing indexes. Over 64 KiB SQLite spills it to a temporary file,
        # which doubled a message's INSERT. Held in memory here; the migrations above (whose index
        # builds may sort millions of rows) spill as before.
        conn.execute("PRAGMA temp_store=MEMORY")
        self.payloads = Payloads(self.path.parent / "payloads", conn, inline_max, self.space)
        self._payload_rows = self.payloads
        self.logins = Logins(self)  # mailboxes whose login MESH refuses (``mesh-auth``)

    @property
    def where(self) -> str:
        return str(self.path)

    def keep_reserve(self) -> None:
        """Keep a disk reserve for state changes from now on (the service does): preallocated
        now if there is room, released when the disk is full, then made again (see :mod:`.space`)."""
        self.space.keep = True
        with suppress(DiskFull, OSError):
            self.space.room_for(0)

    def _schema(self, migrate: bool) -> list[str]:
        """Check the schema version under the write lock (a store that cannot be written is refused
        here, by every command): apply the migrations the store lacks and return their names, or
        with ``migrate=False`` refuse it as :class:`StoreOutdated`."""
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            missing = migrating.pending(conn)
            if missing and not migrate:
                raise outdated(str(self.path), missing)
            applied = migrating.apply(conn) if missing else []
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return applied

    @cached_property
    def db(self) -> Database:
        """The store's connection in sqlite-utils (imported on first use: reading needs none of it)."""
        from sqlite_utils import Database

        return Database(self.conn, execute_plugins=False)

    def close(self) -> None:
        self.conn.close()

    @property
    def tag(self) -> str:
        """A short name for this store, unique per database path (e.g. for its temp files elsewhere)."""
        return hashlib.sha256(str(self.path.resolve()).encode()).hexdigest()[:8]

    @contextmanager
    def _transaction(self, durable: bool) -> Iterator[Session]:
        """``BEGIN IMMEDIATE``: the write lock up front (no lost races under WAL). A full disk
        raises :class:`DiskFull` with the transaction rolled back (SQLite may have rolled it back already)."""
        conn = self.conn
        with nullcontext() if durable else unsynced(conn):
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._statements
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def _rows(self, sql: str, params: list[Any] | tuple[Any, ...] = (), *, replan: bool = False) -> list[Row]:
        """(``replan``: nothing to do: SQLite re-plans a statement for its values where they could change the plan.)"""
        return self._statements.rows(sql, params)  # not db.query: that wraps every read in a savepoint

    @contextmanager
    def exclusive(self, name: str) -> Iterator[None]:
        """Work only one process at a time may do on this store (``<db>.<name>.lock``; others wait).

        An OS file lock, not a row: the kernel drops it when its process dies, so a crash never
        leaves it taken.
        """
        fd = os.open(f"{self.path}.{name}.lock", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def outdated(where: str, missing: list[str]) -> StoreOutdated:
    """The one-line refusal of a store older than this meshbridge, by a command that does not migrate."""
    n = len(missing)
    return StoreOutdated(
        f"store {where} is older than this meshbridge ({n} migration{'' if n == 1 else 's'} to apply): "
        "run `meshbridge store migrate`"
    )
