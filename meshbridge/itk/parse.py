"""Read an ITK3 message or response (FHIR STU3 XML or JSON) into an :class:`ItkHeader`.

``parse`` never raises anything but :class:`ItkUnreadable` for bad input: the bytes must be a FHIR
``Bundle`` of type ``message`` whose first entry is a ``MessageHeader`` with an ``id``. Everything
else that is missing comes back as ``None`` (the conformance check says what is wrong with it).
"""

from __future__ import annotations

from typing import TypedDict

from lxml import etree

from ..errors import FhirJsonError, ItkUnreadable, XmlRefused
from .codes import EXTENSION_HANDLING, RESPONSE_EVENT, SYSTEM_RESPONSE_CODES, lookup
from .fhirxml import (
    FHIR_NS,
    elements,
    json_to_xml,
    load_json,
    local,
    parse_xml,
    sniff_format,
    value,
    xpath,
)
from .model import Handling, ItkHeader, same_id

__all__ = ["header_in_head", "load", "message_header", "parse", "read_header", "resolve"]

HEAD = 65536  # bytes of a message too big to read whole in which its MessageHeader is looked for


def parse(data: bytes) -> ItkHeader:
    """The header facts of one ITK3 message or response; :class:`ItkUnreadable` if it is not one."""
    root, fmt = load(data)
    return read_header(root, fmt)


def header_in_head(head: bytes) -> tuple[str, Handling | None] | None:
    """The MessageHeader id and handling of an XML ITK3 message, read from its first bytes only
    (for a message too big to read whole); None if they are not there (or it is JSON).

    The MessageHeader is the Bundle's first entry, a few KB in. Parsed incrementally with the same
    policy as :func:`parse`: no DTD, no entities, no network.
    """
    if sniff_format(head) != "xml" or b"<!doctype" in head.lower():
        return None
    parser = etree.XMLPullParser(
        events=("end",), resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
    )
    try:
        parser.feed(head)
        for _, element in parser.read_events():
            if element.tag == f"{{{FHIR_NS}}}MessageHeader":
                header_id = (value(element, "f:id/@value") or "").strip()
                return (header_id, _handling(element)) if header_id else None
    except etree.XMLSyntaxError:
        return None
    return None


def load(data: bytes) -> tuple[etree._Element, str]:
    """The message as a FHIR XML root element (JSON is converted) and its format, ``"xml"`` or ``"json"``."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ItkUnreadable(f"expected bytes, got {type(data).__name__}")
    if not bytes(data[:65536]).strip() and not bytes(data).strip():
        raise ItkUnreadable("the message is empty")
    fmt = sniff_format(data)
    if fmt == "json":
        try:
            return json_to_xml(_json_object(data)), fmt
        except FhirJsonError as e:
            raise ItkUnreadable(str(e)) from None
    if fmt == "xml":
        try:
            return parse_xml(data), fmt
        except XmlRefused as e:
            raise ItkUnreadable(str(e)) from None
    raise ItkUnreadable("neither XML nor JSON: an ITK3 message is a FHIR Bundle in XML (or JSON)")


def _json_object(data: bytes) -> object:
    obj = load_json(data)
    if not isinstance(obj, dict):
        raise FhirJsonError(f"JSON {type(obj).__name__}, not a FHIR resource object")
    return obj


def message_header(root: etree._Element) -> etree._Element:
    """The MessageHeader element, after checking the minimum that makes bytes an ITK3 message."""
    qname = etree.QName(root)
    if qname.namespace != FHIR_NS or qname.localname != "Bundle":
        where = f"in namespace {qname.namespace}" if qname.namespace else "in no namespace"
        raise ItkUnreadable(f"root element is {qname.localname} {where}, not a FHIR Bundle")
    bundle_type = value(root, "f:type/@value")
    if bundle_type != "message":
        raise ItkUnreadable(f"Bundle.type is {bundle_type!r}, not 'message': not an ITK3 message")
    first = elements(root, "f:entry[1]/f:resource/*[1]")
    if not first or first[0].tag != f"{{{FHIR_NS}}}MessageHeader":
        found = local(first[0]) if first else "nothing"
        raise ItkUnreadable(f"the first Bundle entry holds {found}, not the MessageHeader")
    header = first[0]
    if not (value(header, "f:id/@value") or "").strip():
        raise ItkUnreadable("MessageHeader has no id: the message cannot be correlated")
    return header


def read_header(root: etree._Element, fmt: str = "xml") -> ItkHeader:
    """:func:`parse` for an already loaded root element."""
    header = message_header(root)
    event_code = value(header, "f:event/f:code/@value")
    is_response = (event_code or "").strip() == RESPONSE_EVENT
    fields: _ResponseFields = _response(root, header) if is_response else {}
    return ItkHeader(
        message_id=value(header, "f:id/@value") or "",
        bundle_id=value(root, "f:id/@value"),
        bundle_identifier=value(root, "f:identifier/f:value/@value"),
        event_code=event_code,
        event_display=value(header, "f:event/f:display/@value"),
        handling=_handling(header),
        source_endpoint=value(header, "f:source/f:endpoint/@value"),
        timestamp=value(header, "f:timestamp/@value"),
        is_response=is_response,
        format=fmt,
        payload_kind=_payload_kind(root, header),
        **fields,
    )


# --------------------------------------------------------------------------- handling


def _key(ext: etree._Element, name: str) -> list[etree._Element]:
    return xpath(ext, "f:extension[@url = $k]", k=name)


def _flag(ext: etree._Element, name: str) -> bool | None:
    seen = {str(v) for v in xpath(ext, "f:extension[@url = $k]/f:valueBoolean/@value", k=name)}
    if len(_key(ext, name)) != 1 or len(seen) != 1:
        return None
    return {"true": True, "false": False}.get(seen.pop())


def _handling(header: etree._Element) -> Handling | None:
    found = xpath(header, "f:extension[@url = $u]", u=EXTENSION_HANDLING)
    if not found:
        return None
    ext = found[0]
    return Handling(
        bus_ack=_flag(ext, "BusAckRequested"),
        inf_ack=_flag(ext, "InfAckRequested"),
        recipient_type=value(ext, "f:extension[@url = 'RecipientType']/f:valueCoding/f:code/@value"),
        message_definition=value(ext, "f:extension[@url = 'MessageDefinition']/f:valueReference/f:reference/@value"),
        sender_reference=value(ext, "f:extension[@url = 'SenderReference']/f:valueString/@value"),
        local_extension=_any_value(_key(ext, "LocalExtension")),
    )


def _any_value(keys: list[etree._Element]) -> str | None:
    """LocalExtension is ``value[x]`` of any type: its ``@value``, a coding's code, or the first value inside."""
    if not keys:
        return None
    for path in ("@value", "f:code/@value", ".//@value"):
        found = value(keys[0], f"*[starts-with(local-name(), 'value')][1]/{path}")
        if found is not None:
            return found
    return None


# --------------------------------------------------------------------------- references


def resolve(root: etree._Element, reference: str | None) -> etree._Element | None:
    """The resource a reference inside the Bundle points at, or ``None``.

    By ``fullUrl`` (exactly, then case-insensitively), then leniently as ``Type/id`` or a bare id
    (old test messages reference entries by bare id).
    """
    if not reference or not reference.strip():
        return None
    entries = xpath(root, "f:entry[f:resource/*]")

    def resource(entry: etree._Element) -> etree._Element:
        return elements(entry, "f:resource/*[1]")[0]

    for match in (lambda url: url == reference, lambda url: same_id(url, reference)):
        for entry in entries:
            if match(value(entry, "f:fullUrl/@value") or ""):
                return resource(entry)
    rtype, _, rid = reference.strip().rpartition("/")
    for entry in entries:
        res = resource(entry)
        if same_id(value(res, "f:id/@value"), rid) and (not rtype or rtype.endswith(local(res))):
            return res
    return None


def _payload_kind(root: etree._Element, header: etree._Element) -> str | None:
    target = resolve(root, value(header, "f:focus[1]/f:reference/@value"))
    if target is None:
        return None
    kind = local(target)
    detail = value(target, "f:type/@value") if kind == "Bundle" else None
    if kind == "Binary":
        detail = value(target, "f:contentType/@value")
    return f"{kind}:{detail}" if detail else kind


# --------------------------------------------------------------------------- responses


class _ResponseFields(TypedDict, total=False):
    """The :class:`ItkHeader` fields only a response has."""

    response_identifier: str | None
    response_code: str | None
    itk_code: str | None
    itk_display: str | None
    itk_text: str | None
    level: str | None
    positive: bool | None


def _response(root: etree._Element, header: etree._Element) -> _ResponseFields:
    outcome = resolve(root, value(header, "f:response/f:details/f:reference/@value"))
    if outcome is None or local(outcome) != "OperationOutcome":
        found = xpath(root, "f:entry/f:resource/f:OperationOutcome")
        outcome = found[0] if found else None
    coding = issue = None
    if outcome is not None:
        codings = xpath(outcome, "f:issue/f:details/f:coding[f:system/@value = $s]", s=SYSTEM_RESPONSE_CODES)
        codings = codings or xpath(outcome, "f:issue/f:details/f:coding")
        if codings:
            coding = codings[0]
            issue = coding.getparent().getparent()
    itk_code = value(coding, "f:code/@value")
    known = lookup(itk_code)
    return {
        "response_identifier": value(header, "f:response/f:identifier/@value"),
        "response_code": value(header, "f:response/f:code/@value"),
        "itk_code": itk_code,
        "itk_display": value(coding, "f:display/@value"),
        "itk_text": value(issue, "f:details/f:text/@value") or value(issue, "f:diagnostics/@value"),
        "level": known.level if known else None,
        "positive": known.positive if known else None,
    }
