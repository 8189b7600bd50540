"""A route's ``destination`` table: one kind (``folder``, ``http``, ``command`` or a plugin's) and
the options that kind takes. Header values and the basic-auth password are secret references."""

from __future__ import annotations

import re
import urllib.parse
from typing import Annotated, Any, ClassVar

from pydantic import ConfigDict, Field, PlainValidator, PrivateAttr, WithJsonSchema, field_validator, model_validator

from ..secret import Secret
from .types import SECRET_SCHEMA, ConfigPath, Deadline, Table, Text, problem, secret_validator
from .values import HEADER_VALUE, DestinationOptions

BUILTIN_OPTIONS = {"folder": (), "http": ("auth", "headers", "timeout"), "command": ("env", "timeout")}
PLUGIN_OPTIONS = ("timeout",)
_ANY_OPTION = {name for names in BUILTIN_OPTIONS.values() for name in names}
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an RFC 9110 token


def _header_value(value: str) -> str | None:
    if not HEADER_VALUE.fullmatch(value):  # (the value itself is never printed)
        return "the value must be printable ASCII, without spaces at either end"
    return None


def _latin1(text: str) -> bool:
    """What HTTP basic auth can carry (requests encodes it as Latin-1)."""
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def _basic_password(value: str) -> str | None:
    return None if _latin1(value) else "a basic-auth password is Latin-1 text"


HeaderValue = Annotated[Secret, PlainValidator(secret_validator(_header_value)), WithJsonSchema(SECRET_SCHEMA)]
BasicPassword = Annotated[Secret, PlainValidator(secret_validator(_basic_password)), WithJsonSchema(SECRET_SCHEMA)]


class BasicAuth(Table):
    """HTTP basic authentication for an ``http`` destination."""

    username: Text
    password: BasicPassword

    @field_validator("username")
    @classmethod
    def _username(cls, value: str) -> str:
        if ":" in value or not _latin1(value):
            raise ValueError("a basic-auth user name is Latin-1 text without ':'")
        return value


class Destination(Table):
    """Where an inbound route delivers: exactly one of ``folder``, ``http``, ``command`` or a
    destination kind a plugin adds (its target as the plugin wants it), with that kind's options."""

    model_config = ConfigDict(extra="allow")
    table_example: ClassVar[str] = 'e.g. { folder = "in" }'

    folder: ConfigPath | None = None
    """A folder each payload is written to (atomically, under its MESH message id)."""
    http: Text | None = None
    """An http(s) URL each payload is POSTed to; never with credentials in it."""
    command: list[str] | None = None
    """A program and its arguments; ``{path}`` is replaced by the payload's file."""
    timeout: Deadline | None = None
    """The total deadline of one delivery (default: ``[service] delivery_timeout``)."""
    headers: dict[str, HeaderValue] = Field(default_factory=dict)
    """``http``: headers sent with each POST; values are secret references."""
    auth: BasicAuth | None = None
    env: list[str] = Field(default_factory=list)
    """``command``: environment variables passed on, besides ``PATH`` and ``LANG``."""

    _kind: str = PrivateAttr("")
    _options: DestinationOptions = PrivateAttr(default_factory=DestinationOptions)

    @classmethod
    def checked(cls, data: dict[str, Any]) -> dict[str, Any]:
        kinds = [name for name in data if name not in _ANY_OPTION]
        builtin = [name for name in kinds if name in BUILTIN_OPTIONS]
        if len(builtin) == 1:
            kinds = builtin  # any other key beside a built-in kind is an unknown option
        if len(kinds) != 1:
            raise problem('give exactly one destination, e.g. { folder = "in" }')
        kind = kinds[0]
        allowed = BUILTIN_OPTIONS.get(kind, PLUGIN_OPTIONS)
        for name in data:
            if name != kind and name not in allowed:
                known = ", ".join(allowed) or "none"
                raise problem(f"unknown option for a {kind} destination (allowed: {known})", at=name)
        headers = data.get("headers", {})
        if not isinstance(headers, dict):
            raise problem('expected a table, e.g. { Authorization = { env = "EPR_TOKEN" } }', at="headers")
        for name in headers:
            if not _HEADER_NAME.fullmatch(name):
                raise problem(f"{name!r} is not an HTTP header name", at="headers")
        return data

    @field_validator("http")
    @classmethod
    def _url(cls, url: str) -> str:
        """An http(s) URL without credentials: those come from secret references, never the URL."""
        try:
            parts = urllib.parse.urlsplit(url)
            parts.port  # noqa: B018 (a port that is not a number from 0 to 65535 raises here)
        except ValueError:
            raise ValueError("not a valid URL (its host or port cannot be read)") from None
        if not url.isprintable() or " " in url:  # (a query may hold a token: the URL is never printed)
            raise ValueError("not a valid URL (spaces or control characters: percent-encode them)")
        if "@" in parts.netloc:  # the URL itself is not printed: it holds a password
            raise ValueError(
                "the URL carries credentials (user:password@): give them as auth = { username = ..., "
                'password = { env = "NAME" } } or a header, never in the URL'
            )
        if parts.scheme not in ("http", "https") or not parts.hostname:  # (not printed: it may hold a token)
            raise ValueError("expected an http:// or https:// URL with a host, e.g. 'https://epr.local/hook'")
        return url

    @field_validator("command", mode="before")
    @classmethod
    def _argv(cls, value: Any) -> Any:
        if not (isinstance(value, list) and value and all(isinstance(a, str) for a in value)):
            raise ValueError("expected a list of strings, e.g. ['prog', '{path}']")
        return value

    @field_validator("env", mode="before")
    @classmethod
    def _env(cls, names: Any) -> Any:
        if not isinstance(names, list) or not all(isinstance(n, str) and _ENV_NAME.fullmatch(n) for n in names):
            raise ValueError("expected a list of environment variable names, e.g. ['EPR_HOME']")
        return names

    @model_validator(mode="after")
    def _one_authorization(self) -> Destination:
        if self.auth and any(name.lower() == "authorization" for name in self.headers):
            raise problem("give auth or an Authorization header, not both", at="auth")
        return self

    def model_post_init(self, context: Any, /) -> None:
        builtin = [name for name in BUILTIN_OPTIONS if getattr(self, name) is not None]
        self._kind = builtin[0] if builtin else next(iter(self.model_extra or {}))
        auth = (self.auth.username, self.auth.password) if self.auth else None
        self._options = DestinationOptions(self.timeout, dict(self.headers), auth, tuple(self.env))

    @property
    def kind(self) -> str:
        return self._kind

    @property
    def target(self) -> Any:
        """The folder (a path), URL, argv list, or a plugin kind's value as written."""
        return getattr(self, self._kind) if self._kind in BUILTIN_OPTIONS else (self.model_extra or {})[self._kind]

    @property
    def options(self) -> DestinationOptions:
        return self._options
