"""HL7 v2 messages in ER7 (the ``MSH|^~\\&|...`` encoding) as a meshbridge payload type named ``hl7v2``.

meshbridge finds this module through the entry point ``[project.entry-points.meshbridge] hl7v2 =
"meshbridge_hl7v2"`` and calls :func:`meshbridge_payload_types`. :func:`sniff` recognises a message
by its ``MSH`` header; :func:`validate` checks its structure: the delimiters (MSH-1, MSH-2), the
header fields a receiver routes and acknowledges on (MSH-9, MSH-10, MSH-11, MSH-12), the character
set (MSH-18), segment ids and segment terminators. Each problem is a :class:`~meshbridge.Finding`
with a stable code (``hl7v2.msh-9``); nothing raises. Segment order and field contents beyond MSH
are a message profile's business, not checked here.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Mapping
from typing import Any

from meshbridge import Finding, PayloadType, ValidationResult, hookimpl

__version__ = "0.1.0"
__all__ = ["HL7V2", "meshbridge_payload_types", "sniff", "validate"]

NAME = "hl7v2"
MEDIA_TYPE = "application/hl7-v2"  # the ER7 media type of HL7 over HTTP
ERROR, WARNING = "error", "warning"
BOM = b"\xef\xbb\xbf"
MAX_PER_CODE = 10  # findings of one code listed before "N more"
POLICIES = ("lenient", "strict")  # route option segment_terminator

# HL7 table 0211 (MSH-18) -> Python codec, for the character sets in which "MSH|" is plain ASCII.
CHARSETS = {
    "ASCII": "ascii",
    **{f"8859/{n}": f"iso8859-{n}" for n in (1, 2, 3, 4, 5, 6, 7, 8, 9, 15)},
    "UNICODE": "utf-8",  # deprecated in v2.5 for "UNICODE UTF-8"; UTF-8 in practice
    "UNICODE UTF-8": "utf-8",
    "GB 18030-2000": "gb18030",
    "KS X 1001": "euc_kr",
    "BIG-5": "big5",
}
UNSUPPORTED = ("UNICODE UTF-16", "UNICODE UTF-32", "ISO IR14", "ISO IR87", "ISO IR159", "CNS 11643-1992")
BATCH_SEGMENTS = ("MSH", "FHS", "BHS", "BTS", "FTS")

TERMINATOR = re.compile(r"\r\n|\r|\n")
TERMINATOR_BYTES = re.compile(rb"\r\n|\r|\n")
TERMINATOR_NAMES = {"\r": "CR", "\n": "LF", "\r\n": "CRLF"}
SEGMENT_ID = re.compile(r"[A-Z][A-Z0-9]{2}")
CODE = re.compile(r"[A-Z0-9]{3}")  # MSH-9.1 message code, MSH-9.2 trigger event (Z-codes allowed)
STRUCTURE = re.compile(r"[A-Z0-9]{3}(?:_[A-Z0-9]{3})?")  # MSH-9.3, e.g. ADT_A01 or ACK
VERSION = re.compile(r"2\.[0-9]+(?:\.[0-9]+)?")


def _is_separator(char: str) -> bool:
    """A delimiter is one printable ASCII character that is not a letter or digit."""
    return len(char) == 1 and "!" <= char <= "~" and not char.isalnum()


def _show(value: str | bytes, limit: int = 30) -> str:
    """A value quoted for a message, cut short: findings must stay readable whatever the input."""
    return repr(value[:limit]) + ("..." if len(value) > limit else "")


def sniff(head: bytes) -> float:
    """0.95 when ``head`` starts with ``MSH``, a field separator and the encoding characters (after
    an optional BOM or white space); 0.25 for ``MSH`` and a separator alone (below plain text's
    0.3: prose such as ``MSH: the header...`` stays text on ``auto`` routes, while an ``hl7v2``
    route still gets :func:`validate`'s findings); 0.6 for an HL7 batch (``FHS``/``BHS``, which
    :func:`validate` refuses); else 0. See "Sniffing etiquette" in meshbridge's docs/plugins.md."""
    start = head[len(BOM) :] if head.startswith(BOM) else head
    start = start.lstrip(b" \t\r\n")
    if len(start) < 4 or not _is_separator(chr(start[3])):
        return 0.0
    if start[:3] in (b"FHS", b"BHS"):
        return 0.6
    if start[:3] != b"MSH":
        return 0.0
    return 0.95 if _has_encoding_characters(start[3:10].decode("latin-1")) else 0.25


def _has_encoding_characters(text: str) -> bool:
    """MSH-1 and MSH-2 as a sniffer wants them: a separator, 4 or 5 distinct other delimiters, then
    the separator again (or the end of the head)."""
    separator, rest = text[0], text[1:]
    encoding = rest.split(separator, 1)[0]
    ended = separator in rest or len(rest) == len(encoding) == 4
    return (
        ended
        and len(encoding) in (4, 5)
        and all(_is_separator(c) for c in encoding)
        and len(set(encoding)) == len(encoding)
    )


class _Findings:
    """Findings in order, at most ``MAX_PER_CODE`` of each code, then one saying how many more."""

    def __init__(self) -> None:
        self.items: list[Finding] = []
        self.counts: dict[str, tuple[int, str]] = {}

    def add(self, code: str, message: str, where: str | None = None, severity: str = ERROR) -> None:
        count, first_severity = self.counts.get(code, (0, severity))
        self.counts[code] = (count + 1, first_severity)
        if count < MAX_PER_CODE:
            self.items.append(Finding(message, where, severity, f"{NAME}.{code}"))

    def result(self, details: Mapping[str, Any]) -> ValidationResult:
        more = [
            Finding(f"{count - MAX_PER_CODE} more {NAME}.{code} findings not listed", None, severity, f"{NAME}.{code}")
            for code, (count, severity) in self.counts.items()
            if count > MAX_PER_CODE
        ]
        return ValidationResult(NAME, (*self.items, *more), dict(details))


def _where(number: int, segment_id: str | None = None, field: int | None = None) -> str:
    where = f"segment {number} ({segment_id})" if segment_id else f"segment {number}"
    return f"{where}, field {field}" if field else where


def _header(body: bytes, out: _Findings) -> tuple[str, list[str]] | None:
    """The field separator and the MSH fields read as single bytes, or ``None`` when there is no MSH."""
    if body[:3] != b"MSH":
        stripped = body.lstrip(b" \t\r\n")
        if not body:
            out.add("msh", "the payload is empty: an HL7 v2 message starts with an MSH segment")
        elif stripped[:3] == b"MSH":
            skipped = len(body) - len(stripped)
            out.add("msh", f"the message must start with MSH, not with {skipped} byte(s) of white space", "segment 1")
        elif body[:3] in (b"FHS", b"BHS"):
            out.add(
                "batch", "HL7 batches (FHS/BHS) are not supported: send one message, starting with MSH, per payload"
            )
        else:
            out.add("msh", f"the message must start with an MSH segment, found {_show(body, 16)}", "segment 1")
        return None
    separator = chr(body[3]) if len(body) > 3 else ""
    if not _is_separator(separator):
        found = f"found {separator!r}" if separator else "the message ends after MSH"
        message = f"MSH-1 field separator must be a printable ASCII character other than a letter or digit: {found}"
        out.add("msh-1", message, _where(1, "MSH", 1))
        return None
    end = TERMINATOR_BYTES.search(body)
    return separator, body[: end.start() if end else len(body)].decode("latin-1").split(separator)


def _codec(msh: list[str], options: Mapping[str, Any], out: _Findings) -> str | None:
    """The Python codec for MSH-18 (first repetition), else the route's ``charset``, else UTF-8."""
    encoding = msh[1] if len(msh) > 1 else ""
    repetition = encoding[1] if len(encoding) > 1 else "~"
    declared = msh[17].split(repetition)[0] if len(msh) > 17 else ""
    if declared:
        if declared.upper() in CHARSETS:
            return CHARSETS[declared.upper()]
        supported = ", ".join(CHARSETS)
        if declared.upper() in UNSUPPORTED:
            message = f"MSH-18 character set {_show(declared)} is not supported here (supported: {supported})"
        else:
            message = f"MSH-18 character set {_show(declared)} is not in HL7 table 0211 (supported: {supported})"
        out.add("msh-18", message, _where(1, "MSH", 18))
        return None
    charset = str(options.get("charset") or "utf-8")
    try:
        return codecs.lookup(charset).name
    except LookupError:
        out.add("options", f"route option charset {charset!r} is not a known character set")
        return None


def _decode(body: bytes, codec: str | None, separator: str, offset: int, out: _Findings) -> str:
    """The message as text; bytes the codec refuses become a finding naming segment and field."""
    try:
        return body.decode(codec or "latin-1")
    except UnicodeDecodeError as exc:
        prefix = body[: exc.start]
        terminators = TERMINATOR_BYTES.findall(prefix)
        start = max(prefix.rfind(b"\n"), prefix.rfind(b"\r")) + 1
        segment = prefix[start:]
        fields = segment.count(separator.encode("latin-1"))
        segment_id = body[start : start + 3].decode("latin-1", errors="replace")
        field = (fields + 1) if segment_id == "MSH" and fields else (fields or None)  # MSH-1 is the separator
        message = f"not valid {codec}: {exc.reason} (byte 0x{body[exc.start]:02x} at offset {exc.start + offset})"
        shown_id = segment_id if SEGMENT_ID.fullmatch(segment_id) else None
        out.add("encoding", message, _where(len(terminators) + 1, shown_id, field))
        return body.decode(codec or "latin-1", errors="replace")


def _check_msh(msh: list[str], separator: str, out: _Findings) -> dict[str, Any]:
    """Check MSH-2, -9, -10, -11 and -12 of the decoded MSH; return what they say."""

    def field(n: int) -> str:
        return msh[n - 1] if n - 1 < len(msh) else ""

    def where(n: int) -> str:
        return _where(1, "MSH", n)

    encoding, problem = field(2), None
    if len(encoding) not in (4, 5):
        problem = (
            "MSH-2 must be the 4 encoding characters (component, repetition, escape, subcomponent; "
            f"usually ^~\\&), found {_show(encoding)}"
        )
    elif any(not _is_separator(c) for c in encoding):
        problem = (
            f"MSH-2 encoding characters must be printable ASCII other than letters and digits, found {_show(encoding)}"
        )
    elif len(set(encoding + separator)) != len(encoding) + 1:
        problem = f"MSH-2 encoding characters must differ from each other and from MSH-1, found {_show(encoding)}"
    component = "^" if problem else encoding[0]
    version = field(12).split(component)[0]
    parsed = tuple(int(part) for part in version.split(".")) if VERSION.fullmatch(version) else None
    v27 = parsed is not None and parsed >= (2, 7)
    if problem:
        out.add("msh-2", problem, where(2))
    elif len(encoding) == 5 and parsed is not None and not v27:
        message = f"MSH-2 has a 5th (truncation) character, which HL7 defines from v2.7; MSH-12 says {version}"
        out.add("msh-2", message, where(2), WARNING)

    message_type = field(9)
    code, trigger, structure = ([*message_type.split(component), "", ""])[:3]
    if not message_type:
        out.add("msh-9", "MSH-9 message type is missing (e.g. ADT^A01^ADT_A01 or ORU^R01)", where(9))
    elif not CODE.fullmatch(code):
        out.add(
            "msh-9",
            f"MSH-9.1 message code must be 3 upper-case letters or digits (e.g. ADT), found {_show(code)}",
            where(9),
        )
    elif not trigger and code != "ACK":
        out.add("msh-9", f"MSH-9.2 trigger event is missing: MSH-9 is {_show(message_type)}, e.g. {code}^A01", where(9))
    elif trigger and not CODE.fullmatch(trigger):
        out.add(
            "msh-9",
            f"MSH-9.2 trigger event must be 3 upper-case letters or digits (e.g. A01), found {_show(trigger)}",
            where(9),
        )
    elif structure and not STRUCTURE.fullmatch(structure):
        out.add("msh-9", f"MSH-9.3 message structure must look like ADT_A01, found {_show(structure)}", where(9))

    control_id, limit = field(10), 199 if v27 else 20
    if not control_id:
        out.add("msh-10", "MSH-10 message control id is missing: acknowledgements (MSA-2) refer to it", where(10))
    elif len(control_id) > limit:
        message = (
            f"MSH-10 message control id is {len(control_id)} characters; HL7 {version or 'v2'} allows {limit} "
            "(20 before v2.7, 199 from v2.7): a receiver may truncate it and fail to match acknowledgements"
        )
        out.add("msh-10", message, where(10), WARNING)

    processing_id, mode = ([*field(11).split(component), ""])[:2]
    if not field(11):
        out.add("msh-11", "MSH-11 processing id is missing (P production, T training, D debugging)", where(11))
    elif processing_id not in ("P", "T", "D"):
        out.add("msh-11", f"MSH-11 processing id must be P, T or D, found {_show(processing_id)}", where(11))
    elif mode not in ("", "A", "I", "R", "T"):
        out.add("msh-11", f"MSH-11.2 processing mode must be A, I, R, T or empty, found {_show(mode)}", where(11))

    if not version:
        out.add("msh-12", "MSH-12 version id is missing (e.g. 2.4)", where(12))
    elif parsed is None:
        message = f"MSH-12 version id must be an HL7 v2 version such as 2.3, 2.4 or 2.5.1, found {_show(version)}"
        out.add("msh-12", message, where(12))

    return {
        "message_type": code or None,
        "trigger_event": trigger or None,
        "message_structure": structure or None,
        "control_id": control_id or None,
        "version": version or None,
        "processing_id": field(11) or None,
        "sending_application": field(3) or None,
        "sending_facility": field(4) or None,
        "receiving_application": field(5) or None,
        "receiving_facility": field(6) or None,
    }


def _check_segments(text: str, separator: str, policy: str, out: _Findings) -> tuple[int, str | None]:
    """Check segment terminators and ids; return how many segments there are and the terminator."""
    content = text.rstrip("\r\n")
    segments, terminators = TERMINATOR.split(content), TERMINATOR.findall(text)
    names = [TERMINATOR_NAMES[t] for t in dict.fromkeys(terminators)]
    if len(names) > 1:
        i = next(i for i, t in enumerate(terminators) if t != terminators[0])
        message = (
            f"segments end with a mix of {' and '.join(names)}: use one terminator throughout (CR is the standard)"
        )
        where = _where(i + 1, segments[i][:3]) if i < len(segments) else "after the last segment"
        out.add("segment-terminator", message, where)
    elif policy == "strict" and names and names != ["CR"]:
        message = f"segments end with {names[0]}, but this route requires CR (option segment_terminator = 'strict')"
        out.add("segment-terminator", message, _where(1, "MSH"))
    blank = len(TERMINATOR.findall(text, len(content))) - 1  # one terminator after the last segment is normal
    if blank > 0:
        out.add("empty-segment", f"{blank} empty line(s) after the last segment", None, WARNING)
    count = 0
    for number, segment in enumerate(segments, 1):
        if not segment:
            out.add("empty-segment", "empty segment: two terminators in a row", _where(number))
            continue
        count += 1
        segment_id = segment[:3]
        if not SEGMENT_ID.fullmatch(segment_id) or segment[3:4] not in ("", separator):
            found = segment.split(separator, 1)[0]
            message = f"segment id must be 3 upper-case letters or digits, then {separator!r}: found {_show(found)}"
            out.add("segment-id", message, _where(number))
        elif number > 1 and segment_id in BATCH_SEGMENTS:
            message = (
                f"{segment_id} after the first segment: send one message per payload (HL7 batches are not supported)"
            )
            out.add("batch", message, _where(number, segment_id))
    return count, (names[0] if len(names) == 1 else "mixed") if names else None


def validate(data: bytes, options: Mapping[str, Any]) -> ValidationResult:
    """Check one HL7 v2 message; return every problem as a finding (never raises).

    Route options: ``segment_terminator`` is ``"lenient"`` (default: CR, LF or CRLF, one kind
    throughout, since NHS files often use LF) or ``"strict"`` (CR only, as the standard says);
    ``charset`` is the character set when MSH-18 is empty (default UTF-8, which covers ASCII).
    """
    out = _Findings()
    policy = options.get("segment_terminator") or "lenient"
    if policy not in POLICIES:
        out.add("options", f"route option segment_terminator must be 'lenient' or 'strict', not {policy!r}")
        return out.result({})
    body = data
    if body.startswith(BOM):
        out.add("bom", "a UTF-8 byte order mark comes before MSH; HL7 v2 has none (accepted)", "segment 1", WARNING)
        body = body[len(BOM) :]
    header = _header(body, out)
    if header is None:
        return out.result({})
    separator, raw_msh = header
    codec = _codec(raw_msh, options, out)
    text = _decode(body, codec, separator, len(data) - len(body), out)
    end = TERMINATOR.search(text)
    details = _check_msh(text[: end.start() if end else len(text)].split(separator), separator, out)
    details["segments"], details["segment_terminator"] = _check_segments(text, separator, policy, out)
    details["charset"] = codec
    return out.result(details)


EXAMPLE = (
    b"MSH|^~\\&|DEMO_EPR|X26|DEMO_PAS|X26|20260101120000||ADT^A01^ADT_A01|DEMO0001|P|2.4\r"
    b"EVN|A01|20260101120000\r"
    b"PID|1||9000000009^^^NHS^NH||TEST^DEMO||19700101|U\r"
    b"PV1|1|I\r"
)

HL7V2 = PayloadType(
    NAME,
    MEDIA_TYPE,
    sniff,
    validate,
    "HL7 v2 ER7 messages: MSH header, delimiters, segments, character set",
    EXAMPLE,
)


@hookimpl
def meshbridge_payload_types() -> list[PayloadType]:
    """The hook meshbridge calls to collect payload types: this plugin adds one."""
    return [HL7V2]
