"""The plugin contract: documented hooks, built-ins registered through them, third-party plugins."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pluggy
import pytest
from click.testing import CliRunner
from conftest import OUT_IN

from meshbridge import hookspecs
from meshbridge.cli import main
from meshbridge.hookspecs import hookimpl
from meshbridge.payloads.base import Finding, PayloadType, ValidationResult
from meshbridge.plugins import PluginError, Plugins, make_plugin_manager

HOOKS = [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("meshbridge_")]


def test_the_hooks_of_the_design_exist() -> None:
    assert set(HOOKS) == {
        "meshbridge_payload_types", "meshbridge_validate", "meshbridge_transform",
        "meshbridge_destinations", "meshbridge_ack_protocols", "meshbridge_on_event", "meshbridge_config_model",
    }  # fmt: skip


@pytest.mark.parametrize("name", HOOKS)
def test_every_hookspec_is_documented(name: str) -> None:
    doc = inspect.getdoc(getattr(hookspecs, name)) or ""
    assert len(doc.split()) >= 15, f"{name} needs a docstring saying what it does and what it returns"
    assert "collected" in doc or "Called" in doc or "Return" in doc


def test_builtins_register_through_the_hooks() -> None:
    plugins = Plugins(make_plugin_manager(load_entrypoints=False))
    assert {"text", "binary"} <= set(plugins.payload_types())
    assert set(plugins.destinations()) == {"folder", "http", "command"}
    assert all(info.builtin for info in plugins.describe())


class Shouty:
    """A throw-away plugin: a payload type, a finding, a transform, a destination and a listener."""

    def __init__(self) -> None:
        self.events: list = []
        self.delivered: list[bytes] = []

    @hookimpl
    def meshbridge_payload_types(self) -> list[PayloadType]:
        def validate(data: bytes, options: dict) -> ValidationResult:
            ok = data.isupper()
            return ValidationResult("shout", () if ok else (Finding("not shouting", "line 1", code="shout.quiet"),))

        return [PayloadType("shout", "text/x-shout", lambda head: 0.9 if head.startswith(b"!") else 0, validate)]

    @hookimpl
    def meshbridge_validate(self, payload):
        return [Finding("contains NOPE", code="shout.nope")] if b"NOPE" in payload.data else []

    @hookimpl
    def meshbridge_transform(self, payload, route):
        return payload.data + b"!!" if route.name == "out" else None

    @hookimpl
    def meshbridge_destinations(self):
        def to_memory(target, blocks, name, content_type):
            self.delivered.append(b"".join(blocks))
            return f"memory:{target}:{name}"

        return {"memory": to_memory}

    @hookimpl
    def meshbridge_on_event(self, event):
        self.events.append(event)


ROUTES = OUT_IN.replace('payload_type = "binary"', 'payload_type = "shout"').replace(
    'destination = { folder = "delivered" }', 'destination = { memory = "box" }'
)


@pytest.fixture
def shouty_plugins() -> tuple[Shouty, Plugins]:
    plugin = Shouty()
    pm = make_plugin_manager(load_entrypoints=False)
    pm.register(plugin, name="shouty")
    return plugin, Plugins(pm)


def test_a_plugin_type_travels_end_to_end(tmp_path: Path, meshbridge_config, shouty_plugins) -> None:
    from meshbridge import Bridge, PayloadRejected, load

    plugin, plugins = shouty_plugins
    with Bridge(load(meshbridge_config(ROUTES)), plugins) as bridge:
        good = tmp_path / "good.txt"
        good.write_bytes(b"!HELLO")
        sent = bridge.send(good, route="out")
        assert sent.payload_type == "shout"
        assert bridge.store.payloads.read(sent.payload_sha256) == b"!HELLO!!"  # transformed before storing
        bad = tmp_path / "bad.txt"
        bad.write_bytes(b"!hello NOPE")
        with pytest.raises(PayloadRejected) as info:
            bridge.send(bad, route="out")
        assert {f.code for f in info.value.findings} == {"shout.quiet", "shout.nope"}
        quarantined = bridge.store.get(info.value.message_id)
        assert quarantined.state == "rejected"
        assert bridge.store.payloads.read(quarantined.payload_sha256) == b"!hello NOPE"  # bytes kept
        assert [f.code for f in quarantined.findings] == ["shout.quiet", "shout.nope"]
        report = bridge.poll()
    assert report.problems == [] and len(report.delivered) == 1
    assert plugin.delivered == [b"!HELLO!!"]
    assert [e.kind for e in plugin.events] == ["rejected"]
    assert plugin.events[0].message_id == info.value.message_id


def test_an_unknown_destination_kind_is_a_config_error(meshbridge_config) -> None:
    from meshbridge import Bridge, ConfigError, load

    config = load(meshbridge_config(OUT_IN.replace('{ folder = "delivered" }', '{ memory = "box" }')))
    with pytest.raises(ConfigError, match=r"routes\[1\].destination.memory: no destination kind 'memory'"):
        Bridge(config, Plugins(make_plugin_manager(load_entrypoints=False)))


def test_a_failing_listener_does_not_stop_the_pipeline(caplog: pytest.LogCaptureFixture) -> None:
    from meshbridge import Notification

    class Broken:
        @hookimpl
        def meshbridge_on_event(self, event):
            raise RuntimeError("pager down")

    pm = make_plugin_manager(load_entrypoints=False)
    pm.register(Broken(), name="broken")
    Plugins(pm).notify(Notification("overdue", "m1", "late"))
    assert "plugin broken failed on event overdue: RuntimeError: pager down" in caplog.text


def test_duplicate_payload_type_names_are_refused() -> None:
    class Again:
        @hookimpl
        def meshbridge_payload_types(self):
            return [PayloadType("text", "text/plain", lambda h: 0, lambda d, o: ValidationResult("text"))]

    pm = make_plugin_manager(load_entrypoints=False)
    pm.register(Again(), name="again")
    with pytest.raises(PluginError, match="two plugins define the payload type 'text'"):
        Plugins(pm).payload_types()


def test_a_misspelt_hook_is_refused() -> None:
    class Typo:
        @hookimpl
        def meshbridge_payload_typez(self):
            return []

    pm = pluggy.PluginManager("meshbridge")
    pm.add_hookspecs(hookspecs)
    pm.register(Typo(), name="typo")
    with pytest.raises(pluggy.PluginValidationError):
        pm.check_pending()


def test_plugins_command_lists_types_and_plugins() -> None:
    result = CliRunner().invoke(main, ["plugins", "--json"])
    assert result.exit_code == 0
    listing = json.loads(result.output)
    names = {t["name"] for t in listing["payload_types"]}
    assert {"text", "binary"} <= names
    assert any(p["name"] == "meshbridge.destinations" and p["builtin"] for p in listing["plugins"])
    table = CliRunner().invoke(main, ["plugins"])
    assert table.exit_code == 0 and "text/plain" in table.output


def test_disable_plugins_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESHBRIDGE_DISABLE_PLUGINS", "meshbridge.destinations")
    plugins = Plugins(make_plugin_manager(load_entrypoints=False))
    assert plugins.destinations() == {}
