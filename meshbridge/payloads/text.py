"""Payload types ``text`` (strictly decoded, size-capped, control characters policed) and ``binary``
(opaque bytes: no validation, for payloads meshbridge should carry but not judge)."""

from __future__ import annotations

import codecs
import re
from collections.abc import Mapping
from typing import Any

from ..hookspecs import hookimpl
from .base import WARNING, Finding, PayloadType, ValidationResult

DEFAULT_MAX_SIZE = 100_000_000
MAX_FINDINGS = 10
# C0 controls other than TAB, LF, CR; DEL; C1 controls
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\x80-\x9f]")
_POLICIES = ("reject", "warn", "allow")


def sniff(head: bytes) -> float:
    """Text if the head decodes as UTF-8 (a cut multi-byte character at the end is fine)."""
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return 0.0
    return 0.3 if text and not _CONTROL.search(text) else 0.0


def _position(text: str, index: int) -> str:
    line = text.count("\n", 0, index) + 1
    column = index - (text.rfind("\n", 0, index) + 1) + 1
    return f"line {line}, column {column}"


def validate(data: bytes, options: Mapping[str, Any]) -> ValidationResult:
    charset = str(options.get("charset") or "utf-8")
    max_size = int(options.get("max_size") or DEFAULT_MAX_SIZE)
    policy = str(options.get("control_chars") or "reject")
    findings: list[Finding] = []
    if policy not in _POLICIES:
        findings.append(
            Finding(f"control_chars must be one of {', '.join(_POLICIES)}, not {policy!r}", code="text.options")
        )
        return ValidationResult("text", tuple(findings))
    if len(data) > max_size:
        return ValidationResult(
            "text", (Finding(f"payload is {len(data)} bytes, over the {max_size}-byte cap", code="text.size"),)
        )
    try:
        codecs.lookup(charset)
    except LookupError:
        return ValidationResult("text", (Finding(f"unknown charset {charset!r}", code="text.charset"),))
    try:
        text = data.decode(charset)  # strict
    except UnicodeDecodeError as exc:
        prefix = data[: exc.start].decode(charset, errors="replace")
        return ValidationResult(
            "text",
            (
                Finding(
                    f"not valid {charset}: {exc.reason} (byte 0x{data[exc.start]:02x} at offset {exc.start})",
                    where=_position(prefix, len(prefix)),
                    code="text.encoding",
                ),
            ),
        )
    if policy != "allow":
        severity = WARNING if policy == "warn" else "error"
        for match in list(_CONTROL.finditer(text))[:MAX_FINDINGS]:
            findings.append(
                Finding(
                    f"control character U+{ord(match.group()):04X} is not allowed in text",
                    where=_position(text, match.start()),
                    severity=severity,
                    code="text.control",
                )
            )
    details = {"charset": charset, "characters": len(text), "lines": text.count("\n") + (not text.endswith("\n"))}
    return ValidationResult("text", tuple(findings), details)


def _accept(data: bytes, options: Mapping[str, Any]) -> ValidationResult:
    return ValidationResult("binary", (), {"size": len(data)})


TEXT = PayloadType(
    "text",
    "text/plain",
    sniff,
    validate,
    "Plain text: strict decoding, size cap, control characters",
    b"Discharge summary for a demo patient.\nNo real patient data.\n",
)
BINARY = PayloadType(
    "binary", "application/octet-stream", lambda head: 0.01, _accept, "Opaque bytes: carried, never validated"
)


@hookimpl
def meshbridge_payload_types() -> list[PayloadType]:
    return [TEXT, BINARY]
