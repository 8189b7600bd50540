"""References inside a Bundle: what resolves, what is an error, what is left alone (external URLs,
urn references outside MessageHeader.focus and Composition.section.entry, non-message Bundles)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fhir_bundles import ORG, PATIENT, bundle, changed, pairs, resource, validate

from meshbridge.payloads import fhir_references, fhir_rules

VERSIONS, FORMS = ("STU3", "R4"), ("json", "xml")
MISSING = "urn:uuid:4d4a9c2e-7a0e-4b8b-9d35-1b7f3b7c0aff"
MH, P = "Bundle.entry[0].resource", "Bundle.entry[1].resource"
MO = f"{P}.managingOrganization"
ORG_ID = f"Organization/{ORG[9:]}"
CONTAINED = {"resourceType": "Organization", "id": "c1", "name": "GP"}
Change = Callable[[dict[str, Any]], None]


def put(name: str, key: str, value: Any) -> Change:
    return lambda doc: resource(doc, name).__setitem__(key, value)


def reference(name: str, key: str, value: str, many: bool = False) -> Change:
    ref = {"reference": value}
    return lambda doc: resource(doc, name).__setitem__(key, [ref] if many else ref)


def both(*changes: Change) -> Change:
    return lambda doc: [change(doc) for change in changes]  # type: ignore[func-returns-value]


def bundle_type(kind: str) -> Change:
    return lambda doc: doc.__setitem__("type", kind)


UNKNOWN_ORG = reference("patient", "managingOrganization", "Organization/org-9")
ERRORS = [
    ("focus-urn", reference("header", "focus", MISSING, many=True), f"{MH}.focus[0]"),
    ("relative", UNKNOWN_ORG, MO),
    ("relative-versioned", reference("patient", "managingOrganization", f"{ORG_ID}/_history/3"), MO),
]  # fmt: skip
CLEAN = [
    ("relative-by-type-and-id", reference("patient", "managingOrganization", ORG_ID)),
    ("external-url", reference("patient", "managingOrganization", "https://ods.example.org/Organization/X26")),
    ("urn-outside-focus", reference("patient", "managingOrganization", MISSING)),
    ("relative-in-a-collection", both(bundle_type("collection"), UNKNOWN_ORG)),
    ("the-bundle-itself", reference("patient", "managingOrganization", "urn:uuid:b1")),
    ("local", both(reference("patient", "managingOrganization", "#c1"), put("patient", "contained", [CONTAINED]))),
]  # fmt: skip


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(("label", "change", "where"), ERRORS, ids=[e[0] for e in ERRORS])
def test_unresolved(label: str, change: Change, where: str, version: str, form: str) -> None:
    result = validate(changed(version, change), version, form)
    assert pairs(result) == [("fhir.reference", where)], [str(f) for f in result.findings]
    assert "does not resolve to an entry of the Bundle" in result.findings[0].message
    assert not result.valid


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(("label", "change"), CLEAN, ids=[c[0] for c in CLEAN])
def test_resolved_or_not_judged(label: str, change: Change, version: str, form: str) -> None:
    result = validate(changed(version, change), version, form)
    assert result.valid and result.findings == (), [str(f) for f in result.findings]


def test_a_versioned_reference_resolves_to_that_version() -> None:
    def versioned(doc: dict[str, Any]) -> None:
        resource(doc, "org")["meta"] = {"versionId": "3"}
        resource(doc, "patient")["managingOrganization"] = {"reference": f"Organization/{ORG[9:]}/_history/3"}
        resource(doc, "header")["focus"] = [{"reference": f"{ORG}/_history/3"}]

    assert validate(changed("R4", versioned), "R4", "json").findings == ()


def restful(doc: dict[str, Any]) -> None:
    for entry in doc["entry"]:
        entry["fullUrl"] = f"https://fhir.example.org/R4/{entry['resource']['resourceType']}/{entry['resource']['id']}"
    resource(doc, "header")["focus"] = [{"reference": f"Observation/{resource(doc, 'obs')['id']}"}]
    resource(doc, "obs")["subject"] = {"reference": f"Patient/{PATIENT[9:]}"}
    resource(doc, "patient")["managingOrganization"] = {"reference": f"Organization/{ORG[9:]}"}


@pytest.mark.parametrize("form", FORMS)
def test_relative_references_resolve_against_a_restful_base(form: str) -> None:
    assert validate(changed("R4", restful), "R4", form).findings == ()
    other_base = changed("R4", restful)
    other_base["entry"][2]["fullUrl"] = f"https://elsewhere.example.org/Organization/{ORG[9:]}"
    result = validate(other_base, "R4", form)
    assert pairs(result) == [("fhir.reference", f"{P}.managingOrganization")]


def document(section_entry: str) -> dict[str, Any]:
    """A document Bundle: Composition (one section) and the Patient it is about."""
    base = bundle("R4")
    patient = resource(base, "patient")
    composition = {
        "resourceType": "Composition",
        "id": "comp1",
        "status": "final",
        "type": {"text": "Letter"},
        "subject": {"reference": PATIENT},
        "date": "2024-01-02",
        "author": [{"reference": PATIENT}],
        "title": "Letter",
        "section": [{"title": "Details", "entry": [{"reference": section_entry}]}],
    }
    entries = [{"fullUrl": "urn:uuid:c0c0c0c0-1111-4222-8333-444444444444", "resource": composition}]
    entries.append({"fullUrl": PATIENT, "resource": patient})
    patient.pop("managingOrganization")
    identifier = {"system": "https://tools.ietf.org/html/rfc4122", "value": "d0d0d0d0-1111-4222-8333-444444444444"}
    return {
        "resourceType": "Bundle",
        "identifier": identifier,
        "type": "document",
        "timestamp": "2024-01-02T10:00:00Z",
        "entry": entries,
    }


@pytest.mark.parametrize("form", FORMS)
def test_a_document_section_entry_must_resolve(form: str) -> None:
    assert validate(document(PATIENT), "R4", form).findings == ()
    result = validate(document(MISSING), "R4", form)
    assert pairs(result) == [("fhir.reference", "Bundle.entry[0].resource.section[0].entry[0]")]


def test_a_bundle_inside_an_entry_resolves_against_its_own_entries() -> None:
    outer = bundle("R4")
    outer["entry"].append({"fullUrl": "urn:uuid:e0e0e0e0-1111-4222-8333-444444444444", "resource": document(PATIENT)})
    parsed = fhir_rules.Parsed("R4", "json", resource=outer)
    assert fhir_references.check(parsed) == []
    outer["entry"][-1]["resource"] = document(ORG)  # the outer Bundle has it, the document does not
    [finding] = fhir_references.check(parsed)
    assert finding.where == "Bundle.entry[4].resource.entry[0].resource.section[0].entry[0]"


def test_a_resource_that_is_not_a_bundle_has_nothing_to_resolve() -> None:
    patient = resource(bundle("R4"), "patient")
    patient["managingOrganization"] = {"reference": "Organization/nowhere"}
    assert fhir_references.check(fhir_rules.Parsed("R4", "json", resource=patient)) == []
