"""Reading ITK3 messages and responses (meshbridge.itk.parse)."""

from __future__ import annotations

import contextlib
import json
import random
from pathlib import Path

import pytest

from meshbridge.errors import MeshbridgeError
from meshbridge.itk import Handling, ItkUnreadable, parse, same_id

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
MD_OLD = "https://fhir.nhs.uk/STU3/MessageDefinition/ITK-Response-MessageDefinition-Instance-1"

# file: (MessageHeader.id, response.identifier, response.code, ITK code, level, positive, InfAck, BusAck)
RESPONSES = {
    "itk3/ITK-Response-20007-Example-1.xml": (
        "24771db3-9999-4f4d-83ac-1b60ad6f4a15",
        "03788f28-d6c9-4893-8f8a-68f8f0ad1f06",
        "fatal-error",
        "20007",
        "infrastructure",
        False,
        False,
        False,
    ),
    "itk3/ITK-Response-20013-Example-1.xml": (
        "a4409d7c-b613-477c-b623-87e60406c2f0",
        "cf5e5969-2a93-400f-bf6f-709f101bcf87",
        "ok",
        "20013",
        "infrastructure",
        True,
        False,
        False,
    ),
    "itk3/ITK-Response-30001-Example-1.xml": (
        "a4409d7c-b613-477c-b623-87e60406c2f0",
        "cf5e5969-2a93-400f-bf6f-709f101bcf87",
        "ok",
        "30001",
        "business",
        True,
        True,
        False,
    ),
    "payloads/itk3/ITK-Response-10001-Example-1.xml": (
        "24771db3-9999-4f4d-83ac-1b60ad6f4a15",
        "03788f28-d6c9-4893-8f8a-68f8f0ad1f06",
        "fatal-error",
        "10001",
        "infrastructure",
        False,
        False,
        False,
    ),
    "payloads/itk3/ITK-Response-10002-Example-1.xml": (
        "24771db3-9999-4f4d-83ac-1b60ad6f4a15",
        "03788f28-d6c9-4893-8f8a-68f8f0ad1f06",
        "fatal-error",
        "10002",
        "infrastructure",
        False,
        False,
        False,
    ),
    "payloads/itk3/ITK-Response-10003-Example-1.xml": (
        "a2a4e566-097f-11e7-93ae-92361f002671",
        "ea7221b8-3cc0-4b11-bc95-585b056b5427",
        "fatal-error",
        "10003",
        "infrastructure",
        False,
        False,
        False,
    ),
    "payloads/itk3/ITK-Response-10005-Example-1.xml": (
        "a2a4e566-097f-11e7-93ae-92361f002671",
        "ea7221b8-3cc0-4b11-bc95-585b056b5427",
        "fatal-error",
        "10005",
        "infrastructure",
        False,
        False,
        False,
    ),
    "payloads/itk3/ITK-Response-10007-Example-1.xml": (
        "a2a4e566-097f-11e7-93ae-92361f002671",
        "ea7221b8-3cc0-4b11-bc95-585b056b5427",
        "fatal-error",
        "10007",
        "infrastructure",
        False,
        False,
        False,
    ),
    "payloads/itk3/ITK-Response-20001-Example-1.xml": (
        "24771db3-9999-4f4d-83ac-1b60ad6f4a15",
        "03788f28-d6c9-4893-8f8a-68f8f0ad1f06",
        "fatal-error",
        "20001",
        "infrastructure",
        False,
        False,
        False,
    ),
    "payloads/itk3/ITK-Response-20004-Example-1.xml": (
        "24771db3-9999-4f4d-83ac-1b60ad6f4a15",
        "03788f28-d6c9-4893-8f8a-68f8f0ad1f06",
        "fatal-error",
        "20004",
        "infrastructure",
        False,
        False,
        False,
    ),
    "payloads/itk3/ITK-Response-20009-Example-1.xml": (
        "a4409d7c-b613-477c-b623-87e60406c2f0",
        "efaf5984-3473-48a7-ae41-bbbb7314fbde",
        "fatal-error",
        "20009",
        "infrastructure",
        False,
        False,
        False,
    ),
    # response.code says ok beside a fatal issue: classified by the ITK code, not response.code
    "payloads/itk3/ITK-Response-20014-Example-1.xml": (
        "a4409d7c-b613-477c-b623-87e60406c2f0",
        "cf5e5969-2a93-400f-bf6f-709f101bcf87",
        "ok",
        "20014",
        "infrastructure",
        False,
        False,
        False,
    ),
    "payloads/itk3/ITK-Response-30003-Example-1.xml": (
        "a2a4e566-097f-11e7-93ae-92361f002671",
        "ea7221b8-3cc0-4b11-bc95-585b056b5427",
        "fatal-error",
        "30003",
        "business",
        False,
        True,
        False,
    ),
    "payloads/itk3/ITK-Response-30004-Example-1.xml": (
        "6ec16f81-0031-4274-8608-8c581373defe",
        "8ab41a86-9ef8-401f-9f4f-de038de09f6b",
        "ok",
        "30004",
        "business",
        True,
        True,
        False,
    ),
}

# file: (MessageHeader.id, event, payload kind, MessageDefinition, mailbox, format)
MESSAGES = {
    "itk3/ITK-SendPayload-Payload-Removed-Example-1.xml": (
        "a4409d7c-b613-477c-b623-87e60406c2f0",
        "ITK003D",
        "Bundle",  # the payload Bundle was emptied, so it has no type
        "https://fhir.nhs.uk/STU3/MessageDefinition/ITK-EDIS-MessageDefinition-1",
        "NOROT003",
        "xml",
    ),
    "payloads/itk3/ITK010D_ITK_EmergencySupply.xml": (
        "d1375bd7-d025-4e1e-9892-3bc23b512c87",
        "ITK010D",
        "Bundle:document",
        "https://fhir.nhs.uk/STU3/MessageDefinition/ITK-EC-eDischarge-MessageDefinition-Instance-1",
        "NOWOT004",
        "xml",
    ),
    "payloads/itk3/ToC-WT02-04-op_letter_full_payload_example_01-corrected.xml": (
        "fd5d8b1b-f15e-4ae3-a325-fd0d8d65c7e6",
        "ITK006D",
        "Bundle:document",
        "https://fhir.nhs.uk/STU3/MessageDefinition/ITK-OPL-MessageDefinition-4",
        "NOROT003",
        "xml",
    ),
    "payloads/itk3/labresults-NHS003-full_acceptance_with_nhsack.1.fhir.json": (
        "e1ef1f5e-c443-4966-bd3f-e73445c35f40",
        "ITK012M",
        "DiagnosticReport",
        None,  # the lab-results adaptor leaves the MessageDefinition key out
        "lab_results_mailbox",
        "json",
    ),
}


def fixture(name: str) -> bytes:
    path = FIXTURES / name
    if not path.is_file():
        pytest.skip(f"shared fixture {path} is not available in this checkout")
    return path.read_bytes()


@pytest.mark.parametrize("name", sorted(RESPONSES))
def test_official_responses(name: str) -> None:
    mid, rid, rcode, code, level, positive, inf, bus = RESPONSES[name]
    h = parse(fixture(name))
    assert h.is_response and h.event_code == "ITK008M" and h.event_display == "ITK Response"
    assert h.message_id == mid
    assert h.response_identifier == rid
    assert h.response_code == rcode
    assert (h.itk_code, h.level, h.positive) == (code, level, positive)
    assert h.is_nack is (positive is False)
    assert h.handling == Handling(
        bus_ack=bus,
        inf_ack=inf,
        recipient_type="FA",
        message_definition=h.handling.message_definition,
        sender_reference="None",
        local_extension="None",
    )
    assert h.handling.message_definition in (MD_OLD, MD_OLD.replace("-Instance", ""))
    assert h.source_endpoint == "NOROT003"
    assert h.format == "xml" and h.payload_kind is None


def test_30004_uses_the_current_message_definition_and_others_the_old_one() -> None:
    h = parse(fixture("payloads/itk3/ITK-Response-30004-Example-1.xml"))
    assert (
        h.handling.message_definition == "https://fhir.nhs.uk/STU3/MessageDefinition/ITK-Response-MessageDefinition-1"
    )
    assert "\u2019" in h.itk_display  # non-ASCII right single quote, decoded from UTF-8
    assert parse(fixture("itk3/ITK-Response-20013-Example-1.xml")).handling.message_definition == MD_OLD


def test_30003_display_tab_is_normalised_by_xml() -> None:
    h = parse(fixture("payloads/itk3/ITK-Response-30003-Example-1.xml"))
    assert h.itk_display == "Patient no longer at this clinical setting "  # the literal TAB, as XML reads it


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_messages(name: str) -> None:
    mid, event, kind, md, mailbox, fmt = MESSAGES[name]
    h = parse(fixture(name))
    assert not h.is_response and h.response_identifier is None and h.itk_code is None
    assert (h.message_id, h.event_code, h.payload_kind, h.source_endpoint, h.format) == (mid, event, kind, mailbox, fmt)
    assert h.handling.bus_ack is True and h.handling.inf_ack is True and h.handling.readable
    assert h.handling.message_definition == md
    assert h.handling.recipient_type == "FA"
    assert h.handling.sender_reference == "None" and h.handling.local_extension == "None"
    assert h.level is None and h.positive is None


def test_bundle_ids_are_kept_apart() -> None:
    h = parse(fixture("itk3/ITK-SendPayload-Payload-Removed-Example-1.xml"))
    assert h.bundle_id == "e6492db3-3788-4519-bebd-2bdf7d7236d8"
    assert h.bundle_identifier == "a3940bf5-b82e-4c4f-9477-9bbe6861d634"
    assert h.timestamp == "2017-01-23T10:10:16+00:00"
    json_h = parse(fixture(next(n for n in MESSAGES if n.endswith(".json"))))
    assert json_h.bundle_id == "fb84573d-fe8a-47b4-86bf-140ca34436dd"
    assert json_h.bundle_identifier == "918d135e-eef9-498f-a152-dd9b180672db"
    assert json_h.event_display == "ITK National Pathology"


def test_official_examples_are_not_chained_and_reuse_ids() -> None:
    """20013 and 30001 reuse the SendPayload example's own MessageHeader.id; none answers it."""
    message = parse(fixture("itk3/ITK-SendPayload-Payload-Removed-Example-1.xml"))
    for name in RESPONSES:
        response = parse(fixture(name))
        assert not same_id(response.response_identifier, message.message_id)
    assert same_id(parse(fixture("itk3/ITK-Response-20013-Example-1.xml")).message_id, message.message_id)


# --------------------------------------------------------------------------- own test data

HEADER = """<Bundle xmlns="http://hl7.org/fhir">
  <id value="b0000000-0000-4000-8000-000000000001"/>
  <identifier><value value="b0000000-0000-4000-8000-000000000002"/></identifier>
  <type value="message"/>
  <entry>
    <fullUrl value="urn:uuid:{mid}"/>
    <resource>
      <MessageHeader>
        <id value="{mid}"/>
        {extension}
        <event><system value="https://fhir.nhs.uk/STU3/CodeSystem/ITK-MessageEvent-2"/><code value="{event}"/></event>
        <timestamp value="2024-01-01T10:00:00+00:00"/>
        <source><endpoint value="X26OT123"/></source>
        {response}
      </MessageHeader>
    </resource>
  </entry>
  {more}
</Bundle>"""


def message(
    *, mid: str = "A4409D7C-B613-477C-B623-87E60406C2F0", extension: str = "", event: str = "ITK003D", **kw: str
) -> bytes:
    return HEADER.format(mid=mid, extension=extension, event=event, response=kw.get("response", ""), more="").encode()


def handling(*keys: str) -> str:
    return (
        '<extension url="https://fhir.nhs.uk/STU3/StructureDefinition/Extension-ITK-MessageHandling-2">'
        + "".join(keys)
        + "</extension>"
    )


def key(url: str, inner: str) -> str:
    return f'<extension url="{url}">{inner}</extension>'


def test_values_are_kept_as_written() -> None:
    h = parse(message())
    assert h.message_id == "A4409D7C-B613-477C-B623-87E60406C2F0"
    assert same_id(h.message_id, "a4409d7c-b613-477c-b623-87e60406c2f0")


def test_missing_handling_extension_is_none() -> None:
    h = parse(message())
    assert h.handling is None
    assert h.payload_kind is None


def test_unreadable_flags_are_none() -> None:
    ext = handling(
        key("BusAckRequested", '<valueBoolean value="yes"/>'),
        key("InfAckRequested", '<valueString value="true"/>'),
        key("MessageDefinition", '<valueReference><reference value="x"/></valueReference>'),
        key("Priority", '<valueCoding><code value="routine"/></valueCoding>'),
    )
    h = parse(message(extension=ext)).handling
    assert h.bus_ack is None and h.inf_ack is None and not h.readable
    assert h.recipient_type is None and h.sender_reference is None and h.local_extension is None
    assert h.message_definition == "x"


def test_duplicate_disagreeing_flags_are_none_and_local_extension_of_any_type() -> None:
    ext = handling(
        key("BusAckRequested", '<valueBoolean value="true"/>'),
        key("BusAckRequested", '<valueBoolean value="false"/>'),
        key("InfAckRequested", '<valueBoolean value="false"/>'),
        key("LocalExtension", '<valueCoding><system value="s"/><code value="SendDocument-X"/></valueCoding>'),
    )
    h = parse(message(extension=ext)).handling
    assert h.bus_ack is None and h.inf_ack is False
    assert h.local_extension == "SendDocument-X"


def test_response_without_operation_outcome() -> None:
    response = '<response><identifier value="UNREADABLE-IN-ORIGINAL-MESSAGE"/><code value="fatal-error"/></response>'
    h = parse(message(event="ITK008M", response=response))
    assert h.is_response and h.response_identifier == "UNREADABLE-IN-ORIGINAL-MESSAGE"
    assert h.itk_code is None and h.level is None and h.positive is None and not h.is_nack


def test_utf16_and_bom() -> None:
    text = message().decode()
    assert parse(text.encode("utf-16")).message_id.startswith("A4409D7C")
    assert parse(b"\xef\xbb\xbf" + text.encode()).message_id.startswith("A4409D7C")
    assert parse(b"\xef\xbb\xbf  " + json.dumps(_json_message()).encode()).format == "json"


def _json_message() -> dict:
    return {
        "resourceType": "Bundle",
        "type": "message",
        "entry": [{"resource": {"resourceType": "MessageHeader", "id": "m1", "event": {"code": "ITK003D"}}}],
    }


def test_json_minimal_and_primitive_extensions() -> None:
    doc = _json_message()
    doc["entry"][0]["resource"]["_id"] = {"extension": [{"url": "u", "valueString": "v"}]}
    h = parse(json.dumps(doc).encode())
    assert (h.message_id, h.event_code, h.format) == ("m1", "ITK003D", "json")


def test_same_id() -> None:
    assert same_id("a4409d7c-b613-477c-b623-87e60406c2f0", " A4409D7C-B613-477C-B623-87E60406C2F0 ")
    assert not same_id("a", "b")
    assert not same_id(None, None) and not same_id("", "") and not same_id("x", None) and not same_id("  ", "  ")


# --------------------------------------------------------------------------- hostile input

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE Bundle [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Bundle xmlns="http://hl7.org/fhir"><id value="&xxe;"/></Bundle>"""
LAUGHS = b"""<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;">]>
<lolz>&lol2;</lolz>"""


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (XXE, "DOCTYPE"),
        (LAUGHS, "DOCTYPE"),
        ("<!DOCTYPE x><x/>".encode("utf-16"), "DOCTYPE"),
        (b"", "empty"),
        (b"   \n", "empty"),
        (b"\x00\x01\x02garbage\xff", "neither XML nor JSON"),
        (b"UNA:+.? 'UNB+UNOA:2+X", "neither XML nor JSON"),
        (b"<Bundle xmlns='http://hl7.org/fhir'><type value='message'>", "not well-formed"),
        (b"<Bundle><type value='message'/></Bundle>", "not a FHIR Bundle"),
        (b"<Patient xmlns='http://hl7.org/fhir'/>", "not a FHIR Bundle"),
        (b"<Bundle xmlns='http://hl7.org/fhir'><type value='document'/></Bundle>", "not 'message'"),
        (b"<Bundle xmlns='http://hl7.org/fhir'><type value='message'/></Bundle>", "not the MessageHeader"),
        (
            b"<Bundle xmlns='http://hl7.org/fhir'><type value='message'/>"
            b"<entry><resource><Patient/></resource></entry></Bundle>",
            "holds Patient",
        ),
        (
            b"<Bundle xmlns='http://hl7.org/fhir'><type value='message'/><entry><resource><MessageHeader>"
            b"<id value=' '/></MessageHeader></resource></entry></Bundle>",
            "no id",
        ),
        (b"[1, 2, 3]", "JSON list, not a FHIR resource"),
        (b'{"a": 1}', "resourceType"),
        (b'{"resourceType": "Patient", "id": "x"}', "not a FHIR Bundle"),
        (b'{"resourceType": "Bundle", "type": "message", "entry": "nope"}', "not the MessageHeader"),
        (b'{"resourceType": "Bundle", "type": "message", "entry": [[1]]}', "array inside an array"),
        (b'{"resourceType": "Bundle", "bad key": 1}', "not a FHIR element name"),
        (b'{"resourceType": "Bundle", "type": NaN}', "NaN"),
        (b'{"resourceType": "Bundle", "type": "\\u0000"}', "XML cannot carry"),
        (b'{"resourceType": "Bundle", "type": "\\ud800"}', "XML cannot carry"),
        (b'{"resourceType": "Bundle"', "not well-formed JSON"),
        (b'{"resourceType": "Bundle", "type": "\xff"}', "not valid UTF"),
        (b"{" * 100_000, "JSON"),
        (b'{"resourceType": "Bundle", "meta": ' + b'{"extension": [' * 400 + b"]}" * 400 + b"}", "too deeply"),
        (b"<a>" * 100_000, "safety limit of the XML parser"),
    ],
)
def test_hostile_input_is_unreadable(data: bytes, reason: str) -> None:
    with pytest.raises(ItkUnreadable) as info:
        parse(data)
    assert reason in info.value.reason
    assert isinstance(info.value, MeshbridgeError)


def test_not_bytes() -> None:
    with pytest.raises(ItkUnreadable, match="expected bytes"):
        parse("<Bundle/>")  # type: ignore[arg-type]


def test_xxe_is_never_resolved(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    data = XXE.replace(b"file:///etc/passwd", secret.as_uri().encode())
    with pytest.raises(ItkUnreadable) as info:
        parse(data)
    assert "TOP-SECRET" not in str(info.value)


def test_truncations_and_byte_flips_never_raise_anything_else() -> None:
    rng = random.Random(20240101)
    samples = [message(extension=handling(key("BusAckRequested", '<valueBoolean value="true"/>')))]
    samples.append(json.dumps(_json_message()).encode())
    for name in (*RESPONSES, *MESSAGES):
        path = FIXTURES / name
        if path.is_file():
            samples.append(path.read_bytes()[:6000])
    for sample in samples:
        cuts = {rng.randrange(len(sample)) for _ in range(40)} | {0, 1, len(sample) - 1}
        variants = [sample[:cut] for cut in cuts]
        for _ in range(40):
            flipped = bytearray(sample)
            for _ in range(rng.randint(1, 8)):
                flipped[rng.randrange(len(flipped))] = rng.randrange(256)
            variants.append(bytes(flipped))
        for variant in variants:
            with contextlib.suppress(ItkUnreadable):
                parse(variant)
