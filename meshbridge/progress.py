"""The progress seam: how a chunked transfer tells its caller how far it has got.

The pipeline knows nothing of terminals: :class:`~meshbridge.Bridge` has a ``progress`` attribute
(None by default) that the command line sets to a rich progress bar while ``send`` or ``poll`` runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class Progress(Protocol):
    """Called as the bytes of a chunked send or download move (never for a single-chunk message).

    ``transfer`` names it (``"send <id> to <mailbox>"``, ``"receive <MESH id> for <mailbox>"``),
    ``done`` counts its bytes so far, ``total`` is its size: for a send the payload's; for a
    download MESH's chunk sizes as received (exact once the last chunk is under way), or None
    when MESH does not say. ``done`` can go back when a chunk is sent again.
    """

    def __call__(self, transfer: str, done: int, total: int | None) -> None: ...


def named(progress: Progress | None, transfer: str) -> Callable[[int, int | None], None] | None:
    """``progress`` bound to one transfer (what the MESH transport calls), or None."""
    if progress is None:
        return None
    return lambda done, total: progress(transfer, done, total)
