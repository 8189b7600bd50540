"""Named step boundaries, for crash tests: ``MESHBRIDGE_CRASH_AT=<point>`` kills the process there.

Each point sits between two steps of the flow whose order matters for not losing or duplicating
anything (e.g. ``receive:stored`` is after the payload and row are durable and before the MESH
acknowledge). In production the variable is unset and :func:`checkpoint` does nothing.
"""

from __future__ import annotations

import os
import signal

POINTS = (
    "send:stored",  # outbound bytes and row durable, nothing sent
    "send:chunk",  # after each chunk MESH accepted, before progress is recorded
    "send:accepted",  # MESH answered with a message id, not yet recorded
    "send:recorded",  # state sent recorded
    "receive:downloaded",  # bytes on disk, no row yet, not acknowledged
    "receive:stored",  # bytes and row durable, not acknowledged
    "receive:acknowledged",  # acknowledged in MESH, state not yet recorded
    "deliver:written",  # destination written, state not yet recorded
    "deliver:recorded",  # state delivered recorded
    "respond:stored",  # an ITK response stored, not sent
    "source:stored",  # a source file stored as a message, not yet moved aside
)
# Not in POINTS (reached only once per store): "store:built", a new store built, not yet named.

_CRASH_AT, _, _NTH = os.environ.get("MESHBRIDGE_CRASH_AT", "").partition("#")
_hits = 0


def checkpoint(point: str) -> None:
    """Die here, hard (SIGKILL: no cleanup, no flush), if the environment asks for it.

    ``MESHBRIDGE_CRASH_AT=send:chunk`` dies at the first pass, ``send:chunk#3`` at the third.
    """
    global _hits
    if point == _CRASH_AT:
        _hits += 1
        if _hits >= int(_NTH or 1):
            os.kill(os.getpid(), signal.SIGKILL)
