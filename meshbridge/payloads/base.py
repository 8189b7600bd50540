"""What every payload type, built-in or plugin, is made of: ``PayloadType``, ``Finding``, ``ValidationResult``.

A payload type is a name, a media type, a ``sniff(head) -> confidence`` and a
``validate(data, options) -> ValidationResult``. Validators never raise for bad input: every
problem a sender can cause becomes a :class:`Finding` a person can act on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

ERROR, WARNING = "error", "warning"


@dataclass(frozen=True)
class Finding:
    """One problem in a payload.

    :param message: what is wrong, in words a person can act on.
    :param where: where it is: an element path (``Bundle.entry[2].resource.status``), a segment
        number (``segment 14 (UNT)``), a line and column (``line 3, column 7``), or ``None``.
    :param severity: ``"error"`` (the payload is refused) or ``"warning"`` (recorded only).
    :param code: a stable machine-readable code, e.g. ``edifact.unt-count`` or ``xml.doctype``.
    """

    message: str
    where: str | None = None
    severity: str = ERROR
    code: str | None = None

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass(frozen=True)
class ValidationResult:
    """The verdict on one payload.

    :param payload_type: the type that validated it (``fhir``, ``xml``, ``edifact``, ``text`` ...).
    :param findings: every problem found; errors make the payload invalid.
    :param details: facts a later step may use, e.g. ``{"resource_type": "Bundle"}``,
        ``{"syntax": "UNOA", "interchange_ref": "00000003"}``.
    """

    payload_type: str
    findings: tuple[Finding, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        return not any(f.severity == ERROR for f in self.findings)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == ERROR]

    def as_json(self) -> dict[str, Any]:
        """What ``validate --json`` prints: ``valid``, ``payload_type``, ``details`` (a value JSON
        has no type for as its text) and ``findings``."""
        import json

        details = json.loads(json.dumps(dict(self.details), default=str))
        findings = [f.as_dict() for f in self.findings]
        return {"valid": self.valid, "payload_type": self.payload_type, "details": details, "findings": findings}


Sniffer = Callable[[bytes], float]
Validator = Callable[[bytes, Mapping[str, Any]], ValidationResult]


@dataclass(frozen=True)
class PayloadType:
    """A kind of payload meshbridge can recognise and validate.

    :param name: short unique name used in config (``payload_type = "edifact"``).
    :param media_type: the MIME type sent as ``mex-Content-Type`` and in ITK ``Binary.contentType``.
    :param sniff: ``sniff(head)`` looks at up to the first 64 KiB (already decompressed and with
        any BOM left in) and returns a confidence from 0.0 (not mine) to 1.0 (certainly mine).
        It must be fast and must not raise.
    :param validate: ``validate(data, options)`` checks the whole payload. ``options`` are the
        route's settings (``fhir_version``, ``xml_schema``, ``schematron``, ``charset``,
        ``max_size``, ``control_chars`` and anything under the route's ``options`` table). It
        returns findings instead of raising.
    :param description: one line for ``meshbridge plugins``.
    :param example: a small valid payload (no patient data); ``meshbridge demo`` sends one of
        every installed type that has an example.
    """

    name: str
    media_type: str
    sniff: Sniffer
    validate: Validator
    description: str = ""
    example: bytes | None = None

    def as_json(self) -> dict[str, str]:
        """What ``plugins --json`` prints of it: ``name``, ``media_type``, ``description``."""
        return {"name": self.name, "media_type": self.media_type, "description": self.description}


@dataclass(frozen=True)
class Payload:
    """A payload on its way through the pipeline, as hooks see it.

    :param data: the bytes exactly as they will be sent or were received (never re-serialised).
    :param payload_type: the detected or configured type name.
    :param direction: ``"out"`` or ``"in"``.
    :param workflow_id: the MESH workflow id.
    :param filename: the file name, when there is one.
    :param result: the payload type's own :class:`ValidationResult`.
    """

    data: bytes
    payload_type: str
    direction: str
    workflow_id: str | None = None
    filename: str | None = None
    result: ValidationResult | None = None
