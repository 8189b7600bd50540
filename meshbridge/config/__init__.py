"""``meshbridge.toml`` -> typed, validated config, declared once as pydantic models
(:class:`~meshbridge.config.document.ConfigFile`; ``meshbridge config schema`` prints its JSON Schema).

Secret references are checked here and resolved when first needed (see :mod:`meshbridge.secret`);
:meth:`Config.require` resolves them up front. Every error is a :class:`ConfigError` naming the
file, the key and the problem, e.g.
``meshbridge.toml: mailboxes[0].password: environment variable MESH_PW is not set``.

The values (defaults, :func:`parse_duration`, :func:`parse_size`, :class:`DestinationOptions`)
import without pydantic; the models load it when first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..secret import Secret
from .values import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_MAX_DECODED,
    DEFAULT_MAX_RATIO,
    DELIVERY_TIMEOUT,
    HEADER_VALUE,
    INLINE_LIMIT,
    INLINE_MAX,
    MESH_MIN_POLL,
    MIN_CHUNK_SIZE,
    DestinationOptions,
    parse_duration,
    parse_size,
)

if TYPE_CHECKING:
    from .destination import Destination
    from .document import ConfigFile
    from .loading import Config, default_path, load, parse, schema, schema_text
    from .route import Route
    from .tables import ItkOptions, Mailbox, MeshConfig, ServiceConfig, Source, StoreConfig
    from .web import Token, WebConfig

_LAZY = {
    "Config": "loading",
    "default_path": "loading",
    "load": "loading",
    "parse": "loading",
    "schema": "loading",
    "schema_text": "loading",
    "ConfigFile": "document",
    "Route": "route",
    "Destination": "destination",
    "ItkOptions": "tables",
    "Mailbox": "tables",
    "MeshConfig": "tables",
    "ServiceConfig": "tables",
    "Source": "tables",
    "StoreConfig": "tables",
    "Token": "web",
    "WebConfig": "web",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_MAX_DECODED",
    "DEFAULT_MAX_RATIO",
    "DELIVERY_TIMEOUT",
    "HEADER_VALUE",
    "INLINE_LIMIT",
    "INLINE_MAX",
    "MESH_MIN_POLL",
    "MIN_CHUNK_SIZE",
    "Config",
    "ConfigError",
    "ConfigFile",
    "Destination",
    "DestinationOptions",
    "ItkOptions",
    "Mailbox",
    "MeshConfig",
    "Route",
    "Secret",
    "ServiceConfig",
    "Source",
    "StoreConfig",
    "Token",
    "WebConfig",
    "default_path",
    "load",
    "parse",
    "parse_duration",
    "parse_size",
    "schema",
    "schema_text",
]
