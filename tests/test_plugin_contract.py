"""The plugin contract beyond payload types: documented hooks and arguments, plugin settings and
destination targets checked at start-up, transforms validated again, in-process registration,
sniffing etiquette."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
from conftest import OUT_IN

from meshbridge import Bridge, ConfigError, PayloadRejected, hookimpl, hookspecs, load
from meshbridge.payloads.base import PayloadType
from meshbridge.plugins import Plugins, make_plugin_manager

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "plugins.md"
HOOKS = {name: fn for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("meshbridge_")}

XML_OUT = OUT_IN.replace('payload_type = "binary"', 'payload_type = "xml"', 1)
GOOD_XML = b'<?xml version="1.0"?><referral xmlns="urn:example">ok</referral>'


def plugins_with(*plugins: object) -> Plugins:
    pm = make_plugin_manager(load_entrypoints=False)
    for i, plugin in enumerate(plugins):
        pm.register(plugin, name=getattr(plugin, "NAME", f"plugin{i}"))
    return Plugins(pm)


# -- every hook and argument is documented ---------------------------------------------------------


def _sections() -> dict[str, tuple[list[str], str]]:
    """``### `meshbridge_x(a, b)` `` headings of docs/plugins.md: hook -> (arguments, section text)."""
    text = DOCS.read_text(encoding="utf-8")
    found = {}
    parts = re.split(r"^### `(meshbridge_\w+)\(([^)]*)\)`\s*$", text, flags=re.M)
    for name, args, body in zip(parts[1::3], parts[2::3], parts[3::3], strict=True):
        found[name] = ([a.strip() for a in args.split(",") if a.strip()], body.split("\n## ")[0])
    return found


@pytest.mark.parametrize("name", sorted(HOOKS))
def test_every_hook_and_argument_is_documented(name: str) -> None:
    sections = _sections()
    assert name in sections, f"docs/plugins.md has no '### `{name}(...)`' section"
    documented, body = sections[name]
    arguments = list(inspect.signature(HOOKS[name]).parameters)
    assert documented == arguments, (
        f"docs/plugins.md shows {name}({', '.join(documented)}), the hookspec takes {arguments}"
    )
    for argument in arguments:
        assert f"`{argument}`" in body, f"docs/plugins.md does not say what {name}'s `{argument}` is"
        assert f":param {argument}:" in (HOOKS[name].__doc__ or ""), f"{name}'s docstring lacks :param {argument}:"


def test_the_docs_name_no_hook_that_does_not_exist() -> None:
    assert set(_sections()) <= set(HOOKS)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    plugins_section = readme.split("\n## Plugins\n", 1)[1].split("\n## ", 1)[0]
    assert all(f"`{name}`" in plugins_section for name in HOOKS), "README's Plugins section lists every hook"


def test_destination_is_a_protocol_in_the_public_api() -> None:
    import typing

    from meshbridge import Destination, DestinationKind
    from meshbridge.destinations import to_folder

    assert typing.Protocol in Destination.__mro__
    assert isinstance(to_folder, Destination)
    assert not isinstance("not callable", Destination)
    assert DestinationKind(to_folder).target is None


# -- [plugins.NAME]: validated when the Bridge starts, handed to hooks -------------------------------


class Stamp:
    """A transform whose settings come from ``[plugins.stamp]`` (a pydantic model with a Path)."""

    NAME = "stamp"

    def __init__(self) -> None:
        from pydantic import BaseModel, ConfigDict

        class Settings(BaseModel):
            model_config = ConfigDict(extra="forbid")
            mark: str
            copies: int = 1
            folder: Path = Path("stamps")

        self.model = Settings
        self.seen: list[object] = []

    @hookimpl
    def meshbridge_config_model(self):
        return self.model

    @hookimpl
    def meshbridge_transform(self, payload, route, plugin_config):
        self.seen.append(plugin_config)
        return payload.data.replace(b">ok<", f">{plugin_config.mark * plugin_config.copies}<".encode())


def test_a_plugin_table_reaches_its_hooks_validated_with_paths_under_the_config(
    tmp_path: Path, meshbridge_config
) -> None:
    stamp = Stamp()
    config = meshbridge_config(XML_OUT + '\n[plugins.stamp]\nmark = "X"\ncopies = 2\n')
    payload = tmp_path / "letter.xml"
    payload.write_bytes(GOOD_XML)
    with Bridge(load(config), plugins_with(stamp)) as bridge:
        sent = bridge.send(payload, route="out")
        assert bridge.store.payloads.read(sent.payload_sha256) == GOOD_XML.replace(b">ok<", b">XX<")
    [settings] = stamp.seen
    assert (settings.mark, settings.copies) == ("X", 2)
    assert settings.folder == config.parent / "stamps"  # relative to the config file's folder


@pytest.mark.parametrize(
    ("table", "error"),
    [
        ("copies = 2", r"plugins\.stamp\.mark: required key is missing$"),
        ('mark = "X"\ncopies = "many"', r"plugins\.stamp\.copies: Input should be a valid integer.*got 'many'$"),
        ('mark = "X"\ncolour = "red"', r"plugins\.stamp\.colour: unknown key \(allowed: copies, folder, mark\)$"),
    ],
)
def test_a_bad_plugin_table_stops_the_bridge_before_anything_moves(meshbridge_config, table: str, error: str) -> None:
    config = load(meshbridge_config(XML_OUT + f"\n[plugins.stamp]\n{table}\n"))
    with pytest.raises(ConfigError) as info:
        Bridge(config, plugins_with(Stamp()))
    assert re.search(error, str(info.value)), str(info.value)
    assert str(info.value).startswith(f"{config.file}: plugins.stamp.")
    assert "\n" not in str(info.value)
    assert not (config.file.parent / "var" / "meshbridge.db").exists()  # no store opened: nothing touched


def test_a_table_for_a_plugin_that_is_not_installed_is_refused(meshbridge_config) -> None:
    config = load(meshbridge_config(XML_OUT + '\n[plugins.stampp]\nmark = "X"\n'))
    with pytest.raises(ConfigError, match=r"plugins\.stampp: no plugin named 'stampp' is installed \(have: stamp\)"):
        Bridge(config, plugins_with(Stamp()))


def test_plugins_must_be_tables(meshbridge_config) -> None:
    with pytest.raises(ConfigError, match=r"plugins\.stamp: expected a table, got str"):
        load(meshbridge_config(XML_OUT + '\n[plugins]\nstamp = "on"\n'))


def test_a_plugin_without_a_model_gets_its_table_as_a_dict(meshbridge_config) -> None:
    seen = []

    class Loose:
        NAME = "loose"

        @hookimpl
        def meshbridge_on_event(self, event, plugin_config):
            seen.append(plugin_config)

    from meshbridge.events import EventKind, Notification

    plugins = plugins_with(Loose())
    plugins.configure(load(meshbridge_config(XML_OUT + "\n[plugins.loose]\nlevel = 3\n")))
    plugins.notify(Notification(EventKind.OVERDUE, "m1", "late"))
    assert seen == [{"level": 3}]


# -- plugin destination targets: validated at start-up, not on every poll ---------------------------


class Jar:
    """A destination kind ``jar`` whose target is a dataclass with a Path."""

    NAME = "jar"

    def __init__(self) -> None:
        from dataclasses import dataclass

        from meshbridge import DestinationKind

        @dataclass(frozen=True)
        class Target:
            folder: Path
            limit: int = 10

        self.delivered: list[tuple[object, bytes]] = []

        def deliver(target, blocks, name, content_type):
            self.delivered.append((target, b"".join(blocks)))
            return f"jar:{name}"

        self.kinds = {"jar": DestinationKind(deliver, target=Target)}

    @hookimpl
    def meshbridge_destinations(self):
        return self.kinds


def jar_routes(target: str) -> str:
    return OUT_IN.replace('destination = { folder = "delivered" }', f"destination = {{ jar = {target} }}")


def test_a_plugin_destination_gets_its_validated_target(tmp_path: Path, meshbridge_config) -> None:
    jar = Jar()
    config = meshbridge_config(jar_routes('{ folder = "jars", limit = 3 }'))
    payload = tmp_path / "p.bin"
    payload.write_bytes(b"\x00payload")
    with Bridge(load(config), plugins_with(jar)) as bridge:
        bridge.send(payload, route="out")
        report = bridge.poll()
    assert report.problems == [] and len(report.delivered) == 1
    [(target, data)] = jar.delivered
    assert (target.folder, target.limit, data) == (config.parent / "jars", 3, b"\x00payload")


@pytest.mark.parametrize(
    ("target", "error"),
    [
        (
            '{ folder = "jars", limit = "lots" }',
            r"routes\[1\]\.destination\.jar\.limit: Input should be a valid integer",
        ),
        ("{ limit = 3 }", r"routes\[1\]\.destination\.jar\.folder: required key is missing$"),
        (
            '{ folder = "jars", size = 3 }',
            r"routes\[1\]\.destination\.jar\.size: unknown key \(allowed: folder, limit\)$",
        ),
        ('"jars"', r"routes\[1\]\.destination\.jar: expected a table, got a string$"),
    ],
)
def test_a_bad_plugin_destination_target_is_refused_at_start_up(meshbridge_config, target: str, error: str) -> None:
    """Today's behaviour was a failed delivery on every poll; now nothing starts."""
    config = load(meshbridge_config(jar_routes(target)))
    with pytest.raises(ConfigError) as info:
        Bridge(config, plugins_with(Jar()))
    assert re.search(error, str(info.value)), str(info.value)
    assert "\n" not in str(info.value)


def test_a_bad_plugin_target_is_exit_2_and_one_line_from_the_command_line(meshbridge_config) -> None:
    from click.testing import CliRunner

    from meshbridge.cli import main
    from meshbridge.testing import register_plugin

    config = meshbridge_config(jar_routes("{ limit = 3 }"))
    with register_plugin(Jar(), name="jar"):
        result = CliRunner().invoke(main, ["--config", str(config), "poll"])
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [
        f"meshbridge: {config}: routes[1].destination.jar.folder: required key is missing"
    ]


# -- transforms: the bytes validated are the bytes sent ---------------------------------------------


class Breaker:
    """A transform that turns well-formed XML into something that is not."""

    NAME = "breaker"

    @hookimpl
    def meshbridge_transform(self, payload, route):
        return payload.data.replace(b"</referral>", b"</referal>")


def test_a_transform_that_breaks_the_payload_gets_it_rejected_and_nothing_sent(
    tmp_path: Path, meshbridge_config, mesh_peer
) -> None:
    payload = tmp_path / "letter.xml"
    payload.write_bytes(GOOD_XML)
    with Bridge(load(meshbridge_config(XML_OUT)), plugins_with(Breaker())) as bridge:
        with pytest.raises(PayloadRejected) as info:
            bridge.send(payload, route="out")
        stored = bridge.store.get(info.value.message_id)
        kept = bridge.store.payloads.read(stored.payload_sha256)
    assert stored.state == "rejected"
    assert kept == GOOD_XML  # the sender's bytes, kept with the findings on the transform's output
    findings = [f.as_dict() for f in stored.findings]
    assert findings and all(f["message"].startswith("after the transform of breaker: ") for f in findings)
    assert any(f["code"].startswith("xml.") for f in findings), findings
    assert "referal" in info.value.findings[0].message or "referral" in info.value.findings[0].message
    assert mesh_peer("X26ABC2").list_messages() == []  # nothing reached MESH


def test_a_transform_that_raises_rejects_the_message(tmp_path: Path, meshbridge_config, mesh_peer) -> None:
    class Crashing:
        NAME = "crashing"

        @hookimpl
        def meshbridge_transform(self, payload):
            raise KeyError("template")

    payload = tmp_path / "letter.xml"
    payload.write_bytes(GOOD_XML)
    bridge = Bridge(load(meshbridge_config(XML_OUT)), plugins_with(Crashing()))
    with bridge, pytest.raises(PayloadRejected) as info:
        bridge.send(payload, route="out")
    assert [f.code for f in info.value.findings] == ["payload.transform-crashed"]
    assert str(info.value.findings[0]) == "the transform of plugin crashing failed: KeyError: 'template'"
    assert mesh_peer("X26ABC2").list_messages() == []


def test_binary_routes_are_never_transformed(tmp_path: Path, meshbridge_config) -> None:
    class Everything:
        NAME = "everything"

        @hookimpl
        def meshbridge_transform(self, payload):
            return b"rewritten"

    payload = tmp_path / "blob.bin"
    payload.write_bytes(b"\x00\x01opaque")
    with Bridge(load(meshbridge_config(OUT_IN)), plugins_with(Everything())) as bridge:
        sent = bridge.send(payload, route="out")
        assert bridge.store.payloads.read(sent.payload_sha256) == b"\x00\x01opaque"


# -- in-process registration ------------------------------------------------------------------------


def test_register_plugin_lasts_for_its_block_only(meshbridge_config) -> None:
    from meshbridge.testing import register_plugin

    config = load(meshbridge_config(XML_OUT + '\n[plugins.stamp]\nmark = "X"\n'))
    with register_plugin(Stamp(), name="stamp") as name:
        assert name == "stamp"
        with Bridge(config) as bridge:
            assert "stamp" in {info.name for info in bridge.plugins.describe()}
    with pytest.raises(ConfigError, match="no plugin named 'stamp' is installed"):
        Bridge(config)


def test_the_fixture_registers_until_the_test_ends(meshbridge_plugin) -> None:
    assert meshbridge_plugin(Stamp(), name="stamp") == "stamp"
    assert "stamp" in {info.name for info in Plugins().describe()}


def test_the_fixture_left_nothing_behind() -> None:
    assert "stamp" not in {info.name for info in Plugins().describe()}


# -- sniffing etiquette -----------------------------------------------------------------------------


def test_check_sniffer_catches_a_greedy_csv_sniffer() -> None:
    from meshbridge.payloads.base import ValidationResult
    from meshbridge.testing import check_sniffer

    greedy = PayloadType(
        "csv", "text/csv", lambda head: 0.9 if b"," in head else 0.0, lambda d, o: ValidationResult("csv")
    )
    with pytest.raises(AssertionError) as info:
        check_sniffer(greedy)
    report = str(info.value)
    auto = "so on an auto route it is detected as csv, not detected as text"
    assert f"near miss 'letter with commas': sniff says 0.9, {auto}" in report
    assert (
        "near miss 'numbers with commas': sniff says 0.9, so on a route of type xml it is refused "
        "(expected payload type 'xml', but this looks like csv), not detected as xml"
    ) in report


def test_check_sniffer_catches_a_sniffer_that_ties_or_raises() -> None:
    from meshbridge.payloads.base import ValidationResult
    from meshbridge.testing import check_sniffer

    def explosive(head: bytes) -> float:
        raise IndexError("head too short")

    tie = PayloadType("note", "text/x-note", lambda head: 0.3, lambda d, o: ValidationResult("note"))
    with pytest.raises(AssertionError, match="detected as note, not detected as text"):
        check_sniffer(tie)  # equal to text's 0.3: the newcomer would win on auto routes
    boom = PayloadType("boom", "x/boom", explosive, lambda d, o: ValidationResult("boom"))
    with pytest.raises(AssertionError, match="empty: sniff raised IndexError: head too short"):
        check_sniffer(boom)


def test_the_hl7v2_plugin_minds_its_manners() -> None:
    from meshbridge_hl7v2 import HL7V2

    from meshbridge.testing import check_sniffer

    check_sniffer(HL7V2)


def test_the_built_in_types_mind_theirs() -> None:
    """Each specific built-in type, checked as if it were new (the near misses are text's own)."""
    from meshbridge.testing import check_sniffer

    builtin = Plugins(make_plugin_manager(load_entrypoints=False)).payload_types()
    for payload_type in (builtin[name] for name in ("fhir", "xml", "edifact")):
        check_sniffer(payload_type, {n: t for n, t in builtin.items() if n != payload_type.name})
