"""``meshbridge.toml`` -> typed, validated config. Secret references are checked here and resolved
when first needed (see :mod:`meshbridge.secret`); :meth:`Config.require` resolves them up front.

Every error is a :class:`ConfigError` naming the file, the key and the problem, e.g.
``meshbridge.toml: mailboxes[0].password: environment variable MESH_PW is not set``.
"""

from __future__ import annotations

import codecs
import dataclasses
import os
import re
import tomllib
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .secret import Secret, readable, reference

MESH_MIN_POLL = 300.0  # seconds: MESH guidance is at most one inbox poll per 5 minutes
DEFAULT_CHUNK_SIZE = 100_000_000  # MESH's limit for one request (100 MB)
MIN_CHUNK_SIZE = 5 * 1024 * 1024  # live MESH wants every chunk but the last of at least 5 MB (read as MiB)
DEFAULT_MAX_DECODED = 2 * DEFAULT_CHUNK_SIZE  # a gzip chunk decodes to at most twice what MESH carries in one
DEFAULT_MAX_RATIO = 100.0  # text, XML and FHIR compress 5-20 times; a gzip bomb 1000 times
INLINE_MAX = 64 * 1024  # ``[store] inline_max``: payloads up to this size live in the database
INLINE_LIMIT = 1024 * 1024  # held whole in memory on the way in, so kept small


DELIVERY_TIMEOUT = 300.0  # seconds, total, for one delivery: [service] delivery_timeout's default


@dataclass(frozen=True)
class StoreConfig:
    path: Path
    inline_max: int = INLINE_MAX  # payloads up to this size live in the database, bigger ones as files


@dataclass(frozen=True)
class MeshConfig:
    url: str
    shared_key: Secret
    client_cert: Path | None = None
    client_key: Path | None = None
    ca_bundle: Path | None = None
    check_hostname: bool = True
    sandbox: bool = False
    chunk_size: int = DEFAULT_CHUNK_SIZE
    compress: bool = False
    timeout: float = 600.0
    tracking_interval: float = 3600.0
    send_attempts: int = 10
    retry_backoff: float = 30.0
    retry_backoff_max: float = 3600.0
    send_lease: float = 900.0  # a ``sending`` claim untouched this long belonged to a process that died
    max_decoded_size: int = DEFAULT_MAX_DECODED  # the most one gzip chunk may decode to
    max_compression_ratio: float = DEFAULT_MAX_RATIO  # ... and at most this many times its compressed size


@dataclass(frozen=True)
class ServiceConfig:
    """``meshbridge run``: how often each job runs (poll intervals are per mailbox)."""

    send_interval: float = 30.0
    sweep_interval: float = 60.0
    handshake_interval: float = 86400.0
    housekeeping_interval: float = 86400.0
    retention: float = 30 * 86400.0
    source_settle: float = 2.0
    # inbound deliveries: each route has its own worker; a failed delivery is retried with backoff
    delivery_interval: float = 10.0  # how often each route's worker looks for what is due
    delivery_timeout: float = DELIVERY_TIMEOUT  # total deadline of one delivery (a route's own timeout wins)
    delivery_attempts: int = 10  # then ``undelivered``
    delivery_backoff: float = 30.0
    delivery_backoff_max: float = 3600.0
    delivery_lease: float = 600.0  # a delivery claim with no heartbeat for this long belongs to a dead worker


@dataclass(frozen=True)
class Mailbox:
    id: str
    password: Secret
    poll_interval: float = MESH_MIN_POLL


@dataclass(frozen=True)
class ItkOptions:
    """ITK3 on a route.

    Outbound: payloads are wrapped as ITK3 messages asking for the acks set here, which must
    arrive within ``*_within``. Inbound: messages are answered (infrastructure ack or nack) and
    the end application's business ack is sent back. Responses travel on ``ack_workflow``.
    """

    inf_ack: bool = True
    bus_ack: bool = False
    inf_ack_within: float | None = None
    bus_ack_within: float | None = None
    ack_workflow: str = ""
    event: str = "ITK003D"
    message_definition: str | None = None
    recipient_type: str = "FA"
    local_extension: str = "None"
    ods_code: str | None = None
    full_ack: bool = True  # inbound: our business responses ask the sender for an inf ack


@dataclass(frozen=True)
class DestinationOptions:
    """Settings beside a destination's kind, e.g. ``{ http = "...", timeout = "30s", headers = {...} }``.

    ``timeout`` is the total deadline of one delivery (None: ``[service] delivery_timeout``);
    ``headers`` and ``auth`` (user name and password, HTTP basic) are sent with an HTTP POST;
    ``env`` names the environment variables a command destination is given besides ``PATH`` and ``LANG``.
    """

    timeout: float | None = None
    headers: dict[str, Secret] = field(default_factory=dict)
    auth: tuple[str, Secret] | None = None
    env: tuple[str, ...] = ()


@dataclass(frozen=True)
class Route:
    name: str
    direction: str  # "outbound" | "inbound"
    workflow_id: str
    mailbox: str  # ours: ``from`` of an outbound route, ``mailbox`` of an inbound one
    to: str | None = None  # outbound only
    payload_type: str = "auto"
    fhir_version: str = "STU3"
    itk: ItkOptions | None = None
    source: dict[str, Any] | None = None
    destination: dict[str, Any] | None = None  # {kind: target}
    subject: str | None = None
    content_type: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    destination_options: DestinationOptions = field(default_factory=DestinationOptions)


@dataclass(frozen=True)
class Config:
    file: Path
    store: StoreConfig
    mesh: MeshConfig
    mailboxes: dict[str, Mailbox]
    routes: list[Route]
    service: ServiceConfig = field(default_factory=ServiceConfig)
    plugin_tables: dict[str, dict[str, Any]] = field(default_factory=dict)  # ``[plugins.NAME]``, checked by the Bridge

    def route(self, name: str) -> Route:
        for route in self.routes:
            if route.name == name:
                return route
        known = ", ".join(r.name for r in self.routes) or "none"
        raise ConfigError(str(self.file), "routes", f"no route named {name!r} (known: {known})")

    def inbound_route(self, mailbox: str, workflow_id: str) -> Route | None:
        for route in self.routes:
            if route.direction == "inbound" and route.mailbox == mailbox and route.workflow_id == workflow_id:
                return route
        return None

    def secrets(self) -> list[Secret]:
        """Every secret the config references, wherever it is, resolved or not (for log redaction)."""
        return list(_secrets_in(self))

    def require(self, *, mailboxes: Iterable[str] | None = None, destinations: bool = True) -> None:
        """Resolve now every secret that MESH sessions on ``mailboxes`` (default: all) need, and
        with ``destinations`` those of every route's destination, and check MESH's certificate
        files: a :class:`ConfigError` naming the first missing one (never its value) before any work."""
        for name in ("client_cert", "client_key", "ca_bundle"):
            path = getattr(self.mesh, name)
            if path is not None:
                readable(self.file, f"mesh.{name}", path)
        ids = list(self.mailboxes) if mailboxes is None else list(mailboxes)
        needed = [self.mesh.shared_key, *(self.mailboxes[m].password for m in ids if m in self.mailboxes)]
        if destinations:
            needed += [s for route in self.routes for s in _secrets_in(route.destination_options)]
        for secret in needed:
            secret.reveal()

    def revealed(self) -> list[str]:
        """The values of the secrets resolved so far (what log redaction must hide)."""
        return [s.reveal() for s in _secrets_in(self) if s.resolved]


def _secrets_in(value: Any) -> Iterator[Secret]:
    """Walk dataclasses, mappings and sequences for :class:`Secret` values."""
    if isinstance(value, Secret):
        yield value
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            yield from _secrets_in(getattr(value, f.name))
    elif isinstance(value, dict):
        for item in value.values():
            yield from _secrets_in(item)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from _secrets_in(item)


# -- parsing helpers -----------------------------------------------------------------------

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_SIZES = {"": 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "kib": 1024, "mib": 1024**2, "gib": 1024**3}


def parse_duration(text: str | int | float) -> float:
    """``"90s"``, ``"5m"``, ``"1h"``, ``"2d"`` or a number of seconds -> seconds."""
    if isinstance(text, bool):
        raise ValueError("expected a duration such as '5m', got a boolean")
    if isinstance(text, int | float):
        if text < 0:
            raise ValueError(f"duration must not be negative, got {text}")
        return float(text)
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*", str(text))
    if not match:
        raise ValueError(f"bad duration {text!r}: use a number and a unit s, m, h or d, e.g. '5m'")
    return float(match[1]) * _UNITS[match[2]]


def parse_size(text: str | int) -> int:
    """``"100MB"``, ``"5MiB"`` or a number of bytes -> bytes."""
    if isinstance(text, bool):
        raise ValueError("expected a size such as '100MB', got a boolean")
    if isinstance(text, int):
        value = text
    else:
        match = re.fullmatch(r"\s*(\d+)\s*([a-zA-Z]*)\s*", str(text))
        if not match or match[2].lower() not in _SIZES:
            raise ValueError(f"bad size {text!r}: use bytes or a unit KB, MB, GB, KiB, MiB, GiB")
        value = int(match[1]) * _SIZES[match[2].lower()]
    if value < 1:
        raise ValueError(f"size must be positive, got {text!r}")
    return value


class _Reader:
    """Walks the TOML tree, recording the dotted key for every error."""

    def __init__(self, file: Path) -> None:
        self.file = file
        self.secret_envs: set[str] = set()  # environment variables secrets were read from

    def fail(self, key: str, problem: str) -> ConfigError:
        return ConfigError(str(self.file), key, problem)

    def table(self, data: Any, key: str, allowed: set[str], required: set[str] = frozenset()) -> dict:  # type: ignore[assignment]
        if not isinstance(data, dict):
            raise self.fail(key, f"expected a table, got {type(data).__name__}")
        for name in data:
            if name not in allowed:
                raise self.fail(
                    f"{key}.{name}" if key else name,
                    f"unknown key (allowed: {', '.join(sorted(allowed))})",
                )
        for name in sorted(required):
            if name not in data:
                raise self.fail(f"{key}.{name}" if key else name, "required key is missing")
        return data

    def string(self, data: dict, key: str, name: str, default: str | None = None) -> str | None:
        value = data.get(name, default)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise self.fail(f"{key}.{name}", f"expected a non-empty string, got {value!r}")
        return value

    def boolean(self, data: dict, key: str, name: str, default: bool) -> bool:
        value = data.get(name, default)
        if not isinstance(value, bool):
            raise self.fail(f"{key}.{name}", f"expected true or false, got {value!r}")
        return value

    def duration(self, data: dict, key: str, name: str, default: float | None) -> float | None:
        if name not in data:
            return default
        try:
            return parse_duration(data[name])
        except ValueError as exc:
            raise self.fail(f"{key}.{name}", str(exc)) from None

    def path(self, data: dict, key: str, name: str) -> Path | None:
        value = self.string(data, key, name)
        if value is None:
            return None
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.file.parent / path

    def secret(self, data: dict, key: str, name: str, check: Callable[[str], str | None] | None = None) -> Secret:
        """A secret reference, resolved when first revealed (see :mod:`meshbridge.secret`)."""
        if name not in data:
            raise self.fail(f"{key}.{name}", "required secret is missing")
        secret, env = reference(data[name], self.file, f"{key}.{name}", check)
        if env:
            self.secret_envs.add(env)
        return secret


# -- the schema ----------------------------------------------------------------------------

_TOP = {"store", "mesh", "mailboxes", "routes", "service", "plugins"}
_SERVICE = {
    "send_interval",
    "sweep_interval",
    "handshake_interval",
    "housekeeping_interval",
    "retention",
    "source_settle",
    "delivery_interval",
    "delivery_timeout",
    "delivery_backoff",
    "delivery_backoff_max",
    "delivery_lease",
}
_STORE = {"path", "inline_max"}
_MESH = {
    "url",
    "shared_key",
    "client_cert",
    "client_key",
    "ca_bundle",
    "check_hostname",
    "sandbox",
    "chunk_size",
    "compress",
    "timeout",
    "tracking_interval",
    "send_attempts",
    "retry_backoff",
    "retry_backoff_max",
    "send_lease",
    "max_decoded_size",
    "max_compression_ratio",
}
_MAILBOX = {"id", "password", "poll_interval"}
_VALIDATION = {"xml_schema", "schematron", "charset", "max_size", "control_chars"}
_ROUTE_COMMON = {"name", "direction", "workflow_id", "payload_type", "fhir_version", "itk", "options", *_VALIDATION}
_OUTBOUND = _ROUTE_COMMON | {"from", "to", "source", "subject", "content_type"}
_INBOUND = _ROUTE_COMMON | {"mailbox", "destination"}
_ITK = {
    "inf_ack", "bus_ack", "inf_ack_within", "bus_ack_within", "ack_workflow", "event", "message_definition",
    "recipient_type", "local_extension", "ods_code", "full_ack",
}  # fmt: skip
_MAILBOX_ID = re.compile(r"[A-Z0-9]{3,20}")
_FHIR_VERSIONS = {"STU3", "R4", "R5"}


def default_path() -> Path:
    """``$MESHBRIDGE_CONFIG`` or ``./meshbridge.toml``."""
    return Path(os.environ.get("MESHBRIDGE_CONFIG", "meshbridge.toml"))


def load(path: str | os.PathLike[str] | None = None) -> Config:
    """Read and validate a config file; raise :class:`ConfigError` on any problem."""
    file = Path(path) if path is not None else default_path()
    try:
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(str(file), "", "config file not found (use --config or $MESHBRIDGE_CONFIG)") from None
    except OSError as exc:
        raise ConfigError(str(file), "", f"cannot read config file: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(str(file), "", "config file is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(file), "", f"not valid TOML: {exc}") from None
    return parse(raw, file.resolve())


def parse(raw: dict[str, Any], file: Path) -> Config:
    """Validate an already-decoded TOML document; relative paths resolve against ``file``'s folder."""
    r = _Reader(file)
    r.table(raw, "", _TOP, {"store", "mesh"})

    store_raw = r.table(raw["store"], "store", _STORE, {"path"})
    store = StoreConfig(path=r.path(store_raw, "store", "path"), inline_max=_inline_max(r, store_raw))  # type: ignore[arg-type]

    mesh = _mesh(r, raw["mesh"])
    mailboxes = _mailboxes(r, raw.get("mailboxes", []), mesh)
    routes = _routes(r, raw.get("routes", []), mailboxes)
    service_raw = r.table(raw.get("service", {}), "service", _SERVICE | {"delivery_attempts"})
    defaults = ServiceConfig()
    service = ServiceConfig(
        **{name: r.duration(service_raw, "service", name, getattr(defaults, name)) for name in _SERVICE},
        delivery_attempts=_positive_int(r, service_raw, "service", "delivery_attempts", defaults.delivery_attempts),
    )
    _no_secrets_to_commands(r, routes)
    if service.delivery_timeout <= 0:
        raise r.fail("service.delivery_timeout", "must be more than 0 s")
    return Config(
        file=file,
        store=store,
        mesh=mesh,
        mailboxes=mailboxes,
        routes=routes,
        service=service,
        plugin_tables=_plugin_tables(r, raw.get("plugins", {})),
    )


def _plugin_tables(r: _Reader, raw: Any) -> dict[str, dict[str, Any]]:
    """``[plugins.NAME]`` tables, kept as they are: each plugin's model checks its own when the Bridge starts."""
    if not isinstance(raw, dict):
        raise r.fail("plugins", "expected a table of plugin tables, e.g. [plugins.hl7v2]")
    for name, table in raw.items():
        if not isinstance(table, dict):
            raise r.fail(f"plugins.{name}", f"expected a table, got {type(table).__name__}")
    return {name: dict(table) for name, table in raw.items()}


def _inline_max(r: _Reader, store: dict[str, Any]) -> int:
    value = store.get("inline_max", INLINE_MAX)
    if value in (0, "0"):
        return 0  # every payload a file
    try:
        size = parse_size(value)
    except ValueError as exc:
        raise r.fail("store.inline_max", str(exc)) from None
    if size > INLINE_LIMIT:
        raise r.fail("store.inline_max", f"{size} bytes is over 1 MiB: bigger payloads belong in files")
    return size


def _mesh(r: _Reader, raw: Any) -> MeshConfig:
    m = r.table(raw, "mesh", _MESH, {"url", "shared_key"})
    url = r.string(m, "mesh", "url")
    assert url is not None
    if not re.match(r"https?://", url):
        raise r.fail("mesh.url", f"expected an http:// or https:// URL, got {url!r}")
    cert, key = r.path(m, "mesh", "client_cert"), r.path(m, "mesh", "client_key")  # read when MESH is: require()
    if (cert is None) != (key is None):
        raise r.fail(
            "mesh.client_cert" if cert is None else "mesh.client_key",
            "client_cert and client_key must be given together for mTLS",
        )
    try:
        chunk_size = parse_size(m.get("chunk_size", DEFAULT_CHUNK_SIZE))
    except ValueError as exc:
        raise r.fail("mesh.chunk_size", str(exc)) from None
    if chunk_size > DEFAULT_CHUNK_SIZE:
        raise r.fail("mesh.chunk_size", f"{chunk_size} bytes is over MESH's 100 MB per request")
    sandbox = r.boolean(m, "mesh", "sandbox", False)
    if chunk_size < MIN_CHUNK_SIZE and not sandbox:
        raise r.fail(
            "mesh.chunk_size",
            f"{chunk_size} bytes is under the 5 MiB MESH wants of every chunk but the last "
            "(allowed only with [mesh] sandbox = true)",
        )
    return MeshConfig(
        url=url.rstrip("/"),
        shared_key=r.secret(m, "mesh", "shared_key"),
        client_cert=cert,
        client_key=key,
        ca_bundle=r.path(m, "mesh", "ca_bundle"),
        check_hostname=r.boolean(m, "mesh", "check_hostname", True),
        sandbox=sandbox,
        chunk_size=chunk_size,
        compress=r.boolean(m, "mesh", "compress", False),
        timeout=r.duration(m, "mesh", "timeout", 600.0) or 600.0,
        tracking_interval=r.duration(m, "mesh", "tracking_interval", 3600.0),  # type: ignore[arg-type]
        send_attempts=_positive_int(r, m, "mesh", "send_attempts", 10),
        retry_backoff=r.duration(m, "mesh", "retry_backoff", 30.0),  # type: ignore[arg-type]
        retry_backoff_max=r.duration(m, "mesh", "retry_backoff_max", 3600.0),  # type: ignore[arg-type]
        send_lease=r.duration(m, "mesh", "send_lease", 900.0),  # type: ignore[arg-type]
        max_decoded_size=_decode_limit(r, m),
        max_compression_ratio=_ratio(r, m),
    )


def _decode_limit(r: _Reader, m: dict) -> int:
    try:
        size = parse_size(m.get("max_decoded_size", DEFAULT_MAX_DECODED))
    except ValueError as exc:
        raise r.fail("mesh.max_decoded_size", str(exc)) from None
    if size < 1:
        raise r.fail("mesh.max_decoded_size", "expected a size of at least 1 byte")
    return size


def _ratio(r: _Reader, m: dict) -> float:
    value = m.get("max_compression_ratio", DEFAULT_MAX_RATIO)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 1:
        raise r.fail("mesh.max_compression_ratio", f"expected a number of at least 1, got {value!r}")
    return float(value)


def _positive_int(r: _Reader, data: dict, key: str, name: str, default: int) -> int:
    value = data.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise r.fail(f"{key}.{name}", f"expected a whole number of at least 1, got {value!r}")
    return value


def _mailboxes(r: _Reader, raw: Any, mesh: MeshConfig) -> dict[str, Mailbox]:
    if not isinstance(raw, list):
        raise r.fail("mailboxes", "expected an array of tables: [[mailboxes]]")
    result: dict[str, Mailbox] = {}
    for i, item in enumerate(raw):
        key = f"mailboxes[{i}]"
        mb = r.table(item, key, _MAILBOX, {"id", "password"})
        ident = r.string(mb, key, "id")
        assert ident is not None
        if not _MAILBOX_ID.fullmatch(ident):
            raise r.fail(f"{key}.id", f"{ident!r} is not a MESH mailbox id (upper-case letters and digits)")
        if ident in result:
            raise r.fail(f"{key}.id", f"mailbox {ident} is configured twice")
        interval = r.duration(mb, key, "poll_interval", MESH_MIN_POLL)
        assert interval is not None
        if interval < MESH_MIN_POLL and not mesh.sandbox:
            raise r.fail(
                f"{key}.poll_interval",
                f"{interval:g}s is under the MESH guidance of one poll per 5 minutes "
                "(allowed only with [mesh] sandbox = true)",
            )
        result[ident] = Mailbox(id=ident, password=r.secret(mb, key, "password"), poll_interval=interval)
    return result


def _routes(r: _Reader, raw: Any, mailboxes: dict[str, Mailbox]) -> list[Route]:
    if not isinstance(raw, list):
        raise r.fail("routes", "expected an array of tables: [[routes]]")
    routes: list[Route] = []
    for i, item in enumerate(raw):
        key = f"routes[{i}]"
        if not isinstance(item, dict):
            raise r.fail(key, "expected a table")
        direction = item.get("direction")
        if direction not in ("outbound", "inbound"):
            raise r.fail(f"{key}.direction", f"expected 'outbound' or 'inbound', got {direction!r}")
        outbound = direction == "outbound"
        rt = r.table(
            item,
            key,
            _OUTBOUND if outbound else _INBOUND,
            {"name", "workflow_id", "from", "to"} if outbound else {"name", "workflow_id", "mailbox"},
        )
        name = r.string(rt, key, "name")
        if any(existing.name == name for existing in routes):
            raise r.fail(f"{key}.name", f"route {name!r} is defined twice")
        ours_key = "from" if outbound else "mailbox"
        ours = r.string(rt, key, ours_key)
        if ours not in mailboxes:
            raise r.fail(f"{key}.{ours_key}", f"mailbox {ours!r} is not in [[mailboxes]]")
        workflow = r.string(rt, key, "workflow_id")
        fhir_version = r.string(rt, key, "fhir_version", "STU3")
        if fhir_version not in _FHIR_VERSIONS:
            raise r.fail(f"{key}.fhir_version", f"expected one of STU3, R4, R5, got {fhir_version!r}")
        destination, destination_options = None, DestinationOptions()
        if "destination" in rt:
            destination, destination_options = _destination(r, rt["destination"], f"{key}.destination")
        source = rt.get("source")
        if source is not None:
            src = r.table(source, f"{key}.source", {"folder"}, {"folder"})
            source = {"folder": r.path(src, f"{key}.source", "folder")}
        options = rt.get("options", {})
        if not isinstance(options, dict):
            raise r.fail(f"{key}.options", "expected a table")
        options = {**options, **_validation_options(r, rt, key)}
        routes.append(
            Route(
                name=name,  # type: ignore[arg-type]
                direction=direction,
                workflow_id=workflow,  # type: ignore[arg-type]
                mailbox=ours,  # type: ignore[arg-type]
                to=r.string(rt, key, "to") if outbound else None,
                payload_type=r.string(rt, key, "payload_type", "auto"),  # type: ignore[arg-type]
                fhir_version=fhir_version,  # type: ignore[arg-type]
                itk=_itk(r, rt["itk"], f"{key}.itk", workflow) if "itk" in rt else None,  # type: ignore[arg-type]
                source=source,
                destination=destination,
                subject=r.string(rt, key, "subject"),
                content_type=r.string(rt, key, "content_type"),
                options=options,
                destination_options=destination_options,
            )
        )
    return routes


_DESTINATION_OPTIONS = {"folder": (), "http": ("auth", "headers", "timeout"), "command": ("env", "timeout")}
_PLUGIN_DESTINATION_OPTIONS = ("timeout",)
_ANY_DESTINATION_OPTION = {name for names in _DESTINATION_OPTIONS.values() for name in names}
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an RFC 9110 token
HEADER_VALUE = re.compile(r"[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?")  # printable ASCII, no space at the ends


def _destination(r: _Reader, raw: Any, key: str) -> tuple[dict[str, Any], DestinationOptions]:
    """``{ kind = target, option = ... }`` -> ``({kind: target}, options)``; options are checked per kind."""
    if not isinstance(raw, dict):
        raise r.fail(key, 'expected a table, e.g. { folder = "in" }')
    kinds = [name for name in raw if name not in _ANY_DESTINATION_OPTION]
    builtin = [name for name in kinds if name in _DESTINATION_OPTIONS]
    if len(builtin) == 1:
        kinds = builtin  # any other key beside a built-in kind is an unknown option
    if len(kinds) != 1:
        raise r.fail(key, 'give exactly one destination, e.g. { folder = "in" }')
    kind = kinds[0]
    allowed = _DESTINATION_OPTIONS.get(kind, _PLUGIN_DESTINATION_OPTIONS)
    for name in raw:
        if name != kind and name not in allowed:
            known = ", ".join(allowed) or "none"
            raise r.fail(f"{key}.{name}", f"unknown option for a {kind} destination (allowed: {known})")
    target = raw[kind]
    if kind == "folder":
        target = r.path(raw, key, "folder")
    elif kind == "http":
        target = _http_url(r, raw, key)
    elif kind == "command" and not (isinstance(target, list) and target and all(isinstance(a, str) for a in target)):
        raise r.fail(f"{key}.command", "expected a list of strings, e.g. ['prog', '{path}']")
    headers = _headers(r, raw, key)
    auth = _basic_auth(r, raw, key)
    if auth and any(name.lower() == "authorization" for name in headers):
        raise r.fail(f"{key}.auth", "give auth or an Authorization header, not both")
    timeout = r.duration(raw, key, "timeout", None)
    if timeout is not None and timeout <= 0:
        raise r.fail(f"{key}.timeout", "expected a duration above zero, e.g. '30s'")
    options = DestinationOptions(timeout=timeout, headers=headers, auth=auth, env=_env_names(r, raw, key))
    return {kind: target}, options


def _http_url(r: _Reader, raw: dict, key: str) -> str:
    """An http(s) URL without credentials: those come from secret references, never the URL."""
    url = r.string(raw, key, "http")
    assert url is not None
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 (a port that is not a number from 0 to 65535 raises here)
    except ValueError:
        raise r.fail(f"{key}.http", "not a valid URL (its host or port cannot be read)") from None
    if not url.isprintable() or " " in url:  # (a query may hold a token: the URL is never printed)
        raise r.fail(f"{key}.http", "not a valid URL (spaces or control characters: percent-encode them)")
    if "@" in parts.netloc:  # the URL itself is not printed: it holds a password
        raise r.fail(
            f"{key}.http",
            "the URL carries credentials (user:password@): give them as auth = { username = ..., "
            'password = { env = "NAME" } } or a header, never in the URL',
        )
    if parts.scheme not in ("http", "https") or not parts.hostname:  # (not printed: it may hold a token)
        raise r.fail(f"{key}.http", "expected an http:// or https:// URL with a host, e.g. 'https://epr.local/hook'")
    return url


def _headers(r: _Reader, raw: dict, key: str) -> dict[str, Secret]:
    """Header values are secret references (a token in ``Authorization`` is the usual case)."""
    table = raw.get("headers", {})
    if not isinstance(table, dict):
        raise r.fail(f"{key}.headers", 'expected a table, e.g. { Authorization = { env = "EPR_TOKEN" } }')
    headers: dict[str, Secret] = {}
    for name in table:
        if not _HEADER_NAME.fullmatch(name):
            raise r.fail(f"{key}.headers", f"{name!r} is not an HTTP header name")
        headers[name] = r.secret(table, f"{key}.headers", name, _header_value)
    return headers


def _basic_auth(r: _Reader, raw: dict, key: str) -> tuple[str, Secret] | None:
    if "auth" not in raw:
        return None
    auth = r.table(raw["auth"], f"{key}.auth", {"username", "password"}, {"username", "password"})
    username = r.string(auth, f"{key}.auth", "username")
    assert username is not None
    if ":" in username or not _latin1(username):
        raise r.fail(f"{key}.auth.username", "a basic-auth user name is Latin-1 text without ':'")
    return username, r.secret(auth, f"{key}.auth", "password", _basic_password)


def _header_value(value: str) -> str | None:
    if not HEADER_VALUE.fullmatch(value):  # (the value itself is never printed)
        return "the value must be printable ASCII, without spaces at either end"
    return None


def _basic_password(value: str) -> str | None:
    return None if _latin1(value) else "a basic-auth password is Latin-1 text"


def _latin1(text: str) -> bool:
    """What HTTP basic auth can carry (requests encodes it as Latin-1)."""
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def _env_names(r: _Reader, raw: dict, key: str) -> tuple[str, ...]:
    names = raw.get("env", [])
    if not isinstance(names, list) or not all(isinstance(n, str) and _ENV_NAME.fullmatch(n) for n in names):
        raise r.fail(f"{key}.env", "expected a list of environment variable names, e.g. ['EPR_HOME']")
    return tuple(names)


def _no_secrets_to_commands(r: _Reader, routes: list[Route]) -> None:
    """A command destination is never handed a variable the config reads a secret from."""
    for i, route in enumerate(routes):
        for name in route.destination_options.env:
            if name in r.secret_envs:
                raise r.fail(f"routes[{i}].destination.env", f"{name} holds a secret of this config; not passed on")


def _validation_options(r: _Reader, rt: dict, key: str) -> dict[str, Any]:
    """Route-level validator settings, checked here so a typo fails at start-up."""
    options: dict[str, Any] = {}
    for name in ("xml_schema", "schematron"):
        if name in rt:
            value = r.string(rt, key, name)
            beside = r.file.parent / value  # type: ignore[operator]
            # next to the config file if it is there; else the XML validator also searches schemas/
            options[name] = str(beside) if beside.exists() else value
    if "charset" in rt:
        charset = r.string(rt, key, "charset")
        try:
            codecs.lookup(charset)  # type: ignore[arg-type]
        except LookupError:
            raise r.fail(f"{key}.charset", f"unknown charset {charset!r}") from None
        options["charset"] = charset
    if "max_size" in rt:
        try:
            options["max_size"] = parse_size(rt["max_size"])
        except ValueError as exc:
            raise r.fail(f"{key}.max_size", str(exc)) from None
    if "control_chars" in rt:
        policy = rt["control_chars"]
        if policy not in ("reject", "warn", "allow"):
            raise r.fail(f"{key}.control_chars", f"expected 'reject', 'warn' or 'allow', got {policy!r}")
        options["control_chars"] = policy
    return options


def _itk(r: _Reader, raw: Any, key: str, workflow: str) -> ItkOptions:
    itk = r.table(raw, key, _ITK)
    return ItkOptions(
        inf_ack=r.boolean(itk, key, "inf_ack", True),
        bus_ack=r.boolean(itk, key, "bus_ack", False),
        inf_ack_within=r.duration(itk, key, "inf_ack_within", None),
        bus_ack_within=r.duration(itk, key, "bus_ack_within", None),
        ack_workflow=r.string(itk, key, "ack_workflow") or f"{workflow}_ACK",
        event=r.string(itk, key, "event", "ITK003D"),  # type: ignore[arg-type]
        message_definition=r.string(itk, key, "message_definition"),
        recipient_type=_choice(r, itk, key, "recipient_type", ("FA", "FI"), "FA"),
        local_extension=r.string(itk, key, "local_extension", "None"),  # type: ignore[arg-type]
        ods_code=r.string(itk, key, "ods_code"),
        full_ack=r.boolean(itk, key, "full_ack", True),
    )


def _choice(r: _Reader, data: dict, key: str, name: str, allowed: tuple[str, ...], default: str) -> str:
    value = data.get(name, default)
    if value not in allowed:
        raise r.fail(f"{key}.{name}", f"expected one of {', '.join(allowed)}, got {value!r}")
    return value
