"""The API's reads: a message, a page of them, a lookup, the status counts, ``/metrics`` and
``/healthz``. JSON bodies are the ``as_json()`` of the typed objects, the same as
``messages --json``, ``show --json`` and ``status --json`` print."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse

from ..errors import MeshbridgeError
from ..models import Direction, Page, State
from ..views import Filters
from . import errors
from .access import Caller, Permission
from .bridges import Pooled
from .security import allowed
from .shapes import API, ERROR_SCHEMA, LOOKUP_MAX, MESSAGE_SCHEMA, PAGE_MAX, SUMMARY_SCHEMA, json_body, text

router = APIRouter()


@router.get("/openapi.json", include_in_schema=False)
def openapi(caller: Annotated[Caller, Depends(allowed(Permission.READ))], request: Request) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.get("/healthz", tags=["service"], responses={503: json_body(ERROR_SCHEMA, "The store cannot be read")})
def healthz(pool: Pooled) -> JSONResponse:
    """Liveness and the store: 200 when the store answers, else 503 with why. Needs no token."""
    try:
        with pool.bridge() as bridge:
            bridge.store.counts()
    except MeshbridgeError as exc:
        return errors.problem(503, str(exc), type(exc).__name__)
    return JSONResponse({"status": "ok"})


@router.get("/metrics", tags=["service"], response_class=Response)
def metrics(caller: Annotated[Caller, Depends(allowed(Permission.READ))], pool: Pooled) -> Response:
    """Prometheus metrics (text exposition format)."""
    from .metrics import exposition

    with pool.bridge() as bridge:
        body, content_type = exposition(bridge)
    return Response(body, media_type=content_type)


@router.get(f"{API}/status", tags=["messages"])
def status(caller: Annotated[Caller, Depends(allowed(Permission.READ))], pool: Pooled) -> dict[str, Any]:
    """Counts by direction and state, and by route; overdue expectations; business acks owed
    (what ``meshbridge status --json`` prints)."""
    with pool.bridge() as bridge:
        return bridge.status().as_json()


LIST_SCHEMA = {
    "type": "object",
    "required": ["items", "next"],
    "properties": {"items": {"type": "array", "items": SUMMARY_SCHEMA}, "next": {"type": ["string", "null"]}},
}


@router.get(f"{API}/messages", tags=["messages"], responses={200: json_body(LIST_SCHEMA)})
def messages(
    caller: Annotated[Caller, Depends(allowed(Permission.READ))],
    pool: Pooled,
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


@router.get(f"{API}/lookup", tags=["messages"], responses={200: json_body(LIST_SCHEMA)})
def lookup(
    caller: Annotated[Caller, Depends(allowed(Permission.READ))],
    pool: Pooled,
    key: Annotated[str, Query(min_length=1, description="A meshbridge, MESH or ITK id, local id or source file.")],
    limit: Annotated[int, Query(ge=1, le=LOOKUP_MAX)] = 20,
) -> JSONResponse:
    """The messages ``key`` names, newest first (``meshbridge show KEY`` finds them so)."""
    text(key, "key")
    with pool.bridge() as bridge:
        found = bridge.lookup(key, limit)
    return JSONResponse({"items": [m.as_json() for m in found], "next": None})


@router.get(f"{API}/messages/{{message_id}}", tags=["messages"], responses={200: json_body(MESSAGE_SCHEMA)})
def show(message_id: str, caller: Annotated[Caller, Depends(allowed(Permission.READ))], pool: Pooled) -> JSONResponse:
    """One message (by meshbridge id or MESH message id) with its timeline and expectations
    (what ``meshbridge show --json`` prints)."""
    text(message_id, "message_id")
    with pool.bridge() as bridge:
        return JSONResponse(bridge.show(message_id).as_json())


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
