"""pydantic's ValidationError -> one :class:`ConfigError` in the ``file: key: problem`` form, the key
dotted as in the TOML file (``routes[1].destination.headers.X-Key``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import ConfigError


def dotted(loc: tuple[int | str, ...] | list[int | str], at: str = "") -> str:
    """``("routes", 1, "destination")`` -> ``routes[1].destination``; ``at`` names a key below it."""
    key = ""
    for part in loc:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
    if at:
        key = f"{key}.{at}" if key else at
    return key


def _typename(value: Any) -> str:
    return type(value).__name__


def _problem(error: Any) -> str:
    kind, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    if kind in ("value_error", "assertion_error") and "error" in ctx:
        return str(ctx["error"])
    if kind == "missing":
        return "required key is missing"
    if kind == "literal_error":
        return f"expected {ctx['expected']}, got {value!r}"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return f"expected a table, got {_typename(value)}"
    if kind in ("list_type", "tuple_type"):
        return f"expected an array, got {_typename(value)}"
    if kind == "string_type":
        return f"expected a string, got {_typename(value)}"
    return str(error["msg"])


def config_error(exc: ValidationError, file: Path) -> ConfigError:
    """The first problem pydantic found, named by its dotted key (values are shown only where the
    problem text shows them: never a secret's)."""
    error = exc.errors(include_url=False)[0]
    return ConfigError(str(file), dotted(error["loc"], (error.get("ctx") or {}).get("at", "")), _problem(error))
