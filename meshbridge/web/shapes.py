"""What the API's bodies look like, for its OpenAPI document: the schemas are made from the
models' own field lists (:data:`~meshbridge.models.JSON_FIELDS`), so they name what
``messages --json`` prints and cannot drift from it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import Request

from ..errors import InvalidRequest
from ..models import JSON_FIELDS
from ..views import is_text

API = "/api/v1"
PAGE_MAX = 500  # messages one page holds at most
LOOKUP_MAX = 100

# Response schemas derived from the models' own field lists: what `messages --json` prints.
SUMMARY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": [*JSON_FIELDS, "findings"],
    "properties": {name: {} for name in [*JSON_FIELDS, "findings"]},
}
MESSAGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": [*SUMMARY_SCHEMA["required"], "events", "expectations"],
    "properties": {**SUMMARY_SCHEMA["properties"], "events": {"type": "array"}, "expectations": {"type": "array"}},
}
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error", "type"],
    "properties": {"error": {"type": "string"}, "type": {"type": "string"}},
}


def json_body(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


ERRORS: dict[int | str, dict[str, Any]] = {
    status: json_body(ERROR_SCHEMA, what)
    for status, what in (
        (400, "Bad request"),
        (401, "No token, or an unknown one"),
        (403, "The token's role does not allow this"),
        (404, "Unknown message or route"),
        (422, "Invalid parameters"),
        (500, "The store failed (the error says how); never a traceback"),
        (503, "Stopping, or MESH not reached"),
        (507, "The store's disk is full"),
    )
}


def text(value: str | None, name: str) -> str | None:
    """A parameter a store can hold (no NUL), else :class:`InvalidRequest`."""
    if value is not None and not is_text(value):
        raise InvalidRequest(f"{name}: not text (a NUL, or a byte that is not UTF-8)")
    return value


async def known_query(request: Request) -> None:
    """Refuse a query parameter the endpoint does not take (400): ``?stat=failed`` for
    ``?state=failed`` would otherwise list every message."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    known = set(query_names(dependant))
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        takes = ", ".join(sorted(known)) or "none"
        raise InvalidRequest(f"unknown query parameter {unknown[0]!r} (this endpoint takes: {takes})")


def query_names(dependant: Any) -> Iterator[str]:
    """The query parameters an endpoint (a FastAPI dependant) and its dependencies take."""
    for param in dependant.query_params:
        yield param.alias
    for sub in dependant.dependencies:
        yield from query_names(sub)
