"""EDIFACT lexical layer (ISO 9735): service characters, UNA, a release-aware segment tokenizer,
element splitting and the character repertoires of the syntax levels.

Everything works on bytes with byte offsets; the service characters are single ASCII bytes, so the
same tokenizer serves the single-byte levels (UNOA..UNOF) and UTF-8 (UNOW).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
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
    names = ("component separator", "data element separator", "decimal mark", "release character")
    names += ("repetition separator", "segment terminator")
    for name, c in zip(names, una, strict=True):
        if c >= 0x80 or c in b"\r\n" or chr(c).isalnum():
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
    """Line breaks before a segment, its body, and what ended it (groups 2..4; none = end of data)."""
    t = _cls(bytes([sc.terminator]))
    if sc.release is None:
        body = rb"[^" + t + rb"\r\n]*+"
        tail = rb"(?:(" + t + rb")|([\r\n]))?"
    else:
        r = _cls(bytes([sc.release]))
        body = rb"(?:[^" + t + r + rb"\r\n]++|" + r + rb"[^\r\n])*+"
        tail = rb"(?:(" + t + rb")|([\r\n])|(" + r + rb"))?"
    return re.compile(rb"[\r\n]*+(" + body + rb")" + tail, re.DOTALL)


def segments(data: bytes, sc: ServiceChars, pos: int = 0) -> Iterator[tuple[int, int, int]]:
    """Yield ``(start, end, how)`` per segment: the body span (tag included, terminator excluded) and why it
    ended (``TERMINATED``, ``LINE_BREAK``, ``DANGLING_RELEASE`` or ``END_OF_DATA``, the last two final).

    CR/LF between segments is skipped; a line break inside a segment ends it with ``LINE_BREAK``.
    """
    match = _segment_re(sc).match
    n = len(data)
    while pos < n:
        m = match(data, pos)
        start, end = m.span(1)
        how = m.lastindex or 1
        if how == 1:
            if start < n:
                yield start, end, END_OF_DATA
            return
        pos = m.end()
        if how == 4:  # an unreleased release character before a line break or the end
            if pos == n:
                yield start, end, DANGLING_RELEASE
                return
            how = 3
        yield start, end, TERMINATED if how == 2 else LINE_BREAK


@lru_cache(maxsize=32)
def _split_res(sc: ServiceChars) -> tuple[re.Pattern[bytes], re.Pattern[bytes], re.Pattern[bytes] | None]:
    e, c = _cls(bytes([sc.element])), _cls(bytes([sc.component]))
    if sc.release is None:
        return re.compile(rb"[^" + e + rb"]*+"), re.compile(rb"[^" + c + rb"]*+"), None
    r = _cls(bytes([sc.release]))
    element = re.compile(rb"(?:[^" + e + r + rb"]++|" + r + rb".)*+", re.DOTALL)
    component = re.compile(rb"(?:[^" + c + r + rb"]++|" + r + rb".)*+", re.DOTALL)
    return element, component, re.compile(r + rb"(.)", re.DOTALL)


def split(body: bytes, sc: ServiceChars, max_elements: int = 16, max_components: int = 8) -> list[list[bytes]]:
    """Split a segment body into elements of components, releases resolved; the tag is element 0.

    Only the first ``max_elements`` elements and ``max_components`` components are kept (bounded work).
    """
    element_re, component_re, release_re = _split_res(sc)
    out: list[list[bytes]] = []
    pos, n = 0, len(body)
    while len(out) < max_elements:
        m = element_re.match(body, pos)
        raw, pos = m.group(), m.end()
        comps: list[bytes] = []
        cpos, cn = 0, len(raw)
        while len(comps) < max_components:
            cm = component_re.match(raw, cpos)
            value = cm.group()
            comps.append(release_re.sub(rb"\1", value) if release_re and sc.release in value else value)
            cpos = cm.end() + 1
            if cpos > cn:
                break
        out.append(comps)
        pos += 1
        if pos > n:
            break
    return out


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


@lru_cache(maxsize=32)
def _bad_re(syntax: Syntax, sc: ServiceChars) -> tuple[re.Pattern[bytes], bytes]:
    extra = b"\r\n" + sc.specials()
    if syntax.allowed is None:
        keep = _cls(bytes(sorted(set(extra))))
        return re.compile(rb"(?![" + keep + rb"])(?:" + _UTF8_CONTROLS + rb")"), b""
    allowed = bytes(sorted(set(syntax.allowed + extra)))
    return re.compile(rb"[^" + _cls(allowed) + rb"]"), allowed


def bad_characters(data: bytes, syntax: Syntax, sc: ServiceChars, limit: int = 10) -> tuple[list[int], int, int]:
    """Offsets of the first ``limit`` bytes outside the repertoire, how many there are in all, and the offset of
    the first byte that does not decode (UTF-8 only; -1 when everything decodes). CR/LF are allowed here: the
    tokenizer reports line breaks inside segments."""
    bad_re, allowed = _bad_re(syntax, sc)
    undecodable = -1
    if syntax.allowed is None:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            undecodable = exc.start
        offsets = [m.start() for m in islice(bad_re.finditer(data), limit)]
        total = len(offsets) if len(offsets) < limit else sum(1 for _ in bad_re.finditer(data))
        return offsets, total, undecodable
    total = len(data.translate(None, allowed))
    offsets = [m.start() for m in islice(bad_re.finditer(data), limit)] if total else []
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
