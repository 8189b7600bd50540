"""The one hardened XML parser everything in meshbridge uses.

Parsing policy (:func:`safe_parser`, :func:`parse`):

* no entity expansion, no DTD loading or validation, no network, libxml2's default size limits
  (``huge_tree=False``: 256 levels deep, 10 MB text nodes, entity amplification capped);
* any ``<!DOCTYPE`` is refused (``xml.doctype``): no MESH payload type needs a DTD. It is caught in
  the prolog before libxml2 sees the internal subset, and again after parsing as a backstop;
* comments and processing instructions are kept unless the caller asks for them to be stripped
  (the FHIR validator does, because fhir.resources 8.3.0 trips over them).

The parser only ever reads the bytes it is given; meshbridge forwards those original bytes, never a
re-serialised tree. :func:`root_name` reads the root element's name cheaply, for sniffing.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from lxml import etree

from ..errors import XMLRejected
from .base import Finding

__all__ = ["XMLRejected", "parse", "root_name", "safe_parser", "text_head"]

HEAD = 64 * 1024

_LIMIT_ERRORS = {etree.ErrorTypes.ERR_RESOURCE_LIMIT, etree.ErrorTypes.ERR_ENTITY_LOOP}
_ENCODING_ERRORS = {
    etree.ErrorTypes.ERR_INVALID_ENCODING,
    etree.ErrorTypes.ERR_UNKNOWN_ENCODING,
    etree.ErrorTypes.ERR_UNSUPPORTED_ENCODING,
}
_POSITION_SUFFIX = re.compile(r",? line \d+, column \d+\s*$")
_PROLOG_TOKENS: dict[type, tuple[Any, Any, Any, Any, Any]] = {
    str: (re.compile(r"[ \t\r\n]*"), "<?", "?>", "<!--", "-->"),
    bytes: (re.compile(rb"[ \t\r\n]*"), b"<?", b"?>", b"<!--", b"-->"),
}
_START_TAG = re.compile(r"<([A-Za-z_][\w.\-]*)(?::([A-Za-z_][\w.\-]*))?")
_XMLNS = re.compile(r"""\s+xmlns(?::([A-Za-z_][\w.\-]*))?\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_ATTRS = re.compile(r"""(?:\s+[^\s=/>]+\s*=\s*(?:"[^"]*"|'[^']*'))*""")


def safe_parser(*, strip_comments: bool = False) -> etree.XMLParser:
    """A new hardened parser. Pass it to any library that parses XML for meshbridge.

    Prefer :func:`parse`, which also refuses a DOCTYPE. lxml advises one parser per thread, so this
    returns a fresh one each call; :func:`parse` keeps one per thread.
    """
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        attribute_defaults=False,
        huge_tree=False,
        collect_ids=False,
        remove_comments=strip_comments,
        remove_pis=strip_comments,
    )


_local = threading.local()


def _parser(strip_comments: bool) -> etree.XMLParser:
    parsers = getattr(_local, "parsers", None)
    if parsers is None:
        parsers = _local.parsers = {}
    parser = parsers.get(strip_comments)
    if parser is None:
        parser = parsers[strip_comments] = safe_parser(strip_comments=strip_comments)
    return parser


def text_head(data: bytes, limit: int = HEAD) -> str:
    """The start of ``data`` as text, good enough to read the prolog (ASCII markup)."""
    head = data[:limit]
    for bom, codec in (
        (b"\x00\x00\xfe\xff", "utf-32-be"),
        (b"\xff\xfe\x00\x00", "utf-32-le"),
        (b"\xfe\xff", "utf-16-be"),
        (b"\xff\xfe", "utf-16-le"),
    ):
        if head.startswith(bom):
            return head[len(bom) :].decode(codec, "ignore")
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    elif len(head) >= 2 and head[0] and not head[1]:  # BOM-less UTF-16: ASCII markup with NUL bytes
        return head.decode("utf-16-le", "ignore")
    elif len(head) >= 2 and not head[0] and head[1]:
        return head.decode("utf-16-be", "ignore")
    return head.decode("latin-1")


def _skip_prolog(text: str | bytes, pos: int = 0) -> int:
    """Index of the first thing after whitespace, XML declaration, comments and PIs (-1: cut short)."""
    ws, pi, pi_end, comment, comment_end = _PROLOG_TOKENS[type(text)]
    while True:
        pos = ws.match(text, pos).end()
        if text.startswith(pi, pos):
            end = text.find(pi_end, pos + 2)
            if end < 0:
                return -1
            pos = end + 2
        elif text.startswith(comment, pos):
            end = text.find(comment_end, pos + 4)
            if end < 0:
                return -1
            pos = end + 3
        else:
            return pos


def _doctype_at(data: bytes) -> str | None:
    """``line L, column C`` of a DOCTYPE in the prolog, or ``None``.

    Reads the bytes themselves for ASCII-compatible encodings, decoded text for UTF-16/32.
    """
    if data[:4].startswith((b"\xfe\xff", b"\xff\xfe", b"\x00\x00\xfe\xff")) or (
        len(data) >= 2 and (not data[0]) != (not data[1])
    ):
        decoded = text_head(data)
        pos = _skip_prolog(decoded)
        found = pos >= 0 and decoded.startswith("<!DOCTYPE", pos)
        text: str | bytes = decoded
    else:
        text = data
        pos = _skip_prolog(data, 3 if data.startswith(b"\xef\xbb\xbf") else 0)
        found = pos >= 0 and data.startswith(b"<!DOCTYPE", pos)
    return _line_col(text, pos) if found else None


def _line_col(text: str | bytes, pos: int) -> str:
    if isinstance(text, str):
        line, line_start = text.count("\n", 0, pos) + 1, text.rfind("\n", 0, pos) + 1
    else:
        line, line_start = text.count(b"\n", 0, pos) + 1, text.rfind(b"\n", 0, pos) + 1
    return f"line {line}, column {pos - line_start + 1}"


def _doctype_finding(where: str | None) -> Finding:
    return Finding(
        "DOCTYPE declarations are not accepted (no MESH payload needs a DTD; they enable entity attacks)",
        where=where,
        code="xml.doctype",
    )


def _syntax_finding(exc: etree.XMLSyntaxError) -> Finding:
    message = _POSITION_SUFFIX.sub("", " ".join(str(exc.msg or exc).split()))
    line, column = exc.position if exc.position else (None, None)
    where = f"line {line}, column {column}" if line else None
    if exc.code in _LIMIT_ERRORS:
        return Finding(f"the document exceeds a safety limit of the XML parser: {message}", where, code="xml.limit")
    if exc.code in _ENCODING_ERRORS:
        return Finding(
            f"the bytes do not match the document's character encoding: {message}", where, code="xml.encoding"
        )
    return Finding(f"not well-formed XML: {message}", where, code="xml.syntax")


def parse(data: bytes, *, strip_comments: bool = False) -> etree._Element:
    """Parse ``data`` with the hardened parser and return the root element.

    :raises XMLRejected: not well-formed, over a parser limit, wrongly encoded, or has a DOCTYPE.
    """
    data = bytes(data)
    doctype = _doctype_at(data)
    if doctype:
        raise XMLRejected(_doctype_finding(doctype))
    try:
        root = etree.fromstring(data, _parser(strip_comments))
    except etree.XMLSyntaxError as exc:
        raise XMLRejected(_syntax_finding(exc)) from None
    if root.getroottree().docinfo.doctype:
        raise XMLRejected(_doctype_finding(None))
    return root


def root_name(head: bytes) -> tuple[str | None, str] | None:
    """``(namespace, local name)`` of the root element, read cheaply from the start of a document.

    Skips a BOM, the XML declaration, comments, PIs and whitespace, then reads the start tag's
    ``xmlns`` declarations. ``None`` when there is no start tag to read. Never raises.
    """
    try:
        text = text_head(head)
        pos = _skip_prolog(text)
        if pos < 0:
            return None
        if text.startswith("<!DOCTYPE", pos):  # sniffing only; parse() refuses it
            bracket, close = text.find("[", pos), text.find(">", pos)
            if 0 <= bracket < close:
                close = text.find("]", bracket)
                close = text.find(">", close) if close >= 0 else -1
            if close < 0:
                return None
            pos = _skip_prolog(text, close + 1)
            if pos < 0:
                return None
        tag = _START_TAG.match(text, pos)
        if not tag:
            return None
        prefix, local = (tag.group(1), tag.group(2)) if tag.group(2) else (None, tag.group(1))
        attrs = _ATTRS.match(text, tag.end())
        namespace = None
        for decl in _XMLNS.finditer(attrs.group(0) if attrs else ""):
            if decl.group(1) == prefix:
                namespace = decl.group(2) if decl.group(2) is not None else decl.group(3)
        return namespace or None, local
    except Exception:  # sniffing must never raise
        return None
