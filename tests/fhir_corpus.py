"""The FHIR corpus (issue 17, point 7): valid message Bundles and one-defect variants, built in code.

Baselines: a message Bundle (MessageHeader, Composition, Patient, Observation, Organization) for STU3
and R4, as JSON and as XML (about 5 KB each). The XML is written from the same FHIR-JSON-shaped dict
(:func:`to_xml`), so the dict's key order is the order the definitions give.

Each :class:`Case` is one defect applied to one baseline, with the one finding it must give: the
code, the element path (``where``), and for invariants the key the message starts with.
``model_level`` cases are refused by the fhir.resources models themselves (they stay errors under
``fhir_strictness = "structure"``); the others are found by the checks beyond the models.

The defects themselves are in :mod:`fhir_corpus_defects`; ``python tests/fhir_corpus.py`` counts
how many cases give exactly their finding (the "caught X of Y" of the note).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from lxml import etree

FHIR_NS = "http://hl7.org/fhir"
XHTML_NS = "http://www.w3.org/1999/xhtml"
VERSIONS = ("STU3", "R4")
FORMATS = ("json", "xml")
BASE = "https://example.org/fhir"
PATIENT_URL = f"{BASE}/Patient/pat-1"
ORG_URL = f"{BASE}/Organization/org-1"
HEADER_UUID = "urn:uuid:4d4a9c2e-7a0e-4b8b-9d35-1b7f3b7c0a01"
COMPOSITION_UUID = "urn:uuid:4d4a9c2e-7a0e-4b8b-9d35-1b7f3b7c0a02"
OBSERVATION_UUID = "urn:uuid:4d4a9c2e-7a0e-4b8b-9d35-1b7f3b7c0a03"

# entry positions in the baseline
HEADER, COMPOSITION, PATIENT, OBSERVATION, ORGANIZATION = range(5)


def entry_path(index: int) -> str:
    return f"Bundle.entry[{index}].resource"


def _div(text: str) -> str:
    return f'<div xmlns="{XHTML_NS}"><p>{text}</p></div>'


def _coding(system: str, code: str, display: str) -> dict[str, Any]:
    return {"system": system, "code": code, "display": display}


SNOMED, LOINC = "http://snomed.info/sct", "http://loinc.org"
WEIGHT = {"coding": [_coding(LOINC, "29463-7", "Body weight")], "text": "Body weight"}


def message_header(version: str) -> dict[str, Any]:
    event = _coding("https://fhir.nhs.uk/STU3/CodeSystem/ITK-MessageEvent-2", "ITK007C", "ITK Discharge Summary")
    header: dict[str, Any] = {"resourceType": "MessageHeader", "id": "mh-1"}
    if version == "STU3":
        header["event"] = event
    else:
        header["eventCoding"] = event
    header["destination"] = [{"name": "Receiving system", "endpoint": "urn:nhs-uk:addressing:ods:RA1"}]
    header["sender"] = {"reference": ORG_URL, "display": "Test Surgery"}
    if version == "STU3":
        header["timestamp"] = "2026-11-28T10:15:00+00:00"
    header["source"] = {
        "name": "meshbridge corpus",
        "software": "meshbridge",
        "endpoint": "urn:nhs-uk:addressing:ods:Y12345",
    }
    header["focus"] = [{"reference": COMPOSITION_UUID}]
    return header


def composition(version: str) -> dict[str, Any]:
    doc_type = {"coding": [_coding(SNOMED, "373942005", "Discharge summary")]}
    section = {
        "title": "Observations",
        "code": {"coding": [_coding(SNOMED, "1102421000000108", "Observations")]},
        "text": {"status": "generated", "div": _div("Body weight 72.5 kg on 28 November 2026.")},
        "mode": "snapshot",
        "entry": [{"reference": OBSERVATION_UUID}],
    }
    return {
        "resourceType": "Composition",
        "id": "comp-1",
        "identifier": {
            "system": "https://tools.ietf.org/html/rfc4122",
            "value": "2f3c6b1e-55f2-4a5e-9d6e-0c1f4e5a7b21",
        },
        "status": "final",
        "type": doc_type,
        "subject": {"reference": PATIENT_URL},
        "date": "2026-11-28T10:00:00+00:00",
        "author": [{"reference": ORG_URL}],
        "title": "Discharge summary",
        "section": [section],
    }


def patient(version: str) -> dict[str, Any]:
    ethnic = "https://fhir.hl7.org.uk/STU3/StructureDefinition/CareConnect-EthnicCategory-1"
    return {
        "resourceType": "Patient",
        "id": "pat-1",
        "text": {"status": "generated", "div": _div("Richard Smith, male, born 1 January 1969.")},
        "extension": [
            {
                "url": ethnic,
                "valueCodeableConcept": {"coding": [_coding("https://example.org/ethnicity", "A", "British")]},
            }
        ],
        "identifier": [{"use": "official", "system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9434765919"}],
        "active": True,
        "name": [
            {
                "use": "official",
                "family": "Smith",
                "given": ["Richard", "John"],
                "prefix": ["Mr"],
                "period": {"start": "1969-01-01", "end": "2030-01-01"},
            }
        ],
        "telecom": [{"system": "phone", "value": "0113 496 0000", "use": "home"}],
        "gender": "male",
        "birthDate": "1969-01-01",
        "address": [
            {"use": "home", "line": ["1 Trevelyan Square", "Boar Lane"], "city": "Leeds", "postalCode": "LS1 6AE"}
        ],
        "contact": [
            {
                "relationship": [{"coding": [_coding("http://hl7.org/fhir/v2/0131", "N", "Next-of-Kin")]}],
                "name": {"family": "Smith", "given": ["Jane"]},
            }
        ],
        "managingOrganization": {"reference": "Organization/org-1"},
    }


def observation(version: str) -> dict[str, Any]:
    obs: dict[str, Any] = {
        "resourceType": "Observation",
        "id": "obs-1",
        "status": "final",
        "category": [{"coding": [_coding(SNOMED, "248326004", "Body measure")]}],
        "code": copy.deepcopy(WEIGHT),
        "subject": {"reference": PATIENT_URL},
        "effectiveDateTime": "2026-11-28T09:30:00+00:00",
        "issued": "2026-11-28T09:45:00.000+00:00",
        "performer": [{"reference": ORG_URL}],
        "valueQuantity": {"value": 72.5, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"},
        "referenceRange": [{"low": {"value": 50, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}}],
    }
    return obs


def organization(version: str) -> dict[str, Any]:
    return {
        "resourceType": "Organization",
        "id": "org-1",
        "identifier": [{"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "Y12345"}],
        "active": True,
        "name": "Test Surgery",
        "telecom": [{"system": "phone", "value": "0113 496 0001", "use": "work"}],
        "address": [{"use": "work", "line": ["2 Wellington Place"], "city": "Leeds", "postalCode": "LS1 4AP"}],
    }


def baseline(version: str) -> dict[str, Any]:
    """The valid message Bundle of ``version`` as a FHIR JSON dict (keys in the definitions' order)."""
    entries = [
        (HEADER_UUID, message_header(version)),
        (COMPOSITION_UUID, composition(version)),
        (PATIENT_URL, patient(version)),
        (OBSERVATION_UUID, observation(version)),
        (ORG_URL, organization(version)),
    ]
    bundle: dict[str, Any] = {"resourceType": "Bundle", "id": "bundle-1"}
    bundle["identifier"] = {
        "system": "https://tools.ietf.org/html/rfc4122",
        "value": "8a2b4a16-0f5e-4cf3-9d43-5d7e1c8f9a10",
    }
    bundle["type"] = "message"
    if version != "STU3":
        bundle["timestamp"] = "2026-11-28T10:15:00+00:00"
    bundle["entry"] = [{"fullUrl": url, "resource": resource} for url, resource in entries]
    return bundle


# --------------------------------------------------------------------------- JSON and XML


def to_json(document: dict[str, Any]) -> bytes:
    return json.dumps(document, indent=2, ensure_ascii=False).encode("utf-8")


def to_xml(document: dict[str, Any]) -> etree._Element:
    """FHIR XML for a FHIR-JSON-shaped resource dict (primitives as ``value``, extension ``url`` and
    element ``id`` as attributes, resources wrapped in their type's element, ``div`` as XHTML)."""
    root = etree.Element(f"{{{FHIR_NS}}}{document['resourceType']}", nsmap={None: FHIR_NS})
    _fill(root, document, resource=True)
    return root


def _fill(parent: etree._Element, value: dict[str, Any], *, resource: bool = False, extension: bool = False) -> None:
    for key, item in value.items():
        if key == "resourceType":
            continue
        if (key == "id" and not resource) or (key == "url" and extension):
            parent.set(key, str(item))
            continue
        for one in item if isinstance(item, list) else [item]:
            _element(parent, key, one)


def _element(parent: etree._Element, key: str, value: Any) -> None:
    if key == "div":
        parent.append(etree.fromstring(value))
        return
    child = etree.SubElement(parent, f"{{{FHIR_NS}}}{key}")
    if isinstance(value, dict) and "resourceType" in value:
        inner = etree.SubElement(child, f"{{{FHIR_NS}}}{value['resourceType']}")
        _fill(inner, value, resource=True)
    elif isinstance(value, dict):
        _fill(child, value, extension=key in ("extension", "modifierExtension"))
    elif isinstance(value, bool):
        child.set("value", "true" if value else "false")
    else:
        child.set("value", str(value))


def xml_bytes(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def find(root: etree._Element, path: str) -> etree._Element:
    """The element at a ``/``-separated path of local names, e.g. ``entry[2]/resource/Patient/gender``."""
    node = root
    for step in path.split("/"):
        name, _, index = step.partition("[")
        found = node.findall(f"{{{FHIR_NS}}}{name}")
        node = found[int(index.rstrip("]")) if index else 0]
    return node


# --------------------------------------------------------------------------- cases


Mutation = Callable[[dict[str, Any]], None]
XmlMutation = Callable[[etree._Element], None]


@dataclass(frozen=True)
class Defect:
    """One defect: how to make it, and the finding it must give.

    ``where`` and ``change``/``xml_change`` may depend on the version (a callable taking it).
    """

    name: str
    kind: str
    code: str
    where: str | Callable[[str], str]
    change: Callable[[str], Mutation] | None = None
    xml_change: Callable[[str], XmlMutation] | None = None
    key: str | None = None
    versions: tuple[str, ...] = VERSIONS
    formats: tuple[str, ...] = FORMATS
    model_level: bool = False


@dataclass(frozen=True)
class Case:
    """One corpus file: the bytes, and the one finding they must give."""

    name: str
    kind: str
    version: str
    format: str
    data: bytes
    code: str
    where: str
    key: str | None
    model_level: bool


def baselines() -> Iterator[tuple[str, str, bytes]]:
    for version in VERSIONS:
        yield version, "json", to_json(baseline(version))
        yield version, "xml", xml_bytes(to_xml(baseline(version)))


def build(defect: Defect, version: str, fmt: str) -> bytes:
    document = baseline(version)
    if defect.change is not None:
        defect.change(version)(document)
    if fmt == "json":
        return to_json(document)
    root = to_xml(document)
    if defect.xml_change is not None:
        defect.xml_change(version)(root)
    return xml_bytes(root)


def cases() -> list[Case]:
    from fhir_corpus_defects import DEFECTS

    found = []
    for defect in DEFECTS:
        for version in defect.versions:
            for fmt in defect.formats:
                if fmt == "json" and defect.change is None:
                    continue
                where = defect.where(version) if callable(defect.where) else defect.where
                name = f"{version.lower()}-{fmt}-{defect.name}"
                data = build(defect, version, fmt)
                found.append(
                    Case(name, defect.kind, version, fmt, data, defect.code, where, defect.key, defect.model_level)
                )
    return found


def gives_exactly(case: Case, findings: list[Any]) -> bool:
    """True when ``findings`` (errors) are exactly the one the case expects."""
    if len(findings) != 1:
        return False
    (finding,) = findings
    if finding.code != case.code or finding.where != case.where:
        return False
    return case.key is None or finding.message.startswith(f"{case.key}:")


def main() -> int:
    """Print per kind how many cases give exactly their finding under ``hl7``."""
    from collections import Counter

    from meshbridge.payloads import fhir

    caught: Counter[str] = Counter()
    total: Counter[str] = Counter()
    misses = []
    for case in cases():
        result = fhir.validate(case.data, {"fhir_version": case.version, "fhir_strictness": "hl7"})
        total[case.kind] += 1
        if gives_exactly(case, result.errors):
            caught[case.kind] += 1
        else:
            misses.append((case.name, [(f.code, f.where, f.message[:80]) for f in result.errors]))
    for name, got in misses:
        print(f"MISSED {name}: {got}")
    for kind in total:
        print(f"{kind:32} {caught[kind]:3} of {total[kind]}")
    print(f"{'caught':32} {sum(caught.values()):3} of {sum(total.values())}")
    return 0


if __name__ == "__main__":
    import sys

    sys.path.insert(0, __import__("os").path.dirname(__file__))
    sys.exit(main())
