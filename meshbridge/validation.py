"""Detect and validate one payload: size cap, gzip, sniffing, the type's validator, plugin findings.

Never raises for bad input: a crashing validator becomes a finding naming it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from .config import Route
from .models import Direction
from .payloads.base import Finding, Payload, ValidationResult
from .payloads.sniff import AUTO, detect
from .plugins import Plugins

log = logging.getLogger("meshbridge")

DEFAULT_CAP = 100_000_000  # bytes meshbridge will hold in memory to validate one payload


def route_options(route: Route | None) -> dict[str, Any]:
    """The options a validator sees: the route's typed settings, then its free ``options`` table."""
    if route is None:
        return {}
    return {"fhir_version": route.fhir_version, "fhir_strictness": route.fhir_strictness, **route.options}


def needs_validation(payload_type: str) -> bool:
    return payload_type != "binary"


def oversize(payload_type: str, size: int, cap: int) -> ValidationResult:
    finding = Finding(
        f"payload is {size} bytes, over the {cap}-byte validation cap (route option max_size)", code="payload.size"
    )
    return ValidationResult(payload_type, (finding,))


def check(
    plugins: Plugins,
    data: bytes,
    *,
    payload_type: str = AUTO,
    options: Mapping[str, Any] | None = None,
    route: Route | None = None,
    direction: str = Direction.OUT,
    workflow_id: str | None = None,
    filename: str | None = None,
) -> ValidationResult:
    options = {**route_options(route), **(options or {})}
    cap = int(options.get("max_size") or DEFAULT_CAP)
    if len(data) > cap:
        return oversize(payload_type, len(data), cap)
    types = plugins.payload_types()
    detection = detect(data, payload_type, types, cap)
    if detection.findings:
        return ValidationResult(detection.payload_type, detection.findings)
    name = detection.payload_type
    try:
        result = types[name].validate(detection.content, options)
    except Exception as exc:
        log.exception("payload type %s crashed", name)
        result = ValidationResult(
            name,
            (Finding(f"the {name} validator failed: {type(exc).__name__}: {exc}", code="payload.validator-crashed"),),
        )
    details = {**result.details, "confidence": round(detection.confidence, 2)}
    if detection.compressed:
        details["gzip"] = True
    payload = Payload(data, name, direction, workflow_id, filename, result)
    try:
        extra = plugins.extra_findings(payload, route)
    except Exception as exc:
        log.exception("a meshbridge_validate hook crashed")
        extra = [Finding(f"a validation plugin failed: {type(exc).__name__}: {exc}", code="payload.plugin-crashed")]
    return ValidationResult(name, (*result.findings, *extra), details)
