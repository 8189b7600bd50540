"""The example plugins in examples/, one per hook kind, loaded as a plugin author would test them:
registered in-process (meshbridge.testing) and run against a real MESH sandbox."""

from __future__ import annotations

import importlib.util
import json
import sqlite3
import sys
from pathlib import Path
from types import ModuleType

import pluggy
import pytest
from conftest import OUT_IN

from meshbridge import ConfigError, PayloadRejected, hookspecs

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
PLUGINS = ["sqlite_destination", "event_log", "crlf_transform", "csv_payload", "recep_ack"]


def example(name: str) -> ModuleType:
    """Import ``examples/<name>.py`` as a module (the examples folder is not a package)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # (dataclasses look their module up)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", PLUGINS)
def test_each_example_is_a_valid_plugin_and_documented(name: str) -> None:
    pm = pluggy.PluginManager("meshbridge")
    pm.add_hookspecs(hookspecs)
    pm.register(example(name), name=name)
    pm.check_pending()  # every hookimpl names a real hook
    assert pm.get_hookcallers(example(name)), f"{name} implements no hook"
    assert f"examples/{name}.py" in (EXAMPLES.parent / "docs" / "plugins.md").read_text(encoding="utf-8")


def sqlite_routes(target: str, table: str = "") -> str:
    routes = OUT_IN.replace('destination = { folder = "delivered" }', f"destination = {{ sqlite = {target} }}")
    return routes + (f"\n[plugins.sqlite]\n{table}\n" if table else "")


def test_sqlite_destination_stores_each_payload_as_a_row(
    tmp_path: Path, meshbridge_plugin, meshbridge_config, make_bridge
) -> None:
    meshbridge_plugin(example("sqlite_destination"), name="sqlite")
    config = meshbridge_config(sqlite_routes('{ path = "inbox.db", table = "letters" }', 'busy_timeout = "2s"'))
    bridge = make_bridge(config)
    payload = tmp_path / "scan.bin"
    payload.write_bytes(b"\x00\x01scan")
    bridge.send(payload, route="out")
    report = bridge.poll()
    assert report.problems == [] and len(report.delivered) == 1
    with sqlite3.connect(config.parent / "inbox.db") as db:  # relative to the config file's folder
        rows = db.execute("SELECT name, payload FROM letters").fetchall()
    db.close()
    assert len(rows) == 1 and rows[0][0].endswith("_scan.bin") and rows[0][1] == b"\x00\x01scan"


@pytest.mark.parametrize(
    ("target", "table", "error"),
    [
        ('{ path = "in.db", table = "letters; DROP" }', "", r"routes\[1\]\.destination\.sqlite\.table: String should"),
        ('{ table = "letters" }', "", r"routes\[1\]\.destination\.sqlite\.path: required key is missing$"),
        ('{ path = "inbox.db" }', 'busy_timeout = "soon"', r"plugins\.sqlite\.busy_timeout: Value error, bad duration"),
    ],
)
def test_sqlite_destination_settings_are_checked_at_start_up(
    meshbridge_plugin, meshbridge_config, make_bridge, target: str, table: str, error: str
) -> None:
    meshbridge_plugin(example("sqlite_destination"), name="sqlite")
    config = meshbridge_config(sqlite_routes(target, table))
    with pytest.raises(ConfigError, match=error):
        make_bridge(config)


def test_event_log_writes_a_line_per_event(tmp_path: Path, meshbridge_plugin, meshbridge_config, make_bridge) -> None:
    meshbridge_plugin(example("event_log"), name="event_log")
    routes = OUT_IN.replace('payload_type = "binary"', 'payload_type = "xml"', 1)
    config = meshbridge_config(routes + '\n[plugins.event_log]\npath = "logs/events.jsonl"\nkinds = ["rejected"]\n')
    bridge = make_bridge(config)
    bad = tmp_path / "bad.xml"
    bad.write_bytes(b"<unclosed>")
    with pytest.raises(PayloadRejected) as info:
        bridge.send(bad, route="out")
    lines = (config.parent / "logs" / "events.jsonl").read_text(encoding="utf-8").splitlines()
    [event] = [json.loads(line) for line in lines]
    assert (event["kind"], event["message_id"]) == ("rejected", info.value.message_id)
    assert event["detail"]["findings"][0]["code"].startswith("xml.")


def test_crlf_transform_rewrites_text_on_the_routes_it_is_given(
    tmp_path: Path, meshbridge_plugin, meshbridge_config, make_bridge
) -> None:
    meshbridge_plugin(example("crlf_transform"), name="crlf")
    text_out = OUT_IN.replace('payload_type = "binary"', 'payload_type = "text"', 1)
    other = text_out.split("[[routes]]")[1].replace('name = "out"', 'name = "other"')
    config = meshbridge_config(text_out + "[[routes]]" + other + '\n[plugins.crlf]\nroutes = ["out"]\n')
    bridge = make_bridge(config)
    letter = tmp_path / "letter.txt"
    letter.write_bytes(b"Dear Dr Demo,\nAll well.\r\nYours\n")
    sent = bridge.send(letter, route="out")
    untouched = bridge.send(letter, route="other")
    assert bridge.store.payloads.read(sent.payload_sha256) == b"Dear Dr Demo,\r\nAll well.\r\nYours\r\n"
    assert bridge.store.payloads.read(untouched.payload_sha256) == letter.read_bytes()


def test_crlf_transform_refuses_a_misspelt_setting(meshbridge_plugin, meshbridge_config, make_bridge) -> None:
    meshbridge_plugin(example("crlf_transform"), name="crlf")
    config = meshbridge_config(OUT_IN + '\n[plugins.crlf]\nroute = ["out"]\n')
    with pytest.raises(ConfigError, match=r"plugins\.crlf\.route: unknown key \(allowed: routes\)$"):
        make_bridge(config)


def test_csv_payload_minds_its_manners_and_travels_on_auto_routes(
    tmp_path: Path, meshbridge_plugin, meshbridge_config, make_bridge
) -> None:
    from meshbridge.payloads.near_misses import NEAR_MISSES
    from meshbridge.testing import check_sniffer

    csv_payload = example("csv_payload")
    check_sniffer(csv_payload.CSV)
    meshbridge_plugin(csv_payload, name="csv")
    auto = OUT_IN.replace('payload_type = "binary"', 'payload_type = "auto"')
    bridge = make_bridge(meshbridge_config(auto))
    table, letter = tmp_path / "results.csv", tmp_path / "letter.txt"
    table.write_bytes(csv_payload.CSV.example)
    letter.write_bytes(NEAR_MISSES["letter with commas"])
    assert bridge.send(table, route="out").payload_type == "csv"
    assert bridge.send(letter, route="out").payload_type == "text"
    broken = tmp_path / "broken.csv"
    broken.write_bytes(b"nhs_number,test,value\n9434765919,potassium\n9434765919,sodium,140\n")
    with pytest.raises(PayloadRejected) as info:
        bridge.send(broken, route="out")
    assert [str(f) for f in info.value.findings] == ["line 2: 2 fields, expected 3"]


def test_recep_ack_expects_a_recep_for_an_interchange(
    tmp_path: Path, meshbridge_plugin, meshbridge_config, make_bridge
) -> None:
    from meshbridge.payloads.edifact import PAYLOAD_TYPE

    meshbridge_plugin(example("recep_ack"), name="recep")
    routes = OUT_IN.replace('payload_type = "binary"', 'payload_type = "edifact"\noptions = { recep_within = "1d" }', 1)
    bridge = make_bridge(meshbridge_config(routes))
    interchange = tmp_path / "reg.edi"
    interchange.write_bytes(PAYLOAD_TYPE.example or b"")
    sent = bridge.send(interchange, route="out")
    assert "recep" in {e.kind for e in bridge.store.expectations(sent.id)}
