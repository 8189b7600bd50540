"""The whole ``meshbridge.toml`` as one model, with the checks that span its tables (a route's
mailbox is configured, a mailbox's poll interval suits the server, ...)."""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field, ValidationInfo, field_validator, model_validator

from .alerts import AlertsConfig
from .route import Route
from .tables import Mailbox, MeshConfig, ServiceConfig, StoreConfig
from .types import Table, problem
from .values import MESH_MIN_POLL
from .web import WebConfig


class ConfigFile(Table):
    """meshbridge.toml: the MESH server, our mailboxes and the routes through them."""

    model_config = ConfigDict(title="meshbridge.toml")

    store: StoreConfig
    mesh: MeshConfig
    mailboxes: list[Mailbox] = Field(default_factory=list)
    routes: list[Route] = Field(default_factory=list)
    service: ServiceConfig = Field(default_factory=ServiceConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    """``[alerts]``: notifiers (webhooks, email) fed from the store's outbox (docs/alerts.md)."""
    web: WebConfig | None = None
    """``[web]``: the local HTTP API (absent: ``meshbridge run`` serves none)."""
    plugins: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """``[plugins.NAME]``: each plugin's own settings, checked by the plugin's options model."""

    @field_validator("mailboxes", "routes", mode="before")
    @classmethod
    def _array_of_tables(cls, value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, list):
            raise ValueError(f"expected an array of tables: [[{info.field_name}]]")
        return value

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> ConfigFile:
        seen: set[str] = set()
        for i, mailbox in enumerate(self.mailboxes):
            if mailbox.id in seen:
                raise problem(f"mailbox {mailbox.id} is configured twice", at=f"mailboxes[{i}].id")
            seen.add(mailbox.id)
            if mailbox.poll_interval < MESH_MIN_POLL and not self.mesh.sandbox:
                raise problem(
                    f"{mailbox.poll_interval:g}s is under the MESH guidance of one poll per 5 minutes "
                    "(allowed only with [mesh] sandbox = true)",
                    at=f"mailboxes[{i}].poll_interval",
                )
        names: set[str] = set()
        secret_envs = (info.context or {}).get("secret_envs", set())
        for i, route in enumerate(self.routes):
            if route.name in names:
                raise problem(f"route {route.name!r} is defined twice", at=f"routes[{i}].name")
            names.add(route.name)
            if route.mailbox not in seen:
                ours = "from" if route.direction == "outbound" else "mailbox"
                raise problem(f"mailbox {route.mailbox!r} is not in [[mailboxes]]", at=f"routes[{i}].{ours}")
            for name in route.destination_options.env:  # a command is never handed a secret's variable
                if name in secret_envs:
                    at = f"routes[{i}].destination.env"
                    raise problem(f"{name} holds a secret of this config; not passed on", at=at)
        return self
