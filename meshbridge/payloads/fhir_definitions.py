"""The FHIR definitions tables shipped in ``fhir_data/`` (written by ``scripts/fhir_definitions.py``).

:func:`definitions` loads one version's tables on first use (gzipped JSON, about 10 ms) and keeps
them. Each table holds the base types, every element of their snapshots keyed by path (children in
order, min/max, types, contentReference as ``ref``, XML attributes as ``attr``, required bindings,
error-level constraints), the required bindings' value sets expanded (``valuesets``; what could not
be expanded is in ``unexpanded`` with the reason) and the primitives' regex and JSON type.

:meth:`Definitions.node` turns an element path into what a walk over a payload needs: its children
by the name they have in JSON and XML (a choice ``value[x]`` is listed once per type, as
``valueQuantity`` ...), each with its position, cardinality, type and binding. Nodes are built once
per path and kept.
"""

from __future__ import annotations

import functools
import gzip
import json
import re
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, NamedTuple

#: the versions with tables (``R4B`` has none: its models are used for ``R4`` payloads, the tables are R4's)
VERSIONS = ("STU3", "R4", "R5")

#: official primitive patterns that backtrack exponentially in Python's ``re`` on a value that does
#: not match (R4 base64Binary: 14 x ``"AAAA  "`` + ``"!"`` took 0.8 s, each repeat doubles it; the
#: models let such a value through), each with an equivalent pattern that matches the same strings
#: without the ambiguity (``\s*`` twice between groups; an optional separator inside a repeat)
SAFE_PATTERNS = {
    r"(\s*([0-9a-zA-Z\+/=]){4}\s*)+": r"\s*(?:[0-9a-zA-Z+/=]{4}\s*)+",
    r"[^\s]+([\s]?[^\s]+)*": r"\S+(?:\s\S+)*",
}


class Child(NamedTuple):
    """One child element of a node, under one name (a choice element has one per type)."""

    name: str  #: the JSON / XML name (``valueQuantity``)
    element: str  #: the element's path in the definitions (``Observation.value[x]``)
    position: int  #: its position among the node's children (XML order)
    min: int
    max: int | None  #: None for ``*``
    type: str  #: the FHIR type (``Quantity``, ``code``, ``Resource``, ``BackboneElement`` ...)
    node: str | None  #: the path whose children it has (None for primitives and resources)
    primitive: bool
    attr: bool  #: an XML attribute (``Element.id``, ``Extension.url``), not an element
    binding: str | None  #: the required binding's value set url


@dataclass
class Node:
    """The children of one element path (a resource, a datatype or a backbone element)."""

    path: str
    children: dict[str, Child]
    required: tuple[Child, ...]  #: children with min > 0 (one per element, under its first name)


@dataclass
class Definitions:
    """One FHIR version's tables (see the module docstring)."""

    version: str
    fhir: str
    types: dict[str, Any]
    elements: dict[str, Any]
    valuesets: dict[str, Any]
    unexpanded: dict[str, str]
    primitives: dict[str, Any]
    _nodes: dict[str, Node | None] = field(default_factory=dict, repr=False)
    _codes: dict[str, tuple[frozenset[str], frozenset[str]] | None] = field(default_factory=dict, repr=False)
    _patterns: dict[str, re.Pattern[str] | None] = field(default_factory=dict, repr=False)

    def is_resource(self, name: str) -> bool:
        """Whether ``name`` is a concrete resource type of this version."""
        info = self.types.get(name)
        return bool(info and info["kind"] == "resource" and not info["abstract"])

    def node(self, path: str) -> Node | None:
        """The node of an element path with children (None if the path has none)."""
        if path not in self._nodes:
            self._nodes[path] = self._build(path)
        return self._nodes[path]

    def codes(self, url: str) -> tuple[frozenset[str], frozenset[str]] | None:
        """A value set's codes and code systems, or None when it was not expanded."""
        if url not in self._codes:
            found = self.valuesets.get(url)
            self._codes[url] = (frozenset(found["codes"]), frozenset(found["systems"])) if found else None
        return self._codes[url]

    def pattern(self, primitive: str) -> re.Pattern[str] | None:
        """The compiled regex of a primitive type (None when it has none; see :data:`SAFE_PATTERNS`)."""
        if primitive not in self._patterns:
            regex = (self.primitives.get(primitive) or {}).get("regex")
            try:
                self._patterns[primitive] = re.compile(SAFE_PATTERNS.get(regex, regex)) if regex else None
            except re.error:  # pragma: no cover - every shipped regex compiles (tests check)
                self._patterns[primitive] = None
        return self._patterns[primitive]

    def _build(self, path: str) -> Node | None:
        entry = self.elements.get(path)
        if not entry or "children" not in entry:
            return None
        children: dict[str, Child] = {}
        required: list[Child] = []
        for index, name in enumerate(entry["children"]):
            element = self.elements[f"{path}.{name}"]
            for child in self._children(path, name, index, element):
                children[child.name] = child
                if child.min and (not required or required[-1].element != child.element):
                    required.append(child)
        return Node(path, children, tuple(required))

    def _children(self, path: str, name: str, index: int, element: dict[str, Any]) -> list[Child]:
        high = None if element["max"] == "*" else int(element["max"])
        attr, binding, full = bool(element.get("attr")), element.get("binding"), f"{path}.{name}"

        def child(json_name: str, kind: str, node: str | None, primitive: bool) -> Child:
            return Child(json_name, full, index, int(element["min"]), high, kind, node, primitive, attr, binding)

        if "ref" in element:
            return [child(name, "BackboneElement", element["ref"], False)]
        types = element.get("types") or ["Element"]
        found = []
        for kind in types:
            json_name = name[:-3] + kind[0].upper() + kind[1:] if name.endswith("[x]") else name
            primitive = self.types.get(kind, {}).get("kind") == "primitive-type"
            if "children" in element:  # a backbone element defined in place
                node: str | None = f"{path}.{name}"
            elif primitive or kind == "Resource" or kind not in self.types:
                node = None
            else:
                node = kind
            found.append(child(json_name, kind, node, primitive))
            if not name.endswith("[x]"):
                break
        return found


@functools.cache
def definitions(version: str) -> Definitions:
    """The tables of ``version`` (``STU3``, ``R4`` or ``R5``), loaded once. KeyError for others."""
    if version not in VERSIONS:
        raise KeyError(f"no FHIR definitions for {version!r} (there are {', '.join(VERSIONS)})")
    data = resources.files(__package__).joinpath("fhir_data", f"{version}.json.gz").read_bytes()
    table = json.loads(gzip.decompress(data))
    keys = ("fhir", "types", "elements", "valuesets", "unexpanded", "primitives")
    return Definitions(version, **{key: table[key] for key in keys})
