"""The FHIR structure checks against the official definitions (issue 17, points 1 and 2).

A valid message Bundle per version, written as FHIR JSON and converted to FHIR XML here, stays
clean; each one-defect variant gives exactly its finding (code and where) through the whole
validator, so the models have accepted it first. The shared NHS fixtures are clean apart from the
defect SOURCES.md records.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

import pytest

from meshbridge.payloads import fhir, fhir_rules, fhir_structure

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
VERSIONS = ("STU3", "R4", "R5")
FORMATS = ("json", "xml")
PATIENT, OBSERVATION = "urn:uuid:6e1f3c2a-0c8e-4a43-9d7c-2f1a3b4c5d02", "urn:uuid:6e1f3c2a-0c8e-4a43-9d7c-2f1a3b4c5d03"
GENDER = b'<gender value="unknown"/>'
EXT = "https://example.org/fhir/StructureDefinition/flag"

Doc = dict[str, Any]


def header(version: str) -> Doc:
    """A MessageHeader as each version spells it."""
    if version == "STU3":
        event = {"event": {"system": "https://example.org/event", "code": "demo"}}
        return {"resourceType": "MessageHeader", "id": "h1", **event, "timestamp": "2024-01-01T10:00:00+00:00",
                "source": {"endpoint": "urn:example:sender"}, "focus": [{"reference": OBSERVATION}]}  # fmt: skip
    source = {"endpoint": "urn:example:sender"} if version == "R4" else {"endpointUrl": "urn:example:sender"}
    return {"resourceType": "MessageHeader", "id": "h1", "eventCoding": {"system": "https://example.org/event",
            "code": "demo"}, "source": source, "focus": [{"reference": OBSERVATION}]}  # fmt: skip


def bundle(version: str) -> Doc:
    """A valid message Bundle: MessageHeader, Patient (with an extension), Observation."""
    patient = {"resourceType": "Patient", "id": "p1", "extension": [{"url": EXT, "valueBoolean": True}],
               "active": True, "name": [{"use": "official", "family": "Test", "given": ["Demo"]}], "gender": "unknown",
               "birthDate": "1970-01-01"}  # fmt: skip
    observation = {"resourceType": "Observation", "id": "o1",
                   "contained": [{"resourceType": "Practitioner", "id": "pr1", "gender": "female"}], "status": "final",
                   "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
                   "subject": {"reference": PATIENT}, "effectiveDateTime": "2024-01-01T10:00:00+00:00",
                   "performer": [{"reference": "#pr1"}],
                   "valueQuantity": {"value": Decimal("72.5"), "unit": "/min", "system": "http://unitsofmeasure.org",
                                     "code": "/min"}}  # fmt: skip
    doc: Doc = {"resourceType": "Bundle", "id": "b1", "type": "message"}
    if version != "STU3":
        doc["timestamp"] = "2024-01-01T10:00:00+00:00"
    doc["entry"] = [
        {"fullUrl": "urn:uuid:6e1f3c2a-0c8e-4a43-9d7c-2f1a3b4c5d01", "resource": header(version)},
        {"fullUrl": PATIENT, "resource": patient},
        {"fullUrl": OBSERVATION, "resource": observation},
    ]
    return doc


# --------------------------------------------------------------------------- JSON and XML


def to_json(doc: Doc) -> bytes:
    return json.dumps(doc, default=lambda d: float(d) if isinstance(d, Decimal) else str(d)).encode()


def to_xml(doc: Doc) -> bytes:
    """FHIR XML of a FHIR JSON document (keys in the definition's order; no ``_element`` keys)."""
    kind = doc["resourceType"]
    return f'<{kind} xmlns="http://hl7.org/fhir">{_xml_body(doc)}</{kind}>'.encode()


def _xml_body(obj: Doc) -> str:
    parts = []
    for key, value in obj.items():
        if key == "resourceType":
            continue
        for item in value if isinstance(value, list) else [value]:
            parts.append(_xml_element(key, item))
    return "".join(parts)


def _xml_element(key: str, item: Any) -> str:
    if isinstance(item, dict) and "resourceType" in item:
        kind = item["resourceType"]
        return f"<{key}><{kind}>{_xml_body(item)}</{kind}></{key}>"
    if isinstance(item, dict):
        if key in ("extension", "modifierExtension"):
            rest = {k: v for k, v in item.items() if k != "url"}
            return f"<{key} url={quoteattr(item['url'])}>{_xml_body(rest)}</{key}>"
        return f"<{key}>{_xml_body(item)}</{key}>"
    text = ("true" if item else "false") if isinstance(item, bool) else str(item)
    return f"<{key} value={quoteattr(text)}/>"


def findings(version: str, data: bytes, strictness: str = "hl7") -> list[tuple[str | None, str | None]]:
    result = fhir.validate(data, {"fhir_version": version, "fhir_strictness": strictness})
    return [(f.code, f.where) for f in result.findings]


def encoded(doc: Doc, fmt: str) -> bytes:
    return to_json(doc) if fmt == "json" else to_xml(doc)


def variant(version: str, change: Callable[[Doc], object]) -> Doc:
    doc = copy.deepcopy(bundle(version))
    change(doc)
    return doc


def entry(doc: Doc, i: int) -> Doc:
    resource: Doc = doc["entry"][i]["resource"]
    return resource


# --------------------------------------------------------------------------- baselines


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("version", VERSIONS)
def test_the_valid_baseline_is_clean(version: str, fmt: str) -> None:
    assert findings(version, encoded(bundle(version), fmt)) == []


# --------------------------------------------------------------------------- one defect each, both formats

BOTH: dict[str, tuple[Callable[[Doc], object], tuple[str, str]]] = {
    "code not in a required binding": (
        lambda d: entry(d, 2).update(status="done"),
        ("fhir.binding", "Bundle.entry[2].resource.status"),
    ),
    "Bundle.type misspelt": (lambda d: d.update(type="mesage"), ("fhir.binding", "Bundle.type")),
    "binding inside a datatype": (
        lambda d: entry(d, 1)["name"][0].update(use="nick"),
        ("fhir.binding", "Bundle.entry[1].resource.name[0].use"),
    ),
    "binding inside a contained resource": (
        lambda d: entry(d, 2)["contained"][0].update(gender="neutral"),
        ("fhir.binding", "Bundle.entry[2].resource.contained[0].gender"),
    ),
}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("case", sorted(BOTH))
def test_one_defect_one_finding(case: str, version: str, fmt: str) -> None:
    change, expected = BOTH[case]
    assert findings(version, encoded(variant(version, change), fmt)) == [expected]


def _reorder(resource: Doc, *first: str) -> None:
    moved = {key: resource.pop(key) for key in first}
    rest = dict(resource)
    resource.clear()
    resource.update({"resourceType": rest.pop("resourceType"), **moved, **rest})


# --------------------------------------------------------------------------- JSON only

JSON_CASES: dict[str, tuple[Callable[[Doc], object], tuple[str, str]]] = {
    "decimal as a string": (
        lambda d: entry(d, 2)["valueQuantity"].update(value="72.5"),
        ("fhir.type", "Bundle.entry[2].resource.valueQuantity.value"),
    ),
    "boolean as a string": (
        lambda d: entry(d, 1).update(active="true"),
        ("fhir.type", "Bundle.entry[1].resource.active"),
    ),
    "boolean as a string in an extension": (
        lambda d: entry(d, 1)["extension"][0].update(valueBoolean="true"),
        ("fhir.type", "Bundle.entry[1].resource.extension[0].valueBoolean"),
    ),
    "a primitive's _element extension": (
        lambda d: entry(d, 1).update(_gender={"extension": [{"url": EXT, "valueBoolean": "true"}]}),
        ("fhir.type", "Bundle.entry[1].resource.gender.extension[0].valueBoolean"),
    ),
    "integer as a string": (
        lambda d: entry(d, 1).update(multipleBirthInteger="2"),
        ("fhir.type", "Bundle.entry[1].resource.multipleBirthInteger"),
    ),
    "integer with a fraction": (
        lambda d: entry(d, 1).update(multipleBirthInteger=Decimal("2.0")),
        ("fhir.type", "Bundle.entry[1].resource.multipleBirthInteger"),
    ),
    "null": (lambda d: entry(d, 1).update(gender=None), ("fhir.type", "Bundle.entry[1].resource.gender")),
    "an empty array": (lambda d: entry(d, 1).update(name=[]), ("fhir.cardinality", "Bundle.entry[1].resource.name")),
}


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("case", sorted(JSON_CASES))
def test_json_defects(case: str, version: str) -> None:
    change, expected = JSON_CASES[case]
    assert findings(version, to_json(variant(version, change))) == [expected]


# --------------------------------------------------------------------------- XML only

XML_CASES: dict[str, tuple[Callable[[bytes], bytes], tuple[str, str]]] = {
    "boolean yes": (
        lambda x: x.replace(b'<active value="true"/>', b'<active value="yes"/>'),
        ("fhir.type", "Bundle.entry[1].resource.active"),
    ),
    "boolean yes in an extension": (
        lambda x: x.replace(b'<valueBoolean value="true"/>', b'<valueBoolean value="yes"/>'),
        ("fhir.type", "Bundle.entry[1].resource.extension[0].valueBoolean"),
    ),
    "a repeated 0..1 element": (
        lambda x: x.replace(b'<gender value="unknown"/>', b'<gender value="unknown"/><gender value="male"/>'),
        ("fhir.cardinality", "Bundle.entry[1].resource.gender"),
    ),
    "an id element where id is an attribute": (
        lambda x: x.replace(b"<family ", b'<id value="n1"/><family '),
        ("fhir.unknown-element", "Bundle.entry[1].resource.name[0].id"),
    ),
    "an element out of order": (
        lambda x: x.replace(b'<gender value="unknown"/>', b"").replace(
            b"<active ", b'<gender value="unknown"/><active '
        ),
        ("fhir.order", "Bundle.entry[1].resource.gender"),
    ),
    "two elements swapped": (
        lambda x: x.replace(b'<birthDate value="1970-01-01"/>', b"").replace(
            b'<gender value="unknown"/>', b'<birthDate value="1970-01-01"/><gender value="unknown"/>'
        ),
        ("fhir.order", "Bundle.entry[1].resource.gender"),
    ),
    "an element moved far ahead": (
        lambda x: x.replace(b'<birthDate value="1970-01-01"/>', b"").replace(
            b"<extension ", b'<birthDate value="1970-01-01"/><extension '
        ),
        ("fhir.order", "Bundle.entry[1].resource.birthDate"),
    ),
}


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("case", sorted(XML_CASES))
def test_xml_defects(case: str, version: str) -> None:
    change, expected = XML_CASES[case]
    data = change(to_xml(bundle(version)))
    assert data != to_xml(bundle(version))
    assert findings(version, data) == [expected]


def test_structure_strictness_makes_them_warnings() -> None:
    data = to_xml(variant("STU3", lambda d: entry(d, 2).update(status="done")))
    result = fhir.validate(data, {"fhir_version": "STU3", "fhir_strictness": "structure"})
    assert result.valid and [(f.code, f.severity) for f in result.findings] == [("fhir.binding", "warning")]


# --------------------------------------------------------------------------- codings

CODEABLE = {  # a resource whose CodeableConcept has a required binding, and a code in and out of it
    "STU3": ("SupplyDelivery", "type", "http://hl7.org/fhir/supply-item-type", "medication", {}),
    "R4": (
        "AllergyIntolerance",
        "clinicalStatus",
        "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
        "active",
        {"patient": {"reference": "Patient/p1"}},
    ),
    "R5": ("SupplyDelivery", "type", "http://hl7.org/fhir/supplydelivery-supplyitemtype", "medication", {}),
}


def codeable(version: str, *codings: tuple[str, str]) -> Doc:
    kind, element, _, _, extra = CODEABLE[version]
    concept = {"coding": [{"system": system, "code": code} for system, code in codings]}
    return {"resourceType": kind, "id": "x1", element: concept, **extra}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("version", VERSIONS)
def test_codeable_concept_needs_one_coding_in_the_value_set(version: str, fmt: str) -> None:
    kind, element, system, code, _ = CODEABLE[version]
    assert findings(version, encoded(codeable(version, (system, code)), fmt)) == []
    assert findings(version, encoded(codeable(version, ("http://snomed.info/sct", "1"), (system, code)), fmt)) == []
    wrong = [("fhir.binding", f"{kind}.{element}")]
    assert findings(version, encoded(codeable(version, (system, "not-a-code")), fmt)) == wrong
    assert findings(version, encoded(codeable(version, ("http://snomed.info/sct", code)), fmt)) == wrong


@pytest.mark.parametrize("fmt", FORMATS)
def test_r5_binding_to_a_code_system_from_the_terminology_package(fmt: str) -> None:
    """R5's condition-clinical code system lives in hl7.terminology.r5, not in the core package."""
    system = "http://terminology.hl7.org/CodeSystem/condition-clinical"

    def condition(code: str) -> Doc:
        status = {"coding": [{"system": system, "code": code}]}
        subject = {"reference": "Patient/p1"}
        return {"resourceType": "Condition", "id": "c1", "clinicalStatus": status, "subject": subject}

    assert findings("R5", encoded(condition("remission"), fmt)) == []
    assert findings("R5", encoded(condition("not-a-status"), fmt)) == [("fhir.binding", "Condition.clinicalStatus")]


# --------------------------------------------------------------------------- nested resources, direct calls


@pytest.mark.parametrize("version", VERSIONS)
def test_parameters_resource_switches_type(version: str) -> None:
    observation = entry(bundle(version), 2) | {"status": "done"}
    del observation["subject"]
    doc = {"resourceType": "Parameters", "parameter": [{"name": "result", "resource": observation}]}
    for fmt in FORMATS:
        assert findings(version, encoded(doc, fmt)) == [("fhir.binding", "Parameters.parameter[0].resource.status")]


def test_direct_checks_of_what_the_models_would_refuse() -> None:
    """check() on its own: unknown elements, arrays for 0..1 elements, two types of one choice element,
    a missing required element, a JSON number where a string belongs."""
    doc = entry(bundle("R4"), 2) | {"colour": "red", "status": ["final"], "valueString": "x", "issued": 5}
    del doc["code"]
    found = fhir_structure.check(fhir_rules.Parsed("R4", "json", resource=doc))
    assert [(f.code, f.where) for f in found] == [
        ("fhir.cardinality", "Observation.status"),
        ("fhir.unknown-element", "Observation.colour"),
        ("fhir.cardinality", "Observation.valueString"),
        ("fhir.type", "Observation.issued"),
        ("fhir.cardinality", "Observation.code"),
    ]
    assert fhir_structure.check(fhir_rules.Parsed("R4B", "json", resource=doc)) == []  # no tables for R4B


# --------------------------------------------------------------------------- shared fixtures

CODES = {"fhir.binding", "fhir.order", "fhir.cardinality", "fhir.type", "fhir.unknown-element"}
#: what SOURCES.md records as the one structure defect of a fixture
DEFECTS = {"payloads/fhir-stu3/NEMSDeathNotification.dat": [("fhir.order", "Bundle.entry[1].resource.sent")]}


def _fixtures() -> list[str]:
    if not FIXTURES.is_dir():
        return []
    return sorted(str(p.relative_to(FIXTURES)) for p in FIXTURES.rglob("*") if p.is_file() and p.suffix != ".md")


@pytest.mark.parametrize("name", _fixtures())
def test_shared_fhir_fixtures_have_only_their_recorded_structure_defects(name: str) -> None:
    data = (FIXTURES / name).read_bytes()
    if fhir.sniff(data[:65536]) < 0.5:
        return  # not FHIR
    version = "R4" if "fhir-r4" in name else "STU3"
    result = fhir.validate(data, {"fhir_version": version})
    structure = [(f.code, f.where) for f in result.findings if f.code in CODES]
    assert structure == DEFECTS.get(name, []), [str(f) for f in result.findings]


def test_the_fixtures_are_there() -> None:
    if not FIXTURES.is_dir():
        pytest.skip("../shared/fixtures not present (fixtures live outside the project)")
    assert "payloads/fhir-stu3/NEMSDeathNotification.dat" in _fixtures()
