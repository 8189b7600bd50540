"""Opening the store's SQLite file: a damaged one is refused untouched, a new one is built whole.

A new store is built under a temporary name in its folder (locked while it is built), migrated,
synced, and then linked to its name, which fails if another process got there first (its store is
used instead). So the file at the store's path is always a whole store, and an existing file that
is empty (0 bytes), cut short or not SQLite at all is damage: it is refused with one line naming
the file and what to do, and left exactly as it is (SQLite would otherwise start a new, empty
database in an empty file and drop its write-ahead log, and history would vanish).

SQLite errors that are about the disk or the file, not the query, become meshbridge's own:
:class:`DiskFull` (``SQLITE_FULL``, ``SQLITE_IOERR``) and :class:`StoreDamaged` (``SQLITE_CORRUPT``,
``SQLITE_NOTADB``).
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import shlex
import sqlite3
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import DiskFull, MeshbridgeError, StoreDamaged, StoreError
from ..faults import checkpoint
from .migrating import MIGRATIONS_TABLE
from .migrating import apply as migrate
from .payloads import fsync_dir
from .tempfiles import locked_temp, remove_if_free

HEADER = b"SQLite format 3\x00"
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")
_CHECK_PATH = "check [store] path"


class StoreConnection(sqlite3.Connection):
    """A connection whose disk and damage errors are :class:`DiskFull` and :class:`StoreDamaged`."""

    path: Path = Path()
    on_full: Callable[[], object] | None = None  # e.g. release the disk reserve
    inode: tuple[int, int] | None = None  # the store file's (device, inode), while open

    def close(self) -> None:
        self.inode = None
        super().close()

    def execute(self, *args: Any) -> sqlite3.Cursor:
        try:
            return super().execute(*args)
        except sqlite3.DatabaseError as exc:
            raise self.meaning(exc) from exc

    def executemany(self, *args: Any) -> sqlite3.Cursor:
        try:
            return super().executemany(*args)
        except sqlite3.DatabaseError as exc:
            raise self.meaning(exc) from exc

    def executescript(self, *args: Any) -> sqlite3.Cursor:
        try:
            return super().executescript(*args)
        except sqlite3.DatabaseError as exc:
            raise self.meaning(exc) from exc

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Rows read from a cursor: the same errors, as meshbridge's own (a damaged page shows there)."""
        try:
            yield
        except sqlite3.DatabaseError as exc:
            raise self.meaning(exc) from exc

    def meaning(self, exc: sqlite3.DatabaseError) -> Exception:
        """The meshbridge error an SQLite error means, or the error itself."""
        name = getattr(exc, "sqlite_errorname", "") or ""
        if name == "SQLITE_FULL" or name.startswith("SQLITE_IOERR"):
            if self.on_full is not None:
                self.on_full()
            kind = "full" if name == "SQLITE_FULL" else "failing"
            return DiskFull(f"store disk {kind}: {self.path}: {exc} ({name})")
        if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
            return damaged(self.path, f"is damaged ({exc})", untouched=False)
        if name.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN")):  # e.g. a folder where its -shm goes
            why = _reason(self.path, exc)
            if why == str(exc):
                why = f"{exc} ({name}): check the file, its folder and the -wal and -shm files beside it"
            return StoreError(f"store {self.path} cannot be written: {why}")
        return exc


def damaged(path: Path, what: str, todo: str = "", *, untouched: bool = True) -> StoreDamaged:
    """The one-line error for a damaged store file: what is wrong and what to do.

    ``untouched``: found on opening, before anything was written (damage found while reading
    rows later is not).
    """
    quoted = shlex.quote(str(path))
    todo = todo or (
        f'recover what it holds with `sqlite3 {quoted} ".recover" | sqlite3 {quoted}.recovered` '
        "and put that in its place, or restore a backup"
    )
    if untouched:
        return StoreDamaged(f"cannot open store {path}: it {what}; left untouched: {todo}")
    return StoreDamaged(f"store {path} {what}: {todo}")


def connect(path: Path, timeout: float = 30) -> StoreConnection:
    try:
        conn = sqlite3.connect(
            path, timeout=timeout, isolation_level=None, check_same_thread=False, factory=StoreConnection
        )
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"cannot open store {path}: {_reason(path, exc)}") from None
    assert isinstance(conn, StoreConnection)
    conn.path = path
    with contextlib.suppress(OSError):
        found = path.stat()
        conn.inode = (found.st_dev, found.st_ino)
    _OPEN.add(conn)
    return conn


_OPEN: weakref.WeakSet[StoreConnection] = weakref.WeakSet()  # this process's connections (see _in_use)


def _in_use(path: Path) -> bool:
    """Whether this process has a connection open on the store file at ``path``.

    Its file must then not be opened and closed beside SQLite (as :func:`check_file` does):
    SQLite's locks are POSIX locks, held per process, and closing *any* descriptor on the file
    drops them all. Another process would then take itself for the only one, checkpoint and delete
    the write-ahead log on closing, and this process's next commits would be lost. The file was
    checked when the first of those connections opened it.
    """
    try:
        found = path.stat()
    except OSError:
        return False
    return any(conn.inode == (found.st_dev, found.st_ino) for conn in list(_OPEN))


def open_store(path: Path, timeout: float = 30) -> StoreConnection:
    """Open the store at ``path`` in WAL mode, building it first if there is none.

    Raises :class:`StoreDamaged` for a file that is not a whole meshbridge store, untouched.
    """
    _refuse_what_is_not_a_file(path)
    _remove_unfinished_builds(path)
    if not path.exists():
        _build(path, timeout)
    if not _in_use(path):
        check_file(path)
    conn = connect(path, timeout)
    try:
        found = conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", [MIGRATIONS_TABLE]).fetchone()
        if found is None:
            raise damaged(
                path,
                "is a SQLite database but not a meshbridge store (it has no migrations table)",
                "check [store] path, or move the file away to start a new store",
            )
        _wal(conn, timeout)  # a store is in WAL mode from its build: this changes nothing
    except MeshbridgeError:
        conn.close()
        raise
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise StoreError(f"cannot open store {path}: {_reason(path, exc)}") from None
    return conn


def _reason(path: Path, exc: sqlite3.DatabaseError) -> str:
    """SQLite's reason, or the file system's where that says more than "unable to open database file"."""
    with contextlib.suppress(OSError):
        if os.statvfs(path.parent).f_flag & os.ST_RDONLY:
            return "its file system is read-only (a store writes beside itself, its -wal and -shm, even to be read)"
    return str(exc)


def _refuse_what_is_not_a_file(path: Path) -> None:
    """A folder, a FIFO or a link to nothing at the store's path is refused before anything is built."""
    if path.is_symlink() and not path.exists():
        raise damaged(path, f"is a symbolic link to {os.readlink(path)}, which does not exist", _CHECK_PATH)
    if path.exists() and not path.is_file():
        raise damaged(path, "is not a file (a folder or a special file)", _CHECK_PATH)


def check_file(path: Path) -> None:
    """Refuse a store file that cannot be a whole SQLite database (read-only: nothing is changed)."""
    wal = path.with_name(path.name + "-wal")
    try:
        with path.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(100)
    except OSError as exc:
        raise StoreError(f"cannot open store {path}: {exc.strerror}") from None
    if size == 0:
        raise damaged(
            path, "is empty (0 bytes)", "restore it from a backup, or remove it (and any -wal beside it) to start anew"
        )
    if not head.startswith(HEADER[: len(head)]):
        raise damaged(path, "is not a SQLite database", "check [store] path, or restore the store from a backup")
    if len(head) < 100:
        raise damaged(path, f"is cut short ({size} bytes, less than a SQLite header)")
    page_size = int.from_bytes(head[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    if page_size < 512 or page_size & (page_size - 1):
        raise damaged(path, "is not a SQLite database (bad page size)", "restore the store from a backup")
    if size < page_size:
        raise damaged(path, f"is cut short ({size} bytes, less than one {page_size}-byte page)")
    if _nonempty(wal):
        return  # pages past the file's end may be in the log: SQLite replays it
    pages = int.from_bytes(head[28:32], "big")
    header_valid = head[24:28] == head[92:96]
    if size % page_size or (header_valid and size < pages * page_size):
        expected = f", {pages * page_size} expected" if header_valid else ""
        raise damaged(path, f"is cut short ({size} bytes{expected})")


def _nonempty(path: Path) -> bool:
    try:
        return path.stat().st_size > 0
    except FileNotFoundError:
        return False


def _build(path: Path, timeout: float) -> None:
    """Create the store: built and migrated under a temporary name, then linked to ``path``."""
    wal = path.with_name(path.name + "-wal")
    if _nonempty(wal) and not path.exists():  # (another process may have just made the store)
        raise damaged(
            path,
            f"is missing but its write-ahead log {wal.name} is there",
            f"restore the store file from a backup, or move {wal.name} away to start a new store",
        )
    try:
        fd, tmp = locked_temp(path.parent, prefix=f".{path.name}.new-")
    except OSError as exc:
        raise StoreError(f"cannot create store {path}: {exc.strerror}") from None
    try:
        conn = connect(tmp, timeout)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("BEGIN IMMEDIATE")
            migrate(conn)
            conn.execute("COMMIT")
        finally:
            conn.close()  # the only connection: its log is checkpointed into the file and removed
        os.fsync(fd)
        checkpoint("store:built")  # crash tests: built and synced, not yet named
        _link(tmp, path)
        fsync_dir(path.parent)
    except OSError as exc:
        raise StoreError(f"cannot create store {path}: {exc.strerror}") from None
    finally:
        for leftover in (tmp, tmp.with_name(tmp.name + "-wal"), tmp.with_name(tmp.name + "-shm")):
            leftover.unlink(missing_ok=True)
        os.close(fd)


def _remove_unfinished_builds(path: Path) -> None:
    """Remove what a process killed while building a new store left (not a build in progress)."""
    builds = sorted(path.parent.glob(glob.escape(f".{path.name}.new-") + "*"))
    logs = [p for p in builds if p.name.endswith(SQLITE_SIDE_FILES)]
    for build in builds:
        if build not in logs:
            remove_if_free(build)
    for log in logs:  # SQLite's files of a build whose file is gone
        if not log.with_name(log.name.rsplit("-", 1)[0]).exists():
            log.unlink(missing_ok=True)


def _link(tmp: Path, path: Path) -> None:
    """Give the new store its name, unless another process gave its own first (then use that)."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK):
            raise
        if not path.exists():  # no hard links on this file system: a rename (the race is narrow)
            os.rename(tmp, path)


def _wal(conn: sqlite3.Connection, timeout: float) -> None:
    """Put the database in WAL mode. Switching needs it to itself, and SQLite's busy timeout does
    not cover that: when another process opens the same store at once, wait and try again."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)
