"""EDIFACT lexical layer (ISO 9735): service characters, UNA, a release-aware segment tokenizer,
element splitting and the character repertoires of the syntax levels.

Everything works on bytes with byte offsets; the service characters are single ASCII bytes, so the
same tokenizer serves the single-byte levels (UNOA..UNOF) and UTF-8 (UNOW).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field as dc_field
from datetime import date
from functools import lru_cache
from itertools import islice

# Why a segment ended (the third item of each tokenizer tuple).
TERMINATED, END_OF_DATA, LINE_BREAK, DANGLING_RELEASE = 1, 2, 3, 4


@dataclass(frozen=True)
class ServiceChars:
    """The six UNA characters as byte values; ``release``/``repetition`` are ``None`` when unused (space)."""

    component: int = ord(":")
    element: int = ord("+")
    decimal: int = ord(".")
    release: int | None = ord("?")
    repetition: int | None = None
    terminator: int = ord("'")

    def specials(self) -> bytes:
        """The characters that have a syntactic meaning (and so may be released)."""
        chars = (self.component, self.element, self.release, self.repetition, self.terminator)
        return bytes(c for c in chars if c is not None)


DEFAULT = ServiceChars()
# ISO 9735 level B defaults when there is no UNA: IS1, IS3, IS4 and no release character.
LEVEL_B_DEFAULT = ServiceChars(component=0x1F, element=0x1D, release=None, terminator=0x1C)


def _cls(chars: bytes) -> bytes:
    return b"".join(b"\\x%02x" % c for c in chars)


def parse_una(una: bytes) -> tuple[ServiceChars | None, list[str]]:
    """Check the six characters after ``UNA``; return the service characters (None if unusable) and problems."""
    comp, elem, dec, rel, rep, term = una
    problems: list[str] = []
    names: tuple[str, ...] = ("component separator", "data element separator", "decimal mark", "release character")
    names += ("repetition separator", "segment terminator")
    for name, c in zip(names, una, strict=True):
        if name != "decimal mark" and (c >= 0x80 or c in b"\r\n" or chr(c).isalnum()):
            problems.append(f"UNA {name} {chr(c)!r} must be a punctuation character, not a letter, digit or line break")
    for name, c in ((names[0], comp), (names[1], elem), (names[5], term)):
        if c == 0x20:
            problems.append(f"UNA {name} must not be a space")
    if dec not in b".,":
        problems.append(f"UNA decimal mark {chr(dec)!r} must be '.' or ','")
    used = [c for c in una if c != 0x20]
    if len(set(used)) != len(used):
        dupes = sorted({chr(c) for c in used if used.count(c) > 1})
        problems.append(f"UNA service characters must be distinct; {', '.join(map(repr, dupes))} used twice")
    if problems:
        return None, problems
    return ServiceChars(comp, elem, dec, None if rel == 0x20 else rel, None if rep == 0x20 else rep, term), []


@lru_cache(maxsize=32)
def _segment_re(sc: ServiceChars) -> re.Pattern[bytes]:
    """Line breaks before a segment, its body (group 1), and what ended it (groups 2..4; none = end of data)."""
    t = _cls(bytes([sc.terminator]))
    if sc.release is None:
        body = rb"[^" + t + rb"\r\n]*+"
        tail = rb"(?:(" + t + rb")|([\r\n]))?"
    else:  # the unrolled loop plain* (release any plain*)* is twice as fast as (plain+ | release any)*
        r = _cls(bytes([sc.release]))
        plain = rb"[^" + t + r + rb"\r\n]*+"
        body = plain + rb"(?:" + r + rb"[^\r\n]" + plain + rb")*+"
        tail = rb"(?:(" + t + rb")|([\r\n])|(" + r + rb"))?"
    return re.compile(rb"[\r\n]*+(" + body + rb")" + tail, re.DOTALL)


def segments(data: bytes, sc: ServiceChars, pos: int = 0) -> Iterator[tuple[int, int, int]]:
    """Yield ``(start, end, how)`` per segment: the body span (tag included, terminator excluded) and why it
    ended (``TERMINATED``, ``LINE_BREAK``, ``DANGLING_RELEASE`` or ``END_OF_DATA``, the last two final).

    CR/LF between segments is skipped; a line break inside a segment ends it with ``LINE_BREAK``.
    """
    n = len(data)
    for m in _segment_re(sc).finditer(data, pos):
        start, end = m.span(1)
        how = m.lastindex
        if how == 1:  # nothing ended the body: the end of the data
            if start < n:
                yield start, end, END_OF_DATA
            return
        if how == 4:  # an unreleased release character before a line break or the end
            if m.end() == n:
                yield start, end, DANGLING_RELEASE
                return
            how = 3
        yield start, end, TERMINATED if how == 2 else LINE_BREAK


@lru_cache(maxsize=32)
def _token_re(sc: ServiceChars) -> re.Pattern[bytes]:
    """A released character (group 1) or a separator (group 2)."""
    r, seps = _cls(bytes([sc.release or 0])), _cls(bytes([sc.element, sc.component]))
    return re.compile(r + rb"(.)|([" + seps + rb"])", re.DOTALL)


def split(body: bytes, sc: ServiceChars, max_elements: int = 16, max_components: int = 8) -> list[list[bytes]]:
    """Split a segment body into elements of components, releases resolved; the tag is element 0.

    Only the first ``max_elements`` elements and ``max_components`` components are kept (bounded work).
    """
    elem, comp = bytes([sc.element]), bytes([sc.component])
    if sc.release is None or sc.release not in body:
        parts = body.split(elem, max_elements)[:max_elements]
        return [p.split(comp, max_components)[:max_components] for p in parts]
    out: list[list[bytes]] = [[]]
    buf, last = bytearray(), 0
    body = body[:4096]  # service segments are short; released characters make this the slow path
    for m in _token_re(sc).finditer(body):
        buf += body[last : m.start()]
        last = m.end()
        if m.lastindex == 1:
            buf += m.group(1)
            continue
        out[-1].append(bytes(buf))
        buf.clear()
        if m.group(2) == elem:
            if len(out) == max_elements:
                return [c[:max_components] for c in out]
            out.append([])
    buf += body[last:]
    out[-1].append(bytes(buf))
    return [c[:max_components] for c in out]


# --- character repertoires -----------------------------------------------------------------------

LEVEL_A = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,-()/='+:?!\"%&*;<>"
LEVEL_A_TEXT = "upper-case letters, digits, space and . , - ( ) / = ' + : ? ! \" % & * ; < >"
LEVEL_B = LEVEL_A + b"abcdefghijklmnopqrstuvwxyz\x1c\x1d\x1f"
_GRAPHIC_8BIT = bytes(range(0x20, 0x7F)) + bytes(range(0xA0, 0x100))


def _defined(codec: str) -> bytes:
    out = bytearray()
    for b in _GRAPHIC_8BIT:
        try:
            bytes([b]).decode(codec)
        except UnicodeDecodeError:
            continue
        out.append(b)
    return bytes(out)


@dataclass(frozen=True)
class Syntax:
    """A supported syntax identifier (UNB 0001): its codec and allowed bytes (None = UTF-8, checked apart)."""

    name: str
    codec: str
    allowed: bytes | None
    description: str


SYNTAXES = {
    s.name: s
    for s in (
        Syntax("UNOA", "ascii", LEVEL_A, f"level A ({LEVEL_A_TEXT})"),
        Syntax("UNOB", "ascii", LEVEL_B, "level B (level A plus lower-case letters)"),
        Syntax("UNOC", "latin-1", _GRAPHIC_8BIT, "level C (ISO 8859-1 graphic characters)"),
        Syntax("UNOD", "iso8859-2", _defined("iso8859-2"), "level D (ISO 8859-2 graphic characters)"),
        Syntax("UNOE", "iso8859-5", _defined("iso8859-5"), "level E (ISO 8859-5 graphic characters)"),
        Syntax("UNOF", "iso8859-7", _defined("iso8859-7"), "level F (ISO 8859-7 graphic characters)"),
        Syntax("UNOW", "utf-8", None, "level W (UTF-8, no control characters)"),
    )
}

# C0 controls and DEL in any encoding; C1 controls as UTF-8 sequences.
_UTF8_CONTROLS = rb"[\x00-\x1f\x7f]|\xc2[\x80-\x9f]"
_C1_RE = re.compile(rb"\xc2[\x80-\x9f]")


@lru_cache(maxsize=32)
def _bad_re(syntax: Syntax, sc: ServiceChars) -> tuple[re.Pattern[bytes], bytes]:
    """A pattern for one bad character, and the bytes to delete so that only bad single bytes remain."""
    extra = b"\r\n" + sc.specials()
    if syntax.allowed is None:
        keep = _cls(bytes(sorted(set(extra))))
        controls = {*range(0x20), 0x7F} - set(extra)
        return re.compile(rb"(?![" + keep + rb"])(?:" + _UTF8_CONTROLS + rb")"), bytes(set(range(256)) - controls)
    allowed = bytes(sorted(set(syntax.allowed + extra)))
    return re.compile(rb"[^" + _cls(allowed) + rb"]"), allowed


def bad_characters(
    data: bytes, syntax: Syntax, sc: ServiceChars, start: int = 0, limit: int = 10
) -> tuple[list[int], int, int]:
    """Offsets (from ``start``) of the first ``limit`` bytes outside the repertoire, how many there are in all,
    and the offset of the first byte that does not decode (UTF-8 only; -1 when everything decodes).

    CR/LF and the declared service characters are allowed here: the tokenizer reports line breaks inside
    segments.
    """
    bad_re, delete = _bad_re(syntax, sc)
    offsets = [m.start() for m in islice(bad_re.finditer(data, start), limit)]
    total = len(offsets)
    if total == limit:  # count the rest at C speed
        total = len(data.translate(None, delete)) - len(data[:start].translate(None, delete))
        if syntax.allowed is None:
            total += len(_C1_RE.findall(data, start))
    undecodable = -1
    if syntax.allowed is None:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            undecodable = exc.start
    return offsets, total, undecodable


@lru_cache(maxsize=32)
def _needless_re(sc: ServiceChars) -> re.Pattern[bytes]:
    r = _cls(bytes([sc.release or 0]))
    ok = _cls(sc.specials())
    return re.compile(rb"(?:[^" + r + rb"]++|" + r + rb"[" + ok + rb"])*+(?=" + r + rb".)", re.DOTALL)


def needless_release(data: bytes, sc: ServiceChars, pos: int = 0) -> int:
    """Offset of the first release character (from ``pos``) that precedes a non-service character, or -1."""
    if sc.release is None or data.find(bytes([sc.release]), pos) < 0:
        return -1
    m = _needless_re(sc).match(data, pos)
    return m.end() if m else -1


# --- values --------------------------------------------------------------------------------------


def field(elements: list[list[bytes]], i: int, j: int = 0) -> bytes:
    """Component ``j`` of element ``i`` (the tag is element 0), or ``b""`` when absent."""
    return elements[i][j] if i < len(elements) and j < len(elements[i]) else b""


def number(value: bytes, digits: int) -> int | None:
    """The value as an int when it is 1 to ``digits`` ASCII digits, else None."""
    return int(value) if value.isdigit() and len(value) <= digits else None


def datetime_problem(d: bytes, t: bytes) -> str | None:
    """What is wrong with a UNB date (YYMMDD or CCYYMMDD) and time (HHMM), or None."""
    if not d.isdigit() or len(d) not in (6, 8):
        return f"UNB preparation date (S004/0017) {d[:20].decode('latin-1')!r} must be YYMMDD or CCYYMMDD"
    year = 2000 + int(d[:2]) if len(d) == 6 else int(d[:4])
    try:
        date(year, int(d[-4:-2]), int(d[-2:]))
    except ValueError:
        return f"UNB preparation date {d.decode()!r} is not a calendar date"
    if not t.isdigit() or len(t) != 4 or int(t[:2]) > 23 or int(t[2:]) > 59:
        return f"UNB preparation time (S004/0019) {t[:20].decode('latin-1')!r} must be a time HHMM"
    return None


def describe_byte(data: bytes, off: int, codec: str) -> str:
    """``'é' (byte 0xE9)`` or ``byte 0x07`` for the byte at ``off``."""
    b = data[off]
    try:
        ch = bytes([b]).decode(codec) if 0x20 <= b != 0x7F else ""
    except UnicodeDecodeError:
        ch = ""
    return f"{ch!r} (byte 0x{b:02X})" if ch and ch.isprintable() else f"byte 0x{b:02X}"


def _text(value: bytes, codec: str, limit: int = 40) -> str:
    return value[:limit].decode(codec, "replace") + ("..." if len(value) > limit else "")


@dataclass
class Header:
    """What UNB says: the syntax (None when unsupported), control reference, details and problems."""

    syntax: Syntax | None
    reference: bytes
    details: dict[str, object] = dc_field(default_factory=dict)
    problems: list[tuple[str, str]] = dc_field(default_factory=list)  # (finding code, message)


def parse_unb(els: list[list[bytes]]) -> Header:
    """Check the interchange header's elements (from :func:`split`) and collect its details."""
    sid, version = field(els, 1), field(els, 1, 1)
    syntax = SYNTAXES.get(sid.decode("latin-1"))
    codec = syntax.codec if syntax else "latin-1"
    h = Header(syntax, field(els, 5))
    add, d = h.problems.append, h.details
    if not sid:
        add(("syntax-id", "UNB has no syntax identifier (S001/0001), e.g. UNOA:2 or UNOC:3"))
    elif not syntax:
        supported = ", ".join(SYNTAXES)
        add(("syntax-id", f"syntax identifier {_text(sid, codec)!r} is not supported (use one of {supported})"))
    if version not in (b"1", b"2", b"3", b"4"):
        problem = f"version {_text(version, codec)!r} is not 1-4" if version else "has no syntax version number"
        add(("syntax-version", f"UNB syntax identifier {problem} (S001/0002), e.g. UNOA:2"))
    elif sid == b"UNOW" and version != b"4":
        add(("syntax-version", "UNOW (UTF-8) needs syntax version 4"))
    d.update(syntax=_text(sid, codec), syntax_version=_text(version, codec))
    for key, i, label in (("sender", 2, "sender (S002/0004)"), ("recipient", 3, "recipient (S003/0010)")):
        ident = field(els, i)
        if not ident:
            add((f"unb-{key}", f"UNB has no {label} identification"))
        elif len(ident) > 35:
            add((f"unb-{key}", f"UNB {label} {_text(ident, codec)!r} is longer than 35 characters"))
        d[key], d[f"{key}_qualifier"] = _text(ident, codec, 35), _text(field(els, i, 1), codec) or None
    day, t = field(els, 4), field(els, 4, 1)
    when_problem = datetime_problem(day, t)
    if when_problem:
        add(("unb-datetime", when_problem))
    else:
        iso = (b"20" + day if len(day) == 6 else day).decode()
        d["prepared"] = f"{iso[:4]}-{iso[4:6]}-{iso[6:]}T{t[:2].decode()}:{t[2:].decode()}"
    if not h.reference or len(h.reference) > 14:
        add(("unb-reference", "UNB interchange control reference (0020) must be 1 to 14 characters"))
    app = field(els, 7)
    if len(app) > 14:
        add(("unb-application-ref", "UNB application reference (0026) is longer than 14 characters"))
    d.update(interchange_ref=_text(h.reference, codec, 14), application_ref=_text(app, codec, 14) or None)
    d.update(ack_requested=field(els, 9) == b"1", test=field(els, 11) == b"1")
    return h
