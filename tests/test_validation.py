"""Validation in the pipeline: `meshbridge validate`, refused sends, invalid inbound, hostile payloads."""

from __future__ import annotations

import gzip
import json
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import OUT_IN

from meshbridge import PayloadRejected
from meshbridge.plugins import Plugins, make_plugin_manager
from meshbridge.store import SQLiteStore
from meshbridge.validation import check

TEXT_ROUTES = OUT_IN.replace('payload_type = "binary"', 'payload_type = "text"')


@pytest.fixture(scope="module")
def plugins() -> Plugins:
    return Plugins(make_plugin_manager(load_entrypoints=False))


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "meshbridge", *args], capture_output=True, text=True, cwd=cwd)


def test_validate_needs_no_config_and_no_mesh(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.txt", tmp_path / "bad.txt"
    good.write_text("fine\n")
    bad.write_bytes(b"line one\nline \x07two\n")
    ok = run("validate", str(good), cwd=tmp_path)
    assert ok.returncode == 0 and "text valid" in ok.stdout
    refused = run("validate", str(bad), "--type", "text", cwd=tmp_path)
    assert refused.returncode == 1
    assert "error text.control line 2, column 6: control character U+0007 is not allowed in text" in refused.stdout
    as_json = json.loads(run("validate", str(bad), "--type", "text", "--json", cwd=tmp_path).stdout)
    assert as_json["valid"] is False and as_json["findings"][0]["code"] == "text.control"
    missing = run("validate", str(tmp_path / "nope"), cwd=tmp_path)
    assert missing.returncode == 2 and "cannot read" in missing.stderr and "Traceback" not in missing.stderr


def test_validate_with_route_applies_its_settings(tmp_path: Path, meshbridge_config) -> None:
    config = meshbridge_config(
        TEXT_ROUTES.replace('payload_type = "text"', 'payload_type = "text"\ncontrol_chars = "allow"', 1)
    )
    bell = tmp_path / "bell.txt"
    bell.write_bytes(b"ding \x07\n")
    assert run("validate", str(bell), "--type", "text", cwd=tmp_path).returncode == 1
    with_route = run("--config", str(config), "validate", str(bell), "--route", "out", cwd=tmp_path)
    assert with_route.returncode == 0, with_route.stdout + with_route.stderr
    unknown = run("--config", str(config), "validate", str(bell), "--route", "nope", cwd=tmp_path)
    assert unknown.returncode == 2 and "no route named 'nope'" in unknown.stderr


def test_send_refuses_and_quarantines(tmp_path: Path, meshbridge_config, mesh_peer) -> None:
    config = meshbridge_config(TEXT_ROUTES)
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("caf\xe9 au lait".encode("latin-1"))
    done = run("--config", str(config), "send", str(bad), "--route", "out", cwd=tmp_path)
    assert done.returncode == 1
    assert "text.encoding line 1, column 4: not valid utf-8" in done.stderr
    assert "refused, not sent: quarantined as" in done.stderr and "Traceback" not in done.stderr
    [row] = json.loads(run("--config", str(config), "messages", "--json", "--state", "rejected", cwd=tmp_path).stdout)
    assert row["findings"][0]["code"] == "text.encoding" and row["mesh_message_id"] is None
    assert mesh_peer("X26ABC2").list_messages() == []  # nothing went to MESH
    store = SQLiteStore(tmp_path / "var" / "meshbridge.db")
    assert store.payloads.read(store.get(row["id"]).sha256) == bad.read_bytes()  # the bytes are kept
    store.close()


def test_invalid_inbound_is_recorded_not_delivered(tmp_path: Path, meshbridge_config, make_bridge, mesh_peer) -> None:
    mesh_id = mesh_peer("X26ABC1").send_message("X26ABC2", b"ok\x00not ok", workflow_id="TEST_WORKFLOW")
    bridge = make_bridge(meshbridge_config(TEXT_ROUTES))
    report = bridge.poll()
    message = bridge.store.find("in", mesh_id)
    assert report.invalid == [message.id] and report.delivered == []
    assert message.state == "invalid"
    assert message.findings[0].as_dict() == {
        "code": "text.control", "message": "control character U+0000 is not allowed in text",
        "severity": "error", "where": "line 1, column 3",
    }  # fmt: skip
    assert not (tmp_path / "delivered").exists()
    assert mesh_peer("X26ABC2").list_messages() == []  # acknowledged: kept here, not left in MESH
    assert bridge.store.payloads.read(message.payload_sha256) == b"ok\x00not ok"


def _bounded(fn, *args, **kwargs):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = fn(*args, **kwargs)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    return result, grown_mib


def test_gzip_bomb_is_refused_with_bounded_memory(plugins: Plugins) -> None:
    """(How long it takes: tests/bench/bench_timings.py.)"""
    bomb = gzip.compress(b"\0" * 1_000_000_000, compresslevel=9)  # ~1 MB that inflates to 1 GB
    assert len(bomb) < 2_000_000
    result, grown = _bounded(check, plugins, bomb, payload_type="text", options={"max_size": 10_000_000})
    assert not result.valid
    assert result.findings[0].code == "payload.gzip-bomb"
    assert "decompresses to more than 10000000 bytes" in result.findings[0].message
    assert grown < 100


def test_gzip_payload_is_validated_inside(plugins: Plugins) -> None:
    result = check(plugins, gzip.compress(b"plain words\n"), payload_type="auto")
    assert result.valid and result.payload_type == "text" and result.details["gzip"] is True
    corrupt = gzip.compress(b"plain words\n")[:-6]
    result = check(plugins, corrupt, payload_type="text")
    assert not result.valid and result.findings[0].code == "payload.gzip"


def test_over_the_size_cap(plugins: Plugins) -> None:
    result = check(plugins, b"x" * 2000, payload_type="text", options={"max_size": 1000})
    assert not result.valid
    assert str(result.findings[0]) == "payload is 2000 bytes, over the 1000-byte validation cap (route option max_size)"


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"\xc3\x28 invalid utf-8", "text.encoding"),
        (b"\xed\xa0\x80 surrogate", "text.encoding"),
        (b"esc \x1b[31m red", "text.control"),
        (b"c1 \xc2\x85 next line", "text.control"),
    ],
)
def test_hostile_text(plugins: Plugins, data: bytes, code: str) -> None:
    result = check(plugins, data, payload_type="text")
    assert [f.code for f in result.errors] == [code]


def test_text_options(plugins: Plugins) -> None:
    latin = "café".encode("latin-1")
    assert check(plugins, latin, payload_type="text", options={"charset": "latin-1"}).valid
    assert not check(plugins, latin, payload_type="text").valid
    warned = check(plugins, b"a\x07", payload_type="text", options={"control_chars": "warn"})
    assert warned.valid and warned.findings[0].severity == "warning"


def test_a_crashing_validator_is_a_finding() -> None:
    from meshbridge.hookspecs import hookimpl
    from meshbridge.payloads.base import PayloadType

    class Crashy:
        @hookimpl
        def meshbridge_payload_types(self):
            def validate(data, options):
                raise ZeroDivisionError("oops")

            return [PayloadType("crashy", "x/y", lambda h: 0.99, validate)]

    pm = make_plugin_manager(load_entrypoints=False)
    pm.register(Crashy(), name="crashy")
    result = check(Plugins(pm), b"anything", payload_type="auto")
    assert not result.valid
    assert result.findings[0].message == "the crashy validator failed: ZeroDivisionError: oops"


def test_send_rejected_through_the_api(tmp_path: Path, meshbridge_config, make_bridge) -> None:
    bridge = make_bridge(meshbridge_config(TEXT_ROUTES))
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff")
    with pytest.raises(PayloadRejected) as info:
        bridge.send(bad, route="out")
    assert bridge.store.get(info.value.message_id).state == "rejected"
    assert [e.kind for e in bridge.store.events(info.value.message_id)] == ["rejected"]


def test_explicit_type_is_confirmed(plugins: Plugins) -> None:
    fhir_json = b'{"resourceType": "Patient", "gender": "unknown"}'
    result = check(plugins, fhir_json, payload_type="edifact")
    assert not result.valid
    assert [(f.code, f.message) for f in result.findings] == [
        ("payload.mismatch", "expected payload type 'edifact', but this looks like fhir")
    ]
    assert check(plugins, fhir_json, payload_type="auto").payload_type == "fhir"
    assert check(plugins, fhir_json, payload_type="text").valid  # JSON is also text: no mismatch


def test_unknown_payload_type(plugins: Plugins) -> None:
    result = check(plugins, b"x", payload_type="cobol")
    assert result.findings[0].code == "payload.type"
    assert "unknown payload type 'cobol' (installed: " in result.findings[0].message
