"""Every public NHS example in ../shared/fixtures/payloads gets the type and verdict SOURCES.md records.

Detection is automatic ("auto"), as on a route that does not say what it carries; FHIR files are
checked against the release their folder names (ITK3 is STU3).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from meshbridge.plugins import Plugins
from meshbridge.validation import check

ROOT = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "payloads"
TYPES = {"edifact": "edifact", "fhir-r4": "fhir", "fhir-stu3": "fhir", "itk3": "fhir", "xml": "xml", "hl7v2": "hl7v2"}
VERSIONS = {"fhir-r4": "R4", "fhir-stu3": "STU3", "itk3": "STU3"}
#: the revised verdicts: valid to the models, refused under the HL7 validator's rules (fhir_strictness = "hl7")
HL7_INVALID = "INVALID under the HL7 validator's rules"
#: what the checks beyond the models (issue 17) do not catch yet, with the reason
NOT_YET = {
    "itk3/labresults-NHS003-full_acceptance_with_nhsack.1.fhir.json": "org-1 needs the invariants (fhir_invariants)"
}


def recorded() -> list[tuple[str, bool]]:
    """``(folder/file, valid)`` from SOURCES.md; for ITK3 files the FHIR-level verdict."""
    sources = ROOT / "SOURCES.md"
    if not sources.exists():
        return []
    found = re.findall(r"^### (\S+)\n- Expected: \*\*(VALID|INVALID)(.*)", sources.read_text(), re.MULTILINE)
    return [(name, verdict == "VALID" and HL7_INVALID not in rest) for name, verdict, rest in found]


CASES = recorded()


@pytest.fixture(scope="module")
def plugins() -> Plugins:
    return Plugins()


def test_sources_were_read() -> None:
    if not ROOT.exists():
        pytest.skip(f"{ROOT} not present (the NHS example fixtures live outside the project)")
    assert len(CASES) == len([p for p in ROOT.glob("*/*") if p.is_file()]) == 32


@pytest.mark.parametrize(("name", "valid"), CASES, ids=[c[0] for c in CASES])
def test_fixture_verdict(plugins: Plugins, name: str, valid: bool) -> None:
    folder = name.split("/")[0]
    if TYPES[folder] not in plugins.payload_types():
        pytest.skip(f"payload type {TYPES[folder]} is not installed (pip install -e plugins/meshbridge-hl7v2)")
    options = {"fhir_version": VERSIONS[folder]} if folder in VERSIONS else {}
    result = check(plugins, (ROOT / name).read_bytes(), payload_type="auto", options=options)
    assert result.payload_type == TYPES[folder]
    if name in NOT_YET and result.valid and not valid:
        pytest.xfail(NOT_YET[name])
    assert result.valid is valid, [str(f) for f in result.errors]
