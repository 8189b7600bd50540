"""The pure ITK3 rules of acknowledgement: no store, no MESH.

Event codes and their MessageDefinitions, the caps, which states are final, when an
expectation falls due, which infrastructure response an inbound ITK message deserves
(:func:`judge`) and which business codes the end application may answer with
(:func:`business_code`). Reference ``reference/itk3.md``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from .. import itk
from ..config import ItkOptions, Route
from ..errors import InvalidRequest
from ..payloads.base import Finding, ValidationResult
from ..validation import DEFAULT_CAP, route_options

# event code -> (display, MessageDefinition name), reference itk3.md §2.3 and §2.5
EVENTS = {
    "ITK003D": ("ITK eDischarge", "ITK-eDischarge-MessageDefinition-4"),
    "ITK004D": ("ITK Mental Health eDischarge", "ITK-MH-eDischarge-MessageDefinition-4"),
    "ITK005D": ("ITK Emergency Care eDischarge", "ITK-EC-eDischarge-MessageDefinition-4"),
    "ITK006D": ("ITK Outpatient Letter", "ITK-OPL-MessageDefinition-4"),
    "ITK007C": ("ITK GP Connect Send Document", "ITK-GPConnectSendDocument-MessageDefinition-1"),
    "ITK009D": ("ITK Digital Medicine Immunization Document", "ITK-DM-Immunization-MessageDefinition-1"),
    "ITK010D": ("ITK Digital Medicine Emergency Supply Document", "ITK-DM-EmergencySupply-MessageDefinition-1"),
    "ITK011M": ("ITK Events Management Service", None),
    "ITK012M": ("ITK National Pathology", None),
    "ITK013D": ("ITK Digital Medicine Minor Illness Document", None),
    "ITK014M": ("ITK Update Record", None),
}
GENERIC_DEFINITION = "ITK-SendPayload-MessageDefinition-1"
RESPONSE_CAP = 1_000_000  # bytes: an ITK008M response is a few KB; a bigger one is an orphan, never read


def due(within: float | None) -> str | None:
    if within is None:
        return None
    return (datetime.now(UTC) + timedelta(seconds=within)).isoformat(timespec="microseconds")


def itk_cap(route: Route) -> int:
    """The most an inbound ITK message on ``route`` may be to be read (parsed) at all: the route's
    validation cap (option ``max_size``, default ``DEFAULT_CAP``); a bigger one is nacked 20015."""
    return int(route_options(route).get("max_size") or DEFAULT_CAP)


def ods(options: ItkOptions, mailbox: str) -> str:
    """The sending organisation's ODS code: configured, else the mailbox id's ODS prefix."""
    return options.ods_code or mailbox[:3]


@dataclass(frozen=True)
class Verdict:
    """What to answer an inbound ITK message with: 20013, or a nack code and why."""

    code: str
    findings: tuple[Finding, ...] = ()

    @property
    def positive(self) -> bool:
        return self.code == itk.SUCCESS


def judge(header: itk.ItkHeader, result: ValidationResult, conformance: list[Finding], duplicate: bool) -> Verdict:
    """The infrastructure response an inbound ITK message deserves (reference itk3.md §4, §9.1)."""
    errors = [f for f in conformance if f.severity == "error"]
    if duplicate:
        return Verdict("20007", (Finding(f"message {header.message_id} was already received", code="itk.20007"),))
    handling = header.handling
    if handling is None:
        return Verdict("10001", (*errors, Finding("no ITK handling specification", code="itk.10001")))
    if handling.inf_ack is None:
        return Verdict("10002", tuple(errors))
    if handling.bus_ack is None:
        return Verdict("10003", tuple(errors))
    for finding in errors:  # conformance codes look like itk.10004
        number = (finding.code or "").rpartition(".")[2]
        if itk.lookup(number) is not None and number.startswith("1"):
            return Verdict(number, tuple(errors))
    if errors:
        return Verdict("20006", tuple(errors))
    if not result.valid:
        return Verdict("20009", tuple(result.findings))
    return Verdict(itk.SUCCESS)


def findings_json(findings: tuple[Finding, ...] | list[Finding]) -> str:
    return json.dumps([f.as_dict() for f in findings])


def business_code(code: str | None, *, nack: bool) -> itk.ResponseCode:
    """The ITK3 business code of an ack (positive, default 30001) or of a nack (negative, no default),
    as ``itk/codes.py`` types it; anything else raises :class:`InvalidRequest` (nothing is sent)."""
    kind = "negative" if nack else "positive"
    allowed = [c.code for c in itk.CODES.values() if c.level == itk.BUSINESS and c.negative == nack]
    listed = f"the {kind} business codes are {', '.join(allowed)}"
    if code is None and nack:
        raise InvalidRequest(f"a nack needs its code: {listed}")
    rc = itk.lookup("30001" if code is None else code)
    if rc is None or rc.withdrawn or rc.level != itk.BUSINESS:
        raise InvalidRequest(f"{code!r} is not an ITK3 business response code: {listed}")
    if rc.negative != nack:
        raise InvalidRequest(f"{rc.code} is a {'positive' if nack else 'negative'} code, not a {kind} one: {listed}")
    return rc


def not_xml(text: str) -> str | None:
    """The first character of ``text`` that XML 1.0 cannot carry (a C0 control other than tab and
    line breaks, a surrogate, U+FFFE or U+FFFF), or None."""
    for char in text:
        point = ord(char)
        if (point < 0x20 and char not in "\t\n\r") or 0xD800 <= point <= 0xDFFF or point in (0xFFFE, 0xFFFF):
            return char
    return None
