"""The ``xml`` payload type, and the one hardened XML parser everything in meshbridge uses.

Parsing policy (:func:`safe_parser`, :func:`parse`):

* no entity expansion, no DTD loading or validation, no network, libxml2's default size limits
  (``huge_tree=False``: 256 levels deep, 10 MB text nodes, entity amplification capped);
* any ``<!DOCTYPE`` is refused (``xml.doctype``): no MESH payload type needs a DTD. It is caught in
  the prolog before libxml2 sees the internal subset, and again after parsing as a backstop;
* comments and processing instructions are kept unless the caller asks for them to be stripped
  (the FHIR validator does, because fhir.resources 8.3.0 trips over them).

The parser only ever reads the bytes it is given; meshbridge forwards those original bytes, never a
re-serialised tree.

``validate(data, options)`` checks well-formedness and, when the route says so, an XSD
(``xml_schema``) and an ISO Schematron (``schematron``). Schema paths are looked up as given, then in
each folder of ``schema_dirs``, then in the repository's ``schemas/`` folder. A schema that cannot be
found or compiled is reported as an error finding (``xml.schema-unavailable``): the payload is refused
(fail closed) and the message names the file and where it was looked for.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lxml import etree

from ..errors import SchemaUnavailable, XMLRejected
from ..hookspecs import hookimpl
from .base import ERROR, WARNING, Finding, PayloadType, ValidationResult

__all__ = [
    "PAYLOAD_TYPE",
    "SCHEMA_DIR",
    "SchemaUnavailable",
    "XMLRejected",
    "find_schema",
    "parse",
    "root_name",
    "safe_parser",
    "sniff",
    "validate",
]

NAME = "xml"
SCHEMA_DIR = Path(__file__).parents[2] / "schemas"
MAX_FINDINGS = 100  # per check; one more finding says how many were left out
_HEAD = 64 * 1024

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
_SVRL = "http://purl.oclc.org/dsdl/svrl"


# --------------------------------------------------------------------------- parsing


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


def _text_head(data: bytes, limit: int = _HEAD) -> str:
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
        text: str | bytes = _text_head(data)
        pos = _skip_prolog(text)
        found = pos >= 0 and text.startswith("<!DOCTYPE", pos)  # type: ignore[arg-type]
    else:
        text = data
        pos = _skip_prolog(data, 3 if data.startswith(b"\xef\xbb\xbf") else 0)
        found = pos >= 0 and data.startswith(b"<!DOCTYPE", pos)
    return _line_col(text, pos) if found else None


def _line_col(text: str | bytes, pos: int) -> str:
    newline = "\n" if isinstance(text, str) else b"\n"
    line, line_start = text.count(newline, 0, pos) + 1, text.rfind(newline, 0, pos) + 1  # type: ignore[arg-type]
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
        text = _text_head(head)
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


# --------------------------------------------------------------------------- schemas


@dataclass
class _Compiled:
    mtime_ns: int
    checker: Any
    lock: threading.Lock


_compiled: dict[tuple[str, Path], _Compiled] = {}
_resolved: dict[tuple[str, str, tuple[Path, ...]], Path] = {}  # (cwd, option value, schema_dirs) -> file
_compile_lock = threading.Lock()


def _dirs(option: Any) -> list[Path]:
    if not option:
        return []
    if isinstance(option, str | Path):
        option = [option]
    return [Path(d).expanduser() for d in option]


def find_schema(name: str | Path, schema_dirs: Iterable[str | Path] = ()) -> Path:
    """Resolve a schema path: as given, then under each of ``schema_dirs``, then under ``schemas/``.

    Compiled schemas are cached by resolved path and modification time of that file (a change to a
    file it includes or imports is not noticed until the main file changes or the process restarts).

    :raises SchemaUnavailable: when no candidate is a file.
    """
    given = Path(name).expanduser()
    candidates = (
        [given] if given.is_absolute() else [given, *(Path(d) / given for d in schema_dirs), SCHEMA_DIR / given]
    )
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    looked = ", ".join(str(c) for c in candidates)
    raise SchemaUnavailable(f"schema file {str(name)!r} not found (looked for: {looked})")


def _load(kind: str, path: Path) -> _Compiled:
    try:
        mtime = path.stat().st_mtime_ns
    except OSError as exc:
        raise SchemaUnavailable(f"cannot read {kind} {path}: {exc.strerror or exc}") from None
    key = (kind, path)
    with _compile_lock:
        cached = _compiled.get(key)
        if cached and cached.mtime_ns == mtime:
            return cached
        try:
            doc = etree.parse(str(path), safe_parser())
            if kind == "XSD":
                checker: Any = etree.XMLSchema(doc)
            else:
                from lxml import isoschematron

                checker = isoschematron.Schematron(doc, store_report=True)
        except OSError as exc:
            raise SchemaUnavailable(f"cannot read {kind} {path}: {exc}") from None
        except etree.LxmlError as exc:  # XMLSyntaxError, XMLSchemaParseError, SchematronParseError ...
            message = " ".join(str(exc).split())
            raise SchemaUnavailable(f"cannot compile {kind} {path}: {message}") from None
        cached = _compiled[key] = _Compiled(mtime, checker, threading.Lock())
        return cached


def _capped(findings: list[Finding], code: str) -> list[Finding]:
    if len(findings) <= MAX_FINDINGS:
        return findings
    more = len(findings) - MAX_FINDINGS
    return [*findings[:MAX_FINDINGS], Finding(f"... and {more} more like these", code=code)]


def _xsd_findings(root: etree._Element, path: Path) -> list[Finding]:
    compiled = _load("XSD", path)
    with compiled.lock:
        if compiled.checker.validate(root):
            return []
        entries = list(compiled.checker.error_log)
    findings = []
    for entry in entries:
        where = f"line {entry.line}, column {entry.column}" if entry.column > 0 else f"line {entry.line}"
        findings.append(Finding(" ".join(entry.message.split()), where, code="xml.xsd"))
    return _capped(findings, "xml.xsd")


def _svrl_where(root: etree._Element, location: str | None) -> str | None:
    if not location:
        return None
    try:
        hits = root.getroottree().xpath(location)
    except etree.XPathError:
        return location
    if hits and isinstance(hits[0], etree._Element):
        element = hits[0]
        names = [etree.QName(e).localname for e in (element, *element.iterancestors())]
        return f"line {element.sourceline} (/{'/'.join(reversed(names))})"
    return location


def _schematron_findings(root: etree._Element, path: Path) -> list[Finding]:
    compiled = _load("Schematron", path)
    with compiled.lock:
        compiled.checker.validate(root)
        report = compiled.checker.validation_report
    findings = []
    if report is None:
        return findings
    for node in report.iter(f"{{{_SVRL}}}failed-assert", f"{{{_SVRL}}}successful-report"):
        text = " ".join("".join(node.itertext()).split()) or f"assertion failed: {node.get('test')}"
        role = (node.get("role") or "").lower()
        failed = etree.QName(node).localname == "failed-assert"
        severity = WARNING if role in {"warning", "warn", "info", "information"} or not failed else ERROR
        findings.append(Finding(text, _svrl_where(root, node.get("location")), severity, "xml.schematron"))
    return _capped(findings, "xml.schematron")


# --------------------------------------------------------------------------- the payload type


_MARKUP_START = re.compile(r"<[^\W\d.-]|<[?!:_]")  # an element's name, a PI, a comment or DOCTYPE


def sniff(head: bytes) -> float:
    """0.6 when the first thing after an optional BOM and whitespace is ``<`` and what may follow
    it in XML (a name, ``?`` or ``!``); 0 otherwise (``<<URGENT>>`` is text)."""
    try:
        text = _text_head(head, 1024).lstrip(" \t\r\n")
        return 0.6 if _MARKUP_START.match(text) else 0.0
    except Exception:  # sniffing must never raise
        return 0.0


def validate(data: bytes, options: Mapping[str, Any]) -> ValidationResult:
    """Well-formedness under the hardened parser, then the optional XSD and Schematron."""
    try:
        return _validate(data, options)
    except Exception as exc:  # a validator reports, it does not raise
        message = f"the XML validator failed unexpectedly ({type(exc).__name__}: {exc})"
        return ValidationResult(NAME, (Finding(message, code="xml.internal"),))


def _validate(data: bytes, options: Mapping[str, Any]) -> ValidationResult:
    try:
        root = parse(data)
    except XMLRejected as exc:
        return ValidationResult(NAME, (exc.finding,))
    details: dict[str, Any] = {"root": root.tag, "encoding": root.getroottree().docinfo.encoding}
    findings: list[Finding] = []
    dirs = _dirs(options.get("schema_dirs"))
    for option, kind, check in (
        ("xml_schema", "XSD", _xsd_findings),
        ("schematron", "Schematron", _schematron_findings),
    ):
        name = options.get(option)
        if not name:
            continue
        key = (os.getcwd(), str(name), tuple(dirs))
        try:
            path = _resolved.get(key) or _resolved.setdefault(key, find_schema(name, dirs))
            findings += check(root, path)
            details[option] = str(path)
        except SchemaUnavailable as exc:
            _resolved.pop(key, None)  # look again next time: the file may have moved
            findings.append(Finding(f"{kind} unavailable, payload not checked: {exc}", code="xml.schema-unavailable"))
    return ValidationResult(NAME, tuple(findings), details)


PAYLOAD_TYPE = PayloadType(
    name=NAME,
    media_type="application/xml",
    sniff=sniff,
    validate=validate,
    description="well-formed XML (hardened parser, no DTDs), optional XSD and ISO Schematron",
    example=b'<?xml version="1.0" encoding="UTF-8"?>\n<referral xmlns="urn:example:meshbridge:demo">'
    b"<service>Demo clinic</service><urgency>routine</urgency></referral>\n",
)


@hookimpl
def meshbridge_payload_types() -> list[PayloadType]:
    return [PAYLOAD_TYPE]
