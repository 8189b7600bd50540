"""Plugin settings from ``meshbridge.toml``: each plugin's ``[plugins.NAME]`` table and each route's
plugin destination target, validated against the models plugins declare, when the Bridge starts.

A model is a pydantic model, a dataclass or any type pydantic validates. Unknown keys of a
model's table are refused; relative ``Path`` values are resolved against the config file's
folder. Every problem is a one-line :class:`~meshbridge.ConfigError` naming the file and key.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from .errors import ConfigError


def validated(model: Any, raw: Any, *, file: Path, key: str) -> Any:
    """``raw`` (a TOML value) as an instance of ``model``, its relative paths under ``file``'s folder."""
    fields = _field_names(model)
    if fields is not None:
        if not isinstance(raw, Mapping):
            raise ConfigError(str(file), key, f"expected a table, got {_toml_type(raw)}")
        for name in raw:
            if name not in fields:
                raise ConfigError(str(file), f"{key}.{name}", f"unknown key (allowed: {', '.join(sorted(fields))})")
    try:
        value = TypeAdapter(model).validate_python(raw)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join([key, *(str(part) for part in first["loc"])])
        raise ConfigError(str(file), where, _problem(first)) from None
    except Exception as exc:  # a model pydantic cannot use: the plugin's mistake, said as such
        raise ConfigError(str(file), key, f"the plugin's model cannot be used: {type(exc).__name__}: {exc}") from None
    return resolve_paths(value, file.parent)


def resolve_paths(value: Any, base: Path) -> Any:
    """``value`` with every relative ``Path`` in it (fields of models and dataclasses, items of
    lists, tuples and dicts) made absolute under ``base``; ``~`` is expanded."""
    if isinstance(value, Path):
        path = value.expanduser()
        return path if path.is_absolute() else base / path
    if isinstance(value, BaseModel):
        changed = {name: resolve_paths(getattr(value, name), base) for name in type(value).model_fields}
        return value.model_copy(update=changed)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changed = {f.name: resolve_paths(getattr(value, f.name), base) for f in dataclasses.fields(value) if f.init}
        return dataclasses.replace(value, **changed)
    if isinstance(value, list | tuple):
        return type(value)(resolve_paths(item, base) for item in value)
    if isinstance(value, dict):
        return {name: resolve_paths(item, base) for name, item in value.items()}
    return value


def _field_names(model: Any) -> set[str] | None:
    """The keys a model's table may have; None for a type that is not a table (``Path``, ``str``)."""
    if isinstance(model, type) and issubclass(model, BaseModel):
        names = set()
        for name, info in model.model_fields.items():
            names.add(info.alias or name)
        return names
    if isinstance(model, type) and dataclasses.is_dataclass(model):
        return {f.name for f in dataclasses.fields(model) if f.init}
    return None


def _problem(error: Mapping[str, Any]) -> str:
    """pydantic's message, with what was given (cut short) when it is a plain value."""
    message = str(error["msg"])
    given = error.get("input")
    if error["type"] == "missing":
        return "required key is missing"
    if isinstance(given, str | int | float | bool):
        shown = repr(given)
        return f"{message}, got {shown[:60]}{'...' if len(shown) > 60 else ''}"
    return message


def _toml_type(value: Any) -> str:
    return {str: "a string", int: "an integer", float: "a number", bool: "a boolean", list: "an array"}.get(
        type(value), type(value).__name__
    )
