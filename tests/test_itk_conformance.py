"""ITK3 conformance (meshbridge.itk.conformance and schemas/itk3-*.sch)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fhir.resources.STU3.bundle import Bundle as Stu3Bundle
from lxml import etree

from meshbridge.itk import Handling, build_message, build_response, check
from meshbridge.itk.conformance import MESSAGE_SCHEMA, RESPONSE_SCHEMA, SCHEMAS, schematron
from meshbridge.itk.fhirxml import FHIR_NS, XHTML_NS, FhirJsonError, json_to_xml
from meshbridge.payloads.base import Finding

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
F = {"f": FHIR_NS}
HANDLING = "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-ITK-MessageHandling-2"
OPL = "https://fhir.nhs.uk/STU3/MessageDefinition/ITK-OPL-MessageDefinition-4"
OLD_RESPONSE_MD = "https://fhir.nhs.uk/STU3/MessageDefinition/ITK-Response-MessageDefinition-Instance-1"

OLD_MD = ("warning", "itk.10004")
# file -> the findings expected, as (severity, code), in report order. No "error": VALID.
VERDICTS: dict[str, list[tuple[str, str]]] = {
    "itk3/ITK-Response-20007-Example-1.xml": [OLD_MD],
    "itk3/ITK-Response-20013-Example-1.xml": [OLD_MD],
    "itk3/ITK-Response-30001-Example-1.xml": [OLD_MD],
    # MessageDefinition ITK-EDIS-MessageDefinition-1 is not the eDischarge definition ITK003D names now
    "itk3/ITK-SendPayload-Payload-Removed-Example-1.xml": [OLD_MD],
    "payloads/itk3/ITK-Response-10001-Example-1.xml": [OLD_MD],
    "payloads/itk3/ITK-Response-10002-Example-1.xml": [OLD_MD],
    "payloads/itk3/ITK-Response-10003-Example-1.xml": [OLD_MD],
    "payloads/itk3/ITK-Response-10005-Example-1.xml": [OLD_MD],
    "payloads/itk3/ITK-Response-10007-Example-1.xml": [OLD_MD],
    "payloads/itk3/ITK-Response-20001-Example-1.xml": [OLD_MD],
    "payloads/itk3/ITK-Response-20004-Example-1.xml": [OLD_MD],
    "payloads/itk3/ITK-Response-20009-Example-1.xml": [OLD_MD],
    # response.code "ok" beside a fatal 20014 issue
    "payloads/itk3/ITK-Response-20014-Example-1.xml": [("warning", "itk.20006"), OLD_MD],
    "payloads/itk3/ITK-Response-30003-Example-1.xml": [OLD_MD],
    "payloads/itk3/ITK-Response-30004-Example-1.xml": [],
    # "-Instance-" MessageDefinition, and the EC eDischarge definition for an ITK010D event
    "payloads/itk3/ITK010D_ITK_EmergencySupply.xml": [OLD_MD, OLD_MD],
    "payloads/itk3/ToC-WT02-04-op_letter_full_payload_example_01-corrected.xml": [],
    # VALID FHIR STU3, INVALID strict ITK3: responsible present, MessageDefinition missing
    "payloads/itk3/labresults-NHS003-full_acceptance_with_nhsack.1.fhir.json": [
        ("error", "itk.20006"),
        ("warning", "itk.20006"),
        ("error", "itk.10004"),
    ],
}


def fixture(name: str) -> bytes:
    path = FIXTURES / name
    if not path.is_file():
        pytest.skip(f"shared fixture {path} is not available in this checkout")
    return path.read_bytes()


def codes(findings: list[Finding]) -> list[tuple[str, str]]:
    return [(f.severity, f.code) for f in findings]


def errors(data: bytes) -> list[str]:
    return [f.code for f in check(data) if f.severity == "error"]


def warnings(data: bytes) -> list[str]:
    return [f.code for f in check(data) if f.severity == "warning"]


def stu3(data: bytes) -> Stu3Bundle:
    if data.lstrip()[:1] == b"{":
        return Stu3Bundle.model_validate_json(data)
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, remove_comments=True)
    return Stu3Bundle.model_validate_xml(data, xmlparser=parser)


# --------------------------------------------------------------------------- fixtures


@pytest.mark.parametrize("name", sorted(VERDICTS))
def test_fixture_verdicts(name: str) -> None:
    findings = check(fixture(name))
    assert codes(findings) == VERDICTS[name]
    for finding in findings:
        assert finding.message and not finding.message.startswith("[")
        assert finding.where and finding.where.startswith("/Bundle")


@pytest.mark.parametrize("name", sorted(n for n in VERDICTS if n.startswith("payloads/")))
def test_fixtures_are_valid_fhir_stu3(name: str) -> None:
    """SOURCES.md: every itk3 payload fixture is valid FHIR STU3, labresults included."""
    stu3(fixture(name))


def test_send_payload_example_is_not_valid_fhir_because_its_payload_was_removed() -> None:
    with pytest.raises(ValueError, match="type"):
        stu3(fixture("itk3/ITK-SendPayload-Payload-Removed-Example-1.xml"))


def test_labresults_findings_say_what_is_wrong() -> None:
    findings = check(fixture("payloads/itk3/labresults-NHS003-full_acceptance_with_nhsack.1.fhir.json"))
    text = " | ".join(str(f) for f in findings)
    assert "MessageHeader.responsible is not allowed" in text
    assert "MessageDefinition is required" in text
    assert "'lab_results_mailbox' does not look like a MESH mailbox ID" in text


# --------------------------------------------------------------------------- own test data

NOW_ARGS = {"event_code": "ITK006D", "event_display": "ITK Outpatient Letter", "sender_mailbox": "X26OT123"}
DOC = (
    b'<Bundle xmlns="http://hl7.org/fhir"><id value="6191cc21-cb11-4d99-8cb2-2afe1c7e9d2f"/>'
    b'<type value="document"/></Bundle>'
)


def good_message() -> bytes:
    handling = Handling(bus_ack=True, inf_ack=True, message_definition=OPL)
    return build_message(DOC, media_type="application/fhir+xml", handling=handling, **NOW_ARGS)[0]


def good_response(code: str = "30001") -> bytes:
    return build_response(original_id="m1", code=code, sender_mailbox="X26OT999", inf_ack_requested=True)[0]


def mutate(data: bytes, change: Callable[[etree._Element], object]) -> bytes:
    root = etree.fromstring(data)
    change(root)
    return etree.tostring(root)


def header(root: etree._Element) -> etree._Element:
    return root.xpath("f:entry[1]/f:resource/f:MessageHeader", namespaces=F)[0]


def key(root: etree._Element, name: str) -> etree._Element:
    return header(root).xpath("f:extension/f:extension[@url = $k]", namespaces=F, k=name)[0]


def drop(root: etree._Element, name: str) -> None:
    k = key(root, name)
    k.getparent().remove(k)


def set_value(root: etree._Element, name: str, new: str) -> None:
    for el in key(root, name).iter():
        if el.get("value") is not None and etree.QName(el).localname not in ("system", "display"):
            el.set("value", new)


def add(parent: etree._Element, xml: str) -> None:
    parent.append(etree.fromstring(f'<wrap xmlns="{FHIR_NS}">{xml}</wrap>')[0])


def test_built_messages_and_responses_are_clean() -> None:
    assert check(good_message()) == []
    assert check(good_response()) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda r: header(r).remove(header(r).find(f"{{{FHIR_NS}}}extension")), ["itk.10001"]),
        (lambda r: set_value(r, "InfAckRequested", "yes"), ["itk.10002"]),
        (lambda r: drop(r, "InfAckRequested"), ["itk.10002"]),
        (lambda r: drop(r, "BusAckRequested"), ["itk.10003"]),
        (lambda r: add(key(r, "BusAckRequested").getparent(), '<extension url="BusAckRequested"/>'), ["itk.10003"]),
        (lambda r: set_value(r, "MessageDefinition", "http://example.org/MD-1"), ["itk.10004"]),
        (lambda r: drop(r, "MessageDefinition"), ["itk.10004"]),
        (lambda r: set_value(r, "SenderReference", "  "), ["itk.10007"]),
        (lambda r: set_value(r, "SenderReference", "--/--"), ["itk.10007"]),
        (lambda r: set_value(r, "SenderReference", "x" * 256), ["itk.10007"]),
        (lambda r: set_value(r, "RecipientType", "XX"), ["itk.10010"]),
        (lambda r: add(header(r), '<responsible><reference value="urn:uuid:x"/></responsible>'), ["itk.20006"]),
        (lambda r: add(header(r), '<author><reference value="urn:uuid:x"/></author>'), ["itk.20006"]),
        (lambda r: header(r).find(f"{{{FHIR_NS}}}event/{{{FHIR_NS}}}system").set("value", "x"), ["itk.20006"]),
        (lambda r: header(r).find(f"{{{FHIR_NS}}}source/{{{FHIR_NS}}}endpoint").set("value", " "), ["itk.20006"]),
        (lambda r: r.remove(r.find(f"{{{FHIR_NS}}}identifier")), ["itk.20006"]),
    ],
)
def test_message_errors(change: Callable[[etree._Element], object], expected: list[str]) -> None:
    assert errors(mutate(good_message(), change)) == expected


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda r: drop(r, "SenderReference"), ["itk.10007"]),
        (lambda r: drop(r, "LocalExtension"), ["itk.10001"]),
        (lambda r: drop(r, "RecipientType"), ["itk.10010"]),
        (lambda r: add(key(r, "LocalExtension").getparent(), '<extension url="Priority"/>'), ["itk.10006"]),
        (lambda r: add(header(r), '<destination><endpoint value="X"/></destination>'), ["itk.20006"]),
        (lambda r: header(r).remove(header(r).find(f"{{{FHIR_NS}}}focus")), ["itk.20006"]),
        (lambda r: set_value(r, "MessageDefinition", OPL.replace("OPL-MessageDefinition-4", "EDIS-1")), ["itk.10004"]),
    ],
)
def test_message_warnings(change: Callable[[etree._Element], object], expected: list[str]) -> None:
    data = mutate(good_message(), change)
    assert errors(data) == []
    assert warnings(data) == expected


def old_style_message() -> bytes:
    """Like the pre-2.5.0 TKW test messages: Priority key, no SenderReference/LocalExtension, bare-id
    references, an OID as source endpoint, no Bundle.identifier.system."""

    def change(root: etree._Element) -> None:
        drop(root, "SenderReference")
        drop(root, "LocalExtension")
        add(
            key(root, "RecipientType").getparent(),
            '<extension url="Priority"><valueCoding>'
            '<system value="https://fhir.nhs.uk/STU3/CodeSystem/ITK-Priority-1"/><code value="routine"/>'
            "</valueCoding></extension>",
        )
        for ref in header(root).xpath("f:sender/f:reference | f:focus/f:reference", namespaces=F):
            ref.set("value", ref.get("value").removeprefix("urn:uuid:"))
        header(root).find(f"{{{FHIR_NS}}}source/{{{FHIR_NS}}}endpoint").set("value", "1.2.826.0.1285.0.2.0.107")
        system = root.find(f"{{{FHIR_NS}}}identifier/{{{FHIR_NS}}}system")
        system.getparent().remove(system)

    return mutate(good_message(), change)


def test_old_style_messages_are_valid_with_warnings() -> None:
    data = old_style_message()
    assert errors(data) == []
    assert sorted(warnings(data)) == sorted(
        ["itk.20006", "itk.20006", "itk.20006", "itk.10007", "itk.10001", "itk.10006"]
    )


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda r: set_value(r, "BusAckRequested", "true"), ["itk.10008"]),
        (lambda r: set_value(r, "MessageDefinition", OPL), ["itk.10004"]),
        (lambda r: drop(r, "MessageDefinition"), ["itk.10004"]),
        (lambda r: set_value(r, "SenderReference", ""), ["itk.10007"]),
        (lambda r: set_value(r, "InfAckRequested", "1"), ["itk.10002"]),
        (
            lambda r: (
                r.xpath("//f:OperationOutcome/f:meta", namespaces=F)[0]
                .getparent()
                .remove(r.xpath("//f:OperationOutcome/f:meta", namespaces=F)[0])
            ),
            ["itk.20006"],
        ),
        (
            lambda r: header(r).find(f"{{{FHIR_NS}}}sender/{{{FHIR_NS}}}reference").set("value", "urn:uuid:x"),
            ["itk.20006"],
        ),
        (lambda r: header(r).remove(header(r).find(f"{{{FHIR_NS}}}response")), ["itk.20006"]),
        (lambda r: r.xpath("//f:response/f:details/f:reference", namespaces=F)[0].set("value", "x"), ["itk.20006"]),
        (lambda r: r.xpath("//f:response/f:identifier", namespaces=F)[0].set("value", ""), ["itk.20006"]),
        (lambda r: r.xpath("//f:response/f:code", namespaces=F)[0].set("value", "maybe"), ["itk.20006"]),
        (lambda r: r.xpath("//f:coding/f:code", namespaces=F)[0].set("value", "12345"), ["itk.20006"]),
        (lambda r: r.xpath("//f:coding/f:system", namespaces=F)[0].set("value", "http://x"), ["itk.20006"]),
    ],
)
def test_response_errors(change: Callable[[etree._Element], object], expected: list[str]) -> None:
    assert errors(mutate(good_response(), change)) == expected


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda r: set_value(r, "MessageDefinition", OLD_RESPONSE_MD), ["itk.10004"]),
        (lambda r: r.xpath("//f:response/f:code", namespaces=F)[0].set("value", "fatal-error"), ["itk.20006"]),
        (lambda r: r.xpath("//f:response/f:code", namespaces=F)[0].set("value", "transient-error"), ["itk.20006"] * 2),
        (lambda r: r.xpath("//f:coding/f:code", namespaces=F)[0].set("value", "10006"), ["itk.10006"]),
        (lambda r: drop(r, "SenderReference"), ["itk.10007"]),
    ],
)
def test_response_warnings(change: Callable[[etree._Element], object], expected: list[str]) -> None:
    data = mutate(good_response(), change)
    assert errors(data) == []
    assert warnings(data) == expected


def test_practitioner_sender_is_fine_in_responses() -> None:
    def change(root: etree._Element) -> None:
        org = root.xpath("f:entry[2]/f:resource/f:Organization", namespaces=F)[0]
        org.tag = f"{{{FHIR_NS}}}Practitioner"

    assert check(mutate(good_response(), change)) == []


@pytest.mark.parametrize(
    "data",
    [b"", b"garbage", b"<!DOCTYPE x><x/>", b'{"resourceType": "Patient"}', b"<Bundle xmlns='http://hl7.org/fhir'/>"],
)
def test_unreadable_gives_one_10009(data: bytes) -> None:
    findings = check(data)
    assert codes(findings) == [("error", "itk.10009")]
    assert findings[0].message.startswith("not a readable ITK3 message: ")


def test_json_messages_are_checked_too() -> None:
    handling = Handling(bus_ack=False, inf_ack=True, message_definition=OPL)
    data, _ = build_message(
        b'{"resourceType": "Observation", "status": "final", "code": {"text": "x"}}',
        media_type="application/fhir+json",
        handling=handling,
        **NOW_ARGS,
    )
    assert check(data) == []
    doc = json.loads(data)
    doc["entry"][0]["resource"]["extension"][0]["extension"].pop(3)  # MessageDefinition
    doc["entry"][0]["resource"]["reason"] = {"text": "no"}
    assert errors(json.dumps(doc).encode()) == ["itk.20006", "itk.10004"]


def test_pdf_attachments_inside_documents_are_fine_others_warn() -> None:
    document = (
        b'<Bundle xmlns="http://hl7.org/fhir"><type value="document"/><entry><resource><Binary>'
        b'<contentType value="application/pdf"/><content value="JVBERg=="/></Binary></resource></entry>'
        b'<entry><resource><Binary><contentType value="image/png"/><content value="iVBO"/></Binary></resource></entry>'
        b"</Bundle>"
    )
    handling = Handling(bus_ack=True, inf_ack=True, message_definition=OPL)
    data, _ = build_message(document, media_type="application/fhir+xml", handling=handling, **NOW_ARGS)
    findings = check(data)
    assert codes(findings) == [("warning", "itk.20004")]
    assert "'image/png'" in findings[0].message
    assert findings[0].where == "/Bundle/entry[3]/resource/Bundle/entry[2]/resource/Binary"


# --------------------------------------------------------------------------- the schemas themselves


@pytest.mark.parametrize("name", [MESSAGE_SCHEMA, RESPONSE_SCHEMA])
def test_schema_files(name: str) -> None:
    root = etree.fromstring((SCHEMAS / name).read_bytes())
    sch = "http://purl.oclc.org/dsdl/schematron"
    assert root.tag == f"{{{sch}}}schema" and root.get("queryBinding") == "xslt"
    asserts = root.findall(f".//{{{sch}}}assert")
    assert len(asserts) > 20
    for a in asserts:
        text = " ".join("".join(a.itertext()).split())
        assert re.match(r"\[\d{5}\] \S", text), text
        assert a.get("role") in (None, "warning")
    tkw = {"10001", "10002", "10003", "10004", "10007"} | ({"10008"} if name == RESPONSE_SCHEMA else {"20004"})
    found = {re.match(r"\[(\d{5})\]", "".join(a.itertext()).strip()).group(1) for a in asserts}
    assert tkw <= found


def test_schematron_is_compiled_once() -> None:
    assert schematron(MESSAGE_SCHEMA) is schematron(MESSAGE_SCHEMA)
    assert schematron(RESPONSE_SCHEMA) is not schematron(MESSAGE_SCHEMA)


def test_checks_from_many_threads() -> None:
    samples = [good_message(), good_response(), old_style_message(), b"garbage"]
    expected = [codes(check(s)) for s in samples]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: codes(check(samples[i % 4])), range(80)))
    assert results == [expected[i % 4] for i in range(80)]


# --------------------------------------------------------------------------- JSON -> XML


def test_json_to_xml() -> None:
    resource = {
        "resourceType": "Patient",
        "id": "p1",
        "extension": [{"url": "http://e/x", "valueDecimal": "1.50"}],
        "active": True,
        "name": [{"id": "n1", "family": "Ferré", "given": ["Zoë", "Ann"], "_given": [None, {"id": "g2"}]}],
        "_birthDate": {"extension": [{"url": "http://e/y", "valueString": "unknown"}]},
        "text": {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml"><p>Zoë &amp; co</p></div>'},
        "contained": [{"resourceType": "Organization", "id": "o1"}],
    }
    el = json_to_xml(resource)
    assert el.tag == f"{{{FHIR_NS}}}Patient"
    assert el.xpath("f:id/@value", namespaces=F) == ["p1"]
    assert el.xpath("f:extension/@url", namespaces=F) == ["http://e/x"]
    assert el.xpath("f:extension/f:valueDecimal/@value", namespaces=F) == ["1.50"]
    assert el.xpath("f:active/@value", namespaces=F) == ["true"]
    assert el.xpath("f:name/@id", namespaces=F) == ["n1"]
    assert el.xpath("f:name/f:given/@value", namespaces=F) == ["Zoë", "Ann"]
    assert el.xpath("f:name/f:given[2]/@id", namespaces=F) == ["g2"]
    assert el.xpath("f:birthDate/@value", namespaces=F) == []
    assert el.xpath("f:birthDate/f:extension/f:valueString/@value", namespaces=F) == ["unknown"]
    assert el.xpath("f:text/x:div/x:p/text()", namespaces={**F, "x": XHTML_NS}) == ["Zoë & co"]
    assert el.xpath("f:contained/f:Organization/f:id/@value", namespaces=F) == ["o1"]


def test_json_to_xml_refusals_and_leniency() -> None:
    with pytest.raises(FhirJsonError):
        json_to_xml([1])
    with pytest.raises(FhirJsonError):
        json_to_xml({"resourceType": "<x>"})
    broken_div = json_to_xml({"resourceType": "Patient", "text": {"div": "<div>unclosed"}})
    assert broken_div.xpath("f:text/*", namespaces=F) == []
