"""A walk over a FHIR resource in JSON shape, typed by the definitions tables.

:func:`walk` lists every complex element (resource, datatype instance, backbone element) in
document order with what the invariants and the reference check need: the definitions path whose
children and constraints apply (``Observation``, ``Quantity``, ``Bundle.entry``), the element it
sits in, its FHIR path for findings and the resources FHIRPath calls ``%resource`` and
``%rootResource``. Primitives are not listed (their ``_name`` companions are read by the checks).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, NamedTuple

from .fhir_definitions import Definitions


class Item(NamedTuple):
    """One complex element of a payload (a named tuple: a payload has thousands, made fast)."""

    value: dict[str, Any]  #: the element's JSON object
    path: str  #: the definitions path of its children and constraints (a type name or a backbone path)
    element: str | None  #: the element definition it fills (``Organization.telecom``); None at the root
    type: str  #: its FHIR type (``Quantity``, ``BackboneElement``, or the resource type)
    where: str  #: its FHIR path in the payload (``Bundle.entry[2].resource.valueQuantity``)
    resource: dict[str, Any]  #: the resource it is in (``%resource``)
    root: dict[str, Any]  #: the resource that holds it, not counting containment (``%rootResource``)
    base: str | None = None  #: the Bundle entry's fullUrl for a resource in ``Bundle.entry``
    extended: bool = True  #: whether it has ``_name`` keys (a primitive's id and extensions)


_Frame = tuple[dict[str, Any], str, "str | None", str, str, dict[str, Any], dict[str, Any], "str | None"]


_shared: ContextVar[dict[int, tuple[Any, list[Item]]] | None] = ContextVar("fhir_walk_shared", default=None)


@contextmanager
def shared() -> Iterator[None]:
    """Inside this, a payload is walked once: the invariants and the reference check share the walk."""
    token = _shared.set({})
    try:
        yield
    finally:
        _shared.reset(token)


def walk(resource: dict[str, Any], defs: Definitions) -> list[Item]:
    """Every complex element of ``resource``, the resource first, in document order."""
    cache = _shared.get()
    if cache is None:
        return _walk(resource, defs)
    key = id(resource)
    if key not in cache or cache[key][0] is not resource:
        cache[key] = (resource, _walk(resource, defs))
    return cache[key][1]


def _walk(resource: dict[str, Any], defs: Definitions) -> list[Item]:
    kind = resource.get("resourceType")
    if not isinstance(kind, str) or defs.node(kind) is None:
        return []
    found: list[Item] = []
    stack: list[_Frame] = [(resource, kind, None, kind, kind, resource, resource, None)]
    while stack:
        value, path, element, type_, where, res, root, base = stack.pop()
        node = defs.node(path)
        if node is None:
            found.append(Item(value, path, element, type_, where, res, root, base))
            continue
        later: list[_Frame] = []
        extended = False
        for key, content in value.items():
            child = node.children.get(key)
            if child is None:
                extended = extended or key[:1] == "_"
                continue
            if child.primitive:
                continue
            many = isinstance(content, list)
            for i, item in enumerate(content if many else (content,)):
                if not isinstance(item, dict):
                    continue
                at = f"{where}.{key}[{i}]" if many else f"{where}.{key}"
                if child.node is not None:
                    later.append((item, child.node, child.element, child.type, at, res, root, None))
                    continue
                inner = item.get("resourceType")
                if isinstance(inner, str) and defs.node(inner) is not None:
                    full_url = value.get("fullUrl") if path == "Bundle.entry" else None
                    holder = root if key == "contained" else item
                    url = full_url if isinstance(full_url, str) else None
                    later.append((item, inner, child.element, inner, at, item, holder, url))
        found.append(Item(value, path, element, type_, where, res, root, base, extended))
        stack.extend(reversed(later))
    return found
