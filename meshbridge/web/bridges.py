"""Bridges for the API's requests: a store connection is never shared between threads.

FastAPI runs each plain ``def`` endpoint in a worker thread of its pool. A request borrows a
:class:`~meshbridge.Bridge` from :class:`BridgePool` for its whole length and gives it back: at
most ``size`` bridges (store connections) are open, each used by one thread at a time; a request
that finds them all lent waits for one, at most ``wait`` seconds (then 503 with ``Retry-After``:
a request never queues for ever behind others). Downloads, which hold a bridge as long as their
client takes to read, may hold at most ``downloads`` of them (half), so reads and actions always
have bridges of their own. :meth:`BridgePool.close` closes them all (at shutdown).

Its bridges never dispatch notifications inline (``dispatch_after`` is off): a webhook or mail
server is never called inside a request. What an action queued is sent by a dispatcher of its
own: the service's ``alerts`` worker under ``meshbridge run``, one started beside the API by
``meshbridge serve``; ``acted`` (called after each action's bridge is given back) wakes it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import Depends, Request

from ..bridge import Bridge
from ..config import Config
from ..plugins import Plugins

POOL_SIZE = 4  # store connections the API holds at most
POOL_WAIT = 10.0  # seconds a request waits for a bridge before it is answered 503


class _PoolClosed(Exception):
    """The pool was closed (the server is stopping): no bridge to lend."""


class _PoolBusy(Exception):
    """Every bridge was lent for longer than the pool's ``wait``: the request is answered 503."""

    def __init__(self, what: str, wait: float) -> None:
        super().__init__(f"the API is busy: {what} for {wait:g} s; try again shortly")


class BridgePool:
    """Up to ``size`` bridges on one config, sharing its plugins and stop event, lent one at a time."""

    def __init__(
        self,
        config: Config,
        plugins: Plugins | None = None,
        *,
        size: int = POOL_SIZE,
        wait: float = POOL_WAIT,
        stopping: threading.Event | None = None,
        acted: Callable[[], None] | None = None,
    ) -> None:
        self.config, self.size, self.wait, self.acted = config, size, wait, acted
        self.downloads = threading.BoundedSemaphore(max(1, size // 2))
        self.plugins = plugins or Plugins()
        self.stopping = stopping or threading.Event()
        self._idle: list[Bridge] = []
        self._open = 0
        self._closed = False
        self._changed = threading.Condition()

    def first(self) -> None:
        """Open one bridge now, so a config or store problem shows at startup, not at the first request."""
        with self.bridge():
            pass

    @contextmanager
    def bridge(self, *, acting: bool = False) -> Iterator[Bridge]:
        """A bridge of this pool's own for the block (waits while all are lent, at most ``wait``
        seconds: then :class:`_PoolBusy`). ``acting``: the block may queue notifications (an
        action): the dispatcher is woken after it."""
        bridge = self._take()
        try:
            yield bridge
        finally:
            self._give_back(bridge)
            if acting and self.acted is not None:
                self.acted()

    @contextmanager
    def download(self) -> Iterator[Bridge]:
        """A bridge for a download: one of at most half the pool's (others wait, at most ``wait``
        seconds), so slow downloads cannot hold every bridge."""
        if not self.downloads.acquire(timeout=self.wait):
            raise _PoolBusy("every download place was taken", self.wait)
        try:
            with self.bridge() as bridge:
                yield bridge
        finally:
            self.downloads.release()

    def _take(self) -> Bridge:
        deadline = time.monotonic() + self.wait
        with self._changed:
            while True:
                if self._closed:
                    raise _PoolClosed("the API is stopping")
                if self._idle:
                    return self._idle.pop()
                if self._open < self.size:
                    self._open += 1
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    raise _PoolBusy(f"all {self.size} store connections were in use", self.wait)
                self._changed.wait(left)
        try:
            bridge = Bridge(self.config, self.plugins)
        except BaseException:
            with self._changed:
                self._open -= 1
                self._changed.notify()
            raise
        bridge.stopping = self.stopping
        bridge.dispatch_after = False  # never a webhook or an email inside a request (see above)
        return bridge

    def _give_back(self, bridge: Bridge) -> None:
        with self._changed:
            if not self._closed:
                self._idle.append(bridge)
                self._changed.notify()
                return
            self._open -= 1
        bridge.close()  # lent when the pool closed: closed as it comes back

    def close(self) -> None:
        """Close every idle bridge now, and each lent one as it comes back."""
        with self._changed:
            self._closed = True
            idle, self._idle = self._idle, []
            self._open -= len(idle)
            self._changed.notify_all()
        for bridge in idle:
            bridge.close()


async def pool_of(request: Request) -> BridgePool:
    """The application's pool (a dependency: ``pool: Pooled``)."""
    pool: BridgePool = request.app.state.pool
    return pool


Pooled = Annotated[BridgePool, Depends(pool_of)]
