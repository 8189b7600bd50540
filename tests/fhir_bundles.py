"""Valid FHIR message Bundles (STU3 and R4) for the invariant and reference tests, and FHIR XML
written from them in the definitions' element order (so one defect can be tested in both formats)."""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from typing import Any

from meshbridge.payloads import fhir
from meshbridge.payloads.base import ValidationResult
from meshbridge.payloads.fhir_definitions import Definitions, definitions

PATIENT, ORG, OBS, HEADER = (f"urn:uuid:0000000{n}-1111-4222-8333-444444444444" for n in range(4))
ENTRY = {"header": 0, "patient": 1, "org": 2, "obs": 3}


def bundle(version: str) -> dict[str, Any]:
    """A message Bundle: MessageHeader, Patient, Organization, Observation (urn:uuid fullUrls)."""
    header: dict[str, Any] = {"resourceType": "MessageHeader", "id": HEADER[9:]}
    if version == "STU3":
        header["event"] = {"system": "https://example.org/events", "code": "result"}
        header["timestamp"] = "2024-01-02T10:00:00+00:00"
    else:
        header["eventCoding"] = {"system": "https://example.org/events", "code": "result"}
    header["source"] = {"endpoint": "https://example.org/mesh/X26"}
    header["focus"] = [{"reference": OBS}]
    patient = {
        "resourceType": "Patient",
        "id": PATIENT[9:],
        "name": [{"family": "Test", "given": ["Demo"]}],
        "gender": "unknown",
        "birthDate": "1970-01-01",
        "managingOrganization": {"reference": ORG},
    }
    org = {"resourceType": "Organization", "id": ORG[9:], "identifier": [{"value": "X26"}], "name": "Test Trust"}
    obs = {
        "resourceType": "Observation",
        "id": OBS[9:],
        "extension": [{"url": "https://example.org/note", "valueString": "checked"}],
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}], "text": "Heart rate"},
        "subject": {"reference": PATIENT},
        "effectivePeriod": {"start": "2024-01-02T09:00:00+00:00", "end": "2024-01-02T09:30:00+00:00"},
        "valueQuantity": {
            "value": Decimal("72.5"),
            "unit": "/min",
            "system": "http://unitsofmeasure.org",
            "code": "/min",
        },
    }
    entries = [(HEADER, header), (PATIENT, patient), (ORG, org), (OBS, obs)]
    out: dict[str, Any] = {"resourceType": "Bundle", "id": "b1", "type": "message"}
    out["entry"] = [{"fullUrl": url, "resource": resource} for url, resource in entries]
    return out


def resource(document: dict[str, Any], name: str) -> dict[str, Any]:
    """The resource of the entry called ``name`` (header, patient, org, obs)."""
    found: dict[str, Any] = document["entry"][ENTRY[name]]["resource"]
    return found


def changed(version: str, change: Any) -> dict[str, Any]:
    """A copy of the baseline with ``change(document)`` applied."""
    document = copy.deepcopy(bundle(version))
    change(document)
    return document


def to_json(document: dict[str, Any]) -> bytes:
    return json.dumps(document, default=float).encode()


def to_xml(document: dict[str, Any], version: str) -> bytes:
    """FHIR XML of a JSON-shaped resource, children in the definitions' order."""
    defs = definitions(version)
    kind = document["resourceType"]
    body = _element(kind, document, kind, defs, ' xmlns="http://hl7.org/fhir"')
    return body.encode()


def _element(name: str, value: dict[str, Any], path: str | None, defs: Definitions, extra: str = "") -> str:
    node = defs.node(path) if path else None
    attributes, children = extra, []
    keys = [k for k in value if k != "resourceType" and not k.startswith("_")]
    keys += [k[1:] for k in value if k.startswith("_") and k[1:] not in value]
    position = {n: c[2] for n, c in node.children.items()} if node else {}  # Child.index (a tuple method too)
    for key in sorted(keys, key=lambda k: position.get(k, 999)):
        child = node.children.get(key) if node else None
        if child is not None and child.attr:
            attributes += f' {key}="{value[key]}"'
            continue
        content, extras = value.get(key), value.get(f"_{key}")
        items = content if isinstance(content, list) else [content]
        more = extras if isinstance(extras, list) else [extras] * len(items)
        for item, item_extra in zip(items, more, strict=False):
            children.append(_child(key, item, item_extra, child, defs))
    return f"<{name}{attributes}>{''.join(children)}</{name}>"


def _child(key: str, item: Any, extra: Any, child: Any, defs: Definitions) -> str:
    if child is not None and child.type == "xhtml":
        return str(item)
    if (child is not None and child.primitive) or not isinstance(item, dict):
        shown = "" if item is None else f' value="{str(item).lower() if isinstance(item, bool) else item}"'
        inner = ""
        if isinstance(extra, dict):
            shown += f' id="{extra["id"]}"' if "id" in extra else ""
            inner = "".join(_element("extension", e, "Extension", defs) for e in extra.get("extension", ()))
        return f"<{key}{shown}>{inner}</{key}>" if inner else f"<{key}{shown}/>"
    if "resourceType" in item:
        return f"<{key}>{_element(item['resourceType'], item, item['resourceType'], defs)}</{key}>"
    return _element(key, item, child.node if child else None, defs)


def validate(document: dict[str, Any], version: str, form: str) -> ValidationResult:
    data = to_json(document) if form == "json" else to_xml(document, version)
    return fhir.validate(data, {"fhir_version": version})


def pairs(result: ValidationResult) -> list[tuple[str | None, str | None]]:
    return [(f.code, f.where) for f in result.findings]
