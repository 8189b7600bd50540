"""The ``xml`` payload type and meshbridge's hardened XML parser."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pluggy
import pytest

from meshbridge import hookspecs
from meshbridge.payloads import xml, xml_schemas
from meshbridge.payloads.base import ERROR, WARNING, PayloadType, ValidationResult

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
DATA = Path(__file__).resolve().parent / "data"


def fixtures(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (FIXTURES / folder).glob("*") if p.is_file())


def need_fixtures() -> None:
    if not FIXTURES.is_dir():
        pytest.skip("../shared/fixtures not present (fixtures live outside the project)")


def codes(result: ValidationResult) -> list[str | None]:
    return [f.code for f in result.findings]


# --------------------------------------------------------------------------- real payloads


@pytest.mark.parametrize("name", [p.name for p in fixtures("payloads/xml")] or ["(none)"])
def test_xml_fixtures_are_valid(name: str) -> None:
    need_fixtures()
    data = (FIXTURES / "payloads" / "xml" / name).read_bytes()
    result = xml.validate(data, {})
    assert result.valid, [str(f) for f in result.findings]
    assert result.findings == ()
    assert result.details["root"].startswith("{")  # both are namespaced
    assert xml.sniff(data[:65536]) == pytest.approx(0.6)


def test_every_xml_shaped_fixture_is_well_formed() -> None:
    need_fixtures()
    files = [
        p
        for p in fixtures("payloads/itk3", "payloads/fhir-stu3", "payloads/fhir-r4", "itk3")
        if p.read_bytes().lstrip()[:1] == b"<"
    ]
    assert len(files) >= 20
    for path in files:
        result = xml.validate(path.read_bytes(), {})
        assert result.valid, (path.name, [str(f) for f in result.findings])
        assert result.details["root"].startswith("{http://hl7.org/fhir}"), path.name


def test_root_details() -> None:
    result = xml.validate(b'<?xml version="1.0" encoding="UTF-8"?><a:r xmlns:a="urn:x"><b/></a:r>', {})
    assert result.details == {"root": "{urn:x}r", "encoding": "UTF-8"}
    assert xml.validate(b"<r/>", {}).details["root"] == "r"


# --------------------------------------------------------------------------- hostile input

LOLZ = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + b"".join(b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10) for i in range(1, 10))
    + b"]><lolz>&lol9;</lolz>"
)
QUADRATIC = b'<!DOCTYPE r [<!ENTITY a "' + b"x" * 50_000 + b'">]><r>' + b"&a;" * 50_000 + b"</r>"


def hostile_cases(secret: Path) -> list[tuple[str, bytes, str]]:
    url = secret.as_uri().encode()
    return [
        (
            "XXE, external entity",
            b'<?xml version="1.0"?>\n<!DOCTYPE r [<!ENTITY x SYSTEM "' + url + b'">]>\n<r>&x;</r>',
            "xml.doctype",
        ),
        ("XXE, parameter entity", b'<!DOCTYPE r [<!ENTITY % p SYSTEM "' + url + b'"> %p;]><r/>', "xml.doctype"),
        ("external DTD", b'<!DOCTYPE r SYSTEM "' + url + b'"><r/>', "xml.doctype"),
        ("billion laughs", LOLZ, "xml.doctype"),
        ("quadratic blow-up", QUADRATIC, "xml.doctype"),
        ("entity with no DOCTYPE", b"<r>&x;</r>", "xml.syntax"),
        ("300-deep nesting", b"<a>" * 300 + b"</a>" * 300, "xml.limit"),
        ("11 MB text node", b"<r>" + b"x" * 11_000_000 + b"</r>", "xml.limit"),
        ("invalid UTF-8", b'<?xml version="1.0" encoding="UTF-8"?><r>caf\xe9 \xff\xfe</r>', "xml.encoding"),
        ("NUL character", b"<r>\x00</r>", "xml.syntax"),
        (
            "DOCTYPE after a 70 KiB comment",
            b"<!--" + b"x" * 70_000 + b"-->" + b'<!DOCTYPE r SYSTEM "' + url + b'"><r/>',
            "xml.doctype",
        ),
        ("DOCTYPE in UTF-16", '<!DOCTYPE r [<!ENTITY a "b">]><r>&a;</r>'.encode("utf-16"), "xml.doctype"),
    ]


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text("TOP-SECRET-CONTENT")
    return path


@pytest.mark.parametrize("index", range(12))
def test_hostile_input_is_refused(index: int, secret: Path) -> None:
    """(How long each takes: tests/bench/bench_timings.py.)"""
    label, data, code = hostile_cases(secret)[index]
    result = xml.validate(data, {})
    assert not result.valid, label
    assert codes(result) == [code], (label, [str(f) for f in result.findings])
    assert "TOP-SECRET" not in repr(result)
    with pytest.raises(xml.XMLRejected) as caught:
        xml.parse(data)
    assert caught.value.finding.code == code


def test_limit_findings_say_where_and_why() -> None:
    result = xml.validate(b"<a>" * 300 + b"</a>" * 300, {})
    (finding,) = result.findings
    assert finding.where == "line 1, column 771"
    assert "safety limit" in finding.message and "depth" in finding.message
    assert xml.validate(b"<a>" * 250 + b"</a>" * 250, {}).valid  # under libxml2's 256


def test_doctype_is_refused_even_when_harmless() -> None:
    result = xml.validate(b'<?xml version="1.0"?>\n<!-- note -->\n<!DOCTYPE r>\n<r/>', {})
    assert [(f.code, f.where) for f in result.findings] == [("xml.doctype", "line 3, column 1")]
    # a DOCTYPE-like string in a comment is not a DOCTYPE
    assert xml.validate(b"<!-- <!DOCTYPE r> --><r/>", {}).valid


@pytest.fixture
def listener() -> Iterator[tuple[int, list[bytes]]]:
    """A TCP port that records any connection made to it (nothing should ever connect)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    server.settimeout(0.2)
    hits: list[bytes] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(0.5)
                try:
                    hits.append(conn.recv(1024))
                except OSError:
                    hits.append(b"")

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1], hits
    stop.set()
    thread.join(2)
    server.close()


def test_nothing_is_fetched_from_the_network(listener: tuple[int, list[bytes]], tmp_path: Path) -> None:
    port, hits = listener
    url = f"http://127.0.0.1:{port}"
    # xsi:schemaLocation is never followed
    doc = (
        '<r xmlns="urn:x" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
        f' xsi:schemaLocation="urn:x {url}/r.xsd"/>'
    ).encode()
    assert xml.validate(doc, {}).valid
    assert codes(xml.validate(f'<!DOCTYPE r SYSTEM "{url}/r.dtd"><r/>'.encode(), {})) == ["xml.doctype"]
    # an XSD that imports from the network compiles without fetching, or fails clearly
    schema = tmp_path / "remote-import.xsd"
    schema.write_text(
        '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:t="urn:t" targetNamespace="urn:x">'
        f'<xs:import namespace="urn:t" schemaLocation="{url}/types.xsd"/>'
        '<xs:element name="r" type="t:T"/></xs:schema>'
    )
    result = xml.validate(b'<r xmlns="urn:x"/>', {"xml_schema": str(schema)})
    assert codes(result) == ["xml.schema-unavailable"]
    time.sleep(0.3)
    assert hits == []


# --------------------------------------------------------------------------- well-formedness


@pytest.mark.parametrize(
    ("data", "where", "words"),
    [
        (b'<?xml version="1.0"?>\n<r>\n  <a>\n  </b>\n</r>', "line 4, column 7", "Opening and ending tag mismatch"),
        (b"<r>", "line 1, column 4", "Premature end of data"),
        (b"<r/><r/>", "line 1, column 5", "Extra content at the end of the document"),
        (b"", "line 1, column 1", "Document is empty"),
        (b"<r a='1' a='2'/>", "line 1, column 15", "Attribute a redefined"),
        (b"<a:r/>", None, "Namespace prefix a on r is not defined"),
    ],
)
def test_not_well_formed(data: bytes, where: str | None, words: str) -> None:
    result = xml.validate(data, {})
    (finding,) = result.findings
    assert finding.code == "xml.syntax" and finding.severity == ERROR
    assert words in finding.message
    assert ", line" not in finding.message  # the position is in `where`, not repeated
    if where:
        assert finding.where == where


def test_namespace_error_is_refused() -> None:
    assert not xml.validate(b"<a:r/>", {}).valid


def test_other_encodings_are_fine_for_plain_xml() -> None:
    assert xml.validate('<?xml version="1.0" encoding="UTF-16"?><r>é</r>'.encode("utf-16"), {}).valid
    assert xml.validate('<?xml version="1.0" encoding="ISO-8859-1"?><r>é</r>'.encode("latin-1"), {}).valid
    assert xml.validate(b"\xef\xbb\xbf<r/>", {}).valid


def test_comments_and_pis_are_kept_by_default() -> None:
    root = xml.parse(b"<?pi x?><r><!-- c --><?p q?><a/></r>")
    assert len(root) == 3
    stripped = xml.parse(b"<?pi x?><r><!-- c --><?p q?><a/></r>", strip_comments=True)
    assert [child.tag for child in stripped] == ["a"]


def test_safe_parser_settings() -> None:
    from lxml import etree

    parser = xml.safe_parser()
    assert isinstance(parser, etree.XMLParser)
    assert parser is not xml.safe_parser()  # one per caller (lxml: do not share across threads)
    root = etree.fromstring(b'<!DOCTYPE r [<!ENTITY e "expanded">]><r>&e;</r>', parser)
    assert root.text is None  # entities are not expanded


# --------------------------------------------------------------------------- XSD and Schematron

REFERRAL = (DATA / "referral.xml").read_bytes()
BOTH = {"xml_schema": "referral.xsd", "schematron": "referral.sch", "schema_dirs": [str(DATA)]}


def test_valid_against_xsd_and_schematron() -> None:
    result = xml.validate(REFERRAL, BOTH)
    assert result.valid and result.findings == ()
    assert result.details["xml_schema"] == str(DATA / "referral.xsd")
    assert result.details["schematron"] == str(DATA / "referral.sch")


def test_xsd_errors_have_lines() -> None:
    bad = REFERRAL.replace(b"9434765919", b"94347X5919").replace(b"routine", b"soon")
    result = xml.validate(bad, {"xml_schema": str(DATA / "referral.xsd")})
    assert [(f.code, f.where) for f in result.findings] == [("xml.xsd", "line 4"), ("xml.xsd", "line 7")]
    assert "'94347X5919' is not accepted by the pattern" in result.findings[0].message
    assert "not an element of the set" in result.findings[1].message


def test_schematron_failed_asserts() -> None:
    bad = REFERRAL.replace(b"9434765919", b"0434765919").replace(b"routine", b"urgent")
    result = xml.validate(bad, BOTH)
    found = {(f.severity, f.where, f.message) for f in result.findings}
    assert found == {
        (ERROR, "line 4 (/referral/patient/nhsNumber)", "An NHS number does not start with 0."),
        (WARNING, "line 2 (/referral)", "An urgent referral should carry a note."),
    }
    assert set(codes(result)) == {"xml.schematron"}
    assert not result.valid
    only_warning = xml.validate(REFERRAL.replace(b"routine", b"urgent"), BOTH)
    assert only_warning.valid and codes(only_warning) == ["xml.schematron"]


def test_schema_lookup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert xml.SCHEMA_DIR.parent == Path(xml.__file__).parents[1]  # the package: its data ships in wheels
    assert xml.SCHEMA_DIR.name == "schemas"
    # as given (relative to the working directory)
    monkeypatch.chdir(DATA.parent)
    assert xml.validate(REFERRAL, {"xml_schema": "data/referral.xsd"}).valid
    # in the package's schemas/ folder
    monkeypatch.setattr(xml_schemas, "SCHEMA_DIR", DATA)  # where the lookup reads it
    monkeypatch.chdir(tmp_path)
    assert xml.validate(REFERRAL, {"xml_schema": "referral.xsd"}).details["xml_schema"] == str(DATA / "referral.xsd")


def test_missing_schema_is_a_finding_not_a_traceback(tmp_path: Path) -> None:
    result = xml.validate(REFERRAL, {"xml_schema": "no-such.xsd", "schema_dirs": [str(tmp_path)]})
    (finding,) = result.findings
    assert finding.code == "xml.schema-unavailable" and finding.severity == ERROR
    assert "no-such.xsd" in finding.message and str(tmp_path) in finding.message
    broken = tmp_path / "broken.xsd"
    broken.write_text("<xs:schema xmlns:xs='http://www.w3.org/2001/XMLSchema'><xs:element/></xs:schema>")
    result = xml.validate(REFERRAL, {"xml_schema": str(broken)})
    assert codes(result) == ["xml.schema-unavailable"] and "cannot compile XSD" in result.findings[0].message
    xslt2 = tmp_path / "xslt2.sch"
    xslt2.write_text(
        '<sch:schema xmlns:sch="http://purl.oclc.org/dsdl/schematron" queryBinding="xslt2">'
        '<sch:pattern><sch:rule context="/"><sch:assert test="true()">x</sch:assert></sch:rule></sch:pattern>'
        "</sch:schema>"
    )
    result = xml.validate(REFERRAL, {"schematron": str(xslt2)})
    assert codes(result) == ["xml.schema-unavailable"] and "xslt2" in result.findings[0].message
    with pytest.raises(xml.SchemaUnavailable):
        xml.find_schema("no-such.xsd")


def test_schema_is_compiled_once_and_recompiled_when_changed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lxml import etree

    schema = tmp_path / "s.xsd"
    schema.write_text(
        '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"><xs:element name="r" type="xs:int"/></xs:schema>'
    )
    compiled = []
    real = etree.XMLSchema

    def counting(*args: object, **kwargs: object) -> etree.XMLSchema:
        compiled.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(etree, "XMLSchema", counting)
    options = {"xml_schema": str(schema)}
    for _ in range(3):
        assert not xml.validate(b"<r>x</r>", options).valid
    assert len(compiled) == 1
    schema.write_text(
        '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"><xs:element name="r" type="xs:string"/></xs:schema>'
    )
    stat = schema.stat()
    os.utime(schema, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10_000_000))
    assert xml.validate(b"<r>x</r>", options).valid
    assert len(compiled) == 2


def test_xsd_findings_are_capped(tmp_path: Path) -> None:
    schema = tmp_path / "ints.xsd"
    schema.write_text(
        '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"><xs:element name="r"><xs:complexType><xs:sequence>'
        '<xs:element name="i" type="xs:int" maxOccurs="unbounded"/>'
        "</xs:sequence></xs:complexType></xs:element></xs:schema>"
    )
    doc = b"<r>" + b"<i>x</i>\n" * 500 + b"</r>"
    result = xml.validate(doc, {"xml_schema": str(schema)})
    assert len(result.findings) == xml.MAX_FINDINGS + 1
    assert "400 more" in result.findings[-1].message


def test_concurrent_validation_against_one_schema() -> None:
    bad = REFERRAL.replace(b"routine", b"soon")
    results: list[bool] = []

    def work() -> None:
        for _ in range(30):
            results.append(xml.validate(REFERRAL, BOTH).valid)
            results.append(not xml.validate(bad, BOTH).valid)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 240 and all(results)


# --------------------------------------------------------------------------- bytes, sniffing, plugin


def test_validation_never_modifies_bytes() -> None:
    original = b'<?xml version="1.0"?>\n<!-- c --><?pi x?><r xmlns="urn:x"><!-- d --><a>1</a></r>\n'
    buffer = bytearray(original)
    result = xml.validate(buffer, {})  # type: ignore[arg-type]
    assert result.valid and bytes(buffer) == original
    assert not any(isinstance(v, bytes | bytearray) for v in result.details.values())


@pytest.mark.parametrize(
    ("head", "confidence"),
    [
        (b'<?xml version="1.0"?><r/>', 0.6),
        (b"<!-- first --><r/>", 0.6),
        (b"\xef\xbb\xbf  \r\n<r/>", 0.6),
        (b"\n\n   <r", 0.6),
        ("<référé/>".encode(), 0.6),
        (b"<<URGENT>> call the ward", 0.0),  # text that opens with angle brackets is not claimed
        (b"< 5 mmol/L", 0.0),
        ("<r/>".encode("utf-16"), 0.6),
        (b'{"resourceType": "Patient"}', 0.0),
        (b"UNA:+.? 'UNB+UNOA:2", 0.0),
        (b"MSH|^~\\&|", 0.0),
        (b"", 0.0),
        (b"\xff\x00\x13", 0.0),
    ],
)
def test_sniff(head: bytes, confidence: float) -> None:
    assert xml.sniff(head) == pytest.approx(confidence)


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b'<?xml version="1.0"?>\n<!-- c -->\n<Bundle xmlns="http://hl7.org/fhir">', ("http://hl7.org/fhir", "Bundle")),
        (b'<f:Bundle xmlns="urn:other" xmlns:f="http://hl7.org/fhir">', ("http://hl7.org/fhir", "Bundle")),
        (b"<ClinicalDocument xmlns='urn:hl7-org:v3' xmlns:x='urn:y'>", ("urn:hl7-org:v3", "ClinicalDocument")),
        (b"<r>", (None, "r")),
        (b'<!DOCTYPE r [<!ENTITY a "b">]><r xmlns="urn:x"/>', ("urn:x", "r")),
        (b"<!-- never ends", None),
        (b"plain text", None),
    ],
)
def test_root_name(head: bytes, expected: tuple[str | None, str] | None) -> None:
    assert xml.root_name(head) == expected


def test_plugin_hook() -> None:
    manager = pluggy.PluginManager("meshbridge")
    manager.add_hookspecs(hookspecs)
    manager.register(xml)
    (types,) = manager.hook.meshbridge_payload_types(plugin_config={})
    assert types == [xml.PAYLOAD_TYPE]
    assert isinstance(xml.PAYLOAD_TYPE, PayloadType)
    assert (xml.PAYLOAD_TYPE.name, xml.PAYLOAD_TYPE.media_type) == ("xml", "application/xml")


def test_validate_never_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(xml, "parse", boom)
    result = xml.validate(b"<r/>", {})
    assert codes(result) == ["xml.internal"] and "RuntimeError: bug" in result.findings[0].message
