"""The ITK-ResponseCodes-1 table (meshbridge.itk.codes)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from meshbridge.itk import codes
from meshbridge.itk.codes import CODES, POSITIVE_CODES, UNREADABLE, WITHDRAWN, lookup

SCHEMAS = Path(__file__).resolve().parents[1] / "meshbridge" / "schemas"

INFRASTRUCTURE_CODES = [f"1000{i}" for i in (1, 2, 3, 4, 5, 7, 8, 9)] + ["10010"] + [f"200{i:02}" for i in range(1, 16)]
BUSINESS_CODES = [f"300{i:02}" for i in range(1, 26)]


def test_table_is_complete() -> None:
    assert sorted(CODES) == sorted(INFRASTRUCTURE_CODES + BUSINESS_CODES)
    assert len(CODES) == 49
    assert "10006" not in CODES


@pytest.mark.parametrize("code", INFRASTRUCTURE_CODES)
def test_infrastructure_level(code: str) -> None:
    assert lookup(code).level == "infrastructure"


@pytest.mark.parametrize("code", BUSINESS_CODES)
def test_business_level(code: str) -> None:
    assert lookup(code).level == "business"


def test_core_positive_codes() -> None:
    assert {"20013", "30001", "30004"} <= POSITIVE_CODES
    for code in ("20013", "30001", "30004"):
        rc = lookup(code)
        assert rc.positive is True
        assert (rc.response_code, rc.severity, rc.issue_code) == ("ok", "information", "informational")


@pytest.mark.parametrize("code", [c for c in INFRASTRUCTURE_CODES if c != "20013"] + ["30002", "30003"])
def test_every_other_core_code_is_negative(code: str) -> None:
    rc = lookup(code)
    assert rc.positive is False and rc.negative
    assert rc.response_code == "fatal-error"


def test_published_typing_of_30005_to_30025() -> None:
    """From the ITK3 guide's explore_response_codes page (2.10.0)."""
    positive = {"30005", "30006", "30008", "30009", "30010", "30011", "30013", "30016", "30019"}
    for code in BUSINESS_CODES[4:]:
        assert lookup(code).positive is (code in positive), code
    assert {"20013", "30001", "30004"} | positive == POSITIVE_CODES


def test_every_code_has_a_consistent_mapping() -> None:
    for rc in CODES.values():
        assert rc.positive is not None, rc.code
        assert rc.response_code == ("ok" if rc.positive else "fatal-error"), rc.code
        assert rc.severity in {"fatal", "error", "warning", "information"}
        assert rc.issue_code
        assert rc.display and rc.display == rc.display.strip()
        assert not rc.withdrawn


def test_specific_mappings() -> None:
    assert (lookup("20007").issue_code, lookup("20001").issue_code, lookup("20004").issue_code) == (
        "duplicate",
        "not-found",
        "security",
    )
    assert lookup("30002").issue_code == "not-found"
    assert lookup("30003").issue_code == "business-rule"
    assert lookup("20015").display == "Message too large"
    assert lookup("30001").display == "Patient known here. (e.g. Patient is registered here)"


def test_withdrawn_10006_is_recognised() -> None:
    rc = lookup("10006")
    assert rc is not None and rc.withdrawn
    assert rc.display == "Priority Value - Processing Error"
    assert rc.level == "infrastructure" and rc.positive is False
    assert set(WITHDRAWN) == {"10006"}


@pytest.mark.parametrize("code", ["99999", "", "2001", "200013", "abc", None])
def test_unknown_codes(code: str | None) -> None:
    assert lookup(code) is None


def test_lookup_accepts_ints_and_whitespace() -> None:
    assert lookup(20013) is CODES["20013"]
    assert lookup(" 30001 ") is CODES["30001"]


def test_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        CODES["20013"].positive = False  # type: ignore[misc]


def test_constants() -> None:
    assert UNREADABLE == "UNREADABLE-IN-ORIGINAL-MESSAGE"
    assert codes.SYSTEM_RESPONSE_CODES == "https://fhir.nhs.uk/STU3/CodeSystem/ITK-ResponseCodes-1"
    assert codes.RESPONSE_MESSAGE_DEFINITION == (
        "https://fhir.nhs.uk/STU3/MessageDefinition/ITK-Response-MessageDefinition-1"
    )
    assert codes.HANDLING_KEYS[0] == "BusAckRequested" and codes.HANDLING_KEYS[-1] == "LocalExtension"


def _sch_list(name: str) -> set[str]:
    text = (SCHEMAS / "itk3-response.sch").read_text(encoding="utf-8")
    match = re.search(rf'<let name="{name}" value="\'([^\']*)\'"', text)
    assert match, name
    return set(match.group(1).split())


def test_schematron_code_lists_match_the_table() -> None:
    assert _sch_list("currentCodes") == set(CODES)
    assert _sch_list("positiveCodes") == set(POSITIVE_CODES)
    assert _sch_list("withdrawnCodes") == set(WITHDRAWN)
