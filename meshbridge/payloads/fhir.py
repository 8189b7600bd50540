"""The ``fhir`` payload type: FHIR JSON or XML, checked with the fhir.resources models.

``options["fhir_version"]`` picks the models: ``STU3`` (default; ITK3 messaging is STU3) uses
``fhir.resources.STU3``, ``R4`` uses ``fhir.resources.R4B`` (R4 payloads fail under the R5 models,
and plain R4 models no longer ship), ``R5`` uses the top-level ``fhir.resources``. The models check
structure, datatypes, cardinality and required elements of the base specification; they check no
profiles, value sets or invariants.

What is checked, and how it is reported:

* encoding: FHIR is UTF-8. A UTF-8 BOM before JSON is an error (``fhir.bom``; RFC 8259 section 8.1
  says JSON senders must not add one, and parsers differ in whether they accept it), before XML only
  a warning (XML 1.0 allows it). UTF-16/32 and invalid UTF-8 are errors (``fhir.encoding``);
* JSON syntax with line and column (``fhir.json``); XML through meshbridge's hardened parser
  (its ``xml.*`` findings, DOCTYPE refused) and the FHIR namespace (``fhir.namespace``);
* ``resourceType``: missing, not a string, unknown to the version, abstract, or missing on a Bundle
  entry or contained resource (``fhir.resource-type``), anywhere in the payload;
* everything the models refuse (``fhir.structure``), one finding per error, ``where`` being the FHIR
  element path such as ``Bundle.entry[0].resource.status``. Findings do not repeat payload values:
  they end up in logs and events and the values may be patient data.

The bytes are never changed. For XML a private parse with comments and processing instructions
removed is fed to the models, because fhir.resources 8.3.0 refuses a comment placed just before a
primitive ``value[x]`` inside an extension and fails outright on a PI.

JSON is read in :mod:`.fhir_json`, XML in :mod:`.fhir_xml`, the models and their errors in
:mod:`.fhir_models`. fhir.resources is imported on first use, once per version, so importing this
module stays cheap.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..hookspecs import hookimpl
from . import fhir_json, fhir_rules, fhir_xml, xml, xml_parsing
from .base import WARNING, Finding, PayloadType, ValidationResult
from .fhir_models import DEFAULT_VERSION, FHIR_NS, VERSIONS, abstract_resources, facts, models

__all__ = ["FHIR_NS", "PAYLOAD_TYPE", "VERSIONS", "sniff", "validate"]

NAME = "fhir"
JSON_MEDIA_TYPE, XML_MEDIA_TYPE = "application/fhir+json", "application/fhir+xml"
MAX_FINDINGS = 100
_JSON_HEAD = re.compile(rb'^\s*\{.*?"resourceType"\s*:', re.S)
_UTF8_BOM = b"\xef\xbb\xbf"
_WIDE_BOMS = {
    b"\x00\x00\xfe\xff": "UTF-32",
    b"\xff\xfe\x00\x00": "UTF-32",
    b"\xfe\xff": "UTF-16",
    b"\xff\xfe": "UTF-16",
}


# --------------------------------------------------------------------------- sniffing


def sniff(head: bytes) -> float:
    """0.95 for JSON with a ``"resourceType"`` key in the head, or XML whose root is in the FHIR namespace."""
    try:
        text = head
        for bom in _WIDE_BOMS:
            if head.startswith(bom):  # not acceptable FHIR, but recognisably FHIR: validate() says why
                text = xml_parsing.text_head(head).encode("utf-8", "ignore")
                break
        else:
            if head.startswith(_UTF8_BOM):
                text = head[3:]
        first = text.lstrip(b" \t\r\n")[:1]
        if first == b"{":
            return 0.95 if _JSON_HEAD.match(text) else 0.0
        if first == b"<":
            root = xml.root_name(head)
            return 0.95 if root and root[0] == FHIR_NS else 0.0
        return 0.0
    except Exception:  # sniffing must never raise
        return 0.0


# --------------------------------------------------------------------------- validation


def validate(data: bytes, options: Mapping[str, Any]) -> ValidationResult:
    """Validate FHIR JSON or XML against the models of ``options["fhir_version"]`` (default STU3)."""
    try:
        return _validate(bytes(data), options)
    except Exception as exc:  # a validator reports, it does not raise
        message = f"the FHIR validator failed unexpectedly ({type(exc).__name__})"  # its text may hold payload values
        return ValidationResult(NAME, (Finding(message, code="fhir.internal"),))


def _validate(data: bytes, options: Mapping[str, Any]) -> ValidationResult:
    wanted = str(options.get("fhir_version") or DEFAULT_VERSION).strip().upper()
    if wanted not in VERSIONS:
        choices = ", ".join(VERSIONS)
        message = f"unknown fhir_version {wanted!r} in the route's settings (use one of {choices})"
        return ValidationResult(NAME, (Finding(message, code="fhir.version"),))
    version, package = VERSIONS[wanted]
    strictness = str(options.get("fhir_strictness") or fhir_rules.DEFAULT_STRICTNESS).strip().lower()
    if strictness not in fhir_rules.STRICTNESS:
        choices = ", ".join(fhir_rules.STRICTNESS)
        message = f"unknown fhir_strictness {strictness!r} in the route's settings (use one of {choices})"
        return ValidationResult(NAME, (Finding(message, code="fhir.strictness"),))
    details: dict[str, Any] = {"fhir_version": version}

    for bom, name in _WIDE_BOMS.items():
        if data.startswith(bom):
            message = f"FHIR must be UTF-8; this payload is {name} (it starts with a {name} byte order mark)"
            return ValidationResult(NAME, (Finding(message, "byte 0", code="fhir.encoding"),), details)
    findings: list[Finding] = []
    body = data
    has_bom = data.startswith(_UTF8_BOM)
    if has_bom:
        body = data[3:]
    stripped = body.lstrip(b" \t\r\n")
    first = stripped[:1]
    if len(stripped) >= 2 and (not stripped[0] or not stripped[1]):
        message = "FHIR must be UTF-8; this payload has NUL bytes between characters, as UTF-16 does"
        return ValidationResult(NAME, (Finding(message, code="fhir.encoding"),), details)

    if first == b"{":
        details.update(format="json", media_type=JSON_MEDIA_TYPE)
        if has_bom:
            message = "JSON must not start with a byte order mark (RFC 8259 section 8.1); remove the 3 bytes EF BB BF"
            findings.append(Finding(message, "byte 0", code="fhir.bom"))
        more, model, document = fhir_json.validate_json(body, models(package), version, details)
        parsed = fhir_rules.Parsed(wanted, "json", resource=document)
    elif first == b"<":
        details.update(format="xml", media_type=XML_MEDIA_TYPE)
        if has_bom:
            message = "FHIR XML starts with a UTF-8 byte order mark (allowed by XML, but some receivers refuse it)"
            findings.append(Finding(message, "byte 0", WARNING, "fhir.bom"))
        more, model, document = fhir_xml.validate_xml(data, models(package), version, details)
        parsed = fhir_rules.Parsed(wanted, "xml", root=document)
    else:
        shown = "nothing" if not first else f"{first!r}"
        message = f"not FHIR JSON or XML: the first character after whitespace is {shown}, not '{{' or '<'"
        return ValidationResult(NAME, (Finding(message, code="fhir.format"),), details)

    findings += more
    if model is not None:  # the checks beyond the models run on what the models accept
        abstract = abstract_resources(model, details["resource_type"], version)
        details.update(facts(model))
        findings += abstract or fhir_rules.check(parsed, strictness)  # an abstract resource is a refusal
    return ValidationResult(NAME, tuple(_capped(findings)), details)


def _capped(findings: list[Finding]) -> list[Finding]:
    if len(findings) <= MAX_FINDINGS:
        return findings
    more = len(findings) - MAX_FINDINGS
    return [*findings[:MAX_FINDINGS], Finding(f"... and {more} more problems", code="fhir.structure")]


PAYLOAD_TYPE = PayloadType(
    name=NAME,
    media_type=XML_MEDIA_TYPE,
    sniff=sniff,
    validate=validate,
    description="FHIR JSON or XML (STU3, R4 via R4B, or R5), checked with fhir.resources",
    example=b"""<Patient xmlns="http://hl7.org/fhir">
  <id value="demo-patient"/>
  <identifier>
    <system value="https://fhir.nhs.uk/Id/nhs-number"/>
    <value value="9000000009"/>
  </identifier>
  <name><family value="Test"/><given value="Demo"/></name>
  <gender value="unknown"/>
  <birthDate value="1970-01-01"/>
</Patient>
""",
)


@hookimpl
def meshbridge_payload_types() -> list[PayloadType]:
    return [PAYLOAD_TYPE]
