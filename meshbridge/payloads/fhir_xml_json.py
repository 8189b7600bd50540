"""FHIR XML to the FHIR JSON shape, so the invariants and the reference check read one form.

The rules are the specification's JSON representation: an element whose maximum cardinality is
above 1 is a list; a primitive's value becomes a JSON string, number or boolean as the primitive's
definition says, and its ``id`` and extensions go to ``_name`` (``null``-padded in lists); the
xhtml ``div`` becomes its XML text; a resource inside ``entry.resource``, ``contained`` and the like
becomes an object with ``resourceType``. The definitions tables say which is which. A value that
does not convert (``value="yes"`` for a boolean) is kept as its text: the structure check reports it,
as it does a value written as text or in a misspelt attribute (read here as the value).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from .fhir_definitions import Child, Definitions, definitions
from .fhir_models import FHIR_NS

_PREFIX = f"{{{FHIR_NS}}}"
_ATTRIBUTES = ("id", "url")


def to_json(root: Any, version: str) -> dict[str, Any]:
    """The resource at lxml element ``root`` (FHIR namespace, comments stripped) in JSON shape."""
    return _resource(root, definitions(version))


def _local(element: Any) -> str:
    tag: str = element.tag
    return tag[len(_PREFIX) :] if tag.startswith(_PREFIX) else tag.rpartition("}")[2]


def _resource(element: Any, defs: Definitions) -> dict[str, Any]:
    kind = _local(element)
    out: dict[str, Any] = {"resourceType": kind}
    _fill(element, kind, out, defs)
    return out


def _fill(element: Any, path: str | None, out: dict[str, Any], defs: Definitions) -> None:
    """Put the attributes and child elements of ``element`` into ``out``."""
    for name in _ATTRIBUTES:
        value = element.get(name)
        if value is not None:
            out[name] = value
    node = defs.node(path) if path else None
    groups: dict[str, list[Any]] = {}
    for child in element:
        if isinstance(child.tag, str):
            groups.setdefault(_local(child), []).append(child)
    for name, elements in groups.items():
        child_def = node.children.get(name) if node else None
        many = len(elements) > 1 or (child_def is not None and child_def.max != 1)
        if child_def is not None and child_def.type == "xhtml":
            out[name] = _xhtml(elements[0])
            continue
        if child_def is not None and child_def.primitive:
            _primitive(name, elements, child_def, many, out, defs)
            continue
        values = [_complex(e, child_def, defs) for e in elements]
        out[name] = values if many else values[0]


def _complex(element: Any, child: Child | None, defs: Definitions) -> Any:
    if child is not None and child.node is None:  # a resource container
        inner = [e for e in element if isinstance(e.tag, str)]
        return _resource(inner[0], defs) if inner else {}
    out: dict[str, Any] = {}
    _fill(element, child.node if child else None, out, defs)
    return out


def _xhtml(element: Any) -> str:
    from lxml import etree

    return str(etree.tostring(element, encoding="unicode", with_tail=False))


def _primitive(
    name: str, elements: list[Any], child: Child, many: bool, out: dict[str, Any], defs: Definitions
) -> None:
    values: list[Any] = []
    extras: list[dict[str, Any] | None] = []
    for element in elements:
        raw = _value(element)
        values.append(None if raw is None else _convert(raw, child.type, defs))
        extra: dict[str, Any] = {}
        if element.get("id") is not None:
            extra["id"] = element.get("id")
        extensions = [e for e in element if isinstance(e.tag, str) and _local(e) == "extension"]
        if extensions:
            extra["extension"] = [_complex(e, _EXTENSION, defs) for e in extensions]
        extras.append(extra if extra or raw is None else None)
    if many:
        if any(v is not None for v in values):
            out[name] = values
        if any(e is not None for e in extras):
            out[f"_{name}"] = extras
        return
    if values[0] is not None:
        out[name] = values[0]
    if extras[0] is not None:
        out[f"_{name}"] = extras[0]


_EXTENSION = Child("extension", "Element.extension", 0, 0, None, "Extension", "Extension", False, False, None)


def _value(element: Any) -> str | None:
    """The ``value`` attribute; else a value put where FHIR XML has none (text, a misspelt
    attribute), which the structure check reports: read as the value, ele-1 does not repeat it."""
    raw = element.get("value")
    if raw is not None:
        return str(raw)
    stray = [v for k, v in element.attrib.items() if k not in _ATTRIBUTES and not k.startswith("{")]
    text = (element.text or "").strip()
    return text or (str(stray[0]) if stray else None)


def _convert(raw: str, kind: str, defs: Definitions) -> Any:
    """The JSON value of a primitive's XML ``value`` attribute (its text if it does not convert)."""
    shape = (defs.primitives.get(kind) or {}).get("json")
    if shape == "boolean":
        return {"true": True, "false": False}.get(raw, raw)
    if shape == "number":
        try:
            return Decimal(raw) if kind == "decimal" else int(raw)
        except (InvalidOperation, ValueError):
            return raw
    return raw
