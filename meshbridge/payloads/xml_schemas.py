"""XSD and ISO Schematron checks of a parsed XML document.

Schema paths are looked up as given, then in each folder of ``schema_dirs``, then in the
package's ``schemas/`` folder (:func:`find_schema`). Compiled schemas are cached by path and
modification time. A schema that cannot be found or compiled is an error finding
(``xml.schema-unavailable``): the payload is refused (fail closed) and the message names the file
and where it was looked for.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lxml import etree

from ..errors import SchemaUnavailable
from .base import ERROR, WARNING, Finding
from .xml_parsing import safe_parser

__all__ = ["SCHEMA_DIR", "SchemaUnavailable", "find_schema", "schema_findings"]

SCHEMA_DIR = Path(__file__).parents[1] / "schemas"  # the package data of meshbridge
MAX_FINDINGS = 100  # per check; one more finding says how many were left out
_SVRL = "http://purl.oclc.org/dsdl/svrl"


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
    findings: list[Finding] = []
    if report is None:
        return findings
    for node in report.iter(f"{{{_SVRL}}}failed-assert", f"{{{_SVRL}}}successful-report"):
        text = " ".join("".join(node.itertext()).split()) or f"assertion failed: {node.get('test')}"
        role = (node.get("role") or "").lower()
        failed = etree.QName(node).localname == "failed-assert"
        severity = WARNING if role in {"warning", "warn", "info", "information"} or not failed else ERROR
        findings.append(Finding(text, _svrl_where(root, node.get("location")), severity, "xml.schematron"))
    return _capped(findings, "xml.schematron")


def schema_findings(root: etree._Element, options: Mapping[str, Any], details: dict[str, Any]) -> list[Finding]:
    """The findings of the route's XSD (``xml_schema``) and Schematron (``schematron``), if it names
    them; the resolved schema paths go into ``details``."""
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
    return findings
