"""FHIR JSON: parsed exactly (decimals as ``Decimal``, no NaN), ``resourceType`` checked at the
top and in every nested resource, then handed to the models."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from types import ModuleType
from typing import Any

from .base import Finding
from .fhir_models import json_type, model_class, pydantic_findings, unexpected


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number (RFC 8259)")


def _line_col(data: bytes, pos: int) -> str:
    line, line_start = data.count(b"\n", 0, pos) + 1, data.rfind(b"\n", 0, pos) + 1
    return f"line {line}, column {pos - line_start + 1}"


def validate_json(
    body: bytes, mod: ModuleType, version: str, details: dict[str, Any]
) -> tuple[list[Finding], Any, Any]:
    """The models' findings, the model and the parsed object when they accepted it (else None, None)."""
    from pydantic import ValidationError

    try:
        # Decimal keeps FHIR decimals exact; json.loads + model_validate is as fast as model_validate_json
        # and lets resourceType sit anywhere among the top-level keys.
        obj = json.loads(body, parse_float=Decimal, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        return (
            [Finding(f"not valid JSON: {exc.msg}", f"line {exc.lineno}, column {exc.colno}", code="fhir.json")],
            None,
            None,
        )
    except UnicodeDecodeError as exc:
        message = f"not valid UTF-8 (byte 0x{body[exc.start]:02X} at offset {exc.start}); FHIR must be UTF-8"
        return [Finding(message, _line_col(body, exc.start), code="fhir.encoding")], None, None
    except RecursionError:
        return [Finding("not acceptable JSON: nested too deeply", code="fhir.json")], None, None
    except ValueError as exc:  # NaN/Infinity, integers over Python's digit limit
        return [Finding(f"not acceptable JSON: {exc}", code="fhir.json")], None, None

    if not isinstance(obj, dict):
        return [Finding(f"FHIR JSON must be an object, not {json_type(obj)}", code="fhir.json")], None, None
    if "resourceType" not in obj:
        return [Finding("resourceType is missing from the top-level object", code="fhir.resource-type")], None, None
    cls, problem = model_class(mod, obj["resourceType"], version, "resourceType")
    if problem:
        return [problem], None, None
    resource_type = details["resource_type"] = obj["resourceType"]
    try:
        return [], cls.model_validate(obj), obj
    except ValidationError as exc:
        return pydantic_findings(exc, resource_type, version), None, None
    except Exception as exc:  # fhir.resources raises KeyError/TypeError for bad nested resourceType values
        found = list(_bad_resource_types(obj, resource_type, mod, version))
        return found or [unexpected(exc, None)], None, None


def _bad_resource_types(obj: Any, path: str, mod: ModuleType, version: str, depth: int = 0) -> Iterator[Finding]:
    """Every nested ``resourceType`` that is not a string or not a resource of ``version``."""
    if depth > 200:
        return
    if isinstance(obj, dict):
        if depth and "resourceType" in obj:
            _, problem = model_class(mod, obj["resourceType"], version, path)
            if problem:
                yield problem
        for key, value in obj.items():
            if isinstance(value, dict | list):
                yield from _bad_resource_types(value, f"{path}.{key}", mod, version, depth + 1)
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            if isinstance(value, dict | list):
                yield from _bad_resource_types(value, f"{path}[{i}]", mod, version, depth + 1)
