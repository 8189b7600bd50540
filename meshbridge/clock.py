"""The one clock send leases are judged on (the seam tests move: ``meshbridge.clock.now``).

Timestamps in the store (``created_at``, ``updated_at``, events) are wall-clock time, for people.
A lease is not judged on them: the wall clock jumps (NTP stepping, a wrong time set by hand, a VM
resumed), forward making a live upload look stale, backward keeping a dead one claimed. Leases use
the machine's monotonic clock since boot instead (``CLOCK_BOOTTIME``), which every process on the
machine reads alike and setting the time never moves, together with the boot's id: a heartbeat
from an earlier boot belongs to a process that is gone. (A SQLite store in WAL mode is only ever
shared by processes on one machine.)
"""

from __future__ import annotations

import time
from functools import cache
from pathlib import Path

_CLOCK = getattr(time, "CLOCK_BOOTTIME", time.CLOCK_MONOTONIC)


def now() -> float:
    """Seconds on this machine's monotonic clock since boot."""
    return time.clock_gettime(_CLOCK)


@cache
def boot() -> str:
    """This boot of this machine: Linux's boot id (elsewhere, the boot time to the minute)."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return f"booted-{round((time.time() - now()) / 60)}"
