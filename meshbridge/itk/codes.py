"""The ITK3 vocabulary: the ITK-ResponseCodes-1 table and the fixed system/profile URLs.

Sources: displays from ``CodeSystems/CodeSystem-ITK-ResponseCodes-1.xml`` (nhsconnect/STU3-FHIR-Assets)
and, for 20014/20015/30004-30025, the ITK3 guide's response-code pages
(nhsconnect/ITK3-FHIR-Messaging-Distribution ``pages/explore/explore_response_codes.md`` and
``explore_response_structure.md``, which also give the positive/negative typing and the
``response.code`` / ``issue.severity`` / ``issue.code`` mapping).

Decisions:

* **30005-30025 are typed as the guide publishes them** (e.g. 30005 "Referral open" positive,
  30007 "Referral escalated back to GP" negative). ``positive`` stays ``bool | None`` so a future
  code whose typing is unknown can say ``None`` ("an outcome, not a failure").
* 30014 and 30015 are mapped as published (``fatal-error`` with severity ``information``) even though
  that pairing is odd; 20015 is not in the guide's mapping table and follows TKW-x
  (``fatal-error``/``fatal``/``processing``).
* 10006 "Priority Value - Processing Error" was withdrawn with the Priority key (2.5.0-beta):
  :func:`lookup` still knows it (``withdrawn=True``) so old traffic classifies, but it is not in
  :data:`CODES` and :func:`meshbridge.itk.build.build_response` refuses it.
* Classify a response by its ITK code, never by ``MessageHeader.response.code`` (official examples
  20014/20015 say ``ok`` beside a fatal issue).
"""

from __future__ import annotations

from dataclasses import dataclass

# --------------------------------------------------------------------------- URLs

STU3 = "https://fhir.nhs.uk/STU3"
SYSTEM_RESPONSE_CODES = f"{STU3}/CodeSystem/ITK-ResponseCodes-1"
SYSTEM_MESSAGE_EVENT = f"{STU3}/CodeSystem/ITK-MessageEvent-2"
SYSTEM_RECIPIENT_TYPE = f"{STU3}/CodeSystem/ITK-RecipientType-1"
SYSTEM_ODS_ORGANIZATION = "https://fhir.nhs.uk/Id/ods-organization-code"
SYSTEM_BUNDLE_IDENTIFIER = "https://tools.ietf.org/html/rfc4122"

EXTENSION_HANDLING = f"{STU3}/StructureDefinition/Extension-ITK-MessageHandling-2"
PROFILE_MESSAGE_BUNDLE = f"{STU3}/StructureDefinition/ITK-Message-Bundle-1"
PROFILE_MESSAGE_HEADER = f"{STU3}/StructureDefinition/ITK-MessageHeader-2"
PROFILE_HEADER_ORGANIZATION = f"{STU3}/StructureDefinition/CareConnect-ITK-Header-Organization-1"
PROFILE_RESPONSE_OPERATION_OUTCOME = f"{STU3}/StructureDefinition/ITK-Response-OperationOutcome-1"

MESSAGE_DEFINITION_BASE = f"{STU3}/MessageDefinition"
RESPONSE_MESSAGE_DEFINITION = f"{MESSAGE_DEFINITION_BASE}/ITK-Response-MessageDefinition-1"
#: The pre-2.5.1 URL the official response examples still use (accepted with a warning).
RESPONSE_MESSAGE_DEFINITION_OLD = f"{MESSAGE_DEFINITION_BASE}/ITK-Response-MessageDefinition-Instance-1"

RESPONSE_EVENT = "ITK008M"
RESPONSE_EVENT_DISPLAY = "ITK Response"
#: ``response.identifier`` of a response to a message whose MessageHeader.id could not be read (10009).
UNREADABLE = "UNREADABLE-IN-ORIGINAL-MESSAGE"

#: Handling-specification keys, in the order the specification lists (and meshbridge writes) them.
HANDLING_KEYS = (
    "BusAckRequested",
    "InfAckRequested",
    "RecipientType",
    "MessageDefinition",
    "SenderReference",
    "LocalExtension",
)
RECIPIENT_TYPES = {"FA": "For Action", "FI": "For Information"}

INFRASTRUCTURE, BUSINESS = "infrastructure", "business"
OK, FATAL_ERROR = "ok", "fatal-error"


# --------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class ResponseCode:
    """One ITK3 response code and how it is carried.

    :param code: the code, e.g. ``"20013"``.
    :param display: the CodeSystem display.
    :param level: ``"infrastructure"`` (1xxxx, 2xxxx) or ``"business"`` (3xxxx).
    :param positive: ``True`` positive, ``False`` negative (fatal and terminal: nothing follows it),
        ``None`` typing unknown (an outcome, not a failure). No current code is ``None``.
    :param response_code: ``MessageHeader.response.code`` to send: ``"ok"`` or ``"fatal-error"``.
    :param severity: ``OperationOutcome.issue.severity`` to send.
    :param issue_code: ``OperationOutcome.issue.code`` to send.
    :param withdrawn: ``True`` for codes removed from the CodeSystem (only 10006).
    """

    code: str
    display: str
    level: str
    positive: bool | None
    response_code: str
    severity: str
    issue_code: str
    withdrawn: bool = False

    @property
    def negative(self) -> bool:
        """A nack: fatal and terminal."""
        return self.positive is False


def _c(
    code: str, display: str, positive: bool | None, severity: str = "fatal", issue: str = "processing"
) -> ResponseCode:
    level = BUSINESS if code.startswith("3") else INFRASTRUCTURE
    if positive:
        return ResponseCode(code, display, level, True, OK, "information", "informational")
    return ResponseCode(code, display, level, positive, FATAL_ERROR, severity, issue)


_W, _I = "warning", "information"
_TABLE = (
    _c("10001", "Handling Specification Error", False),
    _c("10002", "Infrastructure Level Response Value - Processing Error", False),
    _c("10003", "Business Level Response Value - Processing Error", False),
    _c("10004", "Message Definition Value \u2013 Processing Error", False),
    _c("10005", "Message Definition Version Value \u2013 Processing Error", False),
    _c("10007", "Sender Reference Value - Processing Error", False),
    _c("10008", "Handling Specification Business Rule Error", False),
    _c("10009", "Unreadable message received", False),
    _c("10010", "Recipient Type - Processing Error", False),
    _c("20001", "Unrecognised Recipient Person", False, issue="not-found"),
    _c("20002", "Unrecognised Recipient Organisation", False, issue="not-found"),
    _c("20003", "Unrecognised Sender", False, issue="not-found"),
    _c("20004", "Non-Approved file type received as an attachment", False, issue="security"),
    _c("20005", "Unsupported file type received as an attachment", False, issue="security"),
    _c("20006", "ITK header validation failure", False, issue="invalid"),  # not a state: a FHIR issue type
    _c("20007", "Duplicate Message received", False, issue="duplicate"),  # not a state: a FHIR issue type
    _c("20008", "Duplicate Document received", False, issue="duplicate"),  # not a state: a FHIR issue type
    _c("20009", "Payload validation failure", False, issue="invalid"),  # not a state: a FHIR issue type
    _c("20010", "Unrecognised Payload Recipient Organisation", False, issue="not-found"),
    _c("20011", "Unrecognised Payload Recipient Person", False, issue="not-found"),
    _c("20012", "Unauthorised Sender", False, issue="security"),
    _c("20013", "Success", True),
    _c("20014", "Unable to Process Replacement Document", False),
    _c("20015", "Message too large", False),
    _c("30001", "Patient known here. (e.g. Patient is registered here)", True),
    _c(
        "30002",
        "Patient not known here. (aka \u2018patient record not present in system\u2019)",
        False,
        issue="not-found",
    ),
    _c("30003", "Patient no longer at this clinical setting", False, issue="business-rule"),
    _c(
        "30004",
        "Patient known here and recently deceased (i.e. patient record current in GP practice system at time of "
        "patient\u2019s death and deduction subsequently occurred for this reason)",
        True,
    ),
    _c("30005", "Referral open", True),
    _c("30006", "Referral completed", True),
    _c("30007", "Referral escalated back to GP", False, _W, "informational"),
    _c("30008", "Signposting to GP (non-urgent)", True),
    _c("30009", "Clinical escalation to 111/GPOOH", True),
    _c("30010", "Clinical escalation to UTC/A&E or 999", True),
    _c("30011", "Advised to go elsewhere/self-referral", True),
    _c("30012", "Unable to contact the patient", False, _W, "informational"),
    _c("30013", "Closure (service not needed)", True),
    _c("30014", "Closure (service not accepted)", False, _I, "informational"),
    _c("30015", "Closure (duplicate referral)", False, _I, "duplicate"),  # not a state: a FHIR issue type
    _c("30016", "Referral accepted", True),
    _c("30017", "Referral rejected", False, _W, "informational"),
    _c("30018", "Did Not Attend", False, _W, "informational"),
    _c("30019", "GP Registration - Application accepted", True),
    _c("30020", "GP Registration - Application pending (contact practice)", False, _W, "informational"),
    _c("30021", "GP Registration - Application rejected (patient already registered)", False, _W, "informational"),
    _c("30022", "GP Registration - Application rejected (at capacity)", False, _W, "informational"),
    _c("30023", "GP Registration - Application rejected (out of boundary)", False, _W, "informational"),
    _c(
        "30024",
        "GP Registration - Application rejected (Previously removed from this practice)",
        False,
        _W,
        "informational",
    ),
    _c(
        "30025",
        "GP Registration - Application rejected (Previously removed from another practice)",
        False,
        _W,
        "informational",
    ),
)

#: Every current code, by code (10006 excluded: withdrawn).
CODES: dict[str, ResponseCode] = {c.code: c for c in _TABLE}
#: Withdrawn codes that old traffic or tooling may still send.
WITHDRAWN: dict[str, ResponseCode] = {
    "10006": ResponseCode(
        "10006", "Priority Value - Processing Error", INFRASTRUCTURE, False, FATAL_ERROR, "fatal", "processing", True
    ),
}
#: 20013, 30001, 30004 and the published positive outcomes 30005/6/8/9/10/11/13/16/19.
POSITIVE_CODES = frozenset(c.code for c in _TABLE if c.positive)
SUCCESS = "20013"
#: The nack for a message over the receiver's size cap ("Message too large", ITK3 2.9.0).
TOO_LARGE = "20015"


def lookup(code: str | int | None) -> ResponseCode | None:
    """The table entry for ``code`` (current or withdrawn), or ``None`` if it is not an ITK3 code."""
    if code is None:
        return None
    key = str(code).strip()
    return CODES.get(key) or WITHDRAWN.get(key)
