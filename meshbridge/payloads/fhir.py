"""The ``fhir`` payload type: FHIR JSON or XML, checked with the fhir.resources models.

``options["fhir_version"]`` picks the models: ``STU3`` (default; ITK3 messaging is STU3) uses
``fhir.resources.STU3``, ``R4`` uses ``fhir.resources.R4B`` (R4 payloads fail under the R5 models,
and plain R4 models no longer ship), ``R5`` uses the top-level ``fhir.resources``. The models check
structure, datatypes, cardinality and required elements of the base specification; they check no
profiles, value sets or invariants.

What is checked, and how it is reported:

* encoding: FHIR is UTF-8. A UTF-8 BOM before JSON is an error (``fhir.bom``; RFC 8259 section 8.1
  says JSON senders must not add one, and parsers differ in whether they accept it), before XML only
  a warning (XML 1.0 allows it). UTF-16/32 and invalid UTF-8 are errors (``fhir.encoding``);
* JSON syntax with line and column (``fhir.json``); XML through meshbridge's hardened parser
  (its ``xml.*`` findings, DOCTYPE refused) and the FHIR namespace (``fhir.namespace``);
* ``resourceType``: missing, not a string, unknown to the version, abstract, or missing on a Bundle
  entry or contained resource (``fhir.resource-type``), anywhere in the payload;
* everything the models refuse (``fhir.structure``), one finding per error, ``where`` being the FHIR
  element path such as ``Bundle.entry[0].resource.status``. Findings do not repeat payload values:
  they end up in logs and events and the values may be patient data.

The bytes are never changed. For XML a private parse with comments and processing instructions
removed is fed to the models, because fhir.resources 8.3.0 refuses a comment placed just before a
primitive ``value[x]`` inside an extension and fails outright on a PI.

fhir.resources is imported on first use, once per version, so importing this module stays cheap.
"""

from __future__ import annotations

import functools
import importlib
import json
import re
from collections.abc import Iterator, Mapping
from decimal import Decimal
from types import ModuleType, TracebackType
from typing import Any

from ..hookspecs import hookimpl
from . import xml
from .base import WARNING, Finding, PayloadType, ValidationResult

__all__ = ["FHIR_NS", "PAYLOAD_TYPE", "VERSIONS", "sniff", "validate"]

NAME = "fhir"
FHIR_NS = "http://hl7.org/fhir"
DEFAULT_VERSION = "STU3"
#: ``fhir_version`` option -> (name used in messages, models package)
VERSIONS: dict[str, tuple[str, str]] = {
    "STU3": ("STU3", "fhir.resources.STU3"),
    "R4": ("R4", "fhir.resources.R4B"),
    "R4B": ("R4B", "fhir.resources.R4B"),
    "R5": ("R5", "fhir.resources"),
}
JSON_MEDIA_TYPE, XML_MEDIA_TYPE = "application/fhir+json", "application/fhir+xml"
MAX_FINDINGS = 100
_ABSTRACT = frozenset({"Resource", "DomainResource", "CanonicalResource", "MetadataResource"})
_RESOURCE_NAME = re.compile(r"[A-Z][A-Za-z]{0,63}")
_JSON_HEAD = re.compile(rb'^\s*\{.*?"resourceType"\s*:', re.S)
_JSON_POSITION = re.compile(r"at line (\d+) column (\d+)")
_UTF8_BOM = b"\xef\xbb\xbf"
_WIDE_BOMS = {
    b"\x00\x00\xfe\xff": "UTF-32",
    b"\xff\xfe\x00\x00": "UTF-32",
    b"\xfe\xff": "UTF-16",
    b"\xff\xfe": "UTF-16",
}
_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}


@functools.cache
def _models(package: str) -> ModuleType:
    return importlib.import_module(package)


# --------------------------------------------------------------------------- sniffing


def sniff(head: bytes) -> float:
    """0.95 for JSON with a ``"resourceType"`` key in the head, or XML whose root is in the FHIR namespace."""
    try:
        text = head
        for bom in _WIDE_BOMS:
            if head.startswith(bom):  # not acceptable FHIR, but recognisably FHIR: validate() says why
                text = xml.text_head(head).encode("utf-8", "ignore")
                break
        else:
            if head.startswith(_UTF8_BOM):
                text = head[3:]
        first = text.lstrip(b" \t\r\n")[:1]
        if first == b"{":
            return 0.95 if _JSON_HEAD.match(text) else 0.0
        if first == b"<":
            root = xml.root_name(head)
            return 0.95 if root and root[0] == FHIR_NS else 0.0
        return 0.0
    except Exception:  # sniffing must never raise
        return 0.0


# --------------------------------------------------------------------------- validation


def validate(data: bytes, options: Mapping[str, Any]) -> ValidationResult:
    """Validate FHIR JSON or XML against the models of ``options["fhir_version"]`` (default STU3)."""
    try:
        return _validate(bytes(data), options)
    except Exception as exc:  # a validator reports, it does not raise
        message = f"the FHIR validator failed unexpectedly ({type(exc).__name__}: {exc})"
        return ValidationResult(NAME, (Finding(message, code="fhir.internal"),))


def _validate(data: bytes, options: Mapping[str, Any]) -> ValidationResult:
    wanted = str(options.get("fhir_version") or DEFAULT_VERSION).strip().upper()
    if wanted not in VERSIONS:
        choices = ", ".join(VERSIONS)
        message = f"unknown fhir_version {wanted!r} in the route's settings (use one of {choices})"
        return ValidationResult(NAME, (Finding(message, code="fhir.version"),))
    version, package = VERSIONS[wanted]
    details: dict[str, Any] = {"fhir_version": version}

    for bom, name in _WIDE_BOMS.items():
        if data.startswith(bom):
            message = f"FHIR must be UTF-8; this payload is {name} (it starts with a {name} byte order mark)"
            return ValidationResult(NAME, (Finding(message, "byte 0", code="fhir.encoding"),), details)
    findings: list[Finding] = []
    body = data
    has_bom = data.startswith(_UTF8_BOM)
    if has_bom:
        body = data[3:]
    stripped = body.lstrip(b" \t\r\n")
    first = stripped[:1]
    if len(stripped) >= 2 and (not stripped[0] or not stripped[1]):
        message = "FHIR must be UTF-8; this payload has NUL bytes between characters, as UTF-16 does"
        return ValidationResult(NAME, (Finding(message, code="fhir.encoding"),), details)

    if first == b"{":
        details.update(format="json", media_type=JSON_MEDIA_TYPE)
        if has_bom:
            message = "JSON must not start with a byte order mark (RFC 8259 section 8.1); remove the 3 bytes EF BB BF"
            findings.append(Finding(message, "byte 0", code="fhir.bom"))
        more, model = _validate_json(body, _models(package), version, details)
    elif first == b"<":
        details.update(format="xml", media_type=XML_MEDIA_TYPE)
        if has_bom:
            message = "FHIR XML starts with a UTF-8 byte order mark (allowed by XML, but some receivers refuse it)"
            findings.append(Finding(message, "byte 0", WARNING, "fhir.bom"))
        more, model = _validate_xml(data, _models(package), version, details)
    else:
        shown = "nothing" if not first else f"{first!r}"
        message = f"not FHIR JSON or XML: the first character after whitespace is {shown}, not '{{' or '<'"
        return ValidationResult(NAME, (Finding(message, code="fhir.format"),), details)

    findings += more
    if model is not None:
        findings += _abstract_resources(model, details["resource_type"], version)
        details.update(_facts(model))
    return ValidationResult(NAME, tuple(_capped(findings)), details)


def _capped(findings: list[Finding]) -> list[Finding]:
    if len(findings) <= MAX_FINDINGS:
        return findings
    more = len(findings) - MAX_FINDINGS
    return [*findings[:MAX_FINDINGS], Finding(f"... and {more} more problems", code="fhir.structure")]


def _model_class(mod: ModuleType, name: Any, version: str, where: str | None) -> tuple[Any, Finding | None]:
    if not isinstance(name, str):
        message = f"resourceType must be a string, not {_json_type(name)}"
        return None, Finding(message, where, code="fhir.resource-type")
    cls = None
    if _RESOURCE_NAME.fullmatch(name):
        try:
            cls = mod.get_fhir_model_class(name)
        except (ValueError, KeyError, AttributeError, ImportError):
            cls = None
    if cls is None or not cls.has_resource_base():
        message = f"unknown resourceType {name[:64]!r}: not a FHIR {version} resource"
        return None, Finding(message, where, code="fhir.resource-type")
    if name in _ABSTRACT:
        message = f"resourceType {name!r} is abstract; a payload must name a concrete FHIR {version} resource"
        return None, Finding(message, where, code="fhir.resource-type")
    return cls, None


# --------------------------------------------------------------------------- JSON


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number (RFC 8259)")


def _line_col(data: bytes, pos: int) -> str:
    line, line_start = data.count(b"\n", 0, pos) + 1, data.rfind(b"\n", 0, pos) + 1
    return f"line {line}, column {pos - line_start + 1}"


def _validate_json(body: bytes, mod: ModuleType, version: str, details: dict[str, Any]) -> tuple[list[Finding], Any]:
    from pydantic import ValidationError

    try:
        # Decimal keeps FHIR decimals exact; json.loads + model_validate is as fast as model_validate_json
        # and lets resourceType sit anywhere among the top-level keys.
        obj = json.loads(body, parse_float=Decimal, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        return [Finding(f"not valid JSON: {exc.msg}", f"line {exc.lineno}, column {exc.colno}", code="fhir.json")], None
    except UnicodeDecodeError as exc:
        message = f"not valid UTF-8 (byte 0x{body[exc.start]:02X} at offset {exc.start}); FHIR must be UTF-8"
        return [Finding(message, _line_col(body, exc.start), code="fhir.encoding")], None
    except RecursionError:
        return [Finding("not acceptable JSON: nested too deeply", code="fhir.json")], None
    except ValueError as exc:  # NaN/Infinity, integers over Python's digit limit
        return [Finding(f"not acceptable JSON: {exc}", code="fhir.json")], None

    if not isinstance(obj, dict):
        return [Finding(f"FHIR JSON must be an object, not {_json_type(obj)}", code="fhir.json")], None
    if "resourceType" not in obj:
        return [Finding("resourceType is missing from the top-level object", code="fhir.resource-type")], None
    cls, problem = _model_class(mod, obj["resourceType"], version, "resourceType")
    if problem:
        return [problem], None
    resource_type = details["resource_type"] = obj["resourceType"]
    try:
        return [], cls.model_validate(obj)
    except ValidationError as exc:
        return _pydantic_findings(exc, resource_type, version), None
    except Exception as exc:  # fhir.resources raises KeyError/TypeError for bad nested resourceType values
        found = list(_bad_resource_types(obj, resource_type, mod, version))
        return found or [_unexpected(exc, None)], None


def _bad_resource_types(obj: Any, path: str, mod: ModuleType, version: str, depth: int = 0) -> Iterator[Finding]:
    """Every nested ``resourceType`` that is not a string or not a resource of ``version``."""
    if depth > 200:
        return
    if isinstance(obj, dict):
        if depth and "resourceType" in obj:
            _, problem = _model_class(mod, obj["resourceType"], version, path)
            if problem:
                yield problem
        for key, value in obj.items():
            if isinstance(value, dict | list):
                yield from _bad_resource_types(value, f"{path}.{key}", mod, version, depth + 1)
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            if isinstance(value, dict | list):
                yield from _bad_resource_types(value, f"{path}[{i}]", mod, version, depth + 1)


def _json_type(value: Any) -> str:
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return "a number"
    return _JSON_TYPES.get(type(value), type(value).__name__)


# --------------------------------------------------------------------------- XML


def _validate_xml(data: bytes, mod: ModuleType, version: str, details: dict[str, Any]) -> tuple[list[Finding], Any]:
    from lxml import etree
    from pydantic import ValidationError

    try:
        # comments and PIs removed from this private tree only (see the module docstring)
        root = xml.parse(data, strip_comments=True)
    except xml.XMLRejected as exc:
        return [exc.finding], None
    qname = etree.QName(root)
    details["root"] = root.tag
    if qname.namespace != FHIR_NS:
        namespace = f"namespace {qname.namespace!r}" if qname.namespace else "no namespace"
        message = f"the root element <{qname.localname}> is in {namespace}, not the FHIR namespace {FHIR_NS}"
        return [Finding(message, f"line {root.sourceline}", code="fhir.namespace")], None
    cls, problem = _model_class(mod, qname.localname, version, qname.localname)
    if problem:
        return [problem], None
    resource_type = details["resource_type"] = qname.localname
    stray = _stray_xml(root)
    try:
        from fhir_core.xml_utils import Node  # what model_validate_xml runs, minus a second parse
    except ImportError:  # pragma: no cover - fhir-core reorganised; fall back to the public API
        parse = functools.partial(cls.model_validate_xml, data, xmlparser=xml.safe_parser(strip_comments=True))
    else:

        def parse() -> Any:
            return Node.from_element(root, fhir_class=cls).to_fhir(cls)

    try:
        return stray, parse()
    except ValidationError as exc:
        return stray + _pydantic_findings(exc, _xml_path(exc.__traceback__, resource_type), version), None
    except Exception as exc:  # unknown elements and resource types come out as KeyError/ValueError
        return [*stray, _xml_problem(exc, resource_type, version)], None


def _stray_xml(root: Any) -> list[Finding]:
    """Text and attributes FHIR XML does not have, which fhir.resources would silently drop.

    ``<gender>male</gender>`` or ``<gender valu="male"/>`` would otherwise pass as a gender-less
    Patient. Only FHIR-namespace elements are looked at, so xhtml narrative is left alone.
    """
    found = []
    for element in _stray_finder()(root):
        name = element.tag[len(FHIR_NS) + 2 :]
        where = f"line {element.sourceline} (<{name}>)"
        if any(not text.isspace() for text in element.xpath("text()")):
            message = "text inside a FHIR XML element is not allowed; a primitive's value goes in its value attribute"
            found.append(Finding(message, where, code="fhir.structure"))
        for attribute in element.attrib:
            if attribute not in _FHIR_ATTRIBUTES and not attribute.startswith("{"):
                message = f"unknown attribute {attribute!r}: FHIR XML elements carry only value, id and url"
                found.append(Finding(message, where, code="fhir.structure"))
    return found


_FHIR_ATTRIBUTES = frozenset({"value", "id", "url"})


@functools.cache
def _stray_finder() -> Any:
    from lxml import etree

    others = " and ".join(f"local-name()!='{name}'" for name in sorted(_FHIR_ATTRIBUTES))
    query = f"descendant-or-self::f:*[text()[normalize-space()] or @*[namespace-uri()='' and {others}]]"
    return etree.XPath(query, namespaces={"f": FHIR_NS})


def _frames(tb: TracebackType | None) -> list[Any]:
    frames = []
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    return frames


def _xml_path(tb: TracebackType | None, resource_type: str) -> str:
    """The FHIR path of the element fhir.resources was building when it failed.

    fhir-core builds models from XML bottom-up, one ``Node.to_fhir`` call per element, so its errors
    carry only the innermost model's field names. The traceback still holds each level's frame; this
    reads the child being converted in each to recover ``Bundle.entry[3].resource``. Best effort:
    if fhir-core changes shape, the path just gets shorter.
    """
    path = resource_type
    try:
        frames = _frames(tb)
        for i, frame in enumerate(frames):
            if frame.f_code.co_name != "to_fhir" or "params" not in frame.f_locals:
                continue
            loc = frame.f_locals
            after = frames[i + 1].f_code.co_name if i + 1 < len(frames) else None
            if after == "get_fhir_value":
                child = loc["child"]
                name = getattr(child, "name", None) or _local_name(child)
                index = f"[{len(loc['params'].get(loc['field_name'], ()))}]" if loc.get("is_list") else ""
                path += f".{name}{index}"
            elif after == "to_fhir" and "child_" in loc:  # extensions on a primitive element
                child = loc["child"]
                item = f"[{len(loc['params'][loc['field_name']]) - 1}]" if loc.get("is_list") else ""
                index = next(j for j, c in enumerate(child.children) if c is loc["child_"])
                path += f".{child.name}{item}.extension[{index}]"
    except Exception:  # a shorter path is better than no finding
        return path
    return path


def _local_name(element: Any) -> str:
    from lxml import etree

    return etree.QName(element).localname


def _xml_problem(exc: Exception, resource_type: str, version: str) -> Finding:
    frames = _frames(exc.__traceback__)
    path = _xml_path(exc.__traceback__, resource_type)
    innermost = frames[-1].f_code.co_name if frames else ""
    building = [f.f_locals for f in frames if f.f_code.co_name == "to_fhir"]
    if isinstance(exc, KeyError) and innermost == "to_fhir" and building:
        element = building[-1].get("field_name")
        if isinstance(element, str):
            message = f"unknown element <{element}>: not defined here in FHIR {version}"
            return Finding(message, f"{path}.{element}", code="fhir.structure")
    if isinstance(exc, ValueError) and innermost == "get_fhir_model_class" and building:
        name = getattr(building[-1].get("child"), "name", "?")
        return Finding(f"unknown resourceType {name!r}: not a FHIR {version} resource", path, code="fhir.resource-type")
    reading = [f.f_locals.get("child") for f in frames if f.f_code.co_name == "from_element"]
    line = getattr(reading[-1], "sourceline", None) if reading else None
    if isinstance(exc, KeyError) and exc.args == (None,) and reading:
        message = 'fhir.resources cannot read FHIR elements with a namespace prefix; use xmlns="http://hl7.org/fhir"'
        return Finding(message, f"line {line}" if line else None, code="fhir.structure")
    return _unexpected(exc, f"line {line}" if line else path)


def _unexpected(exc: Exception, where: str | None) -> Finding:
    if isinstance(exc, RecursionError):
        return Finding(
            "the payload is nested too deeply to check (Python's recursion limit)", where, code="fhir.structure"
        )
    message = f"fhir.resources could not read this payload ({type(exc).__name__}: {exc})"
    return Finding(" ".join(message.split())[:500], where, code="fhir.structure")


# --------------------------------------------------------------------------- pydantic errors


def _fhir_name(segment: str) -> str:
    if segment == "resource_type":
        return "resourceType"
    if segment.endswith("__ext"):  # fhir.resources' name for a primitive's _element
        return "_" + _fhir_name(segment[:-5])
    if segment.endswith("_fhir"):  # class_fhir, for_fhir ... (Python keywords)
        return segment[:-5]
    return segment


def _loc_path(prefix: str, loc: tuple[Any, ...]) -> str:
    path = prefix
    for segment in loc:
        if isinstance(segment, int):
            path += f"[{segment}]"
        elif segment == "root" or not re.fullmatch(r"_?[A-Za-z][A-Za-z0-9_]*", str(segment)):
            continue  # fhir-core's placeholder for "this value", pydantic's validator labels
        else:
            path += f".{_fhir_name(segment)}"
    return path


def _pydantic_findings(exc: Any, prefix: str, version: str) -> list[Finding]:
    findings = []
    for error in exc.errors(include_url=False, include_context=False):
        kind, loc = error.get("type", ""), tuple(error.get("loc", ()))
        if kind == "json_invalid" and not loc:
            position = _JSON_POSITION.search(error.get("msg", ""))
            where = f"line {position[1]}, column {position[2]}" if position else None
            findings.append(Finding(f"not valid JSON: {error.get('msg', '')}", where, code="fhir.json"))
            continue
        message = " ".join(str(error.get("msg", kind)).split())
        if kind == "extra_forbidden":
            message = f"unknown element: not defined here in FHIR {version}"
        elif kind in {"missing", "model_field_validation.missing"}:
            message = "required element is missing"
        elif "input" in error and kind not in {"fhir-validation-wrong-resource-type"}:
            message += f" (got {_json_type(error['input'])})"
        findings.append(Finding(message, _loc_path(prefix, loc), code="fhir.structure"))
    return findings


# --------------------------------------------------------------------------- after validation


def _abstract_resources(model: Any, path: str, version: str, depth: int = 0) -> list[Finding]:
    """Bundle entries and contained resources without a concrete resourceType (fhir.resources accepts them)."""
    found: list[Finding] = []
    if depth > 50:
        return found
    children: list[tuple[str, Any]] = []
    if model.get_resource_type() == "Bundle":
        for i, entry in enumerate(model.entry or ()):
            if entry.resource is not None:
                children.append((f"{path}.entry[{i}].resource", entry.resource))
    for i, contained in enumerate(getattr(model, "contained", None) or ()):
        children.append((f"{path}.contained[{i}]", contained))
    for where, child in children:
        if child.get_resource_type() in _ABSTRACT:
            message = f"resource without a concrete resourceType (missing, or abstract '{child.get_resource_type()}')"
            found.append(Finding(message, where, code="fhir.resource-type"))
        else:
            found += _abstract_resources(child, where, version, depth + 1)
    return found


def _facts(model: Any) -> dict[str, Any]:
    facts: dict[str, Any] = {}
    if model.get_resource_type() != "Bundle":
        return facts
    facts["bundle_type"] = model.type
    entries = model.entry or ()
    header = entries[0].resource if entries and entries[0].resource is not None else None
    if model.type == "message" and header is not None and header.get_resource_type() == "MessageHeader":
        facts["message_header_id"] = header.id
        event = getattr(header, "event", None) or getattr(header, "eventCoding", None)  # STU3 | R4B, R5
        code = getattr(event, "code", None)
        uri = getattr(header, "eventUri", None) or getattr(header, "eventCanonical", None)
        if code or uri:
            facts["event"] = code or uri
    return facts


PAYLOAD_TYPE = PayloadType(
    name=NAME,
    media_type=XML_MEDIA_TYPE,
    sniff=sniff,
    validate=validate,
    description="FHIR JSON or XML (STU3, R4 via R4B, or R5), checked with fhir.resources",
    example=b"""<Patient xmlns="http://hl7.org/fhir">
  <id value="demo-patient"/>
  <identifier>
    <system value="https://fhir.nhs.uk/Id/nhs-number"/>
    <value value="9000000009"/>
  </identifier>
  <name><family value="Test"/><given value="Demo"/></name>
  <gender value="unknown"/>
  <birthDate value="1970-01-01"/>
</Patient>
""",
)


@hookimpl
def meshbridge_payload_types() -> list[PayloadType]:
    return [PAYLOAD_TYPE]
