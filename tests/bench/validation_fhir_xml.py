"""Validation benchmark: meshbridge's ``fhir`` and ``xml`` validators against the bare libraries.

Run from the project root with the dev venv active::

    python tests/bench/validation_fhir_xml.py [--repeat 20]

Not part of the pytest run (``tests/bench`` is in ``norecursedirs``). Each row times meshbridge's
``validate(data, options)`` (warm: models imported, schemas compiled) against the library call it
wraps, alternating the two in batches; the numbers are medians of the per-call time over ``repeat``
batches. Goal: meshbridge / baseline <= 1.10.

Rows: a 20-entry R4 Bundle built here, as JSON (``Bundle.model_validate_json``) and as XML
(``Bundle.model_validate_xml`` with a hardened parser); an in-house referral document as plain XML
(``etree.fromstring``) and with its XSD (``+ schema.validate``). When ../shared/fixtures is present,
two more: an ITK3 STU3 message full of comments, and the cost of the comment stripping the FHIR
validator does (the hardened parse with ``remove_comments``/``remove_pis`` against without).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lxml import etree

from meshbridge.payloads import fhir, xml

HERE = Path(__file__).resolve().parent
DATA = HERE.parent / "data"
FIXTURES = HERE.parents[2] / "shared" / "fixtures"
GOAL = 1.10


def r4_bundle(entries: int = 20) -> dict[str, Any]:
    """A collection Bundle: Patient, Organization, Practitioner, Encounter, DiagnosticReport,
    Condition and Observations up to ``entries`` resources."""
    patient = {
        "resourceType": "Patient",
        "id": "pat-1",
        "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9434765919"}],
        "name": [{"use": "official", "family": "Smith", "given": ["Richard", "John"], "prefix": ["Mr"]}],
        "gender": "male",
        "birthDate": "1969-01-01",
        "address": [{"line": ["1 Trevelyan Square", "Boar Lane"], "city": "Leeds", "postalCode": "LS1 6AE"}],
        "generalPractitioner": [{"reference": "Organization/org-1"}],
    }
    organization = {
        "resourceType": "Organization",
        "id": "org-1",
        "identifier": [{"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "Y12345"}],
        "name": "Test Surgery",
    }
    practitioner = {
        "resourceType": "Practitioner",
        "id": "prac-1",
        "name": [{"family": "Jones", "given": ["Alice"], "prefix": ["Dr"]}],
    }
    encounter = {
        "resourceType": "Encounter",
        "id": "enc-1",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": "Patient/pat-1"},
        "period": {"start": "2024-03-01T09:00:00+00:00", "end": "2024-03-01T09:30:00+00:00"},
    }
    condition = {
        "resourceType": "Condition",
        "id": "cond-1",
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "38341003", "display": "Hypertension"}]},
        "subject": {"reference": "Patient/pat-1"},
    }
    observations = []
    for i in range(max(entries - 6, 0)):
        observations.append(
            {
                "resourceType": "Observation",
                "id": f"obs-{i}",
                "status": "final",
                "category": [
                    {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                "code": "laboratory",
                            }
                        ]
                    }
                ],
                "code": {"coding": [{"system": "http://snomed.info/sct", "code": f"{1000000 + i}", "display": "test"}]},
                "subject": {"reference": "Patient/pat-1"},
                "encounter": {"reference": "Encounter/enc-1"},
                "effectiveDateTime": "2024-03-01T09:15:00+00:00",
                "performer": [{"reference": "Practitioner/prac-1"}],
                "valueQuantity": {"value": 4.5 + i, "unit": "mmol/L", "system": "http://unitsofmeasure.org"},
                "referenceRange": [{"low": {"value": 3.5}, "high": {"value": 5.3}}],
            }
        )
    report = {
        "resourceType": "DiagnosticReport",
        "id": "rep-1",
        "status": "final",
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "26604007", "display": "Full blood count"}]},
        "subject": {"reference": "Patient/pat-1"},
        "result": [{"reference": f"Observation/{o['id']}"} for o in observations],
    }
    resources = [report, patient, organization, practitioner, encounter, *observations, condition]
    return {
        "resourceType": "Bundle",
        "id": "bench-1",
        "type": "collection",
        "entry": [{"fullUrl": f"urn:uuid:{r['resourceType']}-{r['id']}", "resource": r} for r in resources],
    }


def referral(notes: int = 400) -> bytes:
    """An in-house referral document (tests/data/referral.xsd) padded with ``notes`` notes."""
    body = "".join(f"  <note>note {i}: patient seen, observations within range.</note>\n" for i in range(notes))
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<referral xmlns="urn:meshbridge:test:referral" id="R1">\n'
        "  <patient><nhsNumber>9434765919</nhsNumber><name>Test Patient</name></patient>\n"
        f"  <priority>routine</priority>\n{body}</referral>\n"
    ).encode()


def _time(fn: Callable[[], Any], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def compare(
    ours: Callable[[], Any], theirs: Callable[[], Any], repeat: int, budget: float = 0.02
) -> tuple[float, float]:
    """Median seconds per call of each, measured alternately in batches of about ``budget`` seconds."""
    ours(), theirs()  # warm: imports, schema builds
    calls = max(1, int(budget / max(_time(theirs, 3), 1e-6)))
    a, b = [], []
    for _ in range(repeat):
        a.append(_time(ours, calls))
        b.append(_time(theirs, calls))
    return statistics.median(a), statistics.median(b)


def _must_be_valid(result: Any, label: str) -> None:
    if not result.valid:
        raise SystemExit(f"{label}: meshbridge says invalid: {[str(f) for f in result.findings]}")


def run(repeat: int = 20) -> list[tuple[str, float, float]]:
    """Rows of ``(label, meshbridge median seconds, baseline median seconds)``."""
    from fhir.resources.R4B.bundle import Bundle

    rows: list[tuple[str, float, float]] = []
    hardened = xml.safe_parser()

    bundle = r4_bundle(20)
    as_json = Bundle.model_validate(bundle).model_dump_json().encode()
    as_xml = Bundle.model_validate(bundle).model_dump_xml()
    r4 = {"fhir_version": "R4"}
    for label, raw in ((f"FHIR R4 JSON Bundle, 20 entries ({len(as_json) // 1024} KiB)", as_json),):
        _must_be_valid(fhir.validate(raw, r4), label)
        rows.append(
            (
                label,
                *compare(
                    lambda raw=raw: fhir.validate(raw, r4), lambda raw=raw: Bundle.model_validate_json(raw), repeat
                ),
            )
        )
    label = f"FHIR R4 XML Bundle, 20 entries ({len(as_xml) // 1024} KiB)"
    _must_be_valid(fhir.validate(as_xml, r4), label)
    rows.append(
        (
            label,
            *compare(
                lambda: fhir.validate(as_xml, r4),
                lambda: Bundle.model_validate_xml(as_xml, xmlparser=hardened),
                repeat,
            ),
        )
    )

    itk = FIXTURES / "payloads" / "itk3" / "ITK010D_ITK_EmergencySupply.xml"
    if itk.is_file():
        from fhir.resources.STU3.bundle import Bundle as Stu3Bundle

        raw = itk.read_bytes()
        label = f"FHIR STU3 XML ITK3 message, 39 comments ({len(raw) // 1024} KiB)"
        _must_be_valid(fhir.validate(raw, {}), label)
        rows.append(
            (
                label,
                *compare(
                    lambda: fhir.validate(raw, {}),
                    lambda: Stu3Bundle.model_validate_xml(raw, xmlparser=hardened),
                    repeat,
                ),
            )
        )
        stripping = xml.safe_parser(strip_comments=True)
        rows.append(
            (
                "  comment stripping: hardened parse, stripped vs kept",
                *compare(lambda: etree.fromstring(raw, stripping), lambda: etree.fromstring(raw, hardened), repeat),
            )
        )

    doc = referral()
    schema = etree.XMLSchema(etree.parse(str(DATA / "referral.xsd"), xml.safe_parser()))
    label = f"plain XML ({len(doc) // 1024} KiB)"
    _must_be_valid(xml.validate(doc, {}), label)
    rows.append((label, *compare(lambda: xml.validate(doc, {}), lambda: etree.fromstring(doc, hardened), repeat)))
    options = {"xml_schema": str(DATA / "referral.xsd")}
    label = f"plain XML + XSD ({len(doc) // 1024} KiB)"
    _must_be_valid(xml.validate(doc, options), label)
    rows.append(
        (
            label,
            *compare(
                lambda: xml.validate(doc, options),
                lambda: schema.validate(etree.fromstring(doc, hardened)),
                repeat,
            ),
        )
    )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20, help="batches per row (default 20)")
    args = parser.parse_args(argv)
    rows = run(args.repeat)
    width = max(len(label) for label, _, _ in rows)
    print(f"{'':{width}}  meshbridge    baseline   ratio  (goal <= {GOAL:.2f})")
    for label, ours, theirs in rows:
        ratio = ours / theirs
        flag = "" if ratio <= GOAL or label.startswith(" ") else "  over goal"
        print(f"{label:{width}}  {ours * 1e3:7.3f} ms  {theirs * 1e3:7.3f} ms  {ratio:5.2f}{flag}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
