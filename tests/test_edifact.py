"""The built-in EDIFACT payload type: real NHS fixtures, each envelope check, sniffing, hostile input."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pluggy
import pytest

from meshbridge import hookspecs
from meshbridge.payloads import edifact
from meshbridge.payloads.base import ERROR, WARNING, Finding, ValidationResult
from meshbridge.payloads.edifact import sniff, validate

FIXTURES = Path(__file__).parents[1].parent / "shared" / "fixtures" / "payloads" / "edifact"
EXPECTED = {  # file -> valid?, as stated in shared/fixtures/payloads/SOURCES.md
    "nhais-registration.dat": True,
    "nhais-registration_recep.dat": True,
    "nhais-inbound_example.txt": True,
    "labresults-pathology_IAF.edifact.dat": True,
    "labresults-pathology.nhsack.dat": True,
    "labresults-basicScreen.edifact.dat": True,
    "labresults-NHS003-message_parsing_failure_with_nhsack.edifact.dat": False,
}
WHERE = re.compile(r"segment \d+( \([A-Z0-9]{3}\))?")

UNB = "UNB+UNOA:2+SENDER:ZZ+RECIPIENT:ZZ+200101:1200+REF1"
MESSAGE = ("UNH+1+FHSREG:0:1:FH:FHS001", "BGM+++507", "UNT+3+1")
UNZ = "UNZ+1+REF1"
GROUP = "UNG+FHSREG+S+R+200101:1200+G1+UN+0:1"


def edi(*segments: str, una: str = "", end: str = "'\n", encoding: str = "latin-1") -> bytes:
    """An interchange from segment bodies, each followed by ``end`` (terminator and line break)."""
    return (una + "".join(s + end for s in segments)).encode(encoding)


def simple(*body: str, unb: str = UNB, unz: str = UNZ, **kwargs: str) -> bytes:
    """UNB, one message UNH + ``body`` + UNT (count right), UNZ."""
    segments = ("UNH+1+FHSREG:0:1:FH:FHS001", *body, f"UNT+{len(body) + 2}+1")
    return edi(unb, *segments, unz, **kwargs)


def check(data: bytes) -> ValidationResult:
    """Validate, and hold every result to the contract: typed findings, stable codes, well-formed ``where``."""
    result = validate(data, {})
    assert result.payload_type == "edifact"
    for finding in result.findings:
        assert isinstance(finding, Finding)
        assert finding.code and finding.code.startswith("edifact."), finding
        assert finding.code != "edifact.internal", finding
        assert finding.severity in (ERROR, WARNING)
        assert finding.message and "b'" not in finding.message, finding
        assert finding.where is None or WHERE.fullmatch(finding.where), finding
    return result


def one_error(data: bytes, code: str, where: str | None) -> Finding:
    """The payload is refused with exactly one error, ``code`` at ``where``."""
    result = check(data)
    assert not result.valid
    assert [(f.code, f.where) for f in result.errors] == [(f"edifact.{code}", where)], result.findings
    return result.errors[0]


def codes(result: ValidationResult) -> list[str]:
    return [f.code or "" for f in result.findings]


# --- real fixtures -----------------------------------------------------------------------------------


def fixture(name: str) -> bytes:
    if not FIXTURES.is_dir():
        pytest.skip("../shared/fixtures not present (fixtures live outside the project)")
    return (FIXTURES / name).read_bytes()


@pytest.mark.parametrize(("name", "valid"), EXPECTED.items())
def test_fixture_verdicts(name: str, valid: bool) -> None:
    data = fixture(name)
    result = check(data)
    assert sniff(data) == 1.0
    assert result.valid is valid, result.findings
    if valid:
        assert result.findings == ()
    assert result.details["messages"] and result.details["interchange_ref"]


def test_fixture_nhs003_failure_is_the_unt_reference() -> None:
    result = check(fixture("labresults-NHS003-message_parsing_failure_with_nhsack.edifact.dat"))
    (error,) = result.errors
    assert (error.code, error.where) == ("edifact.unt-reference", "segment 56 (UNT)")
    assert "'2' does not match UNH '1'" in error.message


def test_fixture_details_for_ack_correlation() -> None:
    reg = check(fixture("nhais-registration.dat")).details
    assert (reg["syntax"], reg["syntax_version"], reg["una"]) == ("UNOA", "2", False)
    assert (reg["sender"], reg["recipient"], reg["interchange_ref"]) == ("XX11", "TES5", "00000003")
    assert reg["messages"] == [{"ref": "00000009", "type": "FHSREG:0:1:FH:FHS001"}]
    assert reg["ack_requested"] is False and reg["application_ref"] is None
    recep = check(fixture("nhais-registration_recep.dat")).details
    assert (recep["application_ref"], recep["messages"][0]["type"]) == ("RECEP", "RECEP:0:2:FH")
    two = check(fixture("nhais-inbound_example.txt")).details
    assert [m["ref"] for m in two["messages"]] == ["00000056", "00000057"]
    path = check(fixture("labresults-pathology_IAF.edifact.dat")).details
    assert (path["syntax"], path["syntax_version"], path["una"]) == ("UNOC", "3", True)
    assert (path["sender"], path["sender_qualifier"], path["recipient"]) == ("000000004400001", "80", "000000024600002")
    assert (path["application_ref"], path["ack_requested"], path["interchange_ref"]) == ("MEDRPT", True, "1015")
    assert path["prepared"] == "2010-03-01T17:51"
    ack = check(fixture("labresults-pathology.nhsack.dat")).details
    assert (ack["application_ref"], ack["messages"][0]["type"]) == ("NHSACK", "NHSACK:D:1:NH:NHS001")


@pytest.mark.parametrize(
    ("old", "new", "code", "where"),
    [
        (b"UNT+11+00000009", b"UNT+12+00000009", "unt-count", "segment 12 (UNT)"),
        (b"UNZ+1+00000003", b"UNZ+1+00000004", "unz-reference", "segment 13 (UNZ)"),
        (b"UNZ+1+", b"UNZ+2+", "unz-count", "segment 13 (UNZ)"),
        (b"PNA+PAT+RAT56", b"PNA+PAT+RAt56", "charset", "segment 11 (PNA)"),
        (b"+200125:1235+", b"+200132:1235+", "unb-datetime", "segment 1 (UNB)"),
        (b"UNB+UNOA:2+", b"UNB+UNOA+", "syntax-version", "segment 1 (UNB)"),
        (b"S02+2'\n", b"S02+2\n", "line-break", "segment 10 (S02)"),
        (b"UNH+00000009", b"UNH+00000008", "unt-reference", "segment 12 (UNT)"),
    ],
)
def test_faults_injected_into_a_real_interchange(old: bytes, new: bytes, code: str, where: str) -> None:
    data = fixture("nhais-registration.dat")
    assert data.count(old) == 1
    one_error(data.replace(old, new), code, where)


def test_fixture_every_truncation_is_refused() -> None:
    data = fixture("labresults-basicScreen.edifact.dat")
    for cut in range(len(data)):
        result = check(data[:cut])
        assert not result.valid, cut


# --- well-formed interchanges ------------------------------------------------------------------------


def test_minimal_interchange_is_valid() -> None:
    result = check(simple("BGM+++507"))
    assert result.valid and result.findings == ()
    assert result.details["segments"] == 5
    assert result.details["prepared"] == "2020-01-01T12:00"


@pytest.mark.parametrize("end", ["'", "'\n", "'\r\n", "'\n\n"])
def test_one_line_and_line_breaks_after_terminators(end: str) -> None:
    result = check(simple("BGM+++507", "NAD+PAT++??:136 HIGH STREET", end=end))
    assert result.valid and result.findings == ()


def test_release_sequences_are_data_not_syntax() -> None:
    # ?' is an apostrophe, ?: a colon, ??: a question mark then a component separator, ?? at the end a '?'
    data = simple("NAD+SLA+++ST JAMES?'S UNIVERSITY HOSPITAL", "INV+MQ+::BCS?:FOB", "NAD+PAT++??:1 HIGH ST??")
    result = check(data)
    assert result.valid and result.findings == ()
    assert result.details["segments"] == 7  # a terminator taken for real would change the UNT count


def test_components_inside_free_text_are_fine() -> None:
    assert check(simple("NAD+MR+++Bowel Cancer Screening Administrato:r", unb=UNB.replace("UNOA", "UNOC"))).valid


def test_custom_una_characters() -> None:
    una = "UNA|*,# ~"
    body = ("UNB*UNOA|2*SENDER*RECIP*200101|1200*R1", "UNH*1*A|1|1|UN", "FTX*A#~B#*C", "UNT*3*1", "UNZ*1*R1")
    result = check(edi(*body, una=una, end="~"))
    assert result.valid and result.findings == ()
    assert result.details["messages"] == [{"ref": "1", "type": "A:1:1:UN"}]


def test_level_b_information_separators_without_una() -> None:
    body = ("UNB\x1dUNOB\x1f3\x1dS\x1dR\x1d200101\x1f1200\x1dR1", "UNH\x1d1\x1dA\x1f1\x1f1\x1fUN", "UNT\x1d2\x1d1")
    assert check(edi(*body, "UNZ\x1d1\x1dR1", end="\x1c")).valid


def test_groups_are_counted_in_unz() -> None:
    second = ("UNG+FHSREG+S+R+200101:1200+G2+UN+0:1", "UNH+2+FHSREG:0:1:FH:FHS001", "UNT+2+2", "UNE+1+G2")
    result = check(edi(UNB, GROUP, *MESSAGE, "UNE+1+G1", *second, UNZ.replace("+1+", "+2+")))
    assert result.valid and result.findings == ()


def test_ack_requested_and_ccyymmdd_date() -> None:
    unb = "UNB+UNOC:3+SENDER:80+RECIP:80+20200427:1637+1015++MEDRPT++1"
    details = check(simple("BGM+LSR", unb=unb, unz="UNZ+1+1015")).details
    assert (details["ack_requested"], details["application_ref"], details["prepared"]) == (
        True,
        "MEDRPT",
        "2020-04-27T16:37",
    )


# --- character repertoires ---------------------------------------------------------------------------


def test_unoa_refuses_lower_case() -> None:
    error = one_error(simple("FTX+AAI+++RESULTS REPEATEd"), "charset", "segment 3 (FTX)")
    assert "'d' (byte 0x64)" in error.message and "UNOA" in error.message and "lower case" in error.message


def test_unoa_lists_at_most_ten_characters_then_a_count() -> None:
    result = check(simple("FTX+AAI+++" + "x" * 50))
    assert codes(result) == ["edifact.charset"] * 11
    assert result.findings[-1].message.startswith("40 more characters outside UNOA")


def test_unob_accepts_lower_case_but_not_accents() -> None:
    unb = UNB.replace("UNOA", "UNOB")
    assert check(simple("FTX+AAI+++Results repeated", unb=unb)).valid
    one_error(simple("FTX+AAI+++caf\xe9", unb=unb), "charset", "segment 3 (FTX)")


def test_unoc_accepts_latin1_accents() -> None:
    result = check(simple("NAD+PAT++Ren\xe9e M\xfcller", unb=UNB.replace("UNOA:2", "UNOC:3")))
    assert result.valid and result.findings == ()


def test_unoc_refuses_windows_1252_punctuation() -> None:
    error = one_error(simple("FTX+AAI+++St James\x92s", unb=UNB.replace("UNOA", "UNOC")), "charset", "segment 3 (FTX)")
    assert "byte 0x92" in error.message and "Windows-1252" in error.message


def test_unow_is_utf8_and_needs_version_4() -> None:
    unb = "UNB+UNOW:4+S+R+20200101:1200+REF1"
    assert check(simple("NAD+PAT++Ren\xe9e \u2019", unb=unb, encoding="utf-8")).valid
    data = simple("NAD+PAT++Ren\xe9e", unb=unb, encoding="latin-1")  # not UTF-8
    error = one_error(data, "encoding", "segment 3 (NAD)")
    assert "not valid UTF-8" in error.message
    one_error(simple("BGM", unb=unb.replace(":4", ":3")), "syntax-version", "segment 1 (UNB)")


def test_control_characters_are_refused() -> None:
    one_error(simple("FTX+AAI+++A\tB", unb=UNB.replace("UNOA", "UNOC")), "charset", "segment 3 (FTX)")


# --- UNA, UNB, UNZ and the interchange as a whole ---------------------------------------------------


@pytest.mark.parametrize("data", [b"", b"  \r\n\t "])
def test_empty_payload(data: bytes) -> None:
    error = one_error(data, "empty", None)
    assert "empty" in error.message or "whitespace" in error.message


def test_una_must_be_nine_characters() -> None:
    error = one_error(b"UNA:+.?'" + simple("BGM"), "una-length", "segment 1 (UNA)")
    assert "found 8 before UNB" in error.message
    one_error(b"UNA:+", "una-length", "segment 1 (UNA)")


def test_una_characters_must_be_distinct() -> None:
    error = one_error(b"UNA:+.?:'" + simple("BGM"), "una-chars", "segment 1 (UNA)")
    assert "distinct" in error.message and "':'" in error.message
    one_error(b"UNA:+x? '" + simple("BGM"), "una-chars", "segment 1 (UNA)")


def test_unb_must_come_first() -> None:
    error = one_error(edi(*MESSAGE, UNZ), "unb-first", "segment 1")
    assert "must start with UNB" in error.message
    one_error(b"UNA:+.? 'UNH+1'", "unb-first", "segment 2")


def test_unb_twice_and_una_inside() -> None:
    one_error(simple("BGM").replace(b"BGM'", UNB.encode() + b"'"), "unb-position", "segment 3 (UNB)")


@pytest.mark.parametrize(
    ("syntax", "code", "text"),
    [
        ("UNOX:3", "syntax-id", "'UNOX' is not supported"),
        ("UNOA", "syntax-version", "has no syntax version"),
        ("UNOA:9", "syntax-version", "'9' is not 1-4"),
        ("", "syntax-id", "no syntax identifier"),
    ],
)
def test_unb_syntax_identifier(syntax: str, code: str, text: str) -> None:
    result = check(simple("BGM", unb=UNB.replace("UNOA:2", syntax)))
    finding = next(f for f in result.errors if f.code == f"edifact.{code}")
    assert finding.where == "segment 1 (UNB)" and text in finding.message


@pytest.mark.parametrize(
    ("stamp", "text"), [("200230:1200", "not a calendar date"), ("200101:2460", "HHMM"), ("2001:1200", "YYMMDD")]
)
def test_unb_date_and_time(stamp: str, text: str) -> None:
    error = one_error(simple("BGM", unb=UNB.replace("200101:1200", stamp)), "unb-datetime", "segment 1 (UNB)")
    assert text in error.message


def test_unb_sender_recipient_and_reference() -> None:
    one_error(simple("BGM", unb=UNB.replace("SENDER:ZZ", "")), "unb-sender", "segment 1 (UNB)")
    one_error(simple("BGM", unb=UNB.replace("RECIPIENT:ZZ", "R" * 36)), "unb-recipient", "segment 1 (UNB)")
    long_ref = "R" * 15
    one_error(
        simple("BGM", unb=UNB.replace("REF1", long_ref), unz=f"UNZ+1+{long_ref}"), "unb-reference", "segment 1 (UNB)"
    )


def test_unz_reference_must_match_unb() -> None:
    error = one_error(simple("BGM", unz="UNZ+1+REF2"), "unz-reference", "segment 5 (UNZ)")
    assert "'REF2'" in error.message and "'REF1'" in error.message


@pytest.mark.parametrize(
    ("unz", "text"), [("UNZ+2+REF1", "count is 2 but the interchange has 1 message"), ("UNZ+X+REF1", "not a number")]
)
def test_unz_count(unz: str, text: str) -> None:
    error = one_error(simple("BGM", unz=unz), "unz-count", "segment 5 (UNZ)")
    assert text in error.message


def test_missing_unz() -> None:
    error = one_error(edi(UNB, *MESSAGE), "unz-missing", "segment 4 (UNT)")
    assert "no UNZ" in error.message


def test_only_whitespace_after_unz() -> None:
    assert check(simple("BGM") + b"\r\n  \n").valid
    error = one_error(simple("BGM") + UNB.encode() + b"'", "after-unz", "segment 5 (UNZ)")
    assert error.message.startswith(f"{len(UNB) + 1} bytes after UNZ")
    one_error(simple("BGM") + b"\x00\x00", "after-unz", "segment 5 (UNZ)")


def test_truncated_interchange() -> None:
    data = simple("BGM+++507")
    result = check(data[: data.index(b"BGM") + 6])
    assert codes(result) == ["edifact.unterminated", "edifact.unt-missing", "edifact.unz-missing"]
    assert [f.where for f in result.findings] == ["segment 3 (BGM)", "segment 2 (UNH)", "segment 3 (BGM)"]
    assert "truncated" in result.findings[0].message
    result = check(data[: data.index(b"UNZ") + 10])  # UNZ+1+REF1 without its terminator
    assert [(f.code, f.where) for f in result.findings] == [("edifact.unterminated", "segment 5 (UNZ)")]


def test_dangling_release_character_at_the_end() -> None:
    result = check(simple("BGM")[:-2] + b"?")
    assert codes(result)[:2] == ["edifact.dangling-release", "edifact.unterminated"]
    assert result.findings[0].where == "segment 5 (UNZ)"


def test_line_break_instead_of_a_terminator() -> None:
    error = one_error(simple("BGM+++507").replace(b"507'", b"507"), "line-break", "segment 3 (BGM)")
    assert "before its terminator" in error.message


def test_needless_release_is_a_warning() -> None:
    result = check(simple("FTX+AAI+++A?B"))
    assert result.valid
    assert [(f.code, f.severity, f.where) for f in result.findings] == [
        ("edifact.release-needless", WARNING, "segment 3 (FTX)")
    ]


def test_utf8_bom() -> None:
    one_error(b"\xef\xbb\xbf" + simple("BGM"), "bom", None)
    result = check(b"\xef\xbb\xbf" + simple("BGM", unb="UNB+UNOW:4+S+R+20200101:1200+REF1"))
    assert result.valid and codes(result) == ["edifact.bom"]


# --- segments, messages, groups ----------------------------------------------------------------------


@pytest.mark.parametrize(("body", "text"), [("ftx+A", "'ftx+A'"), ("FTXX+A", "'FTXX+A'"), ("", "empty segment")])
def test_segment_tags(body: str, text: str) -> None:
    error = one_error(simple("BGM", body, unb=UNB.replace("UNOA", "UNOC")), "segment-tag", "segment 4")
    assert text in error.message


def test_segment_outside_a_message() -> None:
    error = one_error(edi(UNB, "BGM+++507", *MESSAGE, UNZ), "segment-outside-message", "segment 2 (BGM)")
    assert "outside a message" in error.message


@pytest.mark.parametrize(
    ("unt", "text"), [("UNT+4+1", "count is 4 but the message has 3 segments"), ("UNT++1", "not a number")]
)
def test_unt_count(unt: str, text: str) -> None:
    error = one_error(edi(UNB, *MESSAGE[:2], unt, UNZ), "unt-count", "segment 4 (UNT)")
    assert text in error.message


def test_unt_reference() -> None:
    error = one_error(edi(UNB, *MESSAGE[:2], "UNT+3+2", UNZ), "unt-reference", "segment 4 (UNT)")
    assert "'2' does not match UNH '1' (segment 2)" in error.message


def test_unh_without_unt() -> None:
    error = one_error(edi(UNB, *MESSAGE[:2], UNZ), "unt-missing", "segment 2 (UNH)")
    assert "'1' has no UNT" in error.message and "segment 4 (UNZ)" in error.message


def test_unt_without_unh() -> None:
    result = check(edi(UNB, "UNT+2+1", UNZ.replace("+1+", "+0+")))
    assert [(f.code, f.where) for f in result.errors] == [("edifact.unt-unexpected", "segment 2 (UNT)")]


def test_nested_unh() -> None:
    data = edi(UNB, MESSAGE[0], "UNH+2+FHSREG:0:1:FH:FHS001", "UNT+2+2", UNZ.replace("+1+", "+2+"))
    error = one_error(data, "unh-nested", "segment 3 (UNH)")
    assert "inside message '1'" in error.message


def test_unh_message_identifier_and_reference() -> None:
    one_error(edi(UNB, "UNH+1+FHSREG:0", "UNT+2+1", UNZ), "unh-type", "segment 2 (UNH)")
    one_error(edi(UNB, "UNH++FHSREG:0:1:FH", "UNT+2+", UNZ), "unh-reference", "segment 2 (UNH)")


def test_duplicate_message_reference_is_a_warning() -> None:
    result = check(edi(UNB, *MESSAGE, *MESSAGE, UNZ.replace("+1+", "+2+")))
    assert result.valid and [(f.code, f.where) for f in result.findings] == [
        ("edifact.unh-duplicate", "segment 5 (UNH)")
    ]


def test_une_count_and_reference() -> None:
    one_error(edi(UNB, GROUP, *MESSAGE, "UNE+2+G1", UNZ), "une-count", "segment 6 (UNE)")
    error = one_error(edi(UNB, GROUP, *MESSAGE, "UNE+1+G2", UNZ), "une-reference", "segment 6 (UNE)")
    assert "'G2' does not match UNG 'G1' (segment 2)" in error.message


def test_ung_without_une_and_une_without_ung() -> None:
    one_error(edi(UNB, GROUP, *MESSAGE, UNZ), "une-missing", "segment 2 (UNG)")
    one_error(edi(UNB, *MESSAGE, "UNE+1+G1", UNZ), "une-unexpected", "segment 5 (UNE)")


def test_unz_counts_groups_when_groups_are_used() -> None:
    grouped = (GROUP, *MESSAGE, "UNH+2+FHSREG:0:1:FH:FHS001", "UNT+2+2", "UNE+2+G1")
    error = one_error(edi(UNB, *grouped, "UNZ+2+REF1"), "unz-count", "segment 9 (UNZ)")
    assert "the interchange has 1 functional group" in error.message


def test_messages_outside_groups_when_groups_are_used() -> None:
    data = edi(UNB, GROUP, *MESSAGE, "UNE+1+G1", "UNH+2+FHSREG:0:1:FH:FHS001", "UNT+2+2", "UNZ+1+REF1")
    one_error(data, "ung-mixed", "segment 7 (UNH)")


# --- sniffing, registration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "confidence"),
    [
        (b"UNA:+.? 'UNB+UNOC:3+", 1.0),
        (b"UNA:+.? '\r\nUNB+UNOC:3+", 1.0),
        (b"\xef\xbb\xbf \r\nUNB+UNOA:2+XX11+TES5", 1.0),
        (b"UNB+UNOA:2+XX11", 1.0),
        (b"UNA:+.?'UNB+UNOC:3", 0.5),
        (b"UNB+IATB:1+X", 0.5),
        (b"UNABLE TO COMPLY", 0.0),
        (b"<?xml version='1.0'?><Bundle/>", 0.0),
        (b'{"resourceType": "Bundle"}', 0.0),
        (b"MSH|^~\\&|", 0.0),
        (b"", 0.0),
    ],
)
def test_sniff(head: bytes, confidence: float) -> None:
    assert sniff(head) == confidence


def test_sniff_never_raises() -> None:
    rng = random.Random(7)
    for _ in range(500):
        assert 0.0 <= sniff(rng.randbytes(rng.randrange(64))) <= 1.0
    assert sniff(None) == 0.0  # type: ignore[arg-type]
    assert sniff(memoryview(b"UNB+UNOA:2+")) == 1.0  # type: ignore[arg-type]


def test_input_types() -> None:
    data = simple("BGM")
    assert validate(bytearray(data), {}).valid and validate(memoryview(data), {}).valid
    result = validate(data.decode(), {})  # type: ignore[arg-type]
    assert [f.code for f in result.findings] == ["edifact.internal"]
    assert "expected bytes, got str" in result.findings[0].message


def test_registered_through_the_plugin_hook() -> None:
    pm = pluggy.PluginManager("meshbridge")
    pm.add_hookspecs(hookspecs)
    pm.register(edifact)
    (types,) = pm.hook.meshbridge_payload_types(plugin_config={})
    (payload_type,) = types
    assert (payload_type.name, payload_type.media_type) == ("edifact", "application/EDIFACT")
    assert payload_type.validate is validate and payload_type.sniff is sniff and payload_type.description


# --- hostile input (how long each takes: tests/bench/bench_timings.py) -----------------------------


def test_a_megabyte_of_terminators() -> None:
    assert codes(check(b"'" * (1 << 20))) == ["edifact.unb-first"]
    result = check(UNB.encode() + b"'" * (1 << 20))
    assert len(result.findings) == edifact.MAX_FINDINGS + 1 and codes(result)[-1] == "edifact.too-many"


def test_a_megabyte_of_release_characters() -> None:
    result = check(UNB.encode() + b"'" + b"?" * (1 << 20))
    assert not result.valid and "edifact.unterminated" in codes(result)


@pytest.mark.slow
def test_100k_segments() -> None:
    body = ["FTX+AAI+++LINE ?'" + str(i) for i in range(100_000)]
    result = check(simple(*body))
    assert result.valid and result.details["segments"] == 100_004
    result = check(simple(*body).replace(b"UNT+100002+1", b"UNT+100001+1"))
    assert codes(result) == ["edifact.unt-count"]


@pytest.mark.slow
def test_30k_messages() -> None:
    messages = [f"UNH+{i}+A:1:1:UN'UNT+2+{i}" for i in range(30_000)]
    result = check(edi(UNB, *messages, "UNZ+30000+REF1"))
    assert result.valid and len(result.details["messages"]) == 30_000
    assert result.details["messages"][-1] == {"ref": "29999", "type": "A:1:1:UN"}


def test_random_bytes() -> None:
    rng = random.Random(2026)
    for size in (1, 3, 9, 100, 10_000, 1 << 20):
        assert not check(rng.randbytes(size)).valid
        assert not check(UNB.encode() + b"'" + rng.randbytes(size)).valid


def test_mutations_never_raise() -> None:
    rng = random.Random(11)
    seeds = [simple("NAD+SLA+++ST JAMES?'S", "FTX+A??:B"), edi(UNB, GROUP, *MESSAGE, "UNE+1+G1", UNZ, una="UNA:+.? '")]
    alphabet = b"UNABHTZGE:+.? '?\r\n\x00\xff\xc3"
    for _ in range(3000):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randrange(1, 6)):
            i = rng.randrange(len(data))
            if rng.random() < 0.5:
                data[i] = rng.choice(alphabet)
            else:
                del data[i : i + rng.randrange(1, 12)]
        check(bytes(data))
