# ruff: noqa: E501  (the defect tables: one defect per line)
"""The defects of the FHIR corpus (see :mod:`fhir_corpus`): one per variant, with the finding it gives.

Changes are made on the FHIR-JSON-shaped dict (so they apply to both formats, keeping the
definitions' element order: new keys go where the definition puts them) or, for what only XML can
say (order, a repeated element, a boolean spelled ``yes``), on the XML tree.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

from fhir_corpus import (
    COMPOSITION,
    FHIR_NS,
    HEADER,
    OBSERVATION,
    ORG_URL,
    ORGANIZATION,
    PATIENT,
    PATIENT_URL,
    WEIGHT,
    XHTML_NS,
    Defect,
    Mutation,
    XmlMutation,
    entry_path,
    find,
    organization,
)
from lxml import etree

B, MH, C, P, OBS, ORG = (
    "Bundle",
    entry_path(HEADER),
    entry_path(COMPOSITION),
    entry_path(PATIENT),
    entry_path(OBSERVATION),
    entry_path(ORGANIZATION),
)
_STEP = re.compile(r"([^.\[]+)(?:\[(\d+)\])?")


def _walk(document: dict[str, Any], path: str) -> tuple[Any, Any]:
    """The container and key (or list index) of ``path``, e.g. ``entry[2].resource.name[0].use``."""
    steps = path.split(".")
    node: Any = document
    for step in steps[:-1]:
        match = _STEP.fullmatch(step)
        assert match, step
        node = node[match[1]]
        if match[2] is not None:
            node = node[int(match[2])]
    match = _STEP.fullmatch(steps[-1])
    assert match, path
    if match[2] is not None:
        return node[match[1]], int(match[2])
    return node, match[1]


def put(path: str, value: Any, after: str | None = None) -> Callable[[str], Mutation]:
    """Set ``path`` to ``value``; a new key goes right after ``after`` (the definitions' order)."""

    def change(version: str) -> Mutation:
        def mutate(document: dict[str, Any]) -> None:
            parent, key = _walk(document, path)
            if after is None or key in parent:
                parent[key] = copy.deepcopy(value)
                return
            items = list(parent.items())
            position = [k for k, _ in items].index(after) + 1
            items.insert(position, (key, copy.deepcopy(value)))
            parent.clear()
            parent.update(items)

        return mutate

    return change


def drop(*paths: str) -> Callable[[str], Mutation]:
    def change(version: str) -> Mutation:
        def mutate(document: dict[str, Any]) -> None:
            for path in paths:
                parent, key = _walk(document, path)
                del parent[key]

        return mutate

    return change


def chain(*changes: Callable[[str], Mutation]) -> Callable[[str], Mutation]:
    def change(version: str) -> Mutation:
        def mutate(document: dict[str, Any]) -> None:
            for one in changes:
                one(version)(document)

        return mutate

    return change


def custom(function: Callable[[dict[str, Any], str], None]) -> Callable[[str], Mutation]:
    return lambda version: lambda document: function(document, version)


# --------------------------------------------------------------------------- XML-only changes


def xml_move_after(path: str, sibling: str) -> Callable[[str], XmlMutation]:
    """Move the element at ``path`` to just after its sibling named ``sibling``."""

    def change(version: str) -> XmlMutation:
        def mutate(root: etree._Element) -> None:
            node = find(root, path)
            target = node.getparent().find(f"{{{FHIR_NS}}}{sibling}")
            target.addnext(node)

        return mutate

    return change


def xml_repeat(path: str) -> Callable[[str], XmlMutation]:
    def change(version: str) -> XmlMutation:
        def mutate(root: etree._Element) -> None:
            node = find(root, path)
            node.addnext(copy.deepcopy(node))

        return mutate

    return change


def xml_value(path: str, value: str) -> Callable[[str], XmlMutation]:
    def change(version: str) -> XmlMutation:
        def mutate(root: etree._Element) -> None:
            find(root, path).set("value", value)

        return mutate

    return change


def xml_add(path: str, after: str, xml: str) -> Callable[[str], XmlMutation]:
    """Insert ``xml`` (in the FHIR namespace) after the child ``after`` of the element at ``path``."""

    def change(version: str) -> XmlMutation:
        def mutate(root: etree._Element) -> None:
            node = find(root, path).find(f"{{{FHIR_NS}}}{after}")
            node.addnext(etree.fromstring(f'<wrap xmlns="{FHIR_NS}">{xml}</wrap>')[0])

        return mutate

    return change


PAT_X, OBS_X, ORG_X, MH_X = (f"entry[{i}]/resource/{t}" for i, t in [
    (PATIENT, "Patient"), (OBSERVATION, "Observation"), (ORGANIZATION, "Organization"), (HEADER, "MessageHeader")
])  # fmt: skip


# --------------------------------------------------------------------------- the defects


def _binding(name: str, path: str, code: str, where: str) -> Defect:
    return Defect(f"binding-{name}", "required binding", "fhir.binding", where, put(path, code))


BINDINGS = [
    _binding("bundle-type", "type", "mesage", f"{B}.type"),
    _binding("composition-status", "entry[1].resource.status", "not-a-status", f"{C}.status"),
    _binding("observation-status", "entry[3].resource.status", "done", f"{OBS}.status"),
    _binding("patient-gender", "entry[2].resource.gender", "M", f"{P}.gender"),
    _binding("name-use", "entry[2].resource.name[0].use", "formal", f"{P}.name[0].use"),
    _binding("identifier-use", "entry[2].resource.identifier[0].use", "primary", f"{P}.identifier[0].use"),
    _binding("telecom-system", "entry[2].resource.telecom[0].system", "telephone", f"{P}.telecom[0].system"),
    _binding("address-use", "entry[2].resource.address[0].use", "house", f"{P}.address[0].use"),
    _binding("narrative-status", "entry[2].resource.text.status", "complete", f"{P}.text.status"),
    _binding("section-mode", "entry[1].resource.section[0].mode", "full", f"{C}.section[0].mode"),
    _binding("telecom-use", "entry[4].resource.telecom[0].use", "office", f"{ORG}.telecom[0].use"),
    Defect(
        "binding-quantity-comparator",
        "required binding",
        "fhir.binding",
        f"{OBS}.valueQuantity.comparator",
        put("entry[3].resource.valueQuantity.comparator", "==", after="value"),
    ),
]


def _invariant(name: str, key: str, where: str, change: Callable[[str], Mutation], **more: Any) -> Defect:
    return Defect(name, "core invariant", "fhir.invariant", where, change, key=key, **more)


def _duplicate_full_url(document: dict[str, Any], version: str) -> None:
    other = organization(version)
    other["name"] = "Test Surgery (branch)"
    document["entry"].append({"fullUrl": ORG_URL, "resource": other})


def _append_section(document: dict[str, Any], version: str) -> None:
    document["entry"][COMPOSITION]["resource"]["section"].append({"title": "Nothing"})


def _header_not_first(document: dict[str, Any], version: str) -> None:
    entries = document["entry"]
    entries[0], entries[1] = entries[1], entries[0]


CONTAINED = {"resourceType": "Organization", "id": "c1", "name": "Contained practice"}
CONTAINED_TEXT = {
    "resourceType": "Organization",
    "id": "c1",
    "text": {"status": "generated", "div": f'<div xmlns="{XHTML_NS}">Practice</div>'},
    "name": "Contained practice",
}
CONTAINED_VERSIONED = {
    "resourceType": "Organization",
    "id": "c1",
    "meta": {"versionId": "2"},
    "name": "Contained practice",
}
CONTAINED_LABELLED = {
    "resourceType": "Organization",
    "id": "c1",
    "meta": {"security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}]},
    "name": "Contained practice",
}
KG = {"unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}
ABSENT = {"coding": [{"system": "http://hl7.org/fhir/data-absent-reason", "code": "unknown"}]}
ETHNIC = "https://fhir.hl7.org.uk/STU3/StructureDefinition/CareConnect-EthnicCategory-1"
GP = put("entry[2].resource.generalPractitioner", [{"reference": "#c1"}], after="contact")


def _contained(resource: dict[str, Any], referenced: bool = True) -> Callable[[str], Mutation]:
    contain = put("entry[2].resource.contained", [resource], after="text")
    return chain(contain, GP) if referenced else contain


INVARIANTS = [
    _invariant("bdl-1-total", "bdl-1", B, put("total", 5, after="type"), versions=("STU3",)),
    _invariant("bdl-1-total", "bdl-1", B, put("total", 5, after="timestamp"), versions=("R4",)),
    _invariant("bdl-2-search", "bdl-2", B, put("entry[4].search", {"mode": "match"}, after="resource")),
    _invariant(
        "bdl-3-request",
        "bdl-3",
        B,
        put("entry[4].request", {"method": "PUT", "url": "Organization/org-1"}, after="resource"),
    ),
    _invariant("bdl-4-response", "bdl-4", B, put("entry[4].response", {"status": "200 OK"}, after="resource")),
    _invariant("bdl-7-full-url", "bdl-7", B, custom(_duplicate_full_url)),
    _invariant(
        "bdl-8-versioned-full-url", "bdl-8", f"{B}.entry[2]", put("entry[2].fullUrl", f"{PATIENT_URL}/_history/1")
    ),
    _invariant("bdl-12-header-first", "bdl-12", B, custom(_header_not_first), versions=("R4",)),
    _invariant(
        "ele-1-empty", "ele-1", f"{P}.maritalStatus", put("entry[2].resource.maritalStatus", {}, after="address")
    ),
    _invariant("ele-1-empty-coding", "ele-1", f"{OBS}.code.coding[0]", put("entry[3].resource.code.coding", [{}])),
    _invariant("dom-1-contained-text", "dom-1", P, _contained(CONTAINED_TEXT), versions=("STU3",)),
    _invariant("dom-3-not-referenced", "dom-3", P, _contained(CONTAINED, referenced=False)),
    _invariant("dom-4-contained-version", "dom-4", P, _contained(CONTAINED_VERSIONED)),
    _invariant("dom-5-contained-security", "dom-5", P, _contained(CONTAINED_LABELLED), versions=("R4",)),
    _invariant(
        "per-1-period",
        "per-1",
        f"{P}.name[0].period",
        put("entry[2].resource.name[0].period", {"start": "2030-01-01", "end": "1969-01-01"}),
    ),
    _invariant(
        "ref-1-local",
        "ref-1",
        f"{P}.managingOrganization",
        put("entry[2].resource.managingOrganization", {"reference": "#org-9"}),
    ),
    _invariant(
        "obs-3-range",
        "obs-3",
        f"{OBS}.referenceRange[0]",
        put("entry[3].resource.referenceRange", [{"type": {"text": "normal"}}]),
    ),
    _invariant("obs-6-absent", "obs-6", OBS, put("entry[3].resource.dataAbsentReason", ABSENT, after="valueQuantity")),
    _invariant(
        "obs-7-component",
        "obs-7",
        OBS,
        put(
            "entry[3].resource.component",
            [{"code": WEIGHT, "valueQuantity": {"value": 72.5, **KG}}],
            after="referenceRange",
        ),
    ),
    _invariant(
        "ext-1-both",
        "ext-1",
        f"{P}.extension[0]",
        put(
            "entry[2].resource.extension[0]",
            {
                "url": ETHNIC,
                "extension": [{"url": "detail", "valueString": "x"}],
                "valueCodeableConcept": {"text": "British"},
            },
        ),
    ),
    _invariant("ext-1-neither", "ext-1", f"{P}.extension[0]", put("entry[2].resource.extension[0]", {"url": ETHNIC})),
    _invariant("org-1-anonymous", "org-1", ORG, drop("entry[4].resource.identifier", "entry[4].resource.name")),
    _invariant("org-2-home-address", "org-2", f"{ORG}.address[0]", put("entry[4].resource.address[0].use", "home")),
    _invariant("org-3-home-telecom", "org-3", f"{ORG}.telecom[0]", put("entry[4].resource.telecom[0].use", "home")),
    _invariant("pat-1-contact", "pat-1", f"{P}.contact[0]", drop("entry[2].resource.contact[0].name")),
    _invariant("cpt-2-system", "cpt-2", f"{P}.telecom[0]", drop("entry[2].resource.telecom[0].system")),
    _invariant("qty-3-system", "qty-3", f"{OBS}.valueQuantity", drop("entry[3].resource.valueQuantity.system")),
    _invariant(
        "att-1-content-type",
        "att-1",
        f"{P}.photo[0]",
        put("entry[2].resource.photo", [{"data": "aGVsbG8="}], after="address"),
    ),
    _invariant(
        "txt-2-empty-div",
        "txt-2",
        f"{P}.text.div",
        put("entry[2].resource.text.div", f'<div xmlns="{XHTML_NS}"> </div>'),
    ),
    _invariant("cmp-1-empty-section", "cmp-1", f"{C}.section[1]", custom(_append_section)),
    _invariant(
        "cmp-2-empty-reason",
        "cmp-2",
        f"{C}.section[0]",
        put("entry[1].resource.section[0].emptyReason", {"text": "withheld"}, after="entry"),
    ),
]

MISSING_UUID = "urn:uuid:4d4a9c2e-7a0e-4b8b-9d35-1b7f3b7c0aff"
REFERENCES = [
    Defect("reference-urn-uuid", "reference in the Bundle", "fhir.reference", f"{MH}.focus[0]", put("entry[0].resource.focus[0].reference", MISSING_UUID)),
    Defect("reference-relative-in-urn-entry", "reference in the Bundle", "fhir.reference", f"{OBS}.performer[0]", put("entry[3].resource.performer[0].reference", "Organization/org-9")),
    Defect("reference-relative", "reference in the Bundle", "fhir.reference", f"{P}.managingOrganization", put("entry[2].resource.managingOrganization.reference", "Organization/org-9")),
]  # fmt: skip

XML = ("xml",)
JSON = ("json",)
STRICT = "XML/JSON strictness"
STRICTNESS = [
    Defect("order-patient-gender", STRICT, "fhir.order", f"{P}.gender", xml_change=xml_move_after(f"{PAT_X}/gender", "birthDate"), formats=XML),
    Defect("order-observation-status", STRICT, "fhir.order", f"{OBS}.status", xml_change=xml_move_after(f"{OBS_X}/status", "code"), formats=XML),
    Defect("order-bundle-identifier", STRICT, "fhir.order", f"{B}.identifier", xml_change=xml_move_after("identifier", "type"), formats=XML),
    Defect("order-header-sender", STRICT, "fhir.order", f"{MH}.sender", xml_change=xml_move_after(f"{MH_X}/sender", "source"), formats=XML),
    Defect("repeat-patient-gender", STRICT, "fhir.cardinality", f"{P}.gender", xml_change=xml_repeat(f"{PAT_X}/gender"), formats=XML),
    Defect("repeat-patient-birthdate", STRICT, "fhir.cardinality", f"{P}.birthDate", xml_change=xml_repeat(f"{PAT_X}/birthDate"), formats=XML),
    Defect("repeat-observation-status", STRICT, "fhir.cardinality", f"{OBS}.status", xml_change=xml_repeat(f"{OBS_X}/status"), formats=XML),
    Defect("repeat-bundle-type", STRICT, "fhir.cardinality", f"{B}.type", xml_change=xml_repeat("type"), formats=XML),
    Defect("boolean-yes", STRICT, "fhir.type", f"{P}.active", xml_change=xml_value(f"{PAT_X}/active", "yes"), formats=XML),
    Defect("boolean-one", STRICT, "fhir.type", f"{ORG}.active", xml_change=xml_value(f"{ORG_X}/active", "1"), formats=XML),
    Defect("boolean-capital", STRICT, "fhir.type", f"{P}.active", xml_change=xml_value(f"{PAT_X}/active", "True"), formats=XML),
    Defect("decimal-as-string", STRICT, "fhir.type", f"{OBS}.valueQuantity.value", put("entry[3].resource.valueQuantity.value", "72.5"), formats=JSON),
    Defect("decimal-low-as-string", STRICT, "fhir.type", f"{OBS}.referenceRange[0].low.value", put("entry[3].resource.referenceRange[0].low.value", "50"), formats=JSON),
    Defect("boolean-as-string", STRICT, "fhir.type", f"{P}.active", put("entry[2].resource.active", "true"), formats=JSON),
    Defect("boolean-false-as-string", STRICT, "fhir.type", f"{ORG}.active", put("entry[4].resource.active", "false"), formats=JSON),
    Defect("boolean-as-number", STRICT, "fhir.type", f"{P}.active", put("entry[2].resource.active", 1), formats=JSON),
    Defect("string-as-number", STRICT, "fhir.structure", f"{ORG}.name", put("entry[4].resource.name", 42), formats=JSON, model_level=True),
]  # fmt: skip

CARD = "cardinality, unknown elements, primitive formats"
# what the fhir.resources models refuse already (one fhir.structure finding each), and a uri with a space
OTHER = [
    Defect("missing-observation-code", CARD, "fhir.structure", f"{OBS}.code", drop("entry[3].resource.code"), model_level=True),
    Defect("missing-observation-status", CARD, "fhir.structure", f"{OBS}.status", drop("entry[3].resource.status"), model_level=True),
    Defect("missing-composition-title", CARD, "fhir.structure", f"{C}.title", drop("entry[1].resource.title"), model_level=True),
    Defect("missing-header-source", CARD, "fhir.structure", f"{MH}.source", drop("entry[0].resource.source"), model_level=True),
    Defect("missing-bundle-type", CARD, "fhir.structure", f"{B}.type", drop("type"), model_level=True),
    Defect("name-not-array", CARD, "fhir.structure", f"{P}.name", put("entry[2].resource.name", {"family": "Smith"}), formats=JSON, model_level=True),
    Defect("gender-array", CARD, "fhir.structure", f"{P}.gender", put("entry[2].resource.gender", ["male"]), formats=JSON, model_level=True),
    Defect("unknown-patient-element", CARD, "fhir.structure", f"{P}.shoeSize", put("entry[2].resource.shoeSize", "42", after="birthDate"), model_level=True),
    Defect("unknown-bundle-element", CARD, "fhir.structure", f"{B}.sender", put("sender", "someone", after="type"), model_level=True),
    Defect("birthdate-month-13", CARD, "fhir.structure", f"{P}.birthDate", put("entry[2].resource.birthDate", "1969-13-01"), model_level=True),
    Defect("datetime-no-seconds", CARD, "fhir.structure", f"{OBS}.effectiveDateTime", put("entry[3].resource.effectiveDateTime", "2026-11-28T09:30+00:00"), model_level=True),
    Defect("instant-no-zone", CARD, "fhir.structure", f"{OBS}.issued", put("entry[3].resource.issued", "2026-11-28T09:45:00"), model_level=True),
    Defect("id-underscore", CARD, "fhir.structure", f"{ORG}.id", put("entry[4].resource.id", "org_1"), model_level=True),
    Defect("code-trailing-space", CARD, "fhir.structure", f"{OBS}.valueQuantity.code", put("entry[3].resource.valueQuantity.code", "kg "), model_level=True),
    Defect("uri-with-space", CARD, "fhir.type", f"{P}.identifier[0].system", put("entry[2].resource.identifier[0].system", "https://fhir.nhs.uk/Id/nhs number")),
    Defect("decimal-comma", CARD, "fhir.structure", f"{OBS}.valueQuantity.value", xml_change=xml_value(f"{OBS_X}/valueQuantity/value", "72,5"), formats=XML, model_level=True),
]  # fmt: skip

DEFECTS = [*BINDINGS, *INVARIANTS, *REFERENCES, *STRICTNESS, *OTHER]
