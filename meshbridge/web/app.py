"""The API's application: :func:`create_app` builds it over a config, with the routes of
:mod:`.reads`, :mod:`.actions` and :mod:`.payload`. Every endpoint is a Bridge
call (each request borrows a bridge of its own: :mod:`.bridges`); JSON bodies are the
``as_json()`` of the typed objects, the same as ``messages --json`` and ``show --json`` print.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import __version__
from ..config import Config
from ..errors import InvalidRequest
from ..plugins import Plugins
from . import errors
from .access import Tokens
from .bridges import BridgePool
from .shapes import ERRORS, known_query


def create_app(
    config: Config,
    *,
    plugins: Plugins | None = None,
    stopping: threading.Event | None = None,
    acted: Callable[[], None] | None = None,
) -> FastAPI:
    """The API over ``config`` (its ``[web]`` table: tokens and limits). Its bridges are opened
    as requests need them and closed when the application shuts down (its lifespan), or by
    ``app.state.pool.close()``. ``stopping``: the service's stop event, shared with them;
    ``acted``: called after each action (wakes the dispatcher that sends what it queued: the
    API's bridges never dispatch inline)."""
    if config.web is None:
        raise InvalidRequest(f"{config.file}: no [web] table: the API needs [web] and [[web.tokens]]")
    tokens = Tokens(config.web.tokens, str(config.file))
    pool = BridgePool(config, plugins, stopping=stopping, acted=acted)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            pool.close()

    app = FastAPI(
        title="meshbridge",
        version=__version__,
        description="The local API of meshbridge: NHS MESH with ITK3 reliable messaging (docs/api.md).",
        docs_url=None,  # the Swagger and ReDoc pages load scripts from a CDN: not served
        redoc_url=None,
        openapi_url=None,  # served below, behind a token
        lifespan=lifespan,
        redirect_slashes=False,  # its redirect names the client's Host header: a 404 instead
        responses=ERRORS,
        dependencies=[Depends(known_query)],
    )
    app.state.pool, app.state.tokens, app.state.config = pool, tokens, config
    errors.install(app)
    install_headers(app)

    from . import actions, payload, reads

    for module in (reads, actions, payload):
        app.include_router(module.router)
    return app


HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"cache-control", b"no-store"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
    (b"referrer-policy", b"no-referrer"),
]


def install_headers(app: FastAPI) -> None:
    """Every response: not sniffed, not cached, not framed, no script (the API serves data only)."""
    app.add_middleware(SafeHeaders)


class SafeHeaders:
    """ASGI middleware adding :data:`HEADERS` to every response (streamed ones too)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers)
