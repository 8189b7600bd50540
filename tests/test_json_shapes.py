"""Every JSON the command line prints is the ``as_json()`` of a typed object, with the field names
README documents: ``poll --json`` (PollReport), ``validate --json`` (ValidationResult),
``plugins --json`` (PayloadType, PluginInfo). Real processes, the real sandbox."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

from conftest import OUT_IN, TRACK_NOW

from meshbridge import PollReport
from meshbridge.payloads.base import Finding, ValidationResult

README = Path(__file__).parents[1] / "README.md"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "meshbridge", *args], capture_output=True, text=True, timeout=120)


def documented(start: str, end: str) -> list[str]:
    """The backquoted names in README between ``start`` and ``end``."""
    text = README.read_text().split(start, 1)[1].split(end, 1)[0]
    return [name.strip("`, \n") for name in text.split("`")[1::2]]


def test_poll_json_is_the_poll_report_with_the_documented_names(tmp_path: Path, meshbridge_config) -> None:
    names = documented("one-line reasons for `problems`):", "`validate --json`")
    assert names == [f.name for f in dataclasses.fields(PollReport)]
    config = meshbridge_config(OUT_IN, mesh=TRACK_NOW)
    payload = tmp_path / "note.bin"
    payload.write_bytes(b"\x00\x01 polled as JSON")
    sent = cli("--config", str(config), "send", str(payload), "--route", "out")
    assert sent.returncode == 0, sent.stderr
    polled = cli("--config", str(config), "poll", "--json")
    assert polled.returncode == 0, polled.stderr
    report = json.loads(polled.stdout)
    assert list(report) == names  # every list, in the report's order, even the empty ones
    assert len(report["received"]) == 1 and sent.stdout.strip() not in report["received"]  # (sent by ``send``)
    assert report["delivered"] == report["received"] and report["problems"] == [] == report["unreachable"]


def test_validate_json_is_the_validation_result(tmp_path: Path) -> None:
    bad = tmp_path / "bad.xml"
    bad.write_bytes(b"<a><b></a>")
    done = cli("validate", str(bad), "--type", "xml", "--json")
    assert done.returncode == 1, done.stderr
    printed = json.loads(done.stdout)
    assert list(printed) == ["valid", "payload_type", "details", "findings"]
    assert printed["valid"] is False and printed["payload_type"] == "xml" and printed["findings"]
    keys = {"message", "where", "severity", "code"}
    assert all({"message", "severity"} <= set(f) <= keys for f in printed["findings"])
    result = ValidationResult("x", (Finding("odd", severity="warning"),), {"when": Path("/a"), "n": 3})
    assert result.as_json() == {
        "valid": True,
        "payload_type": "x",
        "details": {"when": "/a", "n": 3},  # what JSON has no type for, as its text
        "findings": [{"message": "odd", "severity": "warning"}],
    }


def test_plugins_json_is_typed() -> None:
    done = cli("plugins", "--json")
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert list(printed) == ["payload_types", "plugins"]
    assert all(list(t) == ["name", "media_type", "description"] for t in printed["payload_types"])
    assert "xml" in {t["name"] for t in printed["payload_types"]}
    assert all(list(p) == ["name", "version", "hooks", "builtin"] for p in printed["plugins"])
    assert any(p["builtin"] and p["hooks"] for p in printed["plugins"])


def test_no_command_prints_an_objects_dict() -> None:
    """JSON comes from ``as_json()``, not from whatever attributes an object happens to have."""
    for module in sorted((Path(__file__).parents[1] / "meshbridge" / "cli").glob("*.py")):
        assert "__dict__" not in module.read_text(), module.name
