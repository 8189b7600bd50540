"""The building blocks of the config model: :class:`Table` (a TOML table that refuses unknown
keys) and the field types every table uses (text, flags, durations, sizes, paths, secrets), each
failing with today's one-line problem text (:mod:`.errors` adds the file and the key)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationInfo,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from ..errors import ConfigError
from ..secret import Check, Secret, reference
from .values import DURATION_PATTERN, SIZE_PATTERN, parse_duration, parse_size


def problem(text: str, at: str = "") -> PydanticCustomError:
    """A config problem at this table's key, or at ``at`` below it (``"chunk_size"``, ``"routes[0].from"``)."""
    return PydanticCustomError("config", "{problem}", {"problem": text, "at": at})


class Table(BaseModel):
    """A TOML table: an unknown key or a missing required one is refused by name."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)
    table_example: ClassVar[str] = ""  # e.g. '{ folder = "in" }', shown when the value is not a table

    @model_validator(mode="before")
    @classmethod
    def _keys_known(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            example = cls.table_example or f"got {type(data).__name__}"
            raise problem(f"expected a table, {example}")
        return cls.checked(data)

    @classmethod
    def keys(cls) -> tuple[set[str], set[str]]:
        """The keys allowed and the keys required."""
        names = {name: info.alias or name for name, info in cls.model_fields.items()}
        return set(names.values()), {names[n] for n, info in cls.model_fields.items() if info.is_required()}

    @classmethod
    def checked(cls, data: dict[str, Any]) -> dict[str, Any]:
        allowed, required = cls.keys()
        return known(data, allowed, required)


def known(data: dict[str, Any], allowed: set[str], required: set[str]) -> dict[str, Any]:
    for name in data:
        if name not in allowed:
            raise problem(f"unknown key (allowed: {', '.join(sorted(allowed))})", at=name)
    for name in sorted(required):
        if name not in data:
            raise problem("required key is missing", at=name)
    return data


def config_file(info: ValidationInfo) -> Path:
    """The file being loaded (relative paths resolve against its folder)."""
    context = info.context or {}
    return Path(context.get("file") or Path("meshbridge.toml").resolve())


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected a non-empty string, got {value!r}")
    return value


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


def _whole(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"expected a whole number of at least 1, got {value!r}")
    return value


def _deadline(value: Any) -> float:
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError("expected a duration above zero, e.g. '30s'")
    return seconds


def _path(value: Any, info: ValidationInfo) -> Path:
    path = Path(_text(value)).expanduser()
    return path if path.is_absolute() else config_file(info).parent / path


_DURATION = {
    "anyOf": [{"type": "number", "minimum": 0}, {"type": "string", "pattern": DURATION_PATTERN}],
    "description": "seconds, or a number and a unit s, m, h or d, e.g. '5m'",
}
_SIZE = {
    "anyOf": [{"type": "integer", "minimum": 1}, {"type": "string", "pattern": SIZE_PATTERN}],
    "description": "bytes, or a number and a unit KB, MB, GB, KiB, MiB or GiB, e.g. '20MB'",
}
_PATH = {"type": "string", "minLength": 1, "description": "a path; relative to the config file's folder"}

Text = Annotated[str, BeforeValidator(_text), Field(min_length=1)]
Flag = Annotated[bool, BeforeValidator(_flag)]
Whole = Annotated[int, BeforeValidator(_whole), Field(ge=1)]
Duration = Annotated[float, BeforeValidator(parse_duration), WithJsonSchema(_DURATION)]
Deadline = Annotated[float, BeforeValidator(_deadline), WithJsonSchema({**_DURATION, "not": {"const": 0}})]
Size = Annotated[int, BeforeValidator(parse_size), WithJsonSchema(_SIZE)]
ConfigPath = Annotated[Path, BeforeValidator(_path), WithJsonSchema(_PATH)]


def secret_validator(check: Check | None = None) -> Any:
    """Validates a secret reference whose resolved value ``check`` accepts (see :mod:`meshbridge.secret`)."""

    def validate(value: Any, info: ValidationInfo) -> Secret:
        try:
            secret, env = reference(value, config_file(info), "", check)
        except ConfigError as exc:  # the key is added from where pydantic found it
            raise problem(exc.problem) from None
        if env and info.context is not None:
            info.context.setdefault("secret_envs", set()).add(env)
        return secret

    return validate


def _one_key(name: str) -> dict[str, Any]:
    text = {"type": "string"}
    return {"type": "object", "properties": {name: text}, "required": [name], "additionalProperties": False}


SECRET_SCHEMA = {
    "description": 'a secret: the value, { env = "NAME" } or { file = "path" } (read when first needed)',
    "anyOf": [{"type": "string"}, _one_key("env"), _one_key("file")],
}


SecretRef = Annotated[Secret, PlainValidator(secret_validator()), WithJsonSchema(SECRET_SCHEMA)]
