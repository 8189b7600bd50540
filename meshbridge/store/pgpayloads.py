"""Payload bytes in a PostgreSQL store: no shared file system needed, by sha256 as on SQLite.

A payload up to ``inline_max`` bytes is a row of ``payloads``; a bigger one is rows of
``payload_chunks`` (:data:`CHUNK` bytes each, ``bytea``), streamed in and out one chunk at a time,
never whole in memory. While it is written its rows carry a ``tmp:<n>`` key and its writer holds
the advisory lock ``(NAMESPACE, n)``; once whole it is renamed to its sha256 in one transaction,
so a payload exists whole or not at all. Rows a killed writer left (its lock gone with its
connection) are removed by :meth:`PgPayloads.clean`. Every whole read checks the sha256.

A chunk is committed without waiting for the disk: it is durable with the durable commit that
renames the payload (PostgreSQL writes its log in order). Downloads and uploads under way still
use a local folder (:attr:`PgPayloads.root`), whose leftovers are removed as on SQLite.
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import io
import logging
import os
import secrets
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, cast

import psycopg

from ..errors import StoreError
from .payloads import BLOCK, PayloadReading, secure_dir
from .pgconn import Link
from .space import mib
from .tempfiles import remove_leftovers

log = logging.getLogger("meshbridge")
CHUNK = 1024 * 1024
NAMESPACE = 0x6D62  # the advisory locks of payloads being written: (NAMESPACE, n) for rows ``tmp:<n>``


class PgPayloads(PayloadReading):
    """The payloads of one PostgreSQL store (see the module docstring)."""

    def __init__(self, link: Link, root: Path, inline_max: int) -> None:
        self._link = link
        self.root = secure_dir(root)
        self._tmp = secure_dir(root / "tmp")
        self.inline_max = inline_max
        self.clean()

    def clean(self) -> int:
        """Remove what killed downloads, uploads and payload writers left (never what a live one
        is writing: its rows' advisory lock is held); return how many."""
        files, size = remove_leftovers(self._tmp)
        if files:
            log.info("store: removed %d leftover temp file(s) (%s) from %s", files, mib(size), self._tmp)
        with self._link.lock, self._link.errors():  # one statement: rows it sees were written before its locks scan
            removed = self._link.conn.execute(
                "DELETE FROM payload_chunks c WHERE c.sha256 LIKE 'tmp:%%' AND NOT EXISTS (SELECT 1 FROM pg_locks l "
                "WHERE l.locktype = 'advisory' AND l.classid = %s::oid AND l.objsubid = 2 "
                "AND l.objid = split_part(c.sha256, ':', 2)::bigint::oid)",
                [NAMESPACE],
            ).rowcount
        if removed:
            log.info("store: removed %d chunk(s) of unfinished payloads", removed)
        return files + removed

    # -- writing --------------------------------------------------------------------------

    def write(self, blocks: Iterable[bytes], size: int = 0) -> tuple[str, int]:
        """Store the bytes of ``blocks``; return ``(sha256, size)``. Up to ``inline_max`` bytes are
        one row; past that, the bytes stream into chunks and memory stays at about one chunk."""
        digest, buffer = hashlib.sha256(), bytearray()
        blocks = iter(blocks)
        for block in blocks:
            digest.update(block)
            buffer += block
            if len(buffer) > self.inline_max:
                return self._write_chunks(digest, buffer, blocks)
        sha = digest.hexdigest()
        self._insert(sha, bytes(buffer))
        return sha, len(buffer)

    def write_file(self, source: BinaryIO) -> tuple[str, int]:
        return self.write(iter(lambda: source.read(BLOCK), b""))

    def _insert(self, sha: str, data: bytes) -> None:
        with self._link.lock:
            if self._link.conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                raise StoreError("a payload must be stored before the transaction that records it")
            with self._link.transaction(durable=False) as db:  # made durable by the row that names it
                self._link.advisory(db.conn, f"payload:{sha}", transaction=True)
                db.conn.execute(
                    "INSERT INTO payloads (sha256, size, data) VALUES (%s, %s, %b) "
                    "ON CONFLICT (sha256) DO UPDATE SET size = excluded.size, data = excluded.data",
                    [sha, len(data), data],
                )

    def _write_chunks(self, digest: Any, buffer: bytearray, rest: Iterator[bytes]) -> tuple[str, int]:
        number = secrets.randbelow(2**31 - 2) + 1
        key = f"tmp:{number}"
        with self._link.lock, self._link.errors():
            conn = self._link.conn  # holds the lock: the chunks are written on it or not at all
            conn.execute("SELECT pg_advisory_lock(%s, %s)", [NAMESPACE, number])
        try:
            size, seq = len(buffer), 0
            for block in rest:
                digest.update(block)
                size += len(block)
                buffer += block
                while len(buffer) >= CHUNK:
                    seq = self._chunk(key, seq, buffer, conn)
            while buffer:
                seq = self._chunk(key, seq, buffer, conn)
            sha = digest.hexdigest()
            with self._link.transaction() as db:  # whole: renamed at once (the same bytes again replace theirs)
                self._same(db.conn, conn)
                self._link.advisory(db.conn, f"payload:{sha}", transaction=True)
                db.conn.execute("DELETE FROM payload_chunks WHERE sha256 = %s", [sha])
                db.conn.execute("UPDATE payload_chunks SET sha256 = %s WHERE sha256 = %s", [sha, key])
            return sha, size
        except BaseException:
            with self._link.lock, contextlib.suppress(psycopg.Error):  # else clean() removes them
                if not conn.broken and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
                    conn.execute("DELETE FROM payload_chunks WHERE sha256 = %s", [key])
            raise
        finally:
            with self._link.lock, contextlib.suppress(psycopg.Error):  # (a broken connection dropped it)
                if not conn.broken:
                    conn.execute("SELECT pg_advisory_unlock(%s, %s)", [NAMESPACE, number])

    def _same(self, conn: psycopg.Connection[Any], locked: psycopg.Connection[Any]) -> None:
        """Refuse to go on writing chunks on another connection than the one holding their lock: if
        it was lost (and the link opened a new one), another process's :meth:`clean` may have
        removed the chunks written so far."""
        if conn is not locked:
            raise StoreError(f"store {self._link.where}: the connection was lost while a payload was written")

    def _chunk(self, key: str, seq: int, buffer: bytearray, locked: psycopg.Connection[Any]) -> int:
        """Write the next chunk (the first :data:`CHUNK` bytes of ``buffer``, taken from it) on
        ``locked``, the connection holding the chunks' lock."""
        with memoryview(buffer) as view:
            piece = bytes(view[:CHUNK])  # one copy, not two
        del buffer[:CHUNK]
        with self._link.transaction(durable=False) as db:
            self._same(db.conn, locked)
            db.conn.execute("INSERT INTO payload_chunks (sha256, seq, data) VALUES (%s, %s, %b)", [key, seq, piece])
        return seq + 1

    # -- reading --------------------------------------------------------------------------

    def _inline(self, sha256: str) -> bytes | None:
        with self._link.lock, self._link.errors():
            row = self._link.conn.execute("SELECT data FROM payloads WHERE sha256 = %s", [sha256], binary=True)
            found = row.fetchone()
        return None if found is None else bytes(found[0])

    def open(self, sha256: str) -> BinaryIO:
        """A seekable binary file object over the payload, reading one chunk at a time."""
        data = self._inline(sha256)
        if data is not None:
            return io.BytesIO(data)
        with self._link.lock, self._link.errors():
            sizes = self._link.conn.execute(
                "SELECT seq, octet_length(data) FROM payload_chunks WHERE sha256 = %s ORDER BY seq", [sha256]
            ).fetchall()
        if not sizes:
            raise StoreError(f"payload {sha256} is missing (no row, no chunks)")
        if [seq for seq, _ in sizes] != list(range(len(sizes))):
            raise StoreError(f"payload {sha256} is damaged: chunks are missing")
        return cast(BinaryIO, Chunks(self._link, sha256, [n for _, n in sizes]))

    def exists(self, sha256: str) -> bool:
        with self._link.lock, self._link.errors():
            return (
                self._link.conn.execute(
                    "SELECT 1 FROM payloads WHERE sha256 = %s UNION ALL "
                    "SELECT 1 FROM payload_chunks WHERE sha256 = %s AND seq = 0",
                    [sha256, sha256],
                ).fetchone()
                is not None
            )

    def remove(self, sha256: str) -> bool:
        """Delete a payload (retention); True if there was one. Call in the transaction that
        checked no message still needs it."""
        conn = self._link.conn
        removed = conn.execute("DELETE FROM payloads WHERE sha256 = %s", [sha256]).rowcount
        removed += conn.execute("DELETE FROM payload_chunks WHERE sha256 = %s", [sha256]).rowcount
        return bool(removed)


class Chunks(io.RawIOBase):
    """A payload's chunks as one seekable stream (a query per chunk, the one in hand kept)."""

    def __init__(self, link: Link, sha256: str, sizes: list[int]) -> None:
        super().__init__()
        self._link, self._sha = link, sha256
        self._starts = [0]
        for n in sizes:
            self._starts.append(self._starts[-1] + n)
        self._pos = 0
        self._held: tuple[int, bytes] = (-1, b"")

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self._starts[-1]}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def read(self, size: int | None = -1) -> bytes:
        """Up to ``size`` bytes, from one chunk (all that is left, if ``size`` is -1 or None)."""
        if size is None or size < 0:
            return b"".join(iter(lambda: self.read(CHUNK), b""))
        if self._pos >= self._starts[-1] or size == 0:
            return b""
        seq = bisect.bisect_right(self._starts, self._pos) - 1
        data = self._chunk(seq)
        offset = self._pos - self._starts[seq]
        piece = data[offset : offset + size]
        self._pos += len(piece)
        return piece

    def readinto(self, buffer: Any) -> int:
        piece = self.read(len(buffer))
        memoryview(buffer)[: len(piece)] = piece
        return len(piece)

    def _chunk(self, seq: int) -> bytes:
        if self._held[0] != seq:
            with self._link.lock, self._link.errors():
                found = self._link.conn.execute(
                    "SELECT data FROM payload_chunks WHERE sha256 = %s AND seq = %s", [self._sha, seq], binary=True
                ).fetchone()
            if found is None:
                raise StoreError(f"payload {self._sha} is missing chunk {seq} (removed while it was read?)")
            self._held = (seq, bytes(found[0]))
        return self._held[1]
