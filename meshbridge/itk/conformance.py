"""ITK3 conformance: the TKW-x style header checks, as ISO Schematron, returning :class:`Finding`s.

``check(data)`` picks ``itk3-response.sch`` for ``ITK008M`` and ``itk3-message.sch`` for everything
else (package data, in ``meshbridge/schemas/``). Each finding's ``code`` is ``itk.<ITK response
code>`` (the code a receiver would answer with, e.g. ``itk.10004``), ``severity`` is ``error`` or
``warning`` (the Schematron's ``role="warning"`` asserts) and ``where`` an XPath-like location
(``/Bundle/entry[1]/resource/...``).
Bytes that are not an ITK3 message at all give one ``itk.10009`` error. JSON messages are converted
to FHIR XML for the check only. Never raises for bad input.
"""

from __future__ import annotations

import re
import threading

from lxml import etree, isoschematron

from ..errors import ItkError, ItkUnreadable
from ..payloads.base import ERROR, WARNING, Finding
from ..schemas import FOLDER
from .parse import load, read_header

__all__ = [
    "MESSAGE_SCHEMA",
    "RESPONSE_SCHEMA",
    "SCHEMAS",
    "check",
    "check_tree",
    "schematron",
]

#: The Schematron files ship as package data, wherever meshbridge is installed (a checkout, a wheel).
SCHEMAS = FOLDER
MESSAGE_SCHEMA = "itk3-message.sch"
RESPONSE_SCHEMA = "itk3-response.sch"

_SVRL = "http://purl.oclc.org/dsdl/svrl"
_CODE = re.compile(r"\[(\d{5})\]\s*")
_STEP = re.compile(r"\*\[local-name\(\)='([^']+)' and namespace-uri\(\)='[^']*'\]")
_WARNING_ROLES = {"warning", "warn", "info", "information"}

_lock = threading.Lock()
_compiled: dict[str, isoschematron.Schematron] = {}


def schematron(name: str) -> isoschematron.Schematron:
    """The compiled Schematron ``<name>`` of the package's ``schemas/``, compiled once and cached."""
    with _lock:
        compiled = _compiled.get(name)
        if compiled is None:
            resource = SCHEMAS / name
            try:
                document = etree.ElementTree(etree.fromstring(resource.read_bytes(), base_url=str(resource)))
                compiled = isoschematron.Schematron(document, store_report=True)
            except (OSError, etree.LxmlError) as e:
                raise ItkError(f"ITK3 Schematron {resource} cannot be loaded ({e}); is meshbridge whole?") from e
            _compiled[name] = compiled
        return compiled


def check(data: bytes) -> list[Finding]:
    """Every ITK3 conformance problem in one message or response (empty list: conformant)."""
    try:
        root, _ = load(data)
        header = read_header(root)
    except ItkUnreadable as e:
        return [Finding(f"not a readable ITK3 message: {e.reason}", severity=ERROR, code="itk.10009")]
    return check_tree(root, response=header.is_response)


def check_tree(root: etree._Element, *, response: bool) -> list[Finding]:
    """:func:`check` for an already loaded FHIR XML root element."""
    compiled = schematron(RESPONSE_SCHEMA if response else MESSAGE_SCHEMA)
    with _lock:  # the report lives on the shared compiled object
        compiled.validate(root.getroottree())
        report = compiled.validation_report
    assert report is not None, "schematron() compiles with store_report=True"
    return [_finding(node) for node in report.iter(f"{{{_SVRL}}}failed-assert", f"{{{_SVRL}}}successful-report")]


def _finding(node: etree._Element) -> Finding:
    text = " ".join("".join(node.itertext()).split())
    match = _CODE.match(text)
    code = f"itk.{match.group(1)}" if match else "itk.conformance"
    message = text[match.end() :] if match else text
    severity = WARNING if (node.get("role") or "").lower() in _WARNING_ROLES else ERROR
    return Finding(message, where=_location(node.get("location")), severity=severity, code=code)


def _location(location: str | None) -> str | None:
    """``/*[local-name()='Bundle' and namespace-uri()='...']/...`` -> ``/Bundle/...``."""
    return _STEP.sub(r"\1", location) if location else None
