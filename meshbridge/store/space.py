"""Room on the store's disk: a check before new data is written, and a reserve for state changes.

New data (a downloaded or accepted payload, its row) is written only while the store's folder has
:data:`MARGIN` free beyond it; below that, collecting and accepting pause with :class:`DiskFull`
and nothing is lost (MESH keeps what is not acknowledged, a source file stays in its folder).

The *reserve* is a preallocated file beside the store (``<db>.reserve``, :data:`RESERVE` bytes).
When the disk fills anyway (another program filled it, or our own write met ``ENOSPC``), the
reserve is released, so what needs only a few pages of the store (recording a delivery or a
send of what is already stored) can still be written. It is preallocated again once the disk
has :data:`RESERVE` + :data:`MARGIN` free: the service recovers by itself when space returns.
Only a process that *keeps* the reserve (the service, ``meshbridge run``) preallocates it; any
process on the store releases it when the disk is full.
"""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

from ..errors import DiskFull

log = logging.getLogger("meshbridge")

MiB = 1024 * 1024
RESERVE = 8 * MiB  # preallocated, released when the disk is full: thousands of state changes
MARGIN = 16 * MiB  # free space (beyond the payload being written) below which new data waits
CHECK_EVERY = 8 * MiB  # a streamed payload re-checks the free space after this many bytes

FULL = {errno.ENOSPC: "no space left", errno.EDQUOT: "disk quota exceeded", errno.EFBIG: "file size limit reached"}
FAILING = {errno.EIO: "I/O error", errno.EROFS: "read-only file system"}


def disk_error(exc: OSError, where: Path | str) -> DiskFull | None:
    """The :class:`DiskFull` an OS error means (full or failing disk), or None for any other error."""
    if exc.errno in FULL:
        return DiskFull(f"store disk full: {where}: {FULL[exc.errno]} ({errno.errorcode[exc.errno]})")
    if exc.errno in FAILING:
        return DiskFull(f"store disk failing: {where}: {FAILING[exc.errno]} ({errno.errorcode[exc.errno]})")
    return None


def mib(size: int) -> str:
    return f"{size / MiB:.1f} MiB"


class Space:
    """Free space in the store's folder, and the store's reserve file."""

    def __init__(self, store_path: Path, keep: bool = False) -> None:
        self.folder = store_path.parent
        self.reserve = store_path.with_name(store_path.name + ".reserve")
        self.keep = keep  # preallocate the reserve when there is room (the service does)

    def free(self) -> int:
        """Bytes an unprivileged process may still write in the store's folder."""
        stat = os.statvfs(self.folder)
        return stat.f_bavail * stat.f_frsize

    def room_for(self, size: int = 0) -> None:
        """Raise :class:`DiskFull` unless ``size`` bytes of new data fit with :data:`MARGIN` to spare.

        Keeps the reserve right on the way: released when the disk is nearly full, preallocated
        (by a process that keeps it) once there is room for it again.
        """
        free = self.free()
        if free < RESERVE:
            if self.release():
                free = self.free()
        elif self.keep and free >= RESERVE + MARGIN and not self.held():
            free -= self.restore()
        if free < size + MARGIN:
            raise DiskFull(
                f"store disk full: {mib(free)} free in {self.folder}, "
                f"{mib(size + MARGIN)} needed ({mib(size)} of new data and a {mib(MARGIN)} margin)"
            )

    def held(self) -> bool:
        try:
            return self.reserve.stat().st_size >= RESERVE
        except FileNotFoundError:
            return False

    def restore(self) -> int:
        """Preallocate the reserve; return the bytes it took (0 when the disk refused)."""
        try:
            fd = os.open(self.reserve, os.O_CREAT | os.O_WRONLY, 0o600)
        except OSError:
            return 0
        try:
            os.posix_fallocate(fd, 0, RESERVE)
        except OSError as exc:  # full again, a size limit, or no fallocate here: no reserve for now
            log.debug("cannot preallocate %s: %s", self.reserve, exc)
            os.close(fd)
            self.reserve.unlink(missing_ok=True)
            return 0
        os.close(fd)
        log.info("store disk: reserve %s of %s preallocated", self.reserve, mib(RESERVE))
        return RESERVE

    def release(self) -> bool:
        """Free the reserve (the disk is full): True if there was one."""
        try:
            self.reserve.unlink()
        except FileNotFoundError:
            return False
        log.warning("store disk full: released the reserve %s so state changes can be recorded", self.reserve)
        return True
