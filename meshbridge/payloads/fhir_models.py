"""The fhir.resources models behind the ``fhir`` payload type: which package serves each
``fhir_version``, the model class of a ``resourceType``, the models' pydantic errors as findings
with FHIR element paths, and what a validated model tells (abstract resources it let through,
Bundle facts). Shared by :mod:`.fhir_json` and :mod:`.fhir_xml`; fhir.resources is imported on
first use, once per version."""

from __future__ import annotations

import functools
import importlib
import re
from decimal import Decimal
from types import ModuleType
from typing import Any

from .base import Finding

FHIR_NS = "http://hl7.org/fhir"
DEFAULT_VERSION = "STU3"
#: ``fhir_version`` option -> (name used in messages, models package)
VERSIONS: dict[str, tuple[str, str]] = {
    "STU3": ("STU3", "fhir.resources.STU3"),
    "R4": ("R4", "fhir.resources.R4B"),
    "R4B": ("R4B", "fhir.resources.R4B"),
    "R5": ("R5", "fhir.resources"),
}
ABSTRACT = frozenset({"Resource", "DomainResource", "CanonicalResource", "MetadataResource"})
_RESOURCE_NAME = re.compile(r"[A-Z][A-Za-z]{0,63}")
_JSON_POSITION = re.compile(r"at line (\d+) column (\d+)")
_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}


@functools.cache
def models(package: str) -> ModuleType:
    return importlib.import_module(package)


def model_class(mod: ModuleType, name: Any, version: str, where: str | None) -> tuple[Any, Finding | None]:
    if not isinstance(name, str):
        message = f"resourceType must be a string, not {json_type(name)}"
        return None, Finding(message, where, code="fhir.resource-type")
    cls = None
    if _RESOURCE_NAME.fullmatch(name):
        try:
            cls = mod.get_fhir_model_class(name)
        except (ValueError, KeyError, AttributeError, ImportError):
            cls = None
    if cls is None or not cls.has_resource_base():
        message = f"unknown resourceType {name[:64]!r}: not a FHIR {version} resource"
        return None, Finding(message, where, code="fhir.resource-type")
    if name in ABSTRACT:
        message = f"resourceType {name!r} is abstract; a payload must name a concrete FHIR {version} resource"
        return None, Finding(message, where, code="fhir.resource-type")
    return cls, None


def json_type(value: Any) -> str:
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return "a number"
    return _JSON_TYPES.get(type(value), type(value).__name__)


def unexpected(exc: Exception, where: str | None) -> Finding:
    if isinstance(exc, RecursionError):
        return Finding(
            "the payload is nested too deeply to check (Python's recursion limit)", where, code="fhir.structure"
        )
    message = f"fhir.resources could not read this payload ({type(exc).__name__}: {exc})"
    return Finding(" ".join(message.split())[:500], where, code="fhir.structure")


# pydantic errors


def _fhir_name(segment: str) -> str:
    if segment == "resource_type":
        return "resourceType"
    if segment.endswith("__ext"):  # fhir.resources' name for a primitive's _element
        return "_" + _fhir_name(segment[:-5])
    if segment.endswith("_fhir"):  # class_fhir, for_fhir ... (Python keywords)
        return segment[:-5]
    return segment


def _loc_path(prefix: str, loc: tuple[Any, ...]) -> str:
    path = prefix
    for segment in loc:
        if isinstance(segment, int):
            path += f"[{segment}]"
        elif segment == "root" or not re.fullmatch(r"_?[A-Za-z][A-Za-z0-9_]*", str(segment)):
            continue  # fhir-core's placeholder for "this value", pydantic's validator labels
        else:
            path += f".{_fhir_name(segment)}"
    return path


def pydantic_findings(exc: Any, prefix: str, version: str) -> list[Finding]:
    findings = []
    for error in exc.errors(include_url=False, include_context=False):
        kind, loc = error.get("type", ""), tuple(error.get("loc", ()))
        if kind == "json_invalid" and not loc:
            position = _JSON_POSITION.search(error.get("msg", ""))
            where = f"line {position[1]}, column {position[2]}" if position else None
            findings.append(Finding(f"not valid JSON: {error.get('msg', '')}", where, code="fhir.json"))
            continue
        message = " ".join(str(error.get("msg", kind)).split())
        if kind == "extra_forbidden":
            message = f"unknown element: not defined here in FHIR {version}"
        elif kind in {"missing", "model_field_validation.missing"}:
            message = "required element is missing"
        elif "input" in error and kind not in {"fhir-validation-wrong-resource-type"}:
            message += f" (got {json_type(error['input'])})"
        findings.append(Finding(message, _loc_path(prefix, loc), code="fhir.structure"))
    return findings


# after validation


def abstract_resources(model: Any, path: str, version: str, depth: int = 0) -> list[Finding]:
    """Bundle entries and contained resources without a concrete resourceType (fhir.resources accepts them)."""
    found: list[Finding] = []
    if depth > 50:
        return found
    children: list[tuple[str, Any]] = []
    if model.get_resource_type() == "Bundle":
        for i, entry in enumerate(model.entry or ()):
            if entry.resource is not None:
                children.append((f"{path}.entry[{i}].resource", entry.resource))
    for i, contained in enumerate(getattr(model, "contained", None) or ()):
        children.append((f"{path}.contained[{i}]", contained))
    for where, child in children:
        if child.get_resource_type() in ABSTRACT:
            message = f"resource without a concrete resourceType (missing, or abstract '{child.get_resource_type()}')"
            found.append(Finding(message, where, code="fhir.resource-type"))
        else:
            found += abstract_resources(child, where, version, depth + 1)
    return found


def facts(model: Any) -> dict[str, Any]:
    facts: dict[str, Any] = {}
    if model.get_resource_type() != "Bundle":
        return facts
    facts["bundle_type"] = model.type
    entries = model.entry or ()
    header = entries[0].resource if entries and entries[0].resource is not None else None
    if model.type == "message" and header is not None and header.get_resource_type() == "MessageHeader":
        facts["message_header_id"] = header.id
        event = getattr(header, "event", None) or getattr(header, "eventCoding", None)  # STU3 | R4B, R5
        code = getattr(event, "code", None)
        uri = getattr(header, "eventUri", None) or getattr(header, "eventCanonical", None)
        if code or uri:
            facts["event"] = code or uri
    return facts
