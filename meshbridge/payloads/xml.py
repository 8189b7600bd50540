"""The ``xml`` payload type: well-formed under the one hardened parser
(:mod:`~meshbridge.payloads.xml_parsing`), then the route's optional XSD and ISO Schematron
(:mod:`~meshbridge.payloads.xml_schemas`).

``validate(data, options)`` checks well-formedness and, when the route says so, an XSD
(``xml_schema``) and an ISO Schematron (``schematron``), looked up as given, then in each folder of
``schema_dirs``, then in the package's ``schemas/`` folder; a schema that cannot be found or
compiled refuses the payload (``xml.schema-unavailable``). The parser and schema lookup are
re-exported here (``xml.parse``, ``xml.safe_parser``, ``xml.find_schema`` …).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..errors import SchemaUnavailable, XMLRejected
from ..hookspecs import hookimpl
from .base import Finding, PayloadType, ValidationResult
from .xml_parsing import parse, root_name, safe_parser, text_head
from .xml_schemas import MAX_FINDINGS, SCHEMA_DIR, find_schema, schema_findings

__all__ = [
    "MAX_FINDINGS",
    "PAYLOAD_TYPE",
    "SCHEMA_DIR",
    "SchemaUnavailable",
    "XMLRejected",
    "find_schema",
    "parse",
    "root_name",
    "safe_parser",
    "sniff",
    "validate",
]

NAME = "xml"


_MARKUP_START = re.compile(r"<[^\W\d.-]|<[?!:_]")  # an element's name, a PI, a comment or DOCTYPE


def sniff(head: bytes) -> float:
    """0.6 when the first thing after an optional BOM and whitespace is ``<`` and what may follow
    it in XML (a name, ``?`` or ``!``); 0 otherwise (``<<URGENT>>`` is text)."""
    try:
        text = text_head(head, 1024).lstrip(" \t\r\n")
        return 0.6 if _MARKUP_START.match(text) else 0.0
    except Exception:  # sniffing must never raise
        return 0.0


def validate(data: bytes, options: Mapping[str, Any]) -> ValidationResult:
    """Well-formedness under the hardened parser, then the optional XSD and Schematron."""
    try:
        return _validate(data, options)
    except Exception as exc:  # a validator reports, it does not raise
        message = f"the XML validator failed unexpectedly ({type(exc).__name__}: {exc})"
        return ValidationResult(NAME, (Finding(message, code="xml.internal"),))


def _validate(data: bytes, options: Mapping[str, Any]) -> ValidationResult:
    try:
        root = parse(data)
    except XMLRejected as exc:
        return ValidationResult(NAME, (exc.finding,))
    details: dict[str, Any] = {"root": root.tag, "encoding": root.getroottree().docinfo.encoding}
    findings = schema_findings(root, options, details)
    return ValidationResult(NAME, tuple(findings), details)


PAYLOAD_TYPE = PayloadType(
    name=NAME,
    media_type="application/xml",
    sniff=sniff,
    validate=validate,
    description="well-formed XML (hardened parser, no DTDs), optional XSD and ISO Schematron",
    example=b'<?xml version="1.0" encoding="UTF-8"?>\n<referral xmlns="urn:example:meshbridge:demo">'
    b"<service>Demo clinic</service><urgency>routine</urgency></referral>\n",
)


@hookimpl
def meshbridge_payload_types() -> list[PayloadType]:
    return [PAYLOAD_TYPE]
