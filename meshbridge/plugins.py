"""The plugin manager: built-in plugins plus entry points in the group ``meshbridge``.

Core code never calls ``pm.hook`` directly; it goes through the typed :class:`Plugins` façade.
``MESHBRIDGE_DISABLE_PLUGINS=a,b`` blocks installed plugins by entry-point name.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pluggy

from . import hookspecs
from .config import Route
from .domain_acks import AckProtocol
from .errors import PluginError
from .events import Notification
from .hookspecs import Destination
from .payloads.base import Finding, Payload, PayloadType

log = logging.getLogger("meshbridge")

BUILTINS = (
    "meshbridge.payloads.text",
    "meshbridge.payloads.fhir",
    "meshbridge.payloads.xml",
    "meshbridge.payloads.edifact",
    "meshbridge.destinations",
)


@dataclass(frozen=True)
class PluginInfo:
    name: str
    version: str | None
    hooks: tuple[str, ...]
    builtin: bool


def make_plugin_manager(load_entrypoints: bool = True, blocked: Iterable[str] = ()) -> pluggy.PluginManager:
    pm = pluggy.PluginManager("meshbridge")
    pm.add_hookspecs(hookspecs)
    for name in [*blocked, *filter(None, os.environ.get("MESHBRIDGE_DISABLE_PLUGINS", "").split(","))]:
        pm.set_blocked(name.strip())
    for module_name in BUILTINS:
        pm.register(importlib.import_module(module_name), name=module_name)
    if load_entrypoints:
        try:
            pm.load_setuptools_entrypoints("meshbridge")
        except Exception as exc:  # a broken third-party plugin must say who it is
            raise PluginError(f"cannot load a meshbridge plugin: {exc.__class__.__name__}: {exc}") from None
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"plugin {exc.plugin!r} implements an unknown hook: {exc}") from None
    return pm


class Plugins:
    """Typed access to the hooks."""

    def __init__(self, pm: pluggy.PluginManager | None = None) -> None:
        self.pm = pm or make_plugin_manager()
        self._types: dict[str, PayloadType] | None = None
        self._destinations: dict[str, Destination] | None = None
        self._protocols: list[AckProtocol] | None = None

    def payload_types(self) -> dict[str, PayloadType]:
        if self._types is None:
            types: dict[str, PayloadType] = {}
            for batch in self.pm.hook.meshbridge_payload_types():
                for payload_type in batch or []:
                    if payload_type.name in types:
                        raise PluginError(f"two plugins define the payload type {payload_type.name!r}")
                    types[payload_type.name] = payload_type
            self._types = types
        return self._types

    def extra_findings(self, payload: Payload, route: Route | None) -> list[Finding]:
        findings: list[Finding] = []
        for batch in self.pm.hook.meshbridge_validate(payload=payload, route=route):
            findings.extend(batch or [])
        return findings

    def transform(self, payload: Payload, route: Route) -> bytes:
        data = payload.data
        for impl in reversed(self.pm.hook.meshbridge_transform.get_hookimpls()):
            result = impl.function(**_args(impl, payload=Payload(**{**payload.__dict__, "data": data}), route=route))
            if result is not None:
                data = result
        return data

    def destinations(self) -> dict[str, Destination]:
        if self._destinations is None:
            kinds: dict[str, Destination] = {}
            for batch in reversed(self.pm.hook.meshbridge_destinations()):
                for kind, deliver in (batch or {}).items():
                    if kind in kinds:
                        raise PluginError(f"two plugins define the destination kind {kind!r}")
                    kinds[kind] = deliver
            self._destinations = kinds
        return self._destinations

    def ack_protocols(self) -> list[AckProtocol]:
        if self._protocols is None:
            self._protocols = [p for batch in self.pm.hook.meshbridge_ack_protocols() for p in batch or []]
        return self._protocols

    def notify(self, notification: Notification) -> None:
        """Tell every plugin; a failing notifier is logged, never allowed to stop the pipeline."""
        for impl in self.pm.hook.meshbridge_on_event.get_hookimpls():
            try:
                impl.function(**_args(impl, event=notification))
            except Exception as exc:
                kind, error = notification.kind, f"{type(exc).__name__}: {exc}"
                log.error("plugin %s failed on event %s: %s", impl.plugin_name, kind, error)

    def describe(self) -> list[PluginInfo]:
        versions = {plugin: dist.version for plugin, dist in self.pm.list_plugin_distinfo() if hasattr(dist, "version")}
        infos = []
        for name, plugin in self.pm.list_name_plugin():
            if plugin is None:
                continue
            hooks = tuple(sorted(h.name for h in self.pm.get_hookcallers(plugin) or []))
            infos.append(PluginInfo(name, versions.get(plugin), hooks, name in BUILTINS))
        return infos


def _args(impl: pluggy.HookImpl, **available: Any) -> dict[str, Any]:
    """The keyword arguments an implementation asked for (pluggy's opt-in arguments)."""
    return {name: available[name] for name in impl.argnames}
