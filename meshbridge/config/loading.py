"""Reading ``meshbridge.toml`` into a :class:`Config`, and the config's JSON Schema."""

from __future__ import annotations

import json
import os
import tomllib
import urllib.parse
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic.json_schema import GenerateJsonSchema
from pydantic_core import core_schema

from ..errors import ConfigError
from ..secret import Secret, readable
from .document import ConfigFile
from .errors import config_error
from .route import Route
from .tables import Mailbox, MeshConfig, ServiceConfig, StoreConfig
from .web import WebConfig


@dataclass(frozen=True)
class Config:
    """A loaded config: its tables, our mailboxes by id, the routes, each plugin's table."""

    file: Path
    store: StoreConfig
    mesh: MeshConfig
    mailboxes: dict[str, Mailbox]
    routes: list[Route]
    service: ServiceConfig
    plugin_tables: dict[str, dict[str, Any]]
    model: ConfigFile = field(repr=False)
    web: WebConfig | None = None

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
        return [secret for _, secret in _secrets_in(self.model)]

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
            for route in self.routes:
                options = route.destination_options
                needed += [*options.headers.values(), *([options.auth[1]] if options.auth else [])]
        for secret in needed:
            secret.reveal()

    def revealed(self) -> list[str]:
        """The values of the secrets resolved so far (what log redaction must hide); of a URL, also
        its path and query, which an HTTP library's debug line prints without the rest (a Slack or
        Teams webhook's token is in its path)."""
        values = [s.reveal() for s in self.secrets() if s.resolved]
        return values + [part for value in values for part in _url_target(value)]


def _url_target(value: str) -> list[str]:
    """An http(s) URL's request target (path and query) if it has more than ``/``, else nothing."""
    if not value.lower().startswith(("http://", "https://")):
        return []
    try:
        parts = urllib.parse.urlsplit(value)
    except ValueError:  # not a URL after all (its whole value is redacted regardless)
        return []
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    return [target] if len(target) > 1 else []


def _secrets_in(value: Any, key: str = "") -> Iterator[tuple[str, Secret]]:
    """Each :class:`Secret` in a model and its key as written in the TOML file."""
    if isinstance(value, Secret):
        yield key, value
    elif isinstance(value, BaseModel):
        for name, info in type(value).model_fields.items():
            child = info.alias or name
            yield from _secrets_in(getattr(value, name), f"{key}.{child}" if key else child)
    elif isinstance(value, dict):
        for name, item in value.items():
            yield from _secrets_in(item, f"{key}.{name}")
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield from _secrets_in(item, f"{key}[{i}]")


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
    try:
        model = ConfigFile.model_validate(raw, context={"file": file, "secret_envs": set()})
    except ValidationError as exc:
        raise config_error(exc, file) from None
    for key, secret in _secrets_in(model):
        secret.where = key  # named by the error if it cannot be resolved when needed
    return Config(
        file=file,
        store=model.store,
        mesh=model.mesh,
        mailboxes={mailbox.id: mailbox for mailbox in model.mailboxes},
        routes=list(model.routes),
        service=model.service,
        plugin_tables=model.plugins,
        model=model,
        web=model.web,
    )


class _TomlSchema(GenerateJsonSchema):
    """TOML has no null: an optional key is simply left out, so no ``null`` alternatives or
    defaults, and no titles repeating the key."""

    def nullable_schema(self, schema: core_schema.NullableSchema) -> dict[str, Any]:
        return self.generate_inner(schema["schema"])

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> dict[str, Any]:
        if schema.get("default", ...) is None:
            return self.generate_inner(schema["schema"])
        return super().default_schema(schema)

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False


def schema() -> dict[str, Any]:
    """The JSON Schema of ``meshbridge.toml`` (for editors that complete and check TOML)."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **ConfigFile.model_json_schema(by_alias=True, schema_generator=_TomlSchema),
    }


def schema_text() -> str:
    """:func:`schema` as the text the shipped ``meshbridge/schemas/config.schema.json`` holds."""
    return json.dumps(schema(), indent=2, ensure_ascii=False) + "\n"
