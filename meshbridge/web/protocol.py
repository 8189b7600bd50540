"""uvicorn's HTTP/1.1 protocol (h11) with a deadline for each request's head: uvicorn closes an
idle keep-alive connection, but waits for ever on one that has sent part of a request head (or
nothing at all), so a client could hold connections open without end (slowloris). A connection
that has not sent a whole request head :data:`HEAD_WAIT` seconds after it opened, or after its
last response, is closed."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("meshbridge.web")
HEAD_WAIT = 10.0  # seconds a connection has to send a whole request head
CONNECTIONS = 100  # open connections (and requests in hand) at most; beyond, uvicorn answers 503


class TimelyH11(H11Protocol):
    """:class:`H11Protocol` closing a connection whose request head does not come in time."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)  # (a stream's, as uvicorn's own annotation says)
        super().connection_made(transport)
        self._arm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        self._head_timer = self.loop.call_later(HEAD_WAIT, self._head_late)

    def _head_late(self) -> None:
        """Close the connection if it is still waiting for a request head (none in hand)."""
        self._head_timer = None
        waiting = self.conn.their_state is h11.IDLE and (self.cycle is None or self.cycle.response_complete)
        if waiting and not self.transport.is_closing():
            log.info("API: closed a connection from %s: no whole request head in %g s", self.client, HEAD_WAIT)
            self.transport.close()
