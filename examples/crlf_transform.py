"""A transform plugin: text payloads sent with CRLF line endings, on the routes that ask for it.

Some receiving systems want CRLF (Windows) line endings whatever the EPR writes::

    [plugins.crlf]
    routes = ["letters-out"]             # the outbound routes whose text gets CRLF endings

The transform runs after validation and before ITK wrapping. meshbridge validates its output
again, as the route's payload type, before storing it, so a transform cannot send what the route
would refuse. It returns ``None`` when it has nothing to change.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

from meshbridge import Payload, Route, hookimpl

_LONE_LF = re.compile(rb"(?<!\r)\n")


class Settings(BaseModel):
    """``[plugins.crlf]``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    routes: list[str] = []


@hookimpl
def meshbridge_config_model() -> type[Settings]:
    return Settings


@hookimpl
def meshbridge_transform(payload: Payload, route: Route, plugin_config: Settings | None) -> bytes | None:
    if plugin_config is None or route.name not in plugin_config.routes or payload.payload_type != "text":
        return None
    converted = _LONE_LF.sub(b"\r\n", payload.data)
    return converted if converted != payload.data else None
