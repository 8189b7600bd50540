"""Wrap a payload in an ITK3 message, build ITK3 responses, and unwrap Binary payloads.

Messages are FHIR STU3 **XML** (``ITK-Message-Bundle-1`` / ``ITK-MessageHeader-2``): MessageHeader
first (handling extension with the six keys in spec order, event, sender, timestamp,
``source.endpoint`` = the sender's MESH mailbox, focus), a CareConnect-ITK-Header-Organization-1
entry for the sender, then the payload:

* ``application/fhir+xml``: the payload's root element is copied into the entry as is (text,
  attribute values, comments and namespaces untouched);
* ``application/fhir+json``: the whole message is built as **JSON** instead, with the payload's text
  spliced in unchanged (never re-serialised: ``1.50`` stays ``1.50``). ITK3 asks for XML, but turning
  JSON into XML is lossy, so a JSON FHIR payload travels in a JSON ITK message;
* anything else (text, EDIFACT, HL7 v2, PDF, XML that is not FHIR): a ``Binary`` with
  ``contentType`` = the media type and base64 ``content``.

Every builder refuses (``ValueError``) what the conformance check would call an error, so what
comes out passes :func:`meshbridge.itk.conformance.check` without errors.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from lxml import etree

from ..errors import FhirJsonError, ItkError, ItkUnreadable, XmlRefused
from .codes import (
    CODES,
    EXTENSION_HANDLING,
    INFRASTRUCTURE,
    MESSAGE_DEFINITION_BASE,
    PROFILE_HEADER_ORGANIZATION,
    PROFILE_MESSAGE_BUNDLE,
    PROFILE_MESSAGE_HEADER,
    PROFILE_RESPONSE_OPERATION_OUTCOME,
    RECIPIENT_TYPES,
    RESPONSE_EVENT,
    RESPONSE_EVENT_DISPLAY,
    RESPONSE_MESSAGE_DEFINITION,
    SYSTEM_BUNDLE_IDENTIFIER,
    SYSTEM_MESSAGE_EVENT,
    SYSTEM_ODS_ORGANIZATION,
    SYSTEM_RECIPIENT_TYPE,
    SYSTEM_RESPONSE_CODES,
    WITHDRAWN,
)
from .fhirxml import FHIR_NS, json_to_xml, load_json, local, parse_xml, value, xpath
from .model import Handling
from .parse import load, message_header, resolve

__all__ = ["FHIR_JSON", "FHIR_XML", "binary_payload", "build_message", "build_response"]

FHIR_XML = "application/fhir+xml"
FHIR_JSON = "application/fhir+json"
_FHIR_XML_TYPES = {FHIR_XML, "application/xml+fhir"}
_FHIR_JSON_TYPES = {FHIR_JSON, "application/json+fhir"}
_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}\Z")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z")
_WORD = re.compile(r"\w")


def build_message(
    payload: bytes,
    *,
    media_type: str,
    event_code: str,
    event_display: str,
    handling: Handling,
    sender_mailbox: str,
    sender_ods: str = "X26",
    message_id: str | None = None,
    now: datetime | None = None,
) -> tuple[bytes, str]:
    """An ITK3 message carrying ``payload``, and its ``MessageHeader.id`` (the correlation key).

    :param media_type: the payload's MIME type; decides how it is carried (see the module doc).
    :param event_code: ``ITK-MessageEvent-2`` code, e.g. ``ITK003D`` (not ``ITK008M``: see
        :func:`build_response`).
    :param handling: all six keys; ``bus_ack``/``inf_ack`` must be booleans.
    :param sender_mailbox: the sender's MESH mailbox ID (``source.endpoint``).
    :param sender_ods: ODS code of the sending organisation.
    :param message_id: ``MessageHeader.id`` to use (a new UUID if not given).
    :param now: timezone-aware generation time (default: now, UTC).
    """
    if not isinstance(payload, bytes | bytearray | memoryview):
        raise TypeError("payload must be bytes")
    payload = bytes(payload)
    if _blank(event_code) or _blank(event_display):
        raise ValueError("event_code and event_display are required")
    if event_code.strip() == RESPONSE_EVENT:
        raise ValueError(f"{RESPONSE_EVENT} is the response event: use build_response()")
    _check_handling(handling)
    message_id = _id(message_id)
    media = _media(media_type)
    base = media.split(";", 1)[0].strip().lower()
    payload_id, resource, element = _payload_resource(payload, base, media)
    header = _header(
        message_id, handling, event_code, event_display, sender_mailbox, _instant(now), focus=f"urn:uuid:{payload_id}"
    )
    bundle = _bundle(header, sender_ods, {"fullUrl": f"urn:uuid:{payload_id}", "resource": resource})
    if base in _FHIR_JSON_TYPES:
        return _splice_json(bundle, payload), message_id
    root = _to_xml(bundle)
    if element is not None:
        xpath(root, "f:entry[last()]/f:resource")[0].append(copy.deepcopy(element))
    return _xml_bytes(root), message_id


def build_response(
    *,
    original_id: str,
    code: str,
    sender_mailbox: str,
    text: str | None = None,
    inf_ack_requested: bool = False,
    sender_reference: str = "None",
    sender_ods: str = "X26",
    message_id: str | None = None,
    now: datetime | None = None,
) -> tuple[bytes, str]:
    """An ITK008M response (XML) answering ``original_id`` with ITK ``code``, and its own MessageHeader.id.

    :param original_id: the answered message's ``MessageHeader.id``, or
        ``UNREADABLE-IN-ORIGINAL-MESSAGE`` (with 10009) when it could not be read.
    :param code: a current ITK-ResponseCodes-1 code; unknown and withdrawn codes raise ``ValueError``.
    :param text: human-readable detail for ``issue.details.text`` (no patient-identifiable data).
    :param inf_ack_requested: ask the original sender to acknowledge this response (Full
        Acknowledgement pattern); only business (3xxxx) responses may ask, since infrastructure
        responses are never answered. ``BusAckRequested`` is always ``false``.
    :param sender_reference: echo of the original message's SenderReference.
    """
    key = str(code).strip()
    rc = CODES.get(key)
    if rc is None:
        why = "was withdrawn" if key in WITHDRAWN else "is not in ITK-ResponseCodes-1"
        raise ValueError(f"ITK response code {code!r} {why}")
    if _blank(original_id):
        raise ValueError("original_id is required (use UNREADABLE-IN-ORIGINAL-MESSAGE when it could not be read)")
    if inf_ack_requested and rc.level == INFRASTRUCTURE:
        raise ValueError(f"{rc.code} is an infrastructure response: those are never answered, so cannot ask for one")
    if text is not None and not isinstance(text, str):
        raise TypeError("text must be a string")
    handling = Handling(
        bus_ack=False,
        inf_ack=bool(inf_ack_requested),
        message_definition=RESPONSE_MESSAGE_DEFINITION,
        sender_reference=sender_reference,
    )
    _check_handling(handling)
    message_id = _id(message_id)
    outcome_id = str(uuid.uuid4())
    details: dict[str, Any] = {"coding": [{"system": SYSTEM_RESPONSE_CODES, "code": rc.code, "display": rc.display}]}
    if text is not None and text.strip():
        details["text"] = text
    outcome = {
        "resourceType": "OperationOutcome",
        "id": outcome_id,
        "meta": {"profile": [PROFILE_RESPONSE_OPERATION_OUTCOME]},
        "issue": [{"severity": rc.severity, "code": rc.issue_code, "details": details}],
    }
    response = {"identifier": original_id, "code": rc.response_code, "details": {"reference": f"urn:uuid:{outcome_id}"}}
    header = _header(
        message_id,
        handling,
        RESPONSE_EVENT,
        RESPONSE_EVENT_DISPLAY,
        sender_mailbox,
        _instant(now),
        response=response,
    )
    bundle = _bundle(header, sender_ods, {"fullUrl": f"urn:uuid:{outcome_id}", "resource": outcome})
    return _xml_bytes(_to_xml(bundle)), message_id


def binary_payload(data: bytes) -> tuple[bytes, str]:
    """The payload bytes and media type of a message whose payload is a ``Binary`` (XML or JSON).

    Raises :class:`ItkUnreadable` if ``data`` is not an ITK3 message or its Binary cannot be decoded,
    :class:`ItkError` if the payload is not a Binary.
    """
    root, _ = load(data)
    header = message_header(root)
    target = resolve(root, value(header, "f:focus[1]/f:reference/@value"))
    if target is None or local(target) != "Binary":
        binaries = xpath(root, "f:entry/f:resource/f:Binary")
        if target is not None or len(binaries) != 1:
            what = local(target) if target is not None else "not identifiable (no focus)"
            raise ItkError(f"the message's payload is {what}, not a single Binary")
        target = binaries[0]
    media_type = value(target, "f:contentType/@value")
    if media_type is None or _blank(media_type):
        raise ItkUnreadable("the Binary payload has no contentType")
    content = "".join((value(target, "f:content/@value") or "").split())
    try:
        return base64.b64decode(content, validate=True), media_type
    except (binascii.Error, ValueError):
        raise ItkUnreadable("the Binary payload's content is not valid base64") from None


# --------------------------------------------------------------------------- pieces


def _blank(text: object) -> bool:
    return not isinstance(text, str) or not text.strip()


def _id(message_id: str | None) -> str:
    if message_id is None:
        return str(uuid.uuid4())
    if not isinstance(message_id, str) or not _FHIR_ID.match(message_id):
        raise ValueError(f"message_id {message_id!r} is not a FHIR id (1-64 of A-Z a-z 0-9 - .)")
    return message_id


def _media(media_type: str) -> str:
    if _blank(media_type) or any(ord(c) < 32 for c in media_type):
        raise ValueError(f"media_type {media_type!r} is not a MIME type")
    return media_type.strip()


def _instant(now: datetime | None) -> str:
    now = now or datetime.now(UTC)
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware (a FHIR instant needs an offset)")
    return now.isoformat(timespec="seconds")


def _check_handling(h: Handling) -> None:
    if not isinstance(h.bus_ack, bool) or not isinstance(h.inf_ack, bool):
        raise ValueError("handling.bus_ack and handling.inf_ack must be True or False")
    if h.recipient_type not in RECIPIENT_TYPES:
        raise ValueError(f"handling.recipient_type must be one of {sorted(RECIPIENT_TYPES)}, not {h.recipient_type!r}")
    md = h.message_definition
    if not isinstance(md, str) or _blank(md) or not md.startswith(MESSAGE_DEFINITION_BASE + "/"):
        raise ValueError(f"handling.message_definition must start with {MESSAGE_DEFINITION_BASE}/, not {md!r}")
    ref = h.sender_reference
    if not isinstance(ref, str) or not _WORD.search(ref) or len(ref) > 255:
        raise ValueError("handling.sender_reference must be 1-255 characters with a letter or digit ('None' if unused)")
    if _blank(h.local_extension):
        raise ValueError("handling.local_extension is required ('None' if unused)")


def _handling_extension(h: Handling) -> dict[str, Any]:
    rt = h.recipient_type or "FA"
    return {
        "url": EXTENSION_HANDLING,
        "extension": [
            {"url": "BusAckRequested", "valueBoolean": h.bus_ack},
            {"url": "InfAckRequested", "valueBoolean": h.inf_ack},
            {
                "url": "RecipientType",
                "valueCoding": {"system": SYSTEM_RECIPIENT_TYPE, "code": rt, "display": RECIPIENT_TYPES[rt]},
            },
            {"url": "MessageDefinition", "valueReference": {"reference": h.message_definition}},
            {"url": "SenderReference", "valueString": h.sender_reference},
            {"url": "LocalExtension", "valueString": h.local_extension},
        ],
    }


def _header(
    message_id: str,
    handling: Handling,
    event_code: str,
    event_display: str,
    mailbox: str,
    timestamp: str,
    *,
    focus: str | None = None,
    response: dict[str, Any] | None = None,
) -> dict[str, Any]:
    if _blank(mailbox):
        raise ValueError("sender_mailbox (the sender's MESH mailbox ID) is required")
    header: dict[str, Any] = {
        "resourceType": "MessageHeader",
        "id": message_id,
        "meta": {"profile": [PROFILE_MESSAGE_HEADER]},
        "extension": [_handling_extension(handling)],
        "event": {"system": SYSTEM_MESSAGE_EVENT, "code": event_code, "display": event_display},
        "sender": {"reference": "urn:uuid:"},  # completed by _bundle
        "timestamp": timestamp,
        "source": {"endpoint": mailbox},
    }
    if response is not None:
        header["response"] = response
    if focus is not None:
        header["focus"] = [{"reference": focus}]
    return header


def _bundle(header: dict[str, Any], sender_ods: str, payload_entry: dict[str, Any]) -> dict[str, Any]:
    if _blank(sender_ods):
        raise ValueError("sender_ods is required")
    org_id = str(uuid.uuid4())
    header["sender"] = {"reference": f"urn:uuid:{org_id}"}
    organization = {
        "resourceType": "Organization",
        "id": org_id,
        "meta": {"profile": [PROFILE_HEADER_ORGANIZATION]},
        "identifier": [{"system": SYSTEM_ODS_ORGANIZATION, "value": sender_ods}],
    }
    return {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "meta": {"profile": [PROFILE_MESSAGE_BUNDLE]},
        "identifier": {"system": SYSTEM_BUNDLE_IDENTIFIER, "value": str(uuid.uuid4())},
        "type": "message",
        "entry": [
            {"fullUrl": f"urn:uuid:{header['id']}", "resource": header},
            {"fullUrl": f"urn:uuid:{org_id}", "resource": organization},
            payload_entry,
        ],
    }


def _payload_resource(payload: bytes, base: str, media: str) -> tuple[str, dict[str, Any], etree._Element | None]:
    """The payload entry's id (for its fullUrl), its resource (``{}`` when added later) and FHIR XML root."""
    if base in _FHIR_XML_TYPES:
        element = _fhir_xml(payload)
        return _entry_id(value(element, "f:id/@value")), {}, element
    if base in _FHIR_JSON_TYPES:
        rid = _fhir_json(payload).get("id")
        return _entry_id(rid if isinstance(rid, str) else None), {}, None
    binary_id = str(uuid.uuid4())
    content = base64.b64encode(payload).decode("ascii")
    return binary_id, {"resourceType": "Binary", "id": binary_id, "contentType": media, "content": content}, None


def _entry_id(resource_id: str | None) -> str:
    """``urn:uuid:<id>`` must hold a UUID: use the resource's id when it is one, else a new one."""
    return resource_id if resource_id and _UUID.match(resource_id) else str(uuid.uuid4())


def _fhir_xml(payload: bytes) -> etree._Element:
    try:
        root = parse_xml(payload)
    except XmlRefused as e:
        raise ValueError(f"FHIR XML payload refused: {e}") from None
    if etree.QName(root).namespace != FHIR_NS:
        raise ValueError(f"payload root {etree.QName(root).text} is not a FHIR resource (send it as application/xml)")
    return root


def _fhir_json(payload: bytes) -> dict[str, Any]:
    try:
        obj = load_json(payload)
    except FhirJsonError as e:
        raise ValueError(f"FHIR JSON payload refused: {e}") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("resourceType"), str):
        raise ValueError("FHIR JSON payload is not a resource (a JSON object with resourceType)")
    return obj


def _splice_json(bundle: dict[str, Any], payload: bytes) -> bytes:
    """The Bundle as JSON with the payload's own text as the last entry's resource."""
    try:
        raw = payload.decode("utf-8-sig").strip()
    except UnicodeDecodeError:
        raise ValueError("FHIR JSON payload must be UTF-8 to be carried in a JSON ITK message") from None
    marker = f"meshbridge-payload-{uuid.uuid4()}"
    bundle["entry"][-1]["resource"] = marker
    text = json.dumps(bundle, indent=2, ensure_ascii=False)
    quoted = json.dumps(marker)
    if text.count(quoted) != 1:  # pragma: no cover - the marker is a fresh UUID
        raise ValueError("could not place the payload")
    return text.replace(quoted, raw).encode("utf-8") + b"\n"


def _to_xml(bundle: dict[str, Any]) -> etree._Element:
    try:
        return json_to_xml(bundle)
    except FhirJsonError as e:
        raise ValueError(f"a value cannot be written as FHIR XML (control characters?): {e}") from None


def _xml_bytes(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8") + b"\n"
