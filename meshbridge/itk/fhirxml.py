"""Hardened FHIR XML reading, and a small generic FHIR JSON -> FHIR XML converter.

Parsing policy: no DTD loading, no entity expansion, no network, libxml2's default size limits, and
any ``<!DOCTYPE`` refused (no ITK3 message needs one). The converter exists so JSON messages can be
read and checked with the same XPath and Schematron as XML; its output is never sent anywhere.

Conversion rules (FHIR's own JSON <-> XML mapping): ``resourceType`` becomes the element name;
primitives become ``value`` attributes (numbers keep their JSON text, ``1.50`` stays ``1.50``);
arrays repeat the element; ``_field`` carries the primitive's ``id`` and ``extension``; element
``id`` and ``extension.url`` are attributes; a resource inside an element (``entry.resource``,
``contained``) is wrapped; ``text.div`` is parsed as XHTML (dropped if it is not well-formed).
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Mapping
from decimal import Decimal
from itertools import zip_longest
from typing import Any

from lxml import etree

from ..errors import FhirJsonError, XmlRefused
from ..payloads import xml

FHIR_NS = "http://hl7.org/fhir"
XHTML_NS = "http://www.w3.org/1999/xhtml"
NS = {"f": FHIR_NS}

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]*\Z")
_MAX_DEPTH = 200


# --------------------------------------------------------------------------- reading


def parse_xml(data: bytes) -> etree._Element:
    """The root element of ``data`` read with meshbridge's one hardened parser; :class:`XmlRefused` says why not."""
    try:
        return xml.parse(data)
    except xml.XMLRejected as exc:
        raise XmlRefused(str(exc.finding.message)) from None


def _no_constants(name: str) -> Any:
    raise FhirJsonError(f"{name} is not allowed in FHIR JSON")


def load_json(data: bytes) -> Any:
    """Decoded JSON with every number kept as its original text."""
    try:
        return json.loads(bytes(data), parse_float=str, parse_int=str, parse_constant=_no_constants)
    except RecursionError:
        raise FhirJsonError("JSON nested too deeply") from None
    except UnicodeDecodeError as e:
        raise FhirJsonError(f"JSON is not valid UTF-8/16/32 text: {e.reason}") from None
    except json.JSONDecodeError as e:
        raise FhirJsonError(f"not well-formed JSON: {e}") from None


def sniff_format(data: bytes) -> str | None:
    """``"xml"``, ``"json"`` or ``None``, from the first non-blank character."""
    head = bytes(data[:65536])
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        text = head.decode("utf-16", errors="ignore")
    else:
        text = head.decode("utf-8", errors="ignore").lstrip("\ufeff")
    first = text.lstrip(" \t\r\n")[:1]
    return {"<": "xml", "{": "json", "[": "json"}.get(first)


# --------------------------------------------------------------------------- XPath helpers


def xpath(node: etree._Element, path: str, **variables: str) -> list[Any]:
    """``node.xpath(path)`` with the ``f:`` prefix bound to the FHIR namespace: the nodes or
    strings a location path selects (every path here selects a node set)."""
    found = etree.XPathElementEvaluator(node, namespaces=NS)(path, **variables)  # what node.xpath does
    if not isinstance(found, list):
        raise TypeError(f"XPath {path!r} selects a {type(found).__name__}, not a node set")
    return found


def elements(node: etree._Element, path: str, **variables: str) -> list[etree._Element]:
    """The elements ``path`` selects (anything else it selects is left out)."""
    return [found for found in xpath(node, path, **variables) if isinstance(found, etree._Element)]


def value(node: etree._Element | None, path: str, **variables: str) -> str | None:
    """The first string ``path`` selects (an ``@value`` ...), as written, or ``None``."""
    if node is None:
        return None
    found = xpath(node, path, **variables)
    return str(found[0]) if found else None


def local(node: etree._Element) -> str:
    """The element's local name (``""`` for comments and processing instructions)."""
    return etree.QName(node).localname if isinstance(node.tag, str) else ""


# --------------------------------------------------------------------------- JSON -> XML


def json_to_xml(resource: Any) -> etree._Element:
    """A FHIR XML element for one FHIR JSON resource (a ``dict`` with ``resourceType``).

    Raises :class:`FhirJsonError` for anything that is not FHIR-shaped JSON.
    """
    try:
        return _resource(None, resource, 0)
    except FhirJsonError:
        raise
    except ValueError as e:  # lxml: a string XML cannot carry (control characters, lone surrogates)
        raise FhirJsonError(f"JSON holds text XML cannot carry: {e}") from None


def _resource(parent: etree._Element | None, obj: Any, depth: int) -> etree._Element:
    if not isinstance(obj, Mapping):
        raise FhirJsonError(f"expected a FHIR resource (JSON object), found {type(obj).__name__}")
    rtype = obj.get("resourceType")
    if not isinstance(rtype, str) or not _NAME.match(rtype):
        raise FhirJsonError("JSON object has no valid resourceType: not a FHIR resource")
    tag = f"{{{FHIR_NS}}}{rtype}"
    el = etree.Element(tag, nsmap={None: FHIR_NS}) if parent is None else etree.SubElement(parent, tag)
    _fill(el, obj, resource=True, depth=depth)
    return el


def _fill(el: etree._Element, obj: Mapping[str, Any], *, resource: bool, depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise FhirJsonError("JSON nested too deeply")
    name = local(el)
    for key, val in obj.items():
        if not isinstance(key, str) or (key == "resourceType" and resource):
            continue
        if key.startswith("_"):
            if key[1:] not in obj:  # a primitive with only an id/extension
                _children(el, key[1:], None, val, depth)
            continue
        if key == "id" and not resource and isinstance(val, str):
            el.set("id", val)
        elif key == "url" and name in ("extension", "modifierExtension") and isinstance(val, str):
            el.set("url", val)
        elif key == "div" and name == "text" and isinstance(val, str):
            _div(el, val)
        else:
            _children(el, key, val, obj.get("_" + key), depth)


def _children(parent: etree._Element, key: str, val: Any, ext: Any, depth: int) -> None:
    if not _NAME.match(key):
        raise FhirJsonError(f"{key!r} is not a FHIR element name")
    values = val if isinstance(val, list) else ([] if val is None else [val])
    exts = ext if isinstance(ext, list) else [ext]
    for v, x in zip_longest(values, exts):
        if v is None and not isinstance(x, Mapping):
            continue
        child = etree.SubElement(parent, f"{{{FHIR_NS}}}{key}")
        if isinstance(v, Mapping):
            if "resourceType" in v:
                _resource(child, v, depth + 1)
            else:
                _fill(child, v, resource=False, depth=depth + 1)
        elif isinstance(v, bool):
            child.set("value", "true" if v else "false")
        elif isinstance(v, str | int | float | Decimal):
            child.set("value", str(v))
        elif v is not None:
            raise FhirJsonError(f"{key}: an array inside an array is not FHIR JSON")
        if isinstance(x, Mapping):
            _fill(child, x, resource=False, depth=depth + 1)


def _div(parent: etree._Element, text: str) -> None:
    try:
        div = parse_xml(text.encode("utf-8"))
    except (XmlRefused, UnicodeEncodeError):
        return  # a broken narrative does not make the message unreadable; it is only checked here
    if div.tag == f"{{{XHTML_NS}}}div":
        parent.append(div)
