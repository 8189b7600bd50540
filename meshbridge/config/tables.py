"""The config's tables other than routes: ``[store]``, ``[mesh]``, ``[[mailboxes]]``, ``[service]``
and a route's ``itk`` and ``source``. Every default is written here, once."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, urlsplit

from pydantic import BeforeValidator, Field, WithJsonSchema, field_validator, model_validator

from ..secret import Secret
from .types import ConfigPath, Deadline, Duration, Flag, SecretRef, Size, Table, Text, Whole, problem
from .values import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_MAX_DECODED,
    DEFAULT_MAX_RATIO,
    DELIVERY_TIMEOUT,
    INLINE_LIMIT,
    INLINE_MAX,
    MESH_MIN_POLL,
    MIN_CHUNK_SIZE,
    SIZE_PATTERN,
    parse_size,
)

_MAILBOX_ID = re.compile(r"[A-Z0-9]{3,20}")
_PASSWORD_HERE = 'put it in [store] password = { env = "NAME" } or { file = "path" } (never in the URL)'


def check_store_url(url: str) -> str:
    """A PostgreSQL URL without a password (one in it is refused, saying where it goes)."""
    try:
        parts = urlsplit(url)
        secret = parts.password is not None
    except ValueError as exc:
        raise ValueError(f"not a URL: {exc}") from None
    if parts.scheme not in ("postgresql", "postgres"):
        raise ValueError("expected postgresql://user@host[:port]/dbname")
    if secret or any(key.lower() == "password" for key, _ in parse_qsl(parts.query)):
        raise ValueError(f"the URL holds a password: {_PASSWORD_HERE}")
    return url


def _inline_max(value: Any) -> int:
    if value in (0, "0") and not isinstance(value, bool):
        return 0  # every payload a file
    size = parse_size(value)
    if size > INLINE_LIMIT:
        raise ValueError(f"{size} bytes is over 1 MiB: bigger payloads belong in files")
    return size


def _ratio(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 1:
        raise ValueError(f"expected a number of at least 1, got {value!r}")
    return float(value)


_INLINE = {
    "anyOf": [{"type": "integer", "minimum": 0, "maximum": INLINE_LIMIT}, {"type": "string", "pattern": SIZE_PATTERN}],
    "description": "payloads up to this size live in the database, bigger ones as files (0: all files; at most 1 MiB)",
}
InlineSize = Annotated[int, BeforeValidator(_inline_max), WithJsonSchema(_INLINE)]
Ratio = Annotated[float, BeforeValidator(_ratio), Field(ge=1)]


class StoreConfig(Table):
    """``[store]``: where messages and payloads are kept: a SQLite file (``path``) or a PostgreSQL
    database (``url``, with its ``password`` as a secret, never in the URL)."""

    path: ConfigPath | None = None
    """The SQLite database (payload files go in a folder beside it)."""
    url: Text | None = None
    """A PostgreSQL database instead, ``postgresql://user@host[:port]/dbname`` (payloads in the database)."""
    password: SecretRef | None = None
    """The PostgreSQL user's password (a secret reference), if the server asks for one."""
    inline_max: InlineSize = INLINE_MAX

    @field_validator("url")
    @classmethod
    def _postgresql(cls, url: str) -> str:
        return check_store_url(url)

    @model_validator(mode="after")
    def _one_store(self) -> StoreConfig:
        if (self.path is None) == (self.url is None):
            raise problem("give either path (a SQLite file) or url (a PostgreSQL database), not both or neither")
        if self.password is not None and self.url is None:
            raise problem("password is for a PostgreSQL store (url)", at="password")
        return self

    @property
    def postgresql(self) -> bool:
        return self.url is not None


class MeshConfig(Table):
    """``[mesh]``: the MESH server and how meshbridge talks to it."""

    url: Text
    """The MESH server, e.g. ``https://msg.intspineservices.nhs.uk``."""
    shared_key: SecretRef
    """The environment's shared HMAC key."""
    client_cert: ConfigPath | None = None
    """mTLS client certificate (PEM); read when MESH is contacted."""
    client_key: ConfigPath | None = None
    """mTLS client key (PEM), given with ``client_cert``."""
    ca_bundle: ConfigPath | None = None
    """CA bundle to verify MESH's certificate (default: the system's)."""
    check_hostname: Flag = True
    sandbox: Flag = False
    """A test server: allows polling more often than every 5 minutes and chunks under 5 MiB."""
    chunk_size: Size = DEFAULT_CHUNK_SIZE
    """Bigger payloads are sent in chunks of this size (at most 100 MB; at least 5 MiB for live MESH)."""
    compress: Flag = False
    """gzip payloads on the way out."""
    timeout: Deadline = 600.0
    """One HTTP request's timeout."""
    tracking_interval: Duration = 3600.0
    send_attempts: Whole = 10
    retry_backoff: Duration = 30.0
    retry_backoff_max: Duration = 3600.0
    send_lease: Duration = 900.0
    """A ``sending`` claim untouched this long belonged to a process that died."""
    max_decoded_size: Size = DEFAULT_MAX_DECODED
    """The most one downloaded gzip chunk may decode to."""
    max_compression_ratio: Ratio = DEFAULT_MAX_RATIO
    """... and at most this many times its compressed size."""

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        if not re.match(r"https?://", url):
            raise ValueError(f"expected an http:// or https:// URL, got {url!r}")
        return url.rstrip("/")

    @field_validator("chunk_size")
    @classmethod
    def _chunk_limit(cls, size: int) -> int:
        if size > DEFAULT_CHUNK_SIZE:
            raise ValueError(f"{size} bytes is over MESH's 100 MB per request")
        return size

    @model_validator(mode="after")
    def _together(self) -> MeshConfig:
        if (self.client_cert is None) != (self.client_key is None):
            at = "client_cert" if self.client_cert is None else "client_key"
            raise problem("client_cert and client_key must be given together for mTLS", at=at)
        if self.chunk_size < MIN_CHUNK_SIZE and not self.sandbox:
            raise problem(
                f"{self.chunk_size} bytes is under the 5 MiB MESH wants of every chunk but the last "
                "(allowed only with [mesh] sandbox = true)",
                at="chunk_size",
            )
        return self


class ServiceConfig(Table):
    """``[service]``: how often each job of ``meshbridge run`` runs (poll intervals are per mailbox)."""

    send_interval: Duration = 30.0
    sweep_interval: Duration = 60.0
    handshake_interval: Duration = 86400.0
    housekeeping_interval: Duration = 86400.0
    retention: Duration = 30 * 86400.0
    source_settle: Duration = 2.0
    delivery_interval: Duration = 10.0
    """How often each inbound route's worker looks for what is due."""
    delivery_timeout: Duration = DELIVERY_TIMEOUT
    """The total deadline of one delivery (a destination's own ``timeout`` wins)."""
    delivery_attempts: Whole = 10
    """Then the message is ``undelivered``."""
    delivery_backoff: Duration = 30.0
    delivery_backoff_max: Duration = 3600.0
    delivery_lease: Duration = 600.0
    """A delivery claim with no heartbeat for this long belongs to a dead worker."""

    @field_validator("delivery_timeout")
    @classmethod
    def _some_time(cls, seconds: float) -> float:
        if seconds <= 0:
            raise ValueError("must be more than 0 s")
        return seconds


class Mailbox(Table):
    """``[[mailboxes]]``: one of our MESH mailboxes."""

    id: Text
    """The MESH mailbox id (upper-case letters and digits)."""
    password: SecretRef
    poll_interval: Duration = MESH_MIN_POLL
    """At least 5 minutes (MESH guidance) unless ``[mesh] sandbox = true``."""

    @field_validator("id")
    @classmethod
    def _mesh_id(cls, ident: str) -> str:
        if not _MAILBOX_ID.fullmatch(ident):
            raise ValueError(f"{ident!r} is not a MESH mailbox id (upper-case letters and digits)")
        return ident


class ItkOptions(Table):
    """A route's ``itk``: ITK3 on a route.

    Outbound: payloads are wrapped as ITK3 messages asking for the acks set here, which must
    arrive within ``*_within``. Inbound: messages are answered (infrastructure ack or nack) and
    the end application's business ack is sent back. Responses travel on ``ack_workflow``.
    """

    inf_ack: Flag = True
    bus_ack: Flag = False
    inf_ack_within: Duration | None = None
    bus_ack_within: Duration | None = None
    ack_workflow: Text = ""
    """The workflow responses travel on (default: the route's ``workflow_id`` and ``_ACK``)."""
    event: Text = "ITK003D"
    message_definition: Text | None = None
    recipient_type: Literal["FA", "FI"] = "FA"
    local_extension: Text = "None"
    ods_code: Text | None = None
    full_ack: Flag = True
    """Inbound: our business responses ask the sender for an infrastructure ack."""


class Source(Table):
    """An outbound route's ``source``: a folder ``meshbridge run`` sends from."""

    folder: ConfigPath


__all__ = ["ItkOptions", "Mailbox", "MeshConfig", "Secret", "ServiceConfig", "Source", "StoreConfig"]
