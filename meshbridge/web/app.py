"""The API's application: :func:`create_app` builds it over a config. Reads are here; actions
(:mod:`.actions`) and downloads (:mod:`.payload`) add their routes. Every endpoint is a Bridge
call (each request borrows a bridge of its own: :mod:`.bridges`); JSON bodies are the
``as_json()`` of the typed objects, the same as ``messages --json`` and ``show --json`` print.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Response
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import __version__
from ..config import Config
from ..errors import InvalidRequest
from ..models import Direction, Page, State
from ..plugins import Plugins
from ..views import Filters
from . import errors
from .access import Caller, Permission, Tokens
from .bridges import BridgePool
from .security import allowed
from .shapes import API, ERROR_SCHEMA, ERRORS, LOOKUP_MAX, MESSAGE_SCHEMA, PAGE_MAX, SUMMARY_SCHEMA, json_body, text


def create_app(config: Config, *, plugins: Plugins | None = None, stopping: threading.Event | None = None) -> FastAPI:
    """The API over ``config`` (its ``[web]`` table: tokens and limits). Its bridges are opened
    as requests need them and closed when the application shuts down (its lifespan), or by
    ``app.state.pool.close()``. ``stopping``: the service's stop event, shared with them."""
    if config.web is None:
        raise InvalidRequest(f"{config.file}: no [web] table: the API needs [web] and [[web.tokens]]")
    tokens = Tokens(config.web.tokens, str(config.file))
    pool = BridgePool(config, plugins, stopping=stopping)

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
        responses=ERRORS,
    )
    app.state.pool, app.state.tokens, app.state.config = pool, tokens, config
    errors.install(app)
    install_headers(app)

    @app.get("/openapi.json", include_in_schema=False)
    def openapi(caller: Annotated[Caller, Depends(allowed(Permission.READ))]) -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/healthz", tags=["service"], responses={503: json_body(ERROR_SCHEMA, "The store cannot be read")})
    def healthz() -> dict[str, str]:
        """Liveness and the store: 200 when the store answers. Needs no token."""
        with pool.bridge() as bridge:
            bridge.store.counts()
        return {"status": "ok"}

    @app.get("/metrics", tags=["service"], response_class=Response)
    def metrics(caller: Annotated[Caller, Depends(allowed(Permission.READ))]) -> Response:
        """Prometheus metrics (text exposition format)."""
        from .metrics import exposition

        with pool.bridge() as bridge:
            body, content_type = exposition(bridge)
        return Response(body, media_type=content_type)

    @app.get(f"{API}/status", tags=["messages"])
    def status(caller: Annotated[Caller, Depends(allowed(Permission.READ))]) -> dict[str, Any]:
        """Counts by direction and state, and by route; overdue expectations; business acks owed
        (what ``meshbridge status --json`` prints)."""
        with pool.bridge() as bridge:
            return bridge.status().as_json()

    list_schema = {
        "type": "object",
        "required": ["items", "next"],
        "properties": {"items": {"type": "array", "items": SUMMARY_SCHEMA}, "next": {"type": ["string", "null"]}},
    }

    @app.get(f"{API}/messages", tags=["messages"], responses={200: json_body(list_schema)})
    def messages(
        caller: Annotated[Caller, Depends(allowed(Permission.READ))],
        state: Annotated[State | None, Query(description="Only messages in this state.")] = None,
        direction: Annotated[Direction | None, Query(description="in or out.")] = None,
        route: str | None = None,
        mailbox: Annotated[str | None, Query(description="Only messages of this mailbox of ours.")] = None,
        peer: Annotated[str | None, Query(description="Only messages to or from this mailbox.")] = None,
        workflow: Annotated[str | None, Query(description="Only messages on this MESH workflow id.")] = None,
        overdue: bool = False,
        nacked: bool = False,
        owed: Annotated[bool, Query(description="ITK messages owing our business ack (+ age_seconds).")] = False,
        since: Annotated[datetime | None, Query(description="Created at or after (ISO 8601 with an offset).")] = None,
        until: Annotated[datetime | None, Query(description="Created before (ISO 8601 with an offset).")] = None,
        limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 50,
        after: Annotated[str | None, Query(description="The cursor `next` of the page before.")] = None,
        oldest_first: bool = False,
    ) -> JSONResponse:
        """One page of messages, newest first (or oldest first), and the cursor of the next page
        (``next``, null on the last): the filters of ``meshbridge messages``."""
        for name, value in (("route", route), ("mailbox", mailbox), ("peer", peer), ("workflow", workflow)):
            text(value, name)
        filters = Filters(
            state=state,
            direction=direction,
            route=route,
            mailbox=mailbox,
            peer=peer,
            workflow_id=workflow,
            overdue=overdue,
            nacked=nacked,
            owed=owed,
            since=since,
            until=until,
        )
        text(after, "after")
        with pool.bridge() as bridge:
            page = bridge.messages(filters, limit=limit, after=after, oldest_first=oldest_first)
        return JSONResponse({"items": items(page, owed), "next": page.next})

    @app.get(f"{API}/lookup", tags=["messages"], responses={200: json_body(list_schema)})
    def lookup(
        caller: Annotated[Caller, Depends(allowed(Permission.READ))],
        key: Annotated[str, Query(min_length=1, description="A meshbridge, MESH or ITK id, local id or source file.")],
        limit: Annotated[int, Query(ge=1, le=LOOKUP_MAX)] = 20,
    ) -> JSONResponse:
        """The messages ``key`` names, newest first (``meshbridge show KEY`` finds them so)."""
        text(key, "key")
        with pool.bridge() as bridge:
            found = bridge.lookup(key, limit)
        return JSONResponse({"items": [m.as_json() for m in found], "next": None})

    @app.get(f"{API}/messages/{{message_id}}", tags=["messages"], responses={200: json_body(MESSAGE_SCHEMA)})
    def show(message_id: str, caller: Annotated[Caller, Depends(allowed(Permission.READ))]) -> JSONResponse:
        """One message (by meshbridge id or MESH message id) with its timeline and expectations
        (what ``meshbridge show --json`` prints)."""
        text(message_id, "message_id")
        with pool.bridge() as bridge:
            return JSONResponse(bridge.show(message_id).as_json())

    from . import actions, payload

    actions.install(app, pool)
    payload.install(app, pool)
    return app


def items(page: Page, owed: bool) -> list[dict[str, Any]]:
    """A page's items as ``messages --json`` prints them (with ``age_seconds`` for ``owed``)."""
    listed = []
    now = datetime.now(UTC)
    for m in page:
        item = m.as_json()
        if owed:
            item["age_seconds"] = round(max(0.0, (now - m.created_at).total_seconds()), 3)
        listed.append(item)
    return listed


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
