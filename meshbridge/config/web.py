"""``[web]``: the local HTTP API (``meshbridge serve``, and ``meshbridge run`` when the table is
there): where it listens, its TLS, and the named tokens machines use, each with a role."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal

from pydantic import Field, PlainValidator, WithJsonSchema, field_validator, model_validator

from ..secret import Secret
from .types import SECRET_SCHEMA, ConfigPath, Flag, Size, Table, Text, problem, secret_validator

DEFAULT_PORT = 8780
DEFAULT_MAX_UPLOAD = 100_000_000  # one MESH request; bigger payloads go through a source folder or `send`
MIN_TOKEN = 16  # characters a token's secret has at least
Role = Literal["viewer", "submitter", "operator", "admin"]


def _token_text(value: str) -> str | None:
    """What is wrong with a token's secret, or None: at least :data:`MIN_TOKEN` visible ASCII
    characters (what an HTTP header carries as it is)."""
    if len(value) < MIN_TOKEN:
        return f"a token's secret needs at least {MIN_TOKEN} characters"
    if not all("!" <= c <= "~" for c in value):
        return "a token's secret is visible ASCII only (no spaces or control characters)"
    return None


TokenSecret = Annotated[Secret, PlainValidator(secret_validator(_token_text)), WithJsonSchema(SECRET_SCHEMA)]


class Token(Table):
    """``[[web.tokens]]``: a machine's key to the API: its name (named on the timeline of what it
    does), its secret (a secret reference) and its role."""

    name: Text
    """Named on the timeline of every action taken with this token (e.g. ``mirth``)."""
    secret: TokenSecret
    """The bearer token itself (at least 16 visible ASCII characters): a secret reference."""
    role: Role
    """viewer: read; submitter: read and submit payloads; operator: read, ack, nack, retry, replay,
    download; admin: all."""


def loopback(host: str) -> bool:
    """Is ``host`` this machine only (``localhost``, 127.0.0.0/8, ``::1``)?"""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: whatever it resolves to, not known to be loopback


class WebConfig(Table):
    """``[web]``: the local HTTP API. Loopback by default; any other address needs TLS
    (``tls_cert`` and ``tls_key``) unless ``allow_plain_http = true`` (a proxy in front does TLS)."""

    host: Text = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = DEFAULT_PORT
    tls_cert: ConfigPath | None = None
    """TLS certificate chain (PEM): the API is served over HTTPS."""
    tls_key: ConfigPath | None = None
    """Its private key (PEM), given with ``tls_cert``."""
    allow_plain_http: Flag = False
    """Serve plain HTTP on an address that is not loopback (only behind a TLS proxy on the same host)."""
    max_upload: Size = DEFAULT_MAX_UPLOAD
    """The biggest payload one request may submit (a bigger one is refused with 413)."""
    tokens: list[Token] = Field(default_factory=list)

    @field_validator("port", mode="before")
    @classmethod
    def _port(cls, value: object) -> object:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected a port number, got {value!r}")
        return value

    @field_validator("tokens", mode="before")
    @classmethod
    def _array(cls, value: object) -> object:
        if not isinstance(value, list):
            raise ValueError("expected an array of tables: [[web.tokens]]")
        return value

    @model_validator(mode="after")
    def _safe(self) -> WebConfig:
        if (self.tls_cert is None) != (self.tls_key is None):
            at = "tls_cert" if self.tls_cert is None else "tls_key"
            raise problem("tls_cert and tls_key must be given together", at=at)
        if not loopback(self.host) and self.tls_cert is None and not self.allow_plain_http:
            raise problem(
                f"{self.host} is not a loopback address: give tls_cert and tls_key, or allow_plain_http = true "
                "(only behind a TLS proxy: tokens would cross the network in the clear)",
                at="host",
            )
        if not self.tokens:
            raise problem("no [[web.tokens]]: every endpoint but /healthz needs a token", at="tokens")
        names: set[str] = set()
        for i, token in enumerate(self.tokens):
            if token.name in names:
                raise problem(f"token {token.name!r} is defined twice", at=f"tokens[{i}].name")
            names.add(token.name)
        return self

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None
