"""The plugin manager: built-in plugins plus entry points in the group ``meshbridge``.

Core code never calls ``pm.hook`` directly; it goes through the typed :class:`Plugins` façade,
which calls each implementation with the arguments it asks for, its own ``plugin_config``
among them (see :meth:`Plugins.configure`). ``MESHBRIDGE_DISABLE_PLUGINS=a,b`` blocks installed
plugins by entry-point name; :func:`meshbridge.testing.register_plugin` adds one in-process.
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
from .config import Config, Route
from .contract import Destination, DestinationKind
from .domain_acks import AckProtocol
from .errors import ConfigError, PluginError
from .events import Notification
from .payloads.base import Finding, Payload, PayloadType

log = logging.getLogger("meshbridge")

BUILTINS = (
    "meshbridge.payloads.text",
    "meshbridge.payloads.fhir",
    "meshbridge.payloads.xml",
    "meshbridge.payloads.edifact",
    "meshbridge.destinations",
)


# plugins registered in-process (name, object), added to every new plugin manager: see meshbridge.testing
REGISTERED: list[tuple[str, object]] = []


@dataclass(frozen=True)
class PluginInfo:
    name: str
    version: str | None
    hooks: tuple[str, ...]
    builtin: bool

    def as_json(self) -> dict[str, Any]:
        """What ``plugins --json`` prints of it: ``name``, ``version``, ``hooks``, ``builtin``."""
        return {"name": self.name, "version": self.version, "hooks": list(self.hooks), "builtin": self.builtin}


def make_plugin_manager(load_entrypoints: bool = True, blocked: Iterable[str] = ()) -> pluggy.PluginManager:
    pm = pluggy.PluginManager("meshbridge")
    pm.add_hookspecs(hookspecs)
    for name in [*blocked, *filter(None, os.environ.get("MESHBRIDGE_DISABLE_PLUGINS", "").split(","))]:
        pm.set_blocked(name.strip())
    for module_name in BUILTINS:
        pm.register(importlib.import_module(module_name), name=module_name)
    for name, plugin in REGISTERED:
        pm.register(plugin, name=name)
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
        self._destinations: dict[str, DestinationKind] | None = None
        self._protocols: list[AckProtocol] | None = None
        self._config: dict[str, Any] = {}  # plugin name -> its validated [plugins.NAME] table
        self._targets: dict[str, Any] = {}  # route name -> its validated plugin destination target
        self._configured = False
        self._configured_for: Config | None = None

    def configure(self, config: Config) -> None:
        """Validate each plugin's ``[plugins.NAME]`` table and each route's plugin destination target
        against the models the plugins declare (a :class:`ConfigError` naming the key, before any
        message is touched); the hooks receive the results. One config at a time: configuring
        for another replaces the settings (again for the same config does nothing)."""
        from .plugin_config import validated

        if config is self._configured_for:
            return
        names = {name for name, plugin in self.pm.list_name_plugin() if plugin is not None}
        for name in config.plugin_tables:
            if name not in names:
                installed = ", ".join(sorted(n for n in names if n not in BUILTINS)) or "none"
                raise ConfigError(
                    str(config.file), f"plugins.{name}", f"no plugin named {name!r} is installed (have: {installed})"
                )
        settings: dict[str, Any] = {name: dict(table) for name, table in config.plugin_tables.items()}
        for name, model in self.config_models().items():
            table = config.plugin_tables.get(name, {})
            settings[name] = validated(model, table, file=config.file, key=f"plugins.{name}")
        fresh = Plugins(self.pm)  # the hooks' results with these settings
        fresh._config, fresh._configured = settings, True
        kinds, targets = fresh._kinds(), {}
        for i, route in enumerate(config.routes):
            for kind, target in (route.destination or {}).items():
                model = kinds[kind].target if kind in kinds else None
                if model is not None:
                    key = f"routes[{i}].destination.{kind}"
                    targets[route.name] = validated(model, target, file=config.file, key=key)
        # all checked: swap in at once (a worker thread of the service may be delivering meanwhile)
        self._config, self._targets, self._configured = settings, targets, True
        self._types, self._destinations, self._protocols = None, kinds, None
        self._configured_for = config

    def config_models(self) -> dict[str, Any]:
        """The model each plugin declares for its ``[plugins.NAME]`` table, by plugin name."""
        models: dict[str, Any] = {}
        for impl in self._impls("meshbridge_config_model"):
            if impl.plugin_name not in models:
                model = impl.function(**_args(impl))
                if model is not None:
                    models[impl.plugin_name] = model
        return models

    def plugin_config(self, name: str) -> Any:
        """What the plugin ``name`` receives as ``plugin_config``: its validated table (without a
        config file, its model's defaults, or None when its model requires a value)."""
        if not self._configured and name not in self._config:
            model = self.config_models().get(name)
            try:
                self._config[name] = {} if model is None else _defaults(model)
            except ConfigError:
                self._config[name] = None
        return self._config.get(name, {})

    def target(self, route: Route) -> Any:
        """The target a route's destination receives: validated by its kind's model, else as configured."""
        if route.name in self._targets:
            return self._targets[route.name]
        [(_kind, target)] = (route.destination or {}).items()
        return target

    def payload_types(self) -> dict[str, PayloadType]:
        if self._types is None:
            types: dict[str, PayloadType] = {}
            for _impl, batch in self._call("meshbridge_payload_types"):
                for payload_type in batch or []:
                    if payload_type.name in types:
                        raise PluginError(f"two plugins define the payload type {payload_type.name!r}")
                    types[payload_type.name] = payload_type
            self._types = types
        return self._types

    def extra_findings(self, payload: Payload, route: Route | None) -> list[Finding]:
        findings: list[Finding] = []
        for _impl, batch in self._call("meshbridge_validate", payload=payload, route=route):
            findings.extend(batch or [])
        return findings

    def transforms(self) -> list[pluggy.HookImpl]:
        """The ``meshbridge_transform`` implementations, in the order they run."""
        return self._impls("meshbridge_transform")

    def transform_with(self, impl: pluggy.HookImpl, payload: Payload, route: Route) -> object:
        """One transform's output for ``payload`` as the plugin returned it (None: left alone; the
        caller checks that anything else is bytes)."""
        settings = self.plugin_config(impl.plugin_name)
        return impl.function(**_args(impl, payload=payload, route=route, plugin_config=settings))

    def destinations(self) -> dict[str, Destination]:
        return {kind: entry.deliver for kind, entry in self._kinds().items()}

    def _kinds(self) -> dict[str, DestinationKind]:
        if self._destinations is None:
            kinds: dict[str, DestinationKind] = {}
            for impl, batch in reversed(self._call("meshbridge_destinations")):
                for kind, deliver in (batch or {}).items():
                    if kind in kinds:
                        raise PluginError(f"two plugins define the destination kind {kind!r}")
                    if not isinstance(deliver, DestinationKind):
                        deliver = DestinationKind(deliver)
                    if not callable(deliver.deliver):
                        raise PluginError(f"plugin {impl.plugin_name}: destination kind {kind!r} is not callable")
                    kinds[kind] = deliver
            self._destinations = kinds
        return self._destinations

    def ack_protocols(self) -> list[AckProtocol]:
        if self._protocols is None:
            self._protocols = [p for _impl, batch in self._call("meshbridge_ack_protocols") for p in batch or []]
        return self._protocols

    def on_event(self, notification: Notification) -> None:
        """Tell every plugin (``meshbridge_on_event``): the dispatcher's target ``plugins``. A
        failing plugin is logged, never allowed to stop the pipeline or the other plugins."""
        for impl in self._impls("meshbridge_on_event"):
            try:
                impl.function(**_args(impl, event=notification, plugin_config=self.plugin_config(impl.plugin_name)))
            except Exception as exc:
                kind, error = notification.kind, f"{type(exc).__name__}: {exc}"
                log.error("plugin %s failed on event %s: %s", impl.plugin_name, kind, error)

    notify = on_event  # (its earlier name)

    def describe(self) -> list[PluginInfo]:
        versions = {plugin: dist.version for plugin, dist in self.pm.list_plugin_distinfo() if hasattr(dist, "version")}
        infos = []
        for name, plugin in self.pm.list_name_plugin():
            if plugin is None:
                continue
            hooks = tuple(sorted(h.name for h in self.pm.get_hookcallers(plugin) or []))
            infos.append(PluginInfo(name, versions.get(plugin), hooks, name in BUILTINS))
        return infos

    def _impls(self, hook: str) -> list[pluggy.HookImpl]:
        """A hook's implementations in the order pluggy calls them (last registered first)."""
        return list(reversed(getattr(self.pm.hook, hook).get_hookimpls()))

    def _call(self, hook: str, **available: Any) -> list[tuple[pluggy.HookImpl, Any]]:
        """Each implementation's result, each given its own ``plugin_config``; None results skipped."""
        results = []
        for impl in self._impls(hook):
            result = impl.function(**_args(impl, **available, plugin_config=self.plugin_config(impl.plugin_name)))
            if result is not None:
                results.append((impl, result))
        return results


def _defaults(model: Any) -> Any:
    from pathlib import Path

    from .plugin_config import validated

    return validated(model, {}, file=Path("meshbridge.toml").resolve(), key="plugins")


def _args(impl: pluggy.HookImpl, **available: Any) -> dict[str, Any]:
    """The keyword arguments an implementation asked for (pluggy's opt-in arguments)."""
    return {name: available[name] for name in impl.argnames}
