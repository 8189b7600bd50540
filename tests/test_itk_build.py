"""Building ITK3 messages and responses (meshbridge.itk.build)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from fhir.resources.STU3.bundle import Bundle as Stu3Bundle
from lxml import etree

from meshbridge.itk import (
    CODES,
    RESPONSE_MESSAGE_DEFINITION,
    UNREADABLE,
    Handling,
    ItkError,
    ItkUnreadable,
    binary_payload,
    build_message,
    build_response,
    check,
    parse,
    same_id,
)

F = {"f": "http://hl7.org/fhir"}
OPL = "https://fhir.nhs.uk/STU3/MessageDefinition/ITK-OPL-MessageDefinition-4"
NOW = datetime(2024, 1, 1, 10, 0, tzinfo=UTC)
FULL = Handling(bus_ack=True, inf_ack=True, message_definition=OPL)

# A small outpatient-letter style document Bundle: comments, an XHTML narrative, a decimal that must
# stay "1.50", an escaped CR LF and TAB, a non-ASCII name and an entity.
DOCUMENT = """<?xml version="1.0" encoding="UTF-8"?>
<!-- a comment before the root is not part of the resource -->
<Bundle xmlns="http://hl7.org/fhir">
  <id value="6191cc21-cb11-4d99-8cb2-2afe1c7e9d2f"/>
  <identifier>
    <system value="https://tools.ietf.org/html/rfc4122"/><value value="720d56df-6ac7-4803-bde3-e3a2373cd61e"/>
  </identifier>
  <type value="document"/>
  <!-- Outpatient letter composition -->
  <entry>
    <fullUrl value="urn:uuid:95ab3b52-b229-43db-a919-fa09db5e08d3"/>
    <resource>
      <Composition>
        <id value="95ab3b52-b229-43db-a919-fa09db5e08d3"/>
        <status value="final"/>
        <type><coding>
          <system value="http://snomed.info/sct"/><code value="823681000000100"/><display value="Outpatient letter"/>
        </coding></type>
        <subject><reference value="urn:uuid:11111111-1111-4111-8111-111111111111"/></subject>
        <date value="2024-01-01T09:00:00+00:00"/>
        <author><reference value="urn:uuid:22222222-2222-4222-8222-222222222222"/></author>
        <title value="Outpatient letter &amp; plan"/>
        <section>
          <title value="Clinical summary"/>
          <text><status value="generated"/>
            <div xmlns="http://www.w3.org/1999/xhtml"><p>Ferritin <b>1.50</b> ug/L, Zoë seen.</p></div></text>
        </section>
      </Composition>
    </resource>
  </entry>
  <entry>
    <fullUrl value="urn:uuid:11111111-1111-4111-8111-111111111111"/>
    <resource>
      <Patient>
        <id value="11111111-1111-4111-8111-111111111111"/><name><family value="Ferré"/><given value="Zoë"/></name>
      </Patient>
    </resource>
  </entry>
  <entry>
    <fullUrl value="urn:uuid:33333333-3333-4333-8333-333333333333"/>
    <resource>
      <Observation>
        <id value="33333333-3333-4333-8333-333333333333"/>
        <status value="final"/>
        <code><text value="Serum ferritin"/></code>
        <valueQuantity><value value="1.50"/><unit value="ug/L"/></valueQuantity>
        <comment value="line one&#13;&#10;line two&#9;tabbed"/>
      </Observation>
    </resource>
  </entry>
  <entry>
    <fullUrl value="urn:uuid:22222222-2222-4222-8222-222222222222"/>
    <resource><Practitioner><id value="22222222-2222-4222-8222-222222222222"/></Practitioner></resource>
  </entry>
</Bundle>
""".encode()

OBSERVATION_JSON = b"""{
  "resourceType": "Observation",
  "id": "ferritin-1",
  "status": "final",
  "code": {"text": "Serum ferritin"},
  "valueQuantity": {"value": 1.50, "unit": "ug/L"},
  "_status": {"extension": [{"url": "http://example.org/x", "valueString": "kept"}]}
}"""


def stu3(data: bytes, *, strip_comments: bool = False) -> Stu3Bundle:
    """Validate as FHIR STU3 with fhir.resources, through a hardened parser."""
    if data.lstrip()[:1] == b"{":
        return Stu3Bundle.model_validate_json(data)
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, remove_comments=strip_comments
    )
    return Stu3Bundle.model_validate_xml(data, xmlparser=parser)


def errors(data: bytes) -> list:
    return [f for f in check(data) if f.severity == "error"]


def message(payload: bytes = DOCUMENT, media_type: str = "application/fhir+xml", **kw) -> tuple[bytes, str]:
    args = {
        "media_type": media_type,
        "event_code": "ITK006D",
        "event_display": "ITK Outpatient Letter",
        "handling": FULL,
        "sender_mailbox": "X26OT123",
        "now": NOW,
    }
    return build_message(payload, **{**args, **kw})


def payload_element(data: bytes) -> etree._Element:
    root = etree.fromstring(data)
    return root.xpath("f:entry[last()]/f:resource/*[1]", namespaces=F)[0]


# --------------------------------------------------------------------------- FHIR XML payloads


def test_fhir_xml_payload_is_embedded_unchanged() -> None:
    data, mid = message()
    original = etree.fromstring(DOCUMENT)
    embedded = payload_element(data)

    def values(el: etree._Element) -> list[tuple[str, str]]:
        return [(e.tag, e.get("value")) for e in el.iter() if isinstance(e.tag, str) and e.get("value") is not None]

    assert values(embedded) == values(original)
    assert len(values(original)) > 25
    assert etree.tostring(embedded, method="c14n", exclusive=True) == etree.tostring(
        original, method="c14n", exclusive=True
    )
    comments = [c.text for c in embedded.iter(etree.Comment)]
    assert comments == [" Outpatient letter composition "]
    assert b'value="1.50"' in data and "Zoë".encode() in data and b"line two&#9;tabbed" in data
    div = embedded.find(".//{http://www.w3.org/1999/xhtml}div")
    assert "".join(div.itertext()) == "Ferritin 1.50 ug/L, Zoë seen."

    root = etree.fromstring(data)
    assert root.xpath("f:entry[last()]/f:fullUrl/@value", namespaces=F) == [
        "urn:uuid:6191cc21-cb11-4d99-8cb2-2afe1c7e9d2f"
    ]
    assert errors(data) == []
    assert check(data) == []
    stu3(data)  # comments kept: fhir.resources only refuses them inside extensions

    h = parse(data)
    assert h.message_id == mid and h.payload_kind == "Bundle:document" and h.format == "xml"
    assert h.event_code == "ITK006D" and h.event_display == "ITK Outpatient Letter"
    assert h.timestamp == "2024-01-01T10:00:00+00:00" and h.source_endpoint == "X26OT123"
    assert h.handling == FULL


def test_message_structure_and_order() -> None:
    data, mid = message(message_id="A4409D7C-B613-477C-B623-87E60406C2F0", sender_ods="RY6")
    assert mid == "A4409D7C-B613-477C-B623-87E60406C2F0"
    root = etree.fromstring(data)
    ids = [root.xpath(p, namespaces=F)[0] for p in ("f:id/@value", "f:identifier/f:value/@value")]
    assert len(set([*ids, mid])) == 3
    assert root.xpath("f:identifier/f:system/@value", namespaces=F) == ["https://tools.ietf.org/html/rfc4122"]
    assert [etree.QName(e).localname for e in root.xpath("f:entry/f:resource/*", namespaces=F)] == [
        "MessageHeader",
        "Organization",
        "Bundle",
    ]
    header = root.xpath("f:entry[1]/f:resource/f:MessageHeader", namespaces=F)[0]
    assert [etree.QName(e).localname for e in header] == [
        "id",
        "meta",
        "extension",
        "event",
        "sender",
        "timestamp",
        "source",
        "focus",
    ]
    keys = header.xpath("f:extension/f:extension/@url", namespaces=F)
    assert keys == [
        "BusAckRequested",
        "InfAckRequested",
        "RecipientType",
        "MessageDefinition",
        "SenderReference",
        "LocalExtension",
    ]
    assert root.xpath("f:entry[1]/f:fullUrl/@value", namespaces=F) == [f"urn:uuid:{mid}"]
    sender = header.xpath("f:sender/f:reference/@value", namespaces=F)[0]
    org = root.xpath("f:entry[f:fullUrl/@value = $s]/f:resource/f:Organization", namespaces=F, s=sender)[0]
    assert org.xpath("f:identifier/f:value/@value", namespaces=F) == ["RY6"]
    assert org.xpath("f:meta/f:profile/@value", namespaces=F) == [
        "https://fhir.nhs.uk/STU3/StructureDefinition/CareConnect-ITK-Header-Organization-1"
    ]
    assert b"<!--" not in data.split(b"<Bundle>")[0]  # no comments in what meshbridge writes itself


def test_single_resource_payload_with_non_uuid_id() -> None:
    payload = (
        b'<Observation xmlns="http://hl7.org/fhir"><id value="ferritin-1"/><status value="final"/>'
        b'<code><text value="x"/></code></Observation>'
    )
    data, _ = message(payload)
    assert parse(data).payload_kind == "Observation"
    assert check(data) == []
    stu3(data)
    assert payload.replace(b' xmlns="http://hl7.org/fhir"', b"") in data  # the declaration is inherited


# --------------------------------------------------------------------------- FHIR JSON payloads


def test_fhir_json_payload_gives_a_json_message_with_the_payload_text_untouched() -> None:
    data, mid = message(OBSERVATION_JSON, media_type="application/fhir+json; charset=utf-8", event_code="ITK012M")
    assert OBSERVATION_JSON in data
    assert b'"value": 1.50' in data
    doc = json.loads(data)
    assert doc["resourceType"] == "Bundle" and doc["entry"][0]["resource"]["id"] == mid
    assert doc["entry"][0]["resource"]["focus"] == [{"reference": doc["entry"][2]["fullUrl"]}]
    assert check(data) == []
    stu3(data)
    h = parse(data)
    assert (h.format, h.payload_kind, h.message_id, h.handling) == ("json", "Observation", mid, FULL)


def test_fhir_json_payload_with_bom_and_uuid_id() -> None:
    payload = b'\xef\xbb\xbf{"resourceType": "Patient", "id": "11111111-1111-4111-8111-111111111111"}'
    data, _ = message(payload, media_type="application/fhir+json")
    assert json.loads(data)["entry"][2]["fullUrl"] == "urn:uuid:11111111-1111-4111-8111-111111111111"
    assert check(data) == []


# --------------------------------------------------------------------------- Binary payloads

BINARIES = [
    ("text/plain; charset=utf-8", "Ferritin 1.50 ug/L\r\nZoë\n".encode()),
    ("application/edifact", b"UNA:+.? 'UNB+UNOA:2+X26:80+Y26:80+240101:1000+00000003'UNZ+0+00000003'"),
    ("x-application/hl7-v2+er7", b"MSH|^~\\&|LAB|X26|GP|Y26|20240101||ORU^R01|1|P|2.4\rPID|||9999999999^^^NHS\r"),
    ("application/pdf", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n"),
    ("application/xml", b'<?xml version="1.0"?><ClinicalDocument xmlns="urn:hl7-org:v3"/>'),
    ("application/octet-stream", bytes(range(256))),
]


@pytest.mark.parametrize(("media_type", "payload"), BINARIES)
def test_binary_payload_round_trip(media_type: str, payload: bytes) -> None:
    data, mid = message(payload, media_type=media_type, event_code="ITK011M", event_display="ITK Events Management")
    assert binary_payload(data) == (payload, media_type)
    h = parse(data)
    assert h.payload_kind == f"Binary:{media_type}" and h.message_id == mid
    findings = check(data)
    assert errors(data) == []
    expected = [] if media_type == "application/pdf" else ["itk.20004"]
    assert [f.code for f in findings] == expected
    stu3(data)


def test_binary_payload_from_json_message_and_errors() -> None:
    data, _ = message()
    with pytest.raises(ItkError, match="Bundle, not a single Binary"):
        binary_payload(data)
    with pytest.raises(ItkUnreadable):
        binary_payload(b"garbage")
    doc = {
        "resourceType": "Bundle",
        "type": "message",
        "entry": [
            {"resource": {"resourceType": "MessageHeader", "id": "m1"}},
            {"resource": {"resourceType": "Binary", "contentType": "text/plain", "content": "aGVs\nbG8="}},
        ],
    }
    assert binary_payload(json.dumps(doc).encode()) == (b"hello", "text/plain")
    doc["entry"][1]["resource"]["content"] = "not base64!"
    with pytest.raises(ItkUnreadable, match="base64"):
        binary_payload(json.dumps(doc).encode())
    del doc["entry"][1]["resource"]["contentType"]
    with pytest.raises(ItkUnreadable, match="contentType"):
        binary_payload(json.dumps(doc).encode())


def test_binary_is_base64() -> None:
    data, _ = message(b"hello", media_type="text/plain")
    content = payload_element(data).xpath("f:content/@value", namespaces=F)[0]
    assert base64.b64decode(content) == b"hello"


# --------------------------------------------------------------------------- handling and refusals


@pytest.mark.parametrize(("bus", "inf"), [(True, True), (False, True), (True, False), (False, False)])
def test_handling_round_trip(bus: bool, inf: bool) -> None:
    handling = Handling(
        bus_ack=bus,
        inf_ack=inf,
        recipient_type="FI",
        message_definition=OPL,
        sender_reference="REF-0001",
        local_extension="SendDocument-ConsultationReport",
    )
    data, _ = message(handling=handling)
    assert parse(data).handling == handling
    assert check(data) == []


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"handling": Handling(bus_ack=True, inf_ack=None, message_definition=OPL)}, "must be True or False"),
        ({"handling": Handling(bus_ack=True, inf_ack=True, recipient_type="XX", message_definition=OPL)}, "recipient"),
        ({"handling": Handling(bus_ack=True, inf_ack=True, message_definition="http://x/MD")}, "message_definition"),
        ({"handling": Handling(bus_ack=True, inf_ack=True, message_definition=None)}, "message_definition"),
        ({"handling": Handling(bus_ack=True, inf_ack=True, message_definition=OPL, sender_reference=" ")}, "sender"),
        ({"handling": Handling(bus_ack=True, inf_ack=True, message_definition=OPL, sender_reference="-")}, "sender"),
        (
            {"handling": Handling(bus_ack=True, inf_ack=True, message_definition=OPL, sender_reference="x" * 256)},
            "sender",
        ),
        ({"handling": Handling(bus_ack=True, inf_ack=True, message_definition=OPL, local_extension="")}, "local"),
        ({"event_code": "ITK008M"}, "build_response"),
        ({"event_code": " "}, "event_code"),
        ({"now": datetime(2024, 1, 1)}, "timezone"),
        ({"message_id": "has space"}, "FHIR id"),
        ({"sender_mailbox": ""}, "mailbox"),
        ({"sender_ods": ""}, "sender_ods"),
        ({"media_type": ""}, "MIME"),
        ({"payload": b"<!DOCTYPE x><Bundle xmlns='http://hl7.org/fhir'/>"}, "DOCTYPE"),
        ({"payload": b"<ClinicalDocument xmlns='urn:hl7-org:v3'/>"}, "not a FHIR resource"),
        ({"payload": b"not xml"}, "refused"),
        ({"payload": b"[1]", "media_type": "application/fhir+json"}, "not a resource"),
        ({"payload": b"{nope", "media_type": "application/fhir+json"}, "refused"),
        ({"payload": b'{"resourceType": "Patient", "x": "\xe9"}', "media_type": "application/fhir+json"}, "UTF"),
    ],
)
def test_refusals(change: dict, match: str) -> None:
    payload = change.pop("payload", DOCUMENT)
    with pytest.raises(ValueError, match=match):
        message(payload, **change)


def test_payload_must_be_bytes() -> None:
    with pytest.raises(TypeError):
        message("text")  # type: ignore[arg-type]


def test_timestamp_keeps_the_offset() -> None:
    bst = timezone(timedelta(hours=1))
    data, _ = message(now=datetime(2024, 6, 1, 11, 30, 5, 123456, tzinfo=bst))
    assert parse(data).timestamp == "2024-06-01T11:30:05+01:00"


# --------------------------------------------------------------------------- responses


@pytest.mark.parametrize("code", sorted(CODES))
def test_every_response_code(code: str) -> None:
    rc = CODES[code]
    inf = rc.level == "business"
    data, rid = build_response(
        original_id="a4409d7c-b613-477c-b623-87e60406c2f0",
        code=code,
        sender_mailbox="X26OT999",
        text=f"detail for {code}",
        inf_ack_requested=inf,
        sender_reference="REF-0001",
        now=NOW,
    )
    assert errors(data) == []
    assert check(data) == []
    stu3(data)
    h = parse(data)
    assert h.is_response and h.message_id == rid and h.event_code == "ITK008M"
    assert h.response_identifier == "a4409d7c-b613-477c-b623-87e60406c2f0"
    assert (h.itk_code, h.itk_display, h.itk_text) == (code, rc.display, f"detail for {code}")
    assert (h.level, h.positive, h.response_code) == (rc.level, rc.positive, rc.response_code)
    assert h.handling == Handling(
        bus_ack=False,
        inf_ack=inf,
        message_definition=RESPONSE_MESSAGE_DEFINITION,
        sender_reference="REF-0001",
    )
    root = etree.fromstring(data)
    issue = root.xpath("//f:OperationOutcome/f:issue", namespaces=F)[0]
    assert issue.xpath("f:severity/@value", namespaces=F) == [rc.severity]
    assert issue.xpath("f:code/@value", namespaces=F) == [rc.issue_code]
    assert root.xpath("f:entry[1]/f:resource/f:MessageHeader/f:focus", namespaces=F) == []


def test_unreadable_response() -> None:
    data, _ = build_response(original_id=UNREADABLE, code="10009", sender_mailbox="X26OT999", text="not XML")
    h = parse(data)
    assert h.response_identifier == "UNREADABLE-IN-ORIGINAL-MESSAGE"
    assert (h.itk_code, h.level, h.positive, h.response_code) == ("10009", "infrastructure", False, "fatal-error")
    assert h.is_nack and check(data) == []
    stu3(data)


def test_response_without_text() -> None:
    data, _ = build_response(original_id="m1", code="20013", sender_mailbox="X26OT999")
    assert parse(data).itk_text is None and b"<text" not in data


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"code": "99999"}, "not in ITK-ResponseCodes-1"),
        ({"code": "10006"}, "withdrawn"),
        ({"original_id": " "}, "original_id"),
        ({"code": "20013", "inf_ack_requested": True}, "never answered"),
        ({"sender_reference": ""}, "sender_reference"),
        ({"sender_mailbox": ""}, "mailbox"),
        ({"sender_mailbox": "X26\x00"}, "control characters"),
        ({"text": "bell\x07"}, "control characters"),
        ({"now": datetime(2024, 1, 1)}, "timezone"),
    ],
)
def test_response_refusals(kw: dict, match: str) -> None:
    args = {"original_id": "m1", "code": "30001", "sender_mailbox": "X26OT999", **kw}
    with pytest.raises(ValueError, match=match):
        build_response(**args)


def _respond(original: bytes, code: str, **kw) -> tuple[bytes, str]:
    h = parse(original)
    return build_response(
        original_id=h.message_id,
        code=code,
        sender_mailbox="Y26OT456",
        sender_reference=h.handling.sender_reference,
        **kw,
    )


def test_full_acknowledgement_pattern() -> None:
    """Inf + bus requested; the business response asks for an inf ack, which the sender returns."""
    original, mid = message(
        handling=Handling(bus_ack=True, inf_ack=True, message_definition=OPL, sender_reference="R1")
    )
    inf, _ = _respond(original, "20013")
    bus, bus_id = _respond(original, "30001", inf_ack_requested=True)
    for response in (inf, bus):
        h = parse(response)
        assert same_id(h.response_identifier, mid) and h.handling.bus_ack is False
        assert h.handling.sender_reference == "R1"
    assert parse(inf).handling.inf_ack is False and parse(inf).level == "infrastructure"
    assert parse(bus).handling.inf_ack is True and parse(bus).level == "business"
    ack_of_ack, _ = _respond(bus, "20013")
    h = parse(ack_of_ack)
    assert same_id(h.response_identifier, bus_id) and h.handling.inf_ack is False and h.handling.bus_ack is False
    assert all(check(d) == [] for d in (original, inf, bus, ack_of_ack))


def test_technical_and_business_pattern() -> None:
    original, _ = message()
    inf, _ = _respond(original, "20013")
    bus, _ = _respond(original, "30002")
    assert [parse(d).handling.inf_ack for d in (inf, bus)] == [False, False]
    assert parse(bus).is_nack and parse(bus).level == "business"


def test_technical_only_pattern() -> None:
    original, mid = message(handling=Handling(bus_ack=False, inf_ack=True, message_definition=OPL))
    inf, _ = _respond(original, "20013")
    h = parse(inf)
    assert (h.handling.inf_ack, h.handling.bus_ack, h.positive) == (False, False, True)
    assert same_id(h.response_identifier, mid)


def test_fire_and_forget_nack_only() -> None:
    original, _ = message(handling=Handling(bus_ack=False, inf_ack=False, message_definition=OPL))
    nack, _ = _respond(original, "20009", text="payload failed validation")
    h = parse(nack)
    assert h.is_nack and (h.handling.inf_ack, h.handling.bus_ack) == (False, False)
    assert h.itk_text == "payload failed validation"


def test_correlation_is_case_insensitive() -> None:
    original, mid = message(message_id="A4409D7C-B613-477C-B623-87E60406C2F0")
    response, _ = build_response(original_id=mid.lower(), code="20013", sender_mailbox="Y26OT456")
    h = parse(response)
    assert h.response_identifier == mid.lower() and same_id(h.response_identifier, parse(original).message_id)
