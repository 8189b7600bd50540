"""EDIFACT (ISO 9735) interchanges: a strict envelope validator, built in as the ``edifact`` payload type.

Checked: UNA (9 characters, distinct service characters); UNB first, UNZ last and nothing but whitespace
after it; every segment terminated; segment tags; the UNB syntax identifier, version, sender, recipient,
date/time and control reference; the character repertoire of the syntax level; UNZ reference and count;
UNG..UNE groups and UNH..UNT messages (references, counts, nesting). Message content (the segments
between UNH and UNT) is not checked against any directory.

``details`` carries what the ack layer needs for RECEP/NHSACK correlation: syntax, sender, recipient,
interchange and application references, the NHSACK request flag (UNB 0031) and the messages.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from typing import Any, NoReturn, cast

from ..hookspecs import hookimpl
from . import edifact_syntax as syn
from .base import ERROR, WARNING, Finding, PayloadType, ValidationResult
from .edifact_syntax import field

NAME = "edifact"
MAX_FINDINGS = 100
BOM = b"\xef\xbb\xbf"
SERVICE_TAGS = frozenset((b"UNA", b"UNB", b"UNG", b"UNE", b"UNH", b"UNT", b"UNZ"))
_TAG = re.compile(rb"[A-Z0-9]{3}")
_LEADING = re.compile(rb"[ \t\r\n]*+")
_BREAKS = re.compile(rb"[\r\n]*+")
_TRAILING = re.compile(rb"\s*+\Z")


def _skip(run: re.Pattern[bytes], data: bytes, pos: int) -> int:
    """Where a run of ``run``'s characters starting at ``pos`` ends (the patterns match empty runs)."""
    m = run.match(data, pos)
    return m.end() if m else pos


def _classify(key: bytes, ends: bytes) -> int | bytes:
    """A segment by its first 4 bytes: 0 = bad tag, 1 = ordinary segment, else the service tag."""
    tag = key[:3]
    if not _TAG.fullmatch(tag) or (len(key) == 4 and key[3] not in ends):
        return 0
    return tag if tag in SERVICE_TAGS else 1


class _Stop(Exception):
    """Stop validating: a fatal problem, or too many findings."""


class _Check:
    """One validation run: findings, details and the envelope state (open message and group)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.findings: list[Finding] = []
        self.details: dict[str, Any] = {}
        self.sc = syn.DEFAULT
        self.syntax: syn.Syntax | None = None
        self.codec = "latin-1"
        self.unb_ref = b""
        self.msg: tuple[bytes, int] | None = None  # open message: reference, UNH segment number
        self.group: list[Any] | None = None  # open group: reference, UNG segment number, message count
        self.n_groups = self.n_top = 0  # groups; messages outside groups
        self.refs: set[bytes] = set()
        self.messages: list[dict[str, str]] = []
        self.outside_reported = False
        self.pending: list[tuple[int, str]] = []  # problems found by byte offset, last first
        self.more_chars = 0

    def add(self, code: str, message: str, where: str | None = None, severity: str = ERROR) -> None:
        self.findings.append(Finding(message, where, severity, f"edifact.{code}"))
        if len(self.findings) >= MAX_FINDINGS:
            self.findings.append(Finding(f"stopped after {MAX_FINDINGS} problems", None, ERROR, "edifact.too-many"))
            raise _Stop

    def fatal(self, code: str, message: str, where: str | None = None) -> NoReturn:
        self.add(code, message, where)
        raise _Stop

    def text(self, value: bytes, limit: int = 40) -> str:
        """A value for a message: decoded, and cut short when long."""
        return value[:limit].decode(self.codec, "replace") + ("..." if len(value) > limit else "")

    def where(self, seg_no: int, s: int, e: int) -> str:
        tag = self.data[s : min(e, s + 3)]
        return f"segment {seg_no} ({tag.decode()})" if _TAG.fullmatch(tag) else f"segment {seg_no}"

    def run(self) -> ValidationResult:
        with contextlib.suppress(_Stop):
            self.check()
        self.details["messages"] = self.messages
        return ValidationResult(NAME, tuple(self.findings), self.details)

    def check(self) -> None:
        data, n = self.data, len(self.data)
        if not data.strip():
            self.fatal("empty", "the payload is empty" if not data else "the payload contains only whitespace")
        if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
            self.fatal("encoding", "the payload starts with a UTF-16 byte-order mark; EDIFACT is never UTF-16")
        bom = data.startswith(BOM)
        pos = _skip(_LEADING, data, 3 if bom else 0)
        if pos > (3 if bom else 0):
            self.add("leading-whitespace", "whitespace before the interchange is ignored", None, WARNING)
        seg_no, una_end = 0, pos
        if data.startswith(b"UNA", pos):
            seg_no, una_end = 1, self.una(pos)
        elif data.startswith(b"UNB\x1d", pos):
            self.sc = syn.LEVEL_B_DEFAULT
        self.details["una"] = seg_no == 1
        segments = syn.segments(data, self.sc, una_end)
        ends = bytes([self.sc.element, self.sc.component, self.sc.terminator]) + b"\r\n"
        kinds: dict[bytes, int | bytes] = {}
        first = next(segments, None)
        if first is None or _classify(data[first[0] : first[0] + 4], ends) != b"UNB":
            found = self.text(data[first[0] : min(first[1], first[0] + 21)], 20) if first else ""
            msg = f"an interchange must start with UNB{' after UNA' if seg_no else ''}; found {found!r}"
            self.fatal("unb-first", msg, f"segment {seg_no + 1}")
        s, e, how = first
        seg_no += 1
        self.unb(s, e, seg_no)
        if bom:
            sev = WARNING if self.codec == "utf-8" else ERROR
            self.add("bom", "a UTF-8 byte-order mark precedes the interchange; EDIFACT has none", None, sev)
        self.locate_problems(pos, una_end)
        next_bad = self.pending[-1][0] if self.pending else n  # nothing before UNB can be outside the repertoire
        terminated = syn.TERMINATED
        if how != terminated:
            self.ending(how, seg_no, s, e)
        if next_bad <= e:
            next_bad = self.located(seg_no, s, e, e)
        for s, e, how in segments:
            seg_no += 1
            if how != terminated:
                self.ending(how, seg_no, s, e)
            if next_bad <= e:
                next_bad = self.located(seg_no, s, e, e)
            key = data[s : s + 4]
            kind = kinds.get(key)
            if kind is None:
                kind = _classify(key, ends)
                if len(kinds) < 1024:
                    kinds[key] = kind
            if kind == 1:
                if self.msg is None and not self.outside_reported:
                    self.outside_reported = True
                    tag = key[:3].decode()
                    msg = f"{tag} segment outside a message: only service segments may stand outside UNH..UNT"
                    self.add("segment-outside-message", msg, f"segment {seg_no} ({tag})")
            elif kind == 0:
                self.bad_tag(seg_no, s, e)
            elif self.service(cast(bytes, kind), seg_no, s, e):
                self.after_unz(e + 1, seg_no)
                break
        else:
            where = self.where(seg_no, s, e)
            self.close_message(where)
            self.close_group(where)
            self.add("unz-missing", "the interchange has no UNZ trailer: it is truncated or UNZ is missing", where)
        self.details["segments"] = seg_no
        if self.more_chars and self.syntax:
            self.add("charset", f"{self.more_chars} more characters outside {self.syntax.name} are not listed here")

    def una(self, pos: int) -> int:
        """Check the service string advice; use its characters; return where UNB should start."""
        data, where = self.data, "segment 1 (UNA)"
        una = data[pos + 3 : pos + 9]
        if len(una) < 6:
            self.fatal("una-length", f"UNA is cut short: it needs 6 service characters, found {len(una)}", where)
        if not data.startswith(b"UNB", _skip(_BREAKS, data, pos + 9)):
            k = data.find(b"UNB", pos + 3, pos + 24)
            if k >= 0:
                found = len(data[pos:k].rstrip(b"\r\n"))
                msg = f"UNA must be exactly 9 characters ('UNA' and 6 service characters); found {found} before UNB"
                self.fatal("una-length", msg, where)
        sc, problems = syn.parse_una(una)
        for problem in problems:
            self.add("una-chars", problem, where)
        if sc is None:
            raise _Stop
        self.sc = sc
        return pos + 9

    def unb(self, s: int, e: int, seg_no: int) -> None:
        header = syn.parse_unb(syn.split(self.data[s:e], self.sc, max_elements=12))
        self.syntax, self.unb_ref = header.syntax, header.reference
        self.codec = header.syntax.codec if header.syntax else "latin-1"
        self.details.update(header.details)
        for code, message in header.problems:
            self.add(code, message, f"segment {seg_no} (UNB)")

    def locate_problems(self, pos: int, una_end: int) -> None:
        """Find bytes outside the repertoire and needless release characters, to report by segment."""
        if self.syntax:
            offsets, total, undecodable = syn.bad_characters(self.data, self.syntax, self.sc, start=pos)
            self.pending = [(o, "charset") for o in offsets]
            if undecodable >= 0:
                self.pending.append((undecodable, "encoding"))
            self.more_chars = total - len(offsets)
        release = syn.needless_release(self.data, self.sc, una_end)
        if release >= 0:
            self.pending.append((release, "release"))
        self.pending.sort(reverse=True)

    def located(self, seg_no: int, s: int, e: int, limit: int) -> int:
        """Report the byte-located problems up to offset ``limit`` in this segment; return the next offset."""
        where = self.where(seg_no, s, e)
        while self.pending and self.pending[-1][0] <= limit:
            off, kind = self.pending.pop()
            if kind == "release":
                rel, what = chr(self.sc.release or 0), syn.describe_byte(self.data, off + 1, self.codec)
                msg = f"release character {rel!r} before {what} at offset {off}: only service characters are released"
                self.add("release-needless", msg, where, WARNING)
            elif kind == "encoding":
                self.add("encoding", f"the bytes at offset {off} are not valid UTF-8 (syntax UNOW)", where)
            elif self.syntax:
                b, hint = self.data[off], ""
                if self.syntax.name == "UNOA" and 0x61 <= b <= 0x7A:
                    hint = "; lower case needs UNOB or UNOC"
                elif 0x80 <= b <= 0x9F and self.syntax.allowed is not None:
                    hint = "; Windows-1252 punctuation (curly quotes, dashes) is not ISO 8859"
                what = syn.describe_byte(self.data, off, self.codec)
                msg = f"{what} at offset {off} is not allowed in {self.syntax.name}, {self.syntax.description}{hint}"
                self.add("charset", msg, where)
        return self.pending[-1][0] if self.pending else len(self.data)

    def service(self, tag: bytes, seg_no: int, s: int, e: int) -> bool:
        """Check a service segment after UNB; True for UNZ (the end)."""
        if tag == b"UNT" and self.msg:  # the common case first: exactly the UNT that closes the open message
            (ref, start), el = self.msg, self.sc.element
            if self.data[s:e] == b"UNT%c%d%c%s" % (el, seg_no - start + 1, el, ref):
                self.msg, self.outside_reported = None, False
                return False
        name = tag.decode()
        where = f"segment {seg_no} ({name})"
        if tag in (b"UNA", b"UNB"):
            self.add(f"{name.lower()}-position", f"{name} may only start the interchange", where)
            return False
        els = syn.split(self.data[s:e], self.sc, max_elements=8)
        self.outside_reported = False
        if tag == b"UNH":
            self.unh(els, seg_no, where)
        elif tag == b"UNT":
            self.unt(els, seg_no, where)
        elif tag == b"UNG":
            self.close_message(where)
            if self.group:
                self.add("ung-nested", f"UNG inside group {self.text(self.group[0])!r}: that group has no UNE", where)
            if self.n_top:
                self.add("ung-mixed", "UNG after messages outside groups: use groups for all messages or none", where)
            if not field(els, 5) or len(field(els, 5)) > 14:
                self.add("ung-reference", "UNG group reference (0048) must be 1 to 14 characters", where)
            self.group = [field(els, 5), seg_no, 0]
            self.n_groups += 1
        elif tag == b"UNE":
            self.close_message(where)
            if self.group is None:
                self.add("une-unexpected", "UNE without a UNG: no functional group is open", where)
                return False
            ref, start, count = self.group
            self.group = None
            self.count("une-count", field(els, 1), count, "the group has {} message{}", 6, where)
            if field(els, 2) != ref:
                msg = f"UNE group reference {self.text(field(els, 2))!r} does not match UNG {self.text(ref)!r}"
                self.add("une-reference", f"{msg} (segment {start})", where)
        else:  # UNZ
            self.close_message(where)
            self.close_group(where)
            expected = self.n_groups or self.n_top
            has = "the interchange has {} functional group{}" if self.n_groups else "the interchange has {} message{}"
            self.count("unz-count", field(els, 1), expected, has, 6, where)
            if field(els, 2) != self.unb_ref:
                msg = f"UNZ reference {self.text(field(els, 2))!r} does not match the UNB control reference"
                self.add("unz-reference", f"{msg} {self.text(self.unb_ref)!r}", where)
            return True
        return False

    def unh(self, els: list[list[bytes]], seg_no: int, where: str) -> None:
        ref = field(els, 1)
        if self.msg:
            old, start = self.msg
            msg = f"UNH inside message {self.text(old)!r} (UNH at segment {start}): that message has no UNT"
            self.add("unh-nested", msg, where)
        if self.group is None and self.n_groups:
            self.add("ung-mixed", "message outside a functional group in an interchange that uses UNG/UNE", where)
        if not ref or len(ref) > 14:
            self.add("unh-reference", "UNH message reference (0062) must be 1 to 14 characters", where)
        elif ref in self.refs:
            self.add("unh-duplicate", f"message reference {self.text(ref)!r} is used twice", where, WARNING)
        ident = els[2] if len(els) > 2 else []
        while ident and not ident[-1]:
            ident.pop()
        type_text = self.text(b":".join(ident), 80)
        if len(ident) < 4 or not all(ident[:4]):
            msg = f"UNH message identifier {type_text!r} needs type, version, release and agency"
            self.add("unh-type", f"{msg} (S009, e.g. MEDRPT:0:1:RT:NHS003)", where)
        self.refs.add(ref)
        self.msg = (ref, seg_no)
        self.messages.append({"ref": self.text(ref, 14), "type": type_text})
        if self.group:
            self.group[2] += 1
        else:
            self.n_top += 1

    def unt(self, els: list[list[bytes]], seg_no: int, where: str) -> None:
        if self.msg is None:
            self.add("unt-unexpected", "UNT without a UNH: no message is open", where)
            return
        (open_ref, start), ref = self.msg, field(els, 2)
        self.msg = None
        has = "the message has {} segment{} (UNH to UNT inclusive)"
        self.count("unt-count", field(els, 1), seg_no - start + 1, has, 10, where)
        if ref != open_ref:
            msg = f"UNT message reference {self.text(ref)!r} does not match UNH {self.text(open_ref)!r}"
            self.add("unt-reference", f"{msg} (segment {start})", where)

    def count(self, code: str, value: bytes, actual: int, has: str, digits: int, where: str) -> None:
        stated = syn.number(value, digits)
        if stated == actual:
            return
        tag = code[:3].upper()
        if stated is None:
            self.add(code, f"{tag} count {self.text(value)!r} is not a number of 1 to {digits} digits", where)
        elif stated != actual:
            self.add(code, f"{tag} count is {stated} but {has.format(actual, '' if actual == 1 else 's')}", where)

    def close_message(self, where_now: str) -> None:
        """An open message at UNG, UNE, UNZ or the end has no UNT."""
        if self.msg:
            (ref, start), self.msg = self.msg, None
            msg = f"message {self.text(ref)!r} has no UNT (still open at {where_now})"
            self.add("unt-missing", msg, f"segment {start} (UNH)")

    def close_group(self, where_now: str) -> None:
        """An open group at UNZ or the end has no UNE."""
        if self.group:
            (ref, start, _), self.group = self.group, None
            msg = f"group {self.text(ref)!r} has no UNE (still open at {where_now})"
            self.add("une-missing", msg, f"segment {start} (UNG)")

    def ending(self, how: int, seg_no: int, s: int, e: int) -> None:
        where, term = self.where(seg_no, s, e), chr(self.sc.terminator)
        if how == syn.LINE_BREAK:
            self.add("line-break", f"line break inside the segment, before its terminator {term!r}", where)
            return
        if how == syn.DANGLING_RELEASE:
            rel = chr(self.sc.release or 0)
            self.add("dangling-release", f"the data ends with a release character {rel!r} that releases nothing", where)
        self.add("unterminated", f"the last segment has no terminator {term!r}: the interchange is truncated", where)

    def bad_tag(self, seg_no: int, s: int, e: int) -> None:
        if s == e:
            self.add("segment-tag", "empty segment: two segment terminators in a row", f"segment {seg_no}")
            return
        start = self.text(self.data[s : min(e, s + 13)], 12)
        msg = f"segment starts {start!r}: a tag is 3 upper-case letters or digits followed by a separator"
        self.add("segment-tag", msg, f"segment {seg_no}")

    def after_unz(self, pos: int, seg_no: int) -> None:
        if pos < len(self.data) and not _TRAILING.match(self.data, pos):
            start = _skip(_LEADING, self.data, pos)
            rest = self.text(self.data[start : start + 21], 20)
            msg = f"{len(self.data) - start} bytes after UNZ, starting {rest!r}: only whitespace may follow UNZ"
            self.add("after-unz", msg, f"segment {seg_no} (UNZ)")


def validate(data: bytes, options: Mapping[str, Any]) -> ValidationResult:
    """Check an EDIFACT interchange's envelope and syntax; never raises. ``options`` are not used."""
    try:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"expected bytes, got {type(data).__name__}")
        return _Check(bytes(data)).run()
    except Exception as exc:  # the last line of defence: a bug here must not stop messages moving
        finding = Finding(f"the EDIFACT validator failed: {type(exc).__name__}: {exc}", code="edifact.internal")
        return ValidationResult(NAME, (finding,))


def sniff(head: bytes) -> float:
    """1.0 for ``UNA`` + 6 service characters + ``UNB``, or ``UNB+UNO``; 0.5 for a malformed start; else 0."""
    try:
        h = bytes(head[:256])
        h = (h[3:] if h.startswith(BOM) else h).lstrip()
        if h.startswith(b"UNA"):
            if h[9:].lstrip(b"\r\n").startswith(b"UNB"):
                return 1.0
            return 0.5 if b"UNB" in h[3:24] else 0.0
        if h.startswith((b"UNB+UNO", b"UNB\x1dUNO")):
            return 1.0
        return 0.5 if re.match(rb"UNB\+[A-Z]{4}[:+]", h) else 0.0
    except Exception:  # a sniffer must never raise
        return 0.0


PAYLOAD_TYPE = PayloadType(
    name=NAME,
    media_type="application/EDIFACT",
    sniff=sniff,
    validate=validate,
    description="EDIFACT interchanges (ISO 9735): strict UNA/UNB..UNZ, UNG..UNE and UNH..UNT envelope checks",
    example=(
        b"UNB+UNOA:2+DEMO1:80+DEMO2:80+260101:1200+00000001'\n"
        b"UNH+00000001+FHSREG:0:1:FH:FHS001'\n"
        b"BGM+++507'\n"
        b"NAD+FHS+DEMO:954'\n"
        b"UNT+4+00000001'\n"
        b"UNZ+1+00000001'"
    ),
)


@hookimpl
def meshbridge_payload_types() -> list[PayloadType]:
    return [PAYLOAD_TYPE]
