"""Every public NHS example in ../shared/fixtures/payloads gets the type and verdict SOURCES.md records.

Detection is automatic ("auto"), as on a route that does not say what it carries; FHIR files are
checked against the release their folder names (ITK3 is STU3), under both ``fhir_strictness``
settings. Two examples are not clean by the HL7 validator's rules (SOURCES.md's revised verdicts):
under ``hl7`` each gives exactly its one known error, under ``structure`` it is valid with that
finding as a warning.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from meshbridge.payloads.base import WARNING
from meshbridge.plugins import Plugins
from meshbridge.validation import check

ROOT = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "payloads"
TYPES = {"edifact": "edifact", "fhir-r4": "fhir", "fhir-stu3": "fhir", "itk3": "fhir", "xml": "xml", "hl7v2": "hl7v2"}
VERSIONS = {"fhir-r4": "R4", "fhir-stu3": "STU3", "itk3": "STU3"}
# the known defects under the HL7 validator's rules: (code, where, start of the message)
KNOWN = {
    "fhir-stu3/NEMSDeathNotification.dat": ("fhir.order", "Bundle.entry[1].resource.sent", ""),
    "itk3/labresults-NHS003-full_acceptance_with_nhsack.1.fhir.json": (
        "fhir.invariant",
        "Bundle.entry[3].resource",
        "org-1:",
    ),
}


def recorded() -> list[tuple[str, bool]]:
    """``(folder/file, valid)`` from SOURCES.md; for ITK3 files the FHIR-level verdict."""
    sources = ROOT / "SOURCES.md"
    if not sources.exists():
        return []
    found = re.findall(r"^### (\S+)\n- Expected: \*\*(VALID|INVALID)", sources.read_text(), re.MULTILINE)
    return [(name, verdict == "VALID") for name, verdict in found]


def not_clean() -> set[str]:
    """The files SOURCES.md calls INVALID under the HL7 validator's rules (the revised verdicts)."""
    sources = ROOT / "SOURCES.md"
    if not sources.exists():
        return set()
    entries = re.findall(r"^### (\S+)\n- Expected: ([^\n]*)", sources.read_text(), re.MULTILINE)
    return {name for name, verdict in entries if "INVALID under the HL7 validator" in verdict}


CASES = recorded()


@pytest.fixture(scope="module")
def plugins() -> Plugins:
    return Plugins()


def test_sources_were_read() -> None:
    if not ROOT.exists():
        pytest.skip(f"{ROOT} not present (the NHS example fixtures live outside the project)")
    assert len(CASES) == len([p for p in ROOT.glob("*/*") if p.is_file()]) == 32
    assert not_clean() == set(KNOWN)


@pytest.mark.parametrize(("name", "valid"), CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("strictness", ["hl7", "structure"])
def test_fixture_verdict(plugins: Plugins, name: str, valid: bool, strictness: str) -> None:
    folder = name.split("/")[0]
    if TYPES[folder] not in plugins.payload_types():
        pytest.skip(f"payload type {TYPES[folder]} is not installed (pip install -e plugins/meshbridge-hl7v2)")
    options = {"fhir_version": VERSIONS[folder], "fhir_strictness": strictness} if folder in VERSIONS else {}
    result = check(plugins, (ROOT / name).read_bytes(), payload_type="auto", options=options)
    assert result.payload_type == TYPES[folder]
    if name not in KNOWN:
        assert result.valid is valid, [str(f) for f in result.errors]
        return
    code, where, start = KNOWN[name]
    found = [(f.code, f.where) for f in result.findings if f.message.startswith(start)]
    assert found == [(code, where)], [str(f) for f in result.findings]
    if strictness == "hl7":
        assert [(f.code, f.where) for f in result.errors] == [(code, where)], [str(f) for f in result.errors]
    else:
        assert result.valid, [str(f) for f in result.errors]
        assert all(f.severity == WARNING for f in result.findings if f.code == code)
