"""meshbridge-hl7v2: each check, the shared NHS fixtures, hostile input, a round trip through a real MESH sandbox."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import meshbridge_hl7v2
import pytest
from meshbridge_hl7v2 import sniff, validate

from meshbridge import PayloadRejected, ValidationResult
from meshbridge.plugins import Plugins
from meshbridge.validation import check

FIXTURES = Path(__file__).resolve().parents[3].parent / "shared" / "fixtures" / "payloads" / "hl7v2"
ADT_A01 = FIXTURES / "itk-ADT_A01_example.txt"
ORU_R01 = FIXTURES / "uclh-winpath-ORU_R01.txt"
needs_fixtures = pytest.mark.skipif(
    not FIXTURES.is_dir(), reason=f"shared HL7 v2 fixtures not found at {FIXTURES} (shared/ beside the repository)"
)

MSH = {2: "^~\\&", 3: "PAS", 4: "RCB", 5: "EPR", 6: "RXX", 7: "20240101120000", 9: "ADT^A01^ADT_A01"}
MSH |= {10: "MSG00001", 11: "P", 12: "2.4"}
BODY = ("EVN|A01|20240101115900", "PID|1||9434765919^^^NHS||SMITH^ANNA", "PV1|1|I|RXX^WARD1^BED2")


def hl7(
    msh: dict[int, str] | None = None, body: tuple[str, ...] = BODY, end: str = "\r", charset: str = "utf-8"
) -> bytes:
    """An ADT^A01 with some MSH fields replaced (``{9: ""}`` empties MSH-9), segments ending with ``end``."""
    fields = MSH | (msh or {})
    header = "MSH|" + "|".join(fields.get(n, "") for n in range(2, max(fields) + 1))
    return (end.join([header, *body]) + end).encode(charset)


def run(data: bytes, **options: object) -> ValidationResult:
    return validate(data, options)


def codes(result: ValidationResult) -> list[str]:
    return [f.code or "" for f in result.findings]


def only(result: ValidationResult) -> str:
    """The one finding, as meshbridge prints it (``where: message``)."""
    assert len(result.findings) == 1, result.findings
    return str(result.findings[0])


# -- the shared NHS fixtures -------------------------------------------------------------------------


@needs_fixtures
def test_fixture_path_is_the_shared_folder() -> None:
    assert FIXTURES.parts[-4:] == ("shared", "fixtures", "payloads", "hl7v2")
    assert FIXTURES.parent.parent.parent.parent == Path(__file__).resolve().parents[4]


@needs_fixtures
def test_itk_adt_a01_fixture_is_valid() -> None:
    result = run(ADT_A01.read_bytes())
    assert result.valid, result.findings
    assert result.findings == ()
    assert result.details == {
        "message_type": "ADT", "trigger_event": "A01", "message_structure": "ADT_A01",
        "control_id": "1391320453338055", "version": "2.4", "processing_id": "P",
        "sending_application": "PAS", "sending_facility": "RCB",
        "receiving_application": "ROUTE", "receiving_facility": "ROUTE",
        "segments": 14, "segment_terminator": "LF", "charset": "utf-8",
    }  # fmt: skip


@needs_fixtures
def test_winpath_oru_r01_fixture_is_valid() -> None:
    result = run(ORU_R01.read_bytes())
    assert result.valid, result.findings
    assert result.findings == ()
    assert (result.details["message_type"], result.details["trigger_event"]) == ("ORU", "R01")
    assert result.details["message_structure"] is None  # v2.3: MSH-9 is ORU^R01
    assert (result.details["version"], result.details["segments"]) == ("2.3", 12)
    assert result.details["segment_terminator"] == "LF"


@needs_fixtures
@pytest.mark.parametrize("path", [ADT_A01, ORU_R01], ids=lambda p: p.name)
def test_fixtures_are_detected_as_hl7v2_by_meshbridge(path: Path) -> None:
    result = check(Plugins(), path.read_bytes(), payload_type="auto")
    assert result.payload_type == "hl7v2"
    assert result.valid
    assert result.details["confidence"] == 0.95


@needs_fixtures
def test_fixtures_are_refused_by_a_strict_route() -> None:
    result = run(ADT_A01.read_bytes(), segment_terminator="strict")
    assert only(result) == (
        "segment 1 (MSH): segments end with LF, but this route requires CR (option segment_terminator = 'strict')"
    )


# -- sniffing ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "confidence"),
    [
        (b"MSH|^~\\&|PAS", 0.95),
        (b"\xef\xbb\xbf\r\n  MSH|^~\\&|", 0.95),  # BOM and white space before MSH
        (b"MSH#^~\\&#", 0.95),  # any delimiter
        (b"MSH|^~\\&#|PAS", 0.95),  # the v2.7 truncation character
        (b"MSH: the ADT feed lost its header", 0.25),  # prose: below text's 0.3, text on auto routes
        (b"MSH|^^\\&|PAS", 0.25),  # a broken MSH-2: an hl7v2 route still gets validate's findings
        (b"FHS|^~\\&|", 0.6),  # a batch: claimed, so that validate can say why it is refused
        (b"MSH", 0.0),
        (b"MSHA^~\\&", 0.0),
        (b"MSH ^~\\&", 0.0),
        (b"<?xml version='1.0'?><MSH/>", 0.0),
        (b'{"resourceType": "Bundle"}', 0.0),
        (b"UNA:+.? 'UNB+UNOA:3", 0.0),
        (b"", 0.0),
    ],
)
def test_sniff(head: bytes, confidence: float) -> None:
    assert sniff(head) == confidence


def test_sniffer_claims_no_other_payload() -> None:
    """meshbridge's sniffing etiquette: no built-in example or near miss changes type with hl7v2 installed."""
    from meshbridge.testing import check_sniffer

    check_sniffer(meshbridge_hl7v2.HL7V2)


def test_sniff_never_raises_on_random_bytes() -> None:
    for size in (0, 1, 3, 4, 5, 64, 65536):
        for _ in range(200):
            assert 0.0 <= sniff(os.urandom(size)) <= 1.0


# -- each check ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("end", "name"), [("\r", "CR"), ("\n", "LF"), ("\r\n", "CRLF")])
def test_each_segment_terminator_is_accepted_and_reported(end: str, name: str) -> None:
    result = run(hl7(end=end))
    assert result.findings == ()
    assert result.details["segment_terminator"] == name
    assert result.details["segments"] == 4


def test_strict_routes_take_cr_only() -> None:
    assert run(hl7(end="\r"), segment_terminator="strict").findings == ()
    result = run(hl7(end="\r\n"), segment_terminator="strict")
    assert codes(result) == ["hl7v2.segment-terminator"]
    assert "segments end with CRLF, but this route requires CR" in only(result)


def test_unknown_terminator_policy_is_a_finding() -> None:
    assert only(run(hl7(), segment_terminator="loose")) == (
        "route option segment_terminator must be 'lenient' or 'strict', not 'loose'"
    )


def test_mixed_terminators_are_refused() -> None:
    data = hl7(end="\n").replace(b"\nPID", b"\rPID")
    result = run(data)
    assert codes(result) == ["hl7v2.segment-terminator"]
    assert only(result) == (
        "segment 2 (EVN): segments end with a mix of LF and CR: use one terminator throughout (CR is the standard)"
    )
    assert result.details["segment_terminator"] == "mixed"


def test_no_terminator_after_the_last_segment_is_fine() -> None:
    result = run(hl7().rstrip(b"\r"))
    assert result.findings == ()
    assert result.details["segments"] == 4


def test_blank_lines_at_the_end_are_a_warning() -> None:
    result = run(hl7(end="\n") + b"\n\n")
    assert result.valid
    assert [(f.code, f.severity, f.message) for f in result.findings] == [
        ("hl7v2.empty-segment", "warning", "2 empty line(s) after the last segment")
    ]


def test_an_empty_segment_inside_is_an_error() -> None:
    assert only(run(hl7(end="\n").replace(b"\nPID", b"\n\nPID"))) == (
        "segment 3: empty segment: two terminators in a row"
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            b"PID|1||9434765919^^^NHS\r",
            "segment 1: the message must start with an MSH segment, found b'PID|1||943476591'...",
        ),
        (b"\r\nMSH|^~\\&|A\r", "segment 1: the message must start with MSH, not with 2 byte(s) of white space"),
        (b"", "the payload is empty: an HL7 v2 message starts with an MSH segment"),
    ],
)
def test_msh_must_come_first(data: bytes, message: str) -> None:
    result = run(data)
    assert codes(result) == ["hl7v2.msh"]
    assert only(result) == message


def test_batches_are_refused() -> None:
    batch = b"FHS|^~\\&|PAS\rBHS|^~\\&|PAS\r" + hl7() + b"BTS|1\rFTS|1\r"
    assert codes(run(batch)) == ["hl7v2.batch"]
    assert str(run(batch).findings[0]).startswith("HL7 batches (FHS/BHS) are not supported")
    two = run(hl7() + hl7({10: "MSG00002"}))
    assert codes(two) == ["hl7v2.batch"]
    assert only(two) == (
        "segment 5 (MSH): MSH after the first segment: send one message per payload (HL7 batches are not supported)"
    )


def test_a_bom_is_a_warning() -> None:
    result = run(b"\xef\xbb\xbf" + hl7())
    assert result.valid
    assert [(f.code, f.severity) for f in result.findings] == [("hl7v2.bom", "warning")]


@pytest.mark.parametrize(
    ("data", "found"),
    [(b"MSHA^~\\&|", "found 'A'"), (b"MSH \\&|", "found ' '"), (b"MSH\r", "found '\\r'"), (b"MSH", "the message ends")],
)
def test_msh_1_field_separator(data: bytes, found: str) -> None:
    result = run(data)
    assert codes(result) == ["hl7v2.msh-1"]
    assert only(result).startswith(
        "segment 1 (MSH), field 1: MSH-1 field separator must be a printable ASCII character other than a letter or "
        f"digit: {found}"
    )


def test_another_field_separator_is_followed() -> None:
    result = run(hl7().replace(b"|", b"#"))
    assert result.valid, result.findings
    assert result.details["message_type"] == "ADT"


@pytest.mark.parametrize(
    ("encoding", "message"),
    [
        ("^~\\", "MSH-2 must be the 4 encoding characters (component, repetition, escape, subcomponent; usually ^~\\&)"
         ", found '^~\\\\'"),
        ("", "MSH-2 must be the 4 encoding characters"),
        ("^~\\&#!", "MSH-2 must be the 4 encoding characters"),
        ("^~A&", "MSH-2 encoding characters must be printable ASCII other than letters and digits, found '^~A&'"),
        ("^~ &", "MSH-2 encoding characters must be printable ASCII other than letters and digits"),
        ("^^\\&", "MSH-2 encoding characters must differ from each other and from MSH-1, found '^^\\\\&'"),
    ],
)  # fmt: skip
def test_msh_2_encoding_characters(encoding: str, message: str) -> None:
    result = run(hl7({2: encoding}))
    assert "hl7v2.msh-2" in codes(result)
    finding = next(f for f in result.findings if f.code == "hl7v2.msh-2")
    assert finding.where == "segment 1 (MSH), field 2"
    assert finding.message.startswith(message)


def test_msh_2_five_characters_from_v2_7() -> None:
    assert run(hl7({2: "^~\\&#", 12: "2.7"})).findings == ()
    older = run(hl7({2: "^~\\&#", 12: "2.4"}))
    assert older.valid
    assert [(f.code, f.severity) for f in older.findings] == [("hl7v2.msh-2", "warning")]
    assert "MSH-2 has a 5th (truncation) character, which HL7 defines from v2.7; MSH-12 says 2.4" in only(older)


@pytest.mark.parametrize(
    ("msh_9", "message"),
    [
        ("", "MSH-9 message type is missing (e.g. ADT^A01^ADT_A01 or ORU^R01)"),
        ("adt^A01", "MSH-9.1 message code must be 3 upper-case letters or digits (e.g. ADT), found 'adt'"),
        ("ADT", "MSH-9.2 trigger event is missing: MSH-9 is 'ADT', e.g. ADT^A01"),
        ("ADT^A1", "MSH-9.2 trigger event must be 3 upper-case letters or digits (e.g. A01), found 'A1'"),
        ("ADT^A01^ADTA01", "MSH-9.3 message structure must look like ADT_A01, found 'ADTA01'"),
    ],
)
def test_msh_9_message_type(msh_9: str, message: str) -> None:
    result = run(hl7({9: msh_9}))
    assert codes(result) == ["hl7v2.msh-9"]
    assert only(result) == f"segment 1 (MSH), field 9: {message}"


@pytest.mark.parametrize("msh_9", ["ORU^R01", "ADT^A01^ADT_A01", "ACK", "ACK^A01^ACK", "ZMT^Z01^ZMT_Z01", "ADT^A28"])
def test_msh_9_good_message_types(msh_9: str) -> None:
    result = run(hl7({9: msh_9}))
    assert result.findings == ()
    assert result.details["message_type"] == msh_9[:3]


def test_msh_10_control_id() -> None:
    assert only(run(hl7({10: ""}))) == (
        "segment 1 (MSH), field 10: MSH-10 message control id is missing: acknowledgements (MSA-2) refer to it"
    )
    assert run(hl7({10: "X" * 20})).findings == ()
    long = run(hl7({10: "0f8fad5b-d9cb-469f-a165-70867728950e"}))  # a GUID: 36 characters
    assert long.valid
    assert [(f.code, f.severity) for f in long.findings] == [("hl7v2.msh-10", "warning")]
    assert "MSH-10 message control id is 36 characters; HL7 2.4 allows 20 (20 before v2.7, 199 from v2.7)" in only(long)
    assert run(hl7({10: "0f8fad5b-d9cb-469f-a165-70867728950e", 12: "2.7"})).findings == ()
    assert codes(run(hl7({10: "X" * 200, 12: "2.8"}))) == ["hl7v2.msh-10"]


@pytest.mark.parametrize(
    ("msh_11", "message"),
    [
        ("", "MSH-11 processing id is missing (P production, T training, D debugging)"),
        ("X", "MSH-11 processing id must be P, T or D, found 'X'"),
        ("P^Q", "MSH-11.2 processing mode must be A, I, R, T or empty, found 'Q'"),
    ],
)
def test_msh_11_processing_id(msh_11: str, message: str) -> None:
    assert only(run(hl7({11: msh_11}))) == f"segment 1 (MSH), field 11: {message}"


@pytest.mark.parametrize("msh_11", ["P", "T", "D", "P^T", "T^A"])
def test_msh_11_good_processing_ids(msh_11: str) -> None:
    assert run(hl7({11: msh_11})).findings == ()


@pytest.mark.parametrize(
    ("msh_12", "message"),
    [
        ("", "MSH-12 version id is missing (e.g. 2.4)"),
        ("v2.4", "MSH-12 version id must be an HL7 v2 version such as 2.3, 2.4 or 2.5.1, found 'v2.4'"),
        ("3.0", "MSH-12 version id must be an HL7 v2 version such as 2.3, 2.4 or 2.5.1, found '3.0'"),
    ],
)
def test_msh_12_version(msh_12: str, message: str) -> None:
    assert only(run(hl7({12: msh_12}))) == f"segment 1 (MSH), field 12: {message}"


@pytest.mark.parametrize("msh_12", ["2.1", "2.3.1", "2.5.1^GBR", "2.8.2"])
def test_msh_12_good_versions(msh_12: str) -> None:
    result = run(hl7({12: msh_12}))
    assert result.findings == ()
    assert result.details["version"] == msh_12.split("^")[0]


@pytest.mark.parametrize(
    ("body", "found"),
    [
        (("pid|1",), "'pid'"),
        (("PI|1",), "'PI'"),
        (("PID1|1",), "'PID1'"),
        ((" PID|1",), "' PID'"),
        (("1PD|1",), "'1PD'"),
    ],
)
def test_segment_ids(body: tuple[str, ...], found: str) -> None:
    result = run(hl7(body=body))
    assert codes(result) == ["hl7v2.segment-id"]
    assert only(result) == f"segment 2: segment id must be 3 upper-case letters or digits, then '|': found {found}"


def test_z_segments_and_empty_segments_of_fields_are_fine() -> None:
    result = run(hl7(body=("ZU1|201010071234|1", "ZU8|Z|1|No", "PV2", "NTE|")))
    assert result.findings == ()
    assert result.details["segments"] == 5


def test_a_line_break_inside_a_field_shows_as_a_bad_segment() -> None:
    result = run(hl7(end="\n", body=("OBX|1|TX|NOTE||first line", "second line|F")))
    assert only(result) == "segment 3: segment id must be 3 upper-case letters or digits, then '|': found 'second line'"


def test_msh_18_character_sets() -> None:
    latin = hl7({17: "GBR", 18: "8859/1"}, body=("PID|1||9434765919^^^NHS||BRONTË^ZOË",), charset="latin-1")
    result = run(latin)
    assert result.findings == ()
    assert result.details["charset"] == "iso8859-1"
    utf8 = run(hl7({18: "UNICODE UTF-8"}, body=("PID|1||9434765919^^^NHS||BRONTË^ZOË",)))
    assert utf8.findings == ()
    assert run(hl7({18: "UNICODE"})).details["charset"] == "utf-8"  # the ITK fixture's value


def test_no_msh_18_means_strict_utf_8() -> None:
    latin = hl7(body=("EVN|A01", "PID|1||9434765919^^^NHS||BRONTË^ZOË"), charset="latin-1")
    result = run(latin)
    assert codes(result) == ["hl7v2.encoding"]
    assert latin.index(b"\xcb") == 110  # the Ë of BRONTË
    assert only(result) == (
        "segment 3 (PID), field 5: not valid utf-8: invalid continuation byte (byte 0xcb at offset 110)"
    )
    assert run(latin, charset="latin-1").findings == ()  # the route says what the sender uses


def test_declared_ascii_is_enforced() -> None:
    result = run(hl7({18: "ASCII"}, body=("PID|1||9434765919^^^NHS||BRONTË",)))
    assert codes(result) == ["hl7v2.encoding"]
    assert "segment 2 (PID), field 5: not valid ascii: ordinal not in range(128)" in only(result)


def test_an_encoding_error_in_msh_names_the_msh_field() -> None:
    result = run(hl7({4: "RÖNTGEN"}, charset="latin-1"))
    assert only(result).startswith("segment 1 (MSH), field 4: not valid utf-8")


@pytest.mark.parametrize(
    ("msh_18", "message"),
    [
        ("UNICODE UTF-16", "MSH-18 character set 'UNICODE UTF-16' is not supported here (supported: ASCII, 8859/1,"),
        ("KLINGON", "MSH-18 character set 'KLINGON' is not in HL7 table 0211 (supported: ASCII, 8859/1,"),
    ],
)
def test_msh_18_unsupported_character_sets(msh_18: str, message: str) -> None:
    result = run(hl7({18: msh_18}))
    assert codes(result) == ["hl7v2.msh-18"]
    assert only(result).startswith(f"segment 1 (MSH), field 18: {message}")
    assert result.details["charset"] is None


def test_findings_are_capped_per_code() -> None:
    result = run(hl7(body=tuple(f"bad{n}" for n in range(50))))
    assert codes(result) == ["hl7v2.segment-id"] * 11
    assert result.findings[-1].message == "40 more hl7v2.segment-id findings not listed"


def test_problems_are_all_reported_together() -> None:
    result = run(hl7({9: "", 10: "", 11: "", 12: ""}, body=("pid|1",)))
    assert codes(result) == ["hl7v2.msh-9", "hl7v2.msh-10", "hl7v2.msh-11", "hl7v2.msh-12", "hl7v2.segment-id"]


# -- hostile input ----------------------------------------------------------------------------------------

MIB = 1 << 20
HEADER = hl7(body=())


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(os.urandom(MIB), id="random"),
        pytest.param(b"MSH|^~\\&|" + os.urandom(MIB), id="random-after-msh"),
        pytest.param(HEADER.rstrip(b"\r") + b"A" * MIB, id="1MiB-no-terminator"),
        pytest.param(b"MSH|" + b"|" * MIB, id="1MiB-of-separators"),
        pytest.param(b"MSH|" + b"^" * MIB, id="1MiB-of-hats"),
        pytest.param(HEADER + b"\r" * MIB, id="1MiB-of-CR"),
        pytest.param(HEADER + b"\n\r" * (MIB // 2), id="1MiB-of-LFCR"),
        pytest.param(HEADER + b"PID\r" * (MIB // 4), id="262144-segments"),
        pytest.param(HEADER + b"pid|\n" * (MIB // 5), id="209715-bad-segments"),
        pytest.param(HEADER + b"PID|" + b"\xff" * MIB, id="1MiB-not-utf8"),
        pytest.param(b"\xef\xbb\xbf" * (MIB // 3), id="BOMs"),
    ],
)
def test_hostile_input_is_handled_and_bounded(data: bytes) -> None:
    """(How long each takes is reported by tests/bench/bench_timings.py, not asserted here.)"""
    result = validate(data, {})
    confidence = sniff(data[: 64 * 1024])
    assert isinstance(result, ValidationResult)
    assert 0.0 <= confidence <= 1.0
    assert len(result.findings) <= 100
    assert all(len(str(f)) < 400 for f in result.findings)  # no finding echoes the whole payload


def test_hostile_input_through_meshbridge() -> None:
    result = check(Plugins(), HEADER.rstrip(b"\r") + b"A" * MIB, payload_type="hl7v2")
    assert result.payload_type == "hl7v2"
    assert not result.valid  # MSH-12 swallowed the megabyte
    assert codes(result) == ["hl7v2.msh-12"]


# -- the plugin as meshbridge sees it ---------------------------------------------------------------------


def test_found_through_its_entry_point() -> None:
    plugins = Plugins()
    assert "hl7v2" in plugins.payload_types()
    assert plugins.payload_types()["hl7v2"] is meshbridge_hl7v2.HL7V2
    assert plugins.payload_types()["hl7v2"].media_type == "application/hl7-v2"
    [info] = [i for i in plugins.describe() if i.name == "hl7v2"]
    assert (info.version, info.hooks, info.builtin) == ("0.1.0", ("meshbridge_payload_types",), False)


def test_the_command_line_sees_it(tmp_path: Path) -> None:
    listing = subprocess.run(
        [sys.executable, "-m", "meshbridge", "plugins", "--json"], capture_output=True, text=True, check=True
    )
    types = {t["name"]: t for t in json.loads(listing.stdout)["payload_types"]}
    assert types["hl7v2"]["media_type"] == "application/hl7-v2"
    good, bad = tmp_path / "adt.hl7", tmp_path / "no-type.hl7"
    good.write_bytes(hl7())
    bad.write_bytes(hl7({9: ""}))
    ok = subprocess.run([sys.executable, "-m", "meshbridge", "validate", str(good)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.strip().endswith("adt.hl7: hl7v2 valid")
    refused = subprocess.run([sys.executable, "-m", "meshbridge", "validate", str(bad)], capture_output=True, text=True)
    assert refused.returncode == 1
    assert "error hl7v2.msh-9 segment 1 (MSH), field 9: MSH-9 message type is missing" in refused.stdout


# -- end to end through a real mesh-sandbox (meshbridge's pytest fixtures) ------------------------------

ROUTES = """
[[routes]]
name = "hl7-out"
direction = "outbound"
from = "X26ABC1"
to = "X26ABC2"
workflow_id = "HL7V2_ADT"
payload_type = "hl7v2"

[[routes]]
name = "hl7-in"
direction = "inbound"
mailbox = "X26ABC2"
workflow_id = "HL7V2_ADT"
payload_type = "hl7v2"
destination = { folder = "delivered" }
"""


@needs_fixtures
def test_adt_a01_travels_end_to_end(tmp_path: Path, meshbridge_config, make_bridge) -> None:
    bridge = make_bridge(meshbridge_config(ROUTES))
    sent = bridge.send(ADT_A01, route="hl7-out")
    assert (sent.state, sent.payload_type) == ("sent", "hl7v2")
    report = bridge.poll()
    assert report.problems == []
    assert len(report.delivered) == 1
    received = bridge.store.find("in", sent.mesh_message_id)
    assert received is not None
    assert received.payload_type == "hl7v2"
    assert received.state == "delivered"
    delivered = Path(received.destination or "")
    assert delivered.parent == tmp_path / "delivered"
    assert delivered.read_bytes() == ADT_A01.read_bytes()  # byte for byte: LF terminators and all


def test_invalid_hl7_is_refused_by_send_and_quarantined(
    tmp_path: Path, meshbridge_config, make_bridge, mesh_peer
) -> None:
    bridge = make_bridge(meshbridge_config(ROUTES))
    bad = tmp_path / "no-message-type.hl7"
    bad.write_bytes(hl7({9: ""}))
    with pytest.raises(PayloadRejected) as info:
        bridge.send(bad, route="hl7-out")
    assert [f.code for f in info.value.findings] == ["hl7v2.msh-9"]
    quarantined = bridge.store.get(info.value.message_id)
    assert quarantined.state == "rejected"
    assert quarantined.mesh_message_id is None
    assert [f.as_dict() for f in quarantined.findings] == [
        {
            "code": "hl7v2.msh-9", "severity": "error", "where": "segment 1 (MSH), field 9",
            "message": "MSH-9 message type is missing (e.g. ADT^A01^ADT_A01 or ORU^R01)",
        }
    ]  # fmt: skip
    assert bridge.store.payloads.read(quarantined.payload_sha256) == bad.read_bytes()  # the bytes are kept
    assert mesh_peer("X26ABC2").list_messages() == []  # nothing went to MESH


def test_invalid_hl7_from_a_foreign_peer_is_recorded_invalid(
    tmp_path: Path, meshbridge_config, make_bridge, mesh_peer
) -> None:
    payload = hl7({9: ""})
    mesh_id = mesh_peer("X26ABC1").send_message("X26ABC2", payload, workflow_id="HL7V2_ADT")
    bridge = make_bridge(meshbridge_config(ROUTES))
    report = bridge.poll()
    message = bridge.store.find("in", mesh_id)
    assert report.invalid == [message.id]
    assert report.delivered == []
    assert (message.state, message.payload_type) == ("invalid", "hl7v2")
    assert [f.code for f in message.findings] == ["hl7v2.msh-9"]
    assert not (tmp_path / "delivered").exists()
    assert mesh_peer("X26ABC2").list_messages() == []  # acknowledged in MESH, kept in the store
    assert bridge.store.payloads.read(message.payload_sha256) == payload


def test_route_options_reach_the_validator(tmp_path: Path, meshbridge_config, make_bridge) -> None:
    strict = ROUTES.replace(
        'payload_type = "hl7v2"\n', 'payload_type = "hl7v2"\noptions = { segment_terminator = "strict" }\n', 1
    )
    bridge = make_bridge(meshbridge_config(strict))
    lf, cr = tmp_path / "lf.hl7", tmp_path / "cr.hl7"
    lf.write_bytes(hl7(end="\n"))
    cr.write_bytes(hl7(end="\r"))
    with pytest.raises(PayloadRejected) as info:
        bridge.send(lf, route="hl7-out")
    assert [f.code for f in info.value.findings] == ["hl7v2.segment-terminator"]
    assert bridge.send(cr, route="hl7-out").state == "sent"
