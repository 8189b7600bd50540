"""Outbound transforms (``meshbridge_transform``), checked: the bytes validated are the bytes sent.

Each transform sees the previous one's output. When any changed the payload, the final bytes are
validated again, as the route's type and with every ``meshbridge_validate`` hook, before they are
stored; findings on them name the transforms that ran. A transform that raises is a finding too.
``binary`` routes are never transformed: their payloads are streamed from disk as given, and
there is no type to check a transform's output against.
"""

from __future__ import annotations

import dataclasses
import logging

from .config import Route
from .models import Direction
from .payloads.base import Finding, Payload, ValidationResult
from .plugins import Plugins
from .validation import check, needs_validation

log = logging.getLogger("meshbridge")


def transformed(plugins: Plugins, payload: Payload, route: Route, declared: str) -> tuple[bytes, ValidationResult]:
    """The bytes to store for a validated outbound ``payload`` and their verdict.

    ``declared`` is the payload type the send asked for (the route's, or ``auto``); the result of
    a payload no transform changed is the payload's own.
    """
    assert payload.result is not None
    if not needs_validation(declared):
        return payload.data, payload.result
    data, ran = payload.data, []
    for impl in plugins.transforms():
        try:
            output = plugins.transform_with(impl, dataclasses.replace(payload, data=data), route)
        except Exception as exc:  # a plugin's bug: the message is refused, meshbridge goes on
            log.exception("transform of plugin %s crashed", impl.plugin_name)
            message = f"the transform of plugin {impl.plugin_name} failed: {type(exc).__name__}: {exc}"
            return data, _refused(payload.result, Finding(message, code="payload.transform-crashed"))
        if output is None or output == data:
            continue
        if not isinstance(output, bytes | bytearray | memoryview):
            message = f"the transform of plugin {impl.plugin_name} returned {type(output).__name__}, not bytes"
            return data, _refused(payload.result, Finding(message, code="payload.transform-crashed"))
        data = bytes(output)
        ran.append(impl.plugin_name)
    if not ran:
        return data, payload.result
    result = check(
        plugins,
        data,
        payload_type=declared,
        route=route,
        direction=Direction.OUT,
        workflow_id=payload.workflow_id,
        filename=payload.filename,
    )
    by = ", ".join(ran)
    findings = tuple(
        dataclasses.replace(finding, message=f"after the transform of {by}: {finding.message}")
        for finding in result.findings
    )
    return data, ValidationResult(result.payload_type, findings, {**result.details, "transformed_by": ran})


def _refused(result: ValidationResult, finding: Finding) -> ValidationResult:
    return ValidationResult(result.payload_type, (*result.findings, finding), result.details)
