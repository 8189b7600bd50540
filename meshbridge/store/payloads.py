"""Payload bytes as content-addressed files: ``<root>/ab/abcdef...`` named by sha256.

Files are written to a temporary name, fsynced, then renamed, so a payload file either exists
whole or not at all. Files are 0600 in 0700 folders; reads check the sha256.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from ..errors import StoreError

BLOCK = 1024 * 1024


def secure_dir(path: Path) -> Path:
    """Create ``path`` (and parents) with mode 0700 for the folders meshbridge makes."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class PayloadFiles:
    """The folder of payload files beside the database."""

    def __init__(self, root: Path) -> None:
        self.root = secure_dir(root)
        self._tmp = secure_dir(root / "tmp")
        self._dirs: set[Path] = set()

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    def write(self, blocks: Iterable[bytes]) -> tuple[str, int]:
        """Store the bytes of ``blocks`` durably; return ``(sha256, size)``."""
        digest, size = hashlib.sha256(), 0
        fd, tmp_name = tempfile.mkstemp(dir=self._tmp)  # mkstemp creates 0600
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                for block in blocks:
                    digest.update(block)
                    size += len(block)
                    out.write(block)
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
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def write_file(self, source: BinaryIO) -> tuple[str, int]:
        return self.write(iter(lambda: source.read(BLOCK), b""))

    def blocks(self, sha256: str, start: int = 0, length: int | None = None) -> Iterator[bytes]:
        """Stream a payload. A whole-file read (the default) checks the sha256 at the end."""
        path = self.path(sha256)
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            raise StoreError(f"payload file {path} is missing") from None
        whole = start == 0 and length is None
        digest = hashlib.sha256()
        with handle:
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
            raise StoreError(f"payload file {path} is corrupt: sha256 is {digest.hexdigest()}")

    def read(self, sha256: str) -> bytes:
        """The whole payload, sha256-checked (for small payloads; stream big ones)."""
        return b"".join(self.blocks(sha256))

    def verify(self, sha256: str) -> None:
        for _ in self.blocks(sha256):
            pass
