"""Payload bytes, content-addressed by sha256: small ones in the database, big ones as files.

A payload up to ``inline_max`` bytes is a row of the ``payloads`` table; SQLite reads and writes
small blobs faster than the file system does files, and it saves a file create, two fsyncs and a
directory fsync per message (see the note in ``SQLiteStore``). A bigger one is a file
``<root>/ab/abcdef...``, written to a temporary name, fsynced, then renamed, so it exists whole or
not at all. Files are 0600 in 0700 folders. Every whole read checks the sha256.

A temp file is locked while it is written (see :mod:`.tempfiles`): what a killed download or
upload left in ``<root>/tmp`` is removed when the store opens and by housekeeping. New bytes are
written only while the disk has room for them (see :mod:`.space`); a full disk raises
:class:`~meshbridge.errors.DiskFull` and leaves no partial file.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import logging
import os
import sqlite3
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from ..config import INLINE_MAX
from ..errors import StoreError
from .space import CHECK_EVERY, Space, disk_error, mib
from .tempfiles import locked_temp, remove_leftovers

log = logging.getLogger("meshbridge")
BLOCK = 1024 * 1024


def secure_dir(path: Path) -> Path:
    """Create ``path`` (and parents) with mode 0700 for the folders meshbridge makes."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def unsynced(conn: sqlite3.Connection) -> Iterator[None]:
    """Commits in this block do not wait for the disk (``synchronous=NORMAL``); they become
    durable with the next commit that does, as the write-ahead log keeps order."""
    conn.execute("PRAGMA synchronous=NORMAL")
    try:
        yield
    finally:
        conn.execute("PRAGMA synchronous=FULL")


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class PayloadReading:
    """Reading payloads through :meth:`open`, the same for every backend: a whole read checks the sha256."""

    def open(self, sha256: str) -> BinaryIO:
        raise NotImplementedError

    def _where(self, sha256: str) -> str:
        """The payload, named for an error."""
        return f"payload {sha256}"

    def blocks(self, sha256: str, start: int = 0, length: int | None = None) -> Iterator[bytes]:
        """Stream a payload. A whole read (the default) checks the sha256 at the end."""
        whole = start == 0 and length is None
        digest = hashlib.sha256()
        with self.open(sha256) as handle:
            handle.seek(start)
            remaining = length
            while remaining is None or remaining > 0:
                block = handle.read(BLOCK if remaining is None else min(BLOCK, remaining))
                if not block:
                    break
                if whole:
                    digest.update(block)
                if remaining is not None:
                    remaining -= len(block)
                yield block
        if whole and digest.hexdigest() != sha256:
            raise StoreError(f"{self._where(sha256)} is corrupt: sha256 is {digest.hexdigest()}")

    def read(self, sha256: str) -> bytes:
        """The whole payload, sha256-checked (for small payloads; stream big ones)."""
        return b"".join(self.blocks(sha256))

    def verify(self, sha256: str) -> None:
        for _ in self.blocks(sha256):
            pass


class Payloads(PayloadReading):
    """The payload store of one database: the ``payloads`` table and the folder beside it.

    An inline payload is committed without waiting for the disk (``synchronous=NORMAL``): it
    becomes durable with the next durable commit on the connection, which is the message row that
    names it. SQLite's write-ahead log is written in order, so that row is never on disk without it.
    """

    def __init__(
        self, root: Path, conn: sqlite3.Connection, inline_max: int = INLINE_MAX, space: Space | None = None
    ) -> None:
        self.root = secure_dir(root)
        self._tmp = secure_dir(root / "tmp")
        self._conn = conn
        self.inline_max = inline_max
        self.space = space
        self._dirs: set[Path] = set()
        self.clean()

    def clean(self) -> int:
        """Remove the temp files of killed downloads and uploads (never one being written); return how many."""
        files, size = remove_leftovers(self._tmp)
        if files:
            log.info("store: removed %d leftover temp file(s) (%s) from %s", files, mib(size), self._tmp)
        return files

    def path(self, sha256: str) -> Path:
        """Where the file of a big payload lives (inline payloads have none)."""
        return self.root / sha256[:2] / sha256

    # -- writing --------------------------------------------------------------------------

    def write(self, blocks: Iterable[bytes], size: int = 0) -> tuple[str, int]:
        """Store the bytes of ``blocks``; return ``(sha256, size)``.

        Up to ``inline_max`` bytes are buffered and kept in the database; past that, the bytes
        stream to a file and memory stays at one block. ``size``, when known, is checked against
        the free space first; a streamed payload is checked again as it grows.
        """
        self._room_for(size)
        digest, buffer = hashlib.sha256(), bytearray()
        blocks = iter(blocks)
        for block in blocks:
            digest.update(block)
            buffer += block
            if len(buffer) > self.inline_max:
                return self._write_file(digest, bytes(buffer), blocks)
        sha = digest.hexdigest()
        self._insert(sha, bytes(buffer))
        return sha, len(buffer)

    def write_file(self, source: BinaryIO) -> tuple[str, int]:
        try:
            size = os.fstat(source.fileno()).st_size - source.tell()
        except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
            size = len(source.getbuffer()) - source.tell() if isinstance(source, io.BytesIO) else 0
        return self.write(iter(lambda: source.read(BLOCK), b""), max(size, 0))

    def _room_for(self, size: int) -> None:
        if self.space is not None:
            self.space.room_for(size)

    def _insert(self, sha: str, data: bytes) -> None:
        if self._conn.in_transaction:
            raise StoreError("a payload must be stored before the transaction that records it")
        with unsynced(self._conn):  # made durable by the row that names it
            self._conn.execute(  # the same bytes again replace the row: a damaged one is repaired
                "INSERT INTO payloads (sha256, size, data) VALUES (?, ?, ?) "
                "ON CONFLICT (sha256) DO UPDATE SET size = excluded.size, data = excluded.data",
                [sha, len(data), data],
            )

    def _write_file(self, digest: hashlib._Hash, head: bytes, rest: Iterator[bytes]) -> tuple[str, int]:
        fd, tmp = locked_temp(self._tmp)  # locked until renamed into place: clean() leaves it alone
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(head)
                size = checked = len(head)
                for block in rest:
                    digest.update(block)
                    size += len(block)
                    out.write(block)
                    if size - checked >= CHECK_EVERY:
                        self._room_for(0)
                        checked = size
                out.flush()
                os.fsync(out.fileno())
                sha = digest.hexdigest()
                final = self.path(sha)
                if final.parent not in self._dirs:
                    secure_dir(final.parent)
                    self._dirs.add(final.parent)
                os.replace(tmp, final)
            fsync_dir(final.parent)
            return sha, size
        except BaseException as exc:
            tmp.unlink(missing_ok=True)
            full = disk_error(exc, self.root) if isinstance(exc, OSError) else None
            if full is None:
                raise
            if self.space is not None:
                self.space.release()
            raise full from None

    # -- reading --------------------------------------------------------------------------

    def _inline(self, sha256: str) -> bytes | None:
        row = self._conn.execute("SELECT data FROM payloads WHERE sha256 = ?", [sha256]).fetchone()
        return None if row is None else row[0]

    def open(self, sha256: str) -> BinaryIO:
        """A binary file object over the payload (a file, or the inline bytes in memory)."""
        data = self._inline(sha256)
        if data is not None:
            return io.BytesIO(data)
        path = self.path(sha256)
        try:  # never a link, a FIFO or a folder in its place: those would be read, block or crash
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_NOCTTY)
        except FileNotFoundError:
            raise StoreError(f"payload {sha256} is missing (no row, no file {path})") from None
        except OSError as exc:
            why = "a symbolic link, not a payload file" if exc.errno == errno.ELOOP else exc.strerror
            raise StoreError(f"payload file {path} cannot be read: {why}") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise StoreError(f"payload file {path} is damaged: not a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")

    def _where(self, sha256: str) -> str:
        path = self.path(sha256)
        return f"payload file {path}" if path.exists() else f"payload {sha256}"

    def exists(self, sha256: str) -> bool:
        return self._inline(sha256) is not None or self.path(sha256).exists()

    def remove(self, sha256: str) -> bool:
        """Delete a payload (retention); True if there was one. Call in the transaction that
        checked no message still needs it."""
        removed = self._conn.execute("DELETE FROM payloads WHERE sha256 = ?", [sha256]).rowcount
        path = self.path(sha256)
        if path.exists():
            path.unlink()
            removed = 1
        return bool(removed)
