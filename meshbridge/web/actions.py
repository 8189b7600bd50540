"""The API's actions: submit a payload on a route, business-ack or nack an inbound ITK message,
retry, replay. Each names its caller (the token's name) on the message's timeline."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from ..errors import MeshRejected, SendAbandoned, TransportError
from ..store.space import disk_error
from .access import Caller, Permission
from .bridges import BridgePool, Pooled
from .errors import for_error
from .security import allowed
from .shapes import API, ERROR_SCHEMA, MESSAGE_SCHEMA, json_body, text

NAME_MAX = 255  # bytes of a file name
SUBMIT_BODY = {
    "required": True,
    "description": "The payload's bytes, exactly as they are to be validated and sent.",
    "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
}


class Ack(BaseModel):
    """A positive business response: ``code`` (default 30001) and ``text``."""

    model_config = ConfigDict(extra="forbid")
    code: str | None = Field(default=None, description="A positive ITK3 business code (default 30001).")
    text: str | None = Field(default=None, description="Human-readable text (no patient data).")


class Nack(BaseModel):
    """A negative business response: its ``code`` (e.g. 30002) and ``text``."""

    model_config = ConfigDict(extra="forbid")
    code: str = Field(description="A negative ITK3 business code, e.g. 30002.")
    text: str | None = Field(default=None, description="Human-readable text (no patient data).")


def file_name(name: str) -> str:
    """A payload's file name as given: one path component, text, at most 255 bytes."""
    text(name, "filename")
    bad = not name or name in (".", "..") or "/" in name or "\\" in name or len(name.encode()) > NAME_MAX
    if bad:
        raise HTTPException(400, f"filename {name!r}: one file name (no / or \\), at most {NAME_MAX} bytes")
    return name


async def received(request: Request, limit: int, folder: Path, name: str) -> Path:
    """The request's body, written to ``folder/name`` as it comes (never whole in memory); over
    ``limit`` bytes is 413."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"the payload is over [web] max_upload ({limit} bytes)")
    path, size = folder / name, 0
    try:
        with open(path, "wb") as out:
            async for block in request.stream():
                size += len(block)
                if size > limit:
                    raise HTTPException(413, f"the payload is over [web] max_upload ({limit} bytes)")
                out.write(block)
    except OSError as exc:  # the temporary folder's disk full or failing: 507, nothing stored
        full = disk_error(exc, folder)
        if full is None:
            raise
        raise full from None
    return path


router = APIRouter()
SENT = json_body(MESSAGE_SCHEMA, "Sent: the message as stored")
WAITING = json_body(MESSAGE_SCHEMA, "Stored, not sent yet (MESH not reached): the service sends it")
REFUSED = json_body(ERROR_SCHEMA, "Refused by validation: quarantined (message_id) with its findings")
MESH_REFUSED = json_body(ERROR_SCHEMA, "MESH refused it: kept failed (message_id)")


@router.post(
    f"{API}/routes/{{route}}/messages",
    tags=["actions"],
    status_code=201,
    openapi_extra={"requestBody": SUBMIT_BODY},
    responses={
        201: SENT,
        202: WAITING,
        413: json_body(ERROR_SCHEMA, "Over [web] max_upload"),
        422: REFUSED,
        502: MESH_REFUSED,
    },
)
async def submit(
    route: str,
    request: Request,
    caller: Annotated[Caller, Depends(allowed(Permission.SUBMIT))],
    pool: Pooled,
    filename: Annotated[str, Query(description="The payload's file name (MESH's mex-FileName).")] = "payload",
    payload_type: Annotated[str | None, Query(description="Payload type (default: the route's).")] = None,
) -> JSONResponse:
    """Validate, store and send a payload on an outbound route (``meshbridge send --route``):
    201 sent; 202 stored, not sent yet (MESH not reached: the service sends it); 422 refused
    by validation (quarantined, with its findings); 502 MESH refused it (kept ``failed``)."""
    text(route, "route")
    config = pool.config
    assert config.web is not None
    limit = config.web.max_upload
    known = {r.name: r for r in config.routes}
    if route not in known or known[route].direction != "outbound":
        raise HTTPException(404, f"no outbound route named {route!r}")
    name = file_name(filename)
    text(payload_type, "payload_type")
    folder = Path(tempfile.mkdtemp(prefix="meshbridge-upload-"))
    try:
        path = await received(request, limit, folder, name)
        return await run_in_threadpool(send, pool, path, route, payload_type, caller)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


ANSWERED: dict[int | str, dict[str, Any]] = {
    200: json_body(MESSAGE_SCHEMA),
    409: json_body(ERROR_SCHEMA, "Not an inbound ITK message owing an answer"),
}


@router.post(f"{API}/messages/{{message_id}}/ack", tags=["actions"], responses=ANSWERED)
def ack(
    message_id: str,
    caller: Annotated[Caller, Depends(allowed(Permission.OPERATE))],
    pool: Pooled,
    body: Ack | None = None,
) -> JSONResponse:
    """The end application's positive business response to an inbound ITK message
    (``meshbridge ack ID --ok``); it goes back to the sender on the route's ack workflow."""
    given = body or Ack()
    return answer(pool, message_id, given.code, given.text, nack=False, caller=caller)


@router.post(f"{API}/messages/{{message_id}}/nack", tags=["actions"], responses=ANSWERED)
def nack(
    message_id: str, body: Nack, caller: Annotated[Caller, Depends(allowed(Permission.OPERATE))], pool: Pooled
) -> JSONResponse:
    """A negative business response (``meshbridge ack ID --nack CODE``)."""
    return answer(pool, message_id, body.code, body.text, nack=True, caller=caller)


@router.post(
    f"{API}/messages/{{message_id}}/retry",
    tags=["actions"],
    responses={
        200: json_body(MESSAGE_SCHEMA),
        202: WAITING,
        409: json_body(ERROR_SCHEMA, "Not retriable"),
        502: MESH_REFUSED,
    },
)
def retry(
    message_id: str, caller: Annotated[Caller, Depends(allowed(Permission.OPERATE))], pool: Pooled
) -> JSONResponse:
    """Send a ``failed`` outbound message again, or make an ``undelivered`` inbound one due
    again (``meshbridge retry ID``): 200 done, 202 queued but MESH not reached, 409 not retriable."""
    text(message_id, "message_id")
    with pool.bridge(acting=True) as bridge:
        try:
            message = bridge.retry(message_id, by=caller.actor)
        except (MeshRejected, SendAbandoned) as exc:
            exc.message_id = exc.message_id or message_id
            return for_error(exc)
        except TransportError:
            return JSONResponse(bridge.show(message_id).as_json(), status_code=202)
    return JSONResponse(message.as_json())


@router.post(
    f"{API}/messages/{{message_id}}/replay",
    tags=["actions"],
    responses={
        200: json_body(MESSAGE_SCHEMA),
        409: json_body(ERROR_SCHEMA, "Not replayable"),
        502: json_body(ERROR_SCHEMA, "Its destination did not take it (tried again later)"),
    },
)
def replay(
    message_id: str,
    caller: Annotated[Caller, Depends(allowed(Permission.OPERATE))],
    pool: Pooled,
    force: Annotated[bool, Query(description="Replay a message we nacked; no new response is sent.")] = False,
) -> JSONResponse:
    """Deliver an inbound message again, or route and validate an ``unrouted`` or ``invalid``
    one again against the current config (``meshbridge replay ID``)."""
    text(message_id, "message_id")
    with pool.bridge(acting=True) as bridge:
        return JSONResponse(bridge.replay(message_id, force=force, by=caller.actor).as_json())


def send(pool: BridgePool, path: Path, route: str, payload_type: str | None, caller: Caller) -> JSONResponse:
    """``Bridge.send`` in a worker thread with a bridge of its own; the response for what it did."""
    with pool.bridge(acting=True) as bridge:
        try:
            message = bridge.send(path, route=route, payload_type=payload_type, by=caller.actor)
        except (MeshRejected, SendAbandoned) as exc:
            return for_error(exc)
        except TransportError as exc:  # stored; the service (or poll) sends it
            if not exc.message_id:
                raise
            return JSONResponse(bridge.show(exc.message_id).as_json(), status_code=202)
    location = f"{API}/messages/{message.id}"
    return JSONResponse(message.as_json(), status_code=201, headers={"Location": location})


def answer(
    pool: BridgePool, message_id: str, code: str | None, said: str | None, *, nack: bool, caller: Caller
) -> JSONResponse:
    text(message_id, "message_id")
    text(code, "code")
    with pool.bridge(acting=True) as bridge:
        return JSONResponse(bridge.ack(message_id, code=code, nack=nack, text=said, by=caller.actor).as_json())
