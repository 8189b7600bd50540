"""FHIR XML: parsed with meshbridge's hardened parser (comments and PIs stripped from a private
tree), its namespace and stray text or attributes checked, then built into the models; a model
error is traced back to the FHIR element path it was building."""

from __future__ import annotations

import functools
from types import ModuleType, TracebackType
from typing import Any

from . import xml
from .base import Finding
from .fhir_models import FHIR_NS, model_class, pydantic_findings, unexpected


def validate_xml(data: bytes, mod: ModuleType, version: str, details: dict[str, Any]) -> tuple[list[Finding], Any, Any]:
    """The models' findings, the model and the root element (comments and PIs stripped) when they
    accepted it (else None, None)."""
    from lxml import etree
    from pydantic import ValidationError

    try:
        # comments and PIs removed from this private tree only (see the module docstring)
        root = xml.parse(data, strip_comments=True)
    except xml.XMLRejected as exc:
        return [exc.finding], None, None
    qname = etree.QName(root)
    details["root"] = root.tag
    if qname.namespace != FHIR_NS:
        namespace = f"namespace {qname.namespace!r}" if qname.namespace else "no namespace"
        message = f"the root element <{qname.localname}> is in {namespace}, not the FHIR namespace {FHIR_NS}"
        return [Finding(message, f"line {root.sourceline}", code="fhir.namespace")], None, None
    cls, problem = model_class(mod, qname.localname, version, qname.localname)
    if problem:
        return [problem], None, None
    resource_type = details["resource_type"] = qname.localname
    stray = _stray_xml(root)
    try:
        from fhir_core.xml_utils import Node  # what model_validate_xml runs, minus a second parse
    except ImportError:  # pragma: no cover - fhir-core reorganised; fall back to the public API
        parser = xml.safe_parser(strip_comments=True)

        def parse() -> Any:
            return cls.model_validate_xml(data, xmlparser=parser)

    else:

        def parse() -> Any:
            return Node.from_element(root, fhir_class=cls).to_fhir(cls)

    try:
        return stray, parse(), root
    except ValidationError as exc:
        return stray + pydantic_findings(exc, _xml_path(exc.__traceback__, resource_type), version), None, None
    except Exception as exc:  # unknown elements and resource types come out as KeyError/ValueError
        return [*stray, _xml_problem(exc, resource_type, version)], None, None


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
                position = next(j for j, c in enumerate(child.children) if c is loc["child_"])
                path += f".{child.name}{item}.extension[{position}]"
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
    return unexpected(exc, f"line {line}" if line else path)
