"""Downloading a stored payload: checked against its sha256 first (a damaged one is a JSON error,
not a cut-short body), then streamed a block at a time, never held whole in memory.

One thread reads the store (a bridge borrowed for the whole download: a store connection is
never shared between threads) and hands blocks to the response through a small queue; when the
client goes away, the reader stops at its next block.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import AsyncIterator
from typing import Annotated, BinaryIO, cast

import anyio
from fastapi import APIRouter, Depends
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from ..errors import Refused
from ..reader import Exported
from .access import Caller, Permission
from .bridges import BridgePool, Pooled
from .security import allowed
from .shapes import API, ERROR_SCHEMA, json_body, text

log = logging.getLogger("meshbridge.web")
QUEUED = 4  # blocks between the store and the client at most
STALL = 60.0  # seconds a client may take no block before the download gives up (its bridge freed)
DONE = object()


class _Gone(Exception):
    """The client went away: the reader stops."""


class Handoff:
    """A writable the store's export writes into, feeding a bounded queue (the response reads it)."""

    def __init__(self, stall: float | None = None) -> None:
        self.blocks: queue.Queue[object] = queue.Queue(QUEUED)
        self.gone = threading.Event()  # set by the response: the client went away
        self.stalled = threading.Event()  # set by the reader: it gave up on a client that took nothing
        self.stall = STALL if stall is None else stall

    def write(self, block: bytes) -> int:
        self.put(bytes(block))
        return len(block)

    def put(self, item: object) -> None:
        """Hand ``item`` over; :class:`_Gone` when the client went away, or took none for ``stall`` s."""
        deadline = time.monotonic() + self.stall
        while not self.gone.is_set() and time.monotonic() < deadline:
            try:
                self.blocks.put(item, timeout=min(0.5, self.stall))
                return
            except queue.Full:
                continue
        if not self.gone.is_set():
            log.warning("a download stalled: its client took no block for %g s; it stops short", self.stall)
            self.stalled.set()
        raise _Gone

    def take(self) -> object:
        """The next block for the response (waits); a :class:`_Gone` once the reader gave up."""
        while True:
            try:
                return self.blocks.get(timeout=0.5)
            except queue.Empty:
                if self.stalled.is_set():
                    return _Gone("the download stalled: its client took no block for too long")

    def flush(self) -> None:
        pass


router = APIRouter()
OCTETS = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}


@router.get(
    f"{API}/messages/{{message_id}}/payload",
    tags=["actions"],
    response_class=StreamingResponse,
    responses={
        200: {"description": "The payload's bytes, as stored", "content": OCTETS},
        409: json_body(ERROR_SCHEMA, "Removed by retention"),
        500: json_body(ERROR_SCHEMA, "The stored payload is damaged or missing"),
    },
)
async def download(
    message_id: str, caller: Annotated[Caller, Depends(allowed(Permission.DOWNLOAD))], pool: Pooled
) -> StreamingResponse:
    """A message's stored payload (``meshbridge export ID``): for an outbound ITK message the
    ITK3 Bundle MESH carried. Checked against its sha256 before the first byte; the download
    is on the message's timeline (``downloaded``, with the token's name)."""
    text(message_id, "message_id")
    handoff = Handoff()
    started: queue.Queue[Exported | BaseException] = queue.Queue(1)
    reader = threading.Thread(
        target=export, args=(pool, message_id, caller, handoff, started), name="meshbridge-download", daemon=True
    )
    reader.start()
    first = await run_in_threadpool(started.get)  # the check done, or why not
    if isinstance(first, BaseException):
        raise first
    headers = {
        "Content-Length": str(first.size),
        "Content-Disposition": f'attachment; filename="{first.message_id}.payload"',
        "X-Meshbridge-Sha256": first.sha256,
    }
    return StreamingResponse(blocks(handoff), media_type="application/octet-stream", headers=headers)


def export(
    pool: BridgePool,
    message_id: str,
    caller: Caller,
    handoff: Handoff,
    started: queue.Queue[Exported | BaseException],
) -> None:
    """The reader thread: check, tell the response what it will send, then write every block."""
    told = False
    try:
        with pool.download() as bridge:
            message = bridge.store.get(message_id)
            if not message.payload_sha256:
                raise Refused(f"{message.id}: its payload was removed by retention")
            bridge.store.payloads.verify(message.payload_sha256)  # the whole check before any byte
            started.put(Exported(message.id, message.payload_sha256, message.payload_size or 0))
            told = True
            bridge.export(message.id, cast(BinaryIO, handoff), by=caller.actor)  # checked again as it goes
        handoff.put(DONE)
    except _Gone:
        return
    except BaseException as exc:
        if not told:
            started.put(exc)
        else:
            with contextlib.suppress(_Gone):
                handoff.put(exc)  # the response stops short: the client sees an incomplete body


async def blocks(handoff: Handoff) -> AsyncIterator[bytes]:
    """The blocks the reader hands over, until it is done; a failure part-way ends the body short."""
    try:
        while True:
            item = await anyio.to_thread.run_sync(handoff.take)
            if item is DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield cast(bytes, item)
    finally:
        handoff.gone.set()
