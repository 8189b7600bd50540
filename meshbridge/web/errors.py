"""Every error the API answers is JSON, ``{"error": "one line", "type": "Name", ...}``, with the
status its meaning asks for; no traceback ever reaches a caller (an unexpected exception is
logged and answered 500 with its type's name only)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from ..errors import (
    ConfigError,
    DeliveryError,
    DiskFull,
    InvalidRequest,
    MeshbridgeError,
    MeshRejected,
    PayloadError,
    PayloadRejected,
    Refused,
    SendAbandoned,
    StoreError,
    TransportError,
    UnknownMessage,
)
from .bridges import _PoolBusy, _PoolClosed

log = logging.getLogger("meshbridge.web")

# The most specific class in an exception's MRO decides.
STATUS: dict[type[BaseException], int] = {
    MeshbridgeError: 500,
    ConfigError: 400,  # e.g. a route that is not configured, or not outbound
    InvalidRequest: 400,
    Refused: 409,  # not in a state that allows it: nothing changed
    UnknownMessage: 404,
    PayloadError: 400,
    PayloadRejected: 422,
    TransportError: 503,  # MESH not reached: what was stored waits and is retried
    MeshRejected: 502,
    SendAbandoned: 502,
    DeliveryError: 502,
    StoreError: 500,
    DiskFull: 507,
    _PoolClosed: 503,
}


def status_of(error: BaseException) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def problem(status: int, message: str, kind: str, headers: dict[str, str] | None = None, **more: Any) -> JSONResponse:
    """The JSON error response: ``error`` (one line), ``type``, and ``more``."""
    body = {"error": message or kind, "type": kind, **more}
    return JSONResponse(jsonable_encoder(body), status_code=status, headers=headers)


def for_error(error: MeshbridgeError | _PoolClosed) -> JSONResponse:
    """The response for one of meshbridge's errors; a message that was stored all the same is named."""
    message_id = getattr(error, "message_id", None)
    more: dict[str, Any] = {"message_id": message_id} if message_id else {}
    if isinstance(error, PayloadRejected):
        more.update(findings=[f.as_dict() for f in error.findings])
    return problem(status_of(error), str(error), type(error).__name__, **more)


def install(app: FastAPI) -> None:
    """Answer every error as JSON (see the module docstring)."""

    @app.exception_handler(MeshbridgeError)
    async def meshbridge_error(request: Request, exc: MeshbridgeError) -> JSONResponse:
        return for_error(exc)

    @app.exception_handler(_PoolClosed)
    async def stopping(request: Request, exc: _PoolClosed) -> JSONResponse:
        return for_error(exc)

    @app.exception_handler(ClientDisconnect)
    async def gone(request: Request, exc: ClientDisconnect) -> JSONResponse:
        # The client's doing, not ours: one line, no traceback (nothing was stored; the answer
        # goes nowhere). Not the catch-all below, whose error Starlette re-raises to uvicorn.
        log.info("API %s %s: the client went away before its request was whole", request.method, request.url.path)
        return problem(400, "the request ended before its body was whole", "ClientDisconnect")

    @app.exception_handler(_PoolBusy)
    async def busy(request: Request, exc: _PoolBusy) -> JSONResponse:
        log.warning("API %s %s: %s", request.method, request.url.path, exc)
        return problem(503, str(exc), "Busy", {"Retry-After": "1"})

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"where": ".".join(str(p) for p in e.get("loc", ())), "problem": str(e.get("msg", ""))}
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"where": "", "problem": "invalid request"}
        return problem(422, f"{first['where']}: {first['problem']}", "InvalidRequest", problems=errors)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        headers = dict(exc.headers) if exc.headers else None
        return problem(exc.status_code, str(exc.detail), _kind(exc.status_code), headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("API %s %s failed", request.method, request.url.path, exc_info=exc)
        return problem(500, f"internal error ({type(exc).__name__}); see the service's log", "InternalError")


def _kind(status: int) -> str:
    return {
        401: "Unauthorized",
        403: "Forbidden",
        404: "NotFound",
        405: "MethodNotAllowed",
        413: "TooLarge",
    }.get(status, "HTTPError")
