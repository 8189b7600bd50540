"""``validate --fhir-strictness hl7|structure`` and ``meshbridge.validate(fhir_strictness=...)``.

A corpus Bundle with one required-binding defect (``Observation.status = "done"``): ``hl7`` (the
default) refuses it, ``structure`` passes it with the finding as a warning; the switch overrides the
route's ``fhir_strictness``. A defect the models refuse stays an error either way.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fhir_corpus import cases

import meshbridge
from meshbridge.config import Route
from meshbridge.testing import run_cli

BY_NAME = {case.name: case for case in cases()}
BINDING = BY_NAME["stu3-json-binding-observation-status"]
MODEL = BY_NAME["stu3-xml-missing-observation-code"]


@pytest.fixture
def payload(tmp_path: Path) -> Path:
    path = tmp_path / "bundle.json"
    path.write_bytes(BINDING.data)
    return path


def route(strictness: str) -> Route:
    settings = {"name": "in", "direction": "inbound", "workflow_id": "W", "mailbox": "X26ABC1"}
    return Route.model_validate({**settings, "payload_type": "fhir", "fhir_strictness": strictness})


def test_the_command_refuses_under_hl7_and_warns_under_structure(tmp_path: Path, payload: Path) -> None:
    config = tmp_path / "none.toml"  # validate without --route reads no config
    default = run_cli(config, "validate", str(payload))
    assert default.returncode == 1, default.stderr
    assert BINDING.where in default.stdout and "INVALID" in default.stdout
    strict = run_cli(config, "validate", "--fhir-strictness", "hl7", str(payload), "--json")
    assert strict.returncode == 1, strict.stderr
    verdict = json.loads(strict.stdout)
    assert verdict["valid"] is False
    assert [(f["code"], f["where"], f["severity"]) for f in verdict["findings"]] == [
        ("fhir.binding", BINDING.where, "error")
    ]
    lenient = run_cli(config, "validate", "--fhir-strictness", "structure", str(payload), "--json")
    assert lenient.returncode == 0, lenient.stderr
    verdict = json.loads(lenient.stdout)
    assert verdict["valid"] is True
    assert [(f["code"], f["severity"]) for f in verdict["findings"]] == [("fhir.binding", "warning")]


def test_the_command_refuses_an_unknown_strictness(tmp_path: Path, payload: Path) -> None:
    done = run_cli(tmp_path / "none.toml", "validate", "--fhir-strictness", "lenient", str(payload))
    assert done.returncode == 2
    assert "lenient" in done.stderr and "Traceback" not in done.stderr


def test_the_api_switch_and_the_route_setting() -> None:
    assert not meshbridge.validate(BINDING.data, type="fhir").valid
    assert not meshbridge.validate(BINDING.data, type="fhir", fhir_strictness="hl7").valid
    lenient = meshbridge.validate(BINDING.data, type="fhir", fhir_strictness="structure")
    assert lenient.valid
    assert [(f.code, f.where, f.severity) for f in lenient.findings] == [("fhir.binding", BINDING.where, "warning")]
    assert meshbridge.validate(BINDING.data, route=route("structure")).valid
    assert not meshbridge.validate(BINDING.data, route=route("hl7")).valid
    # the switch overrides the route's setting, both ways
    assert not meshbridge.validate(BINDING.data, route=route("structure"), fhir_strictness="hl7").valid
    assert meshbridge.validate(BINDING.data, route=route("hl7"), fhir_strictness="structure").valid


def test_what_the_models_refuse_stays_an_error_under_structure() -> None:
    result = meshbridge.validate(MODEL.data, type="fhir", fhir_strictness="structure")
    assert not result.valid
    assert [(f.code, f.where) for f in result.errors] == [(MODEL.code, MODEL.where)]


def test_the_api_reports_an_unknown_strictness_as_a_finding() -> None:
    result = meshbridge.validate(BINDING.data, type="fhir", fhir_strictness="lenient")
    assert not result.valid
    assert [f.code for f in result.findings] == ["fhir.strictness"]
