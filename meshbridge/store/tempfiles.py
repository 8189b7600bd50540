"""Temp files held under an exclusive ``flock`` while they are written.

A clean-up removes a temp file only when it can take that lock itself: a live writer always holds
it, and the kernel drops it when its process dies, so what a killed download or upload left
behind is removed and nothing in progress ever is.
"""

from __future__ import annotations

import fcntl
import logging
import os
import stat as stat_module
import tempfile
from pathlib import Path

log = logging.getLogger("meshbridge")


def locked_temp(folder: Path, prefix: str = "") -> tuple[int, Path]:
    """Create a temp file (0600) in ``folder``; return its descriptor, already locked, and its path.

    The lock lasts until the descriptor is closed: rename the file into place before closing it.
    """
    while True:
        fd, name = tempfile.mkstemp(dir=folder, prefix=prefix)
        fcntl.flock(fd, fcntl.LOCK_EX)
        if os.fstat(fd).st_nlink:
            return fd, Path(name)
        os.close(fd)  # a clean-up took it between its creation and our lock: make another


def remove_leftovers(folder: Path, pattern: str = "*") -> tuple[int, int]:
    """Remove the temp files matching ``pattern`` in ``folder`` that no live process holds.

    Returns ``(files, bytes)`` removed.
    """
    files = size = 0
    try:
        paths = list(folder.glob(pattern))
    except OSError:
        return 0, 0
    for path in paths:
        removed = remove_if_free(path)
        if removed is not None:
            files, size = files + 1, size + removed
    return files, size


def remove_if_free(path: Path) -> int | None:
    """Unlink ``path`` if no process holds its lock; return its size, or None if kept."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:  # gone meanwhile (renamed into place), or a symbolic link
        return None
    try:
        if not stat_module.S_ISREG(os.fstat(fd).st_mode):
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return None  # a live writer holds it
        stat = os.fstat(fd)
        try:
            if os.stat(path, follow_symlinks=False).st_ino != stat.st_ino:
                return None  # the name is another file's now
            path.unlink()
        except FileNotFoundError:
            return None
        return stat.st_size
    finally:
        os.close(fd)
