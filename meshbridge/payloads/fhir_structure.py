"""FHIR structure checks against the official definitions (see :mod:`.fhir_rules`).

A walk over the payload, element by element, with the tables of :mod:`.fhir_definitions`:

* ``fhir.binding``: a code outside a required binding's value set (a ``code``, a ``Coding`` whose
  system and code are not in it, a ``CodeableConcept`` none of whose codings is in it, as the HL7
  validator says); value sets that could not be expanded are not checked;
* ``fhir.cardinality``: a required element missing, a 0..1 element repeated (XML) or given as an
  array (JSON), two types of one choice element, an empty JSON array;
* ``fhir.type``: a primitive of the wrong JSON type (``"72.5"`` where a number belongs, ``"true"``
  where a boolean belongs), a primitive value not matching its type's pattern, a JSON ``null``;
* ``fhir.unknown-element``: an element the definition does not have;
* ``fhir.order`` (XML, in :mod:`.fhir_structure_xml`): an element out of the definition's order.

It runs only on payloads the fhir.resources models accepted, so it reports what they let through.
Each defect gives one finding: the walk does not go into an element it already reported as
misplaced or repeated. Empty elements are left to ele-1 (:mod:`.fhir_invariants`).
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from .base import Finding
from .fhir_definitions import VERSIONS, Child, Definitions, Node, definitions
from .fhir_rules import Parsed

CODING_TYPES = ("Coding", "CodeableConcept")
_SHORT = 40  # codes up to this length are quoted in messages; longer values are not repeated


def check(parsed: Parsed) -> list[Finding]:
    """Every structure and binding finding of one payload the models accepted."""
    if parsed.version not in VERSIONS:
        return []
    tables = definitions(parsed.version)
    if parsed.format == "xml":
        if parsed.root is None:
            return []
        from .fhir_structure_xml import XmlWalk

        return XmlWalk(tables).run(parsed.root)
    if not isinstance(parsed.resource, dict):
        return []
    return JsonWalk(tables).run(parsed.resource)


def quoted(value: str) -> str:
    """A short value in quotes, or nothing (long values may be patient data)."""
    return f" {value!r}" if len(value) <= _SHORT else ""


class Walk:
    """What the JSON and XML walks share: findings, bindings, patterns, cardinality."""

    def __init__(self, tables: Definitions) -> None:
        self.tables = tables
        self.findings: list[Finding] = []

    def add(self, code: str, where: str, message: str) -> None:
        self.findings.append(Finding(message, where, code=f"fhir.{code}"))

    def unknown(self, where: str, name: str, node: Node) -> None:
        self.add(
            "unknown-element",
            where,
            f"unknown element {name!r}: {node.path} has no such element in FHIR {self.version}",
        )

    @property
    def version(self) -> str:
        return self.tables.version

    def pattern(self, child: Child, text: str, where: str) -> bool:
        """Whether ``text`` matches the primitive's pattern (a finding if not)."""
        regex = self.tables.pattern(child.type)
        if regex is None or regex.fullmatch(text):
            return True
        if child.type == "boolean":
            self.add("type", where, "a boolean is true or false")
        else:
            self.add("type", where, f"not a valid {child.type}: the value does not match the FHIR {child.type} pattern")
        return False

    def code(self, child: Child, value: str, where: str) -> None:
        """A primitive's value against its required binding."""
        found = self.tables.codes(child.binding) if child.binding else None
        if found is not None and value not in found[0]:
            self.add(
                "binding", where, f"code{quoted(value)} is not in the value set {child.binding} (required binding)"
            )

    def codings(self, child: Child, pairs: Iterable[tuple[Any, Any]], where: str) -> None:
        """A Coding's or CodeableConcept's (system, code) pairs against the required binding."""
        found = self.tables.codes(child.binding) if child.binding else None
        if found is None:
            return
        codes, systems = found
        pairs = [(system, code) for system, code in pairs if system is not None or code is not None]
        if not pairs or any(code in codes and (system in systems or not systems) for system, code in pairs):
            return
        if child.type == "Coding":
            shown = quoted(str(pairs[0][1])) if isinstance(pairs[0][1], str) else ""
            message = f"code{shown} is not in the value set {child.binding} (required binding)"
        else:
            message = f"none of the codings is in the value set {child.binding} (required binding)"
        self.add("binding", where, message)

    def too_many(self, child: Child, count: int, where: str) -> bool:
        """Whether one more occurrence goes over the element's maximum (a finding if so)."""
        if child.max is None or count <= child.max:
            return False
        times = "once" if child.max == 1 else f"{child.max} times"
        self.add("cardinality", where, f"{child.element} may occur at most {times}")
        return True

    def missing(self, node: Node, seen: set[str], path: str) -> None:
        for child in node.required:
            if child.element not in seen:
                name = child.element.rsplit(".", 1)[1]
                self.add("cardinality", f"{path}.{name}", f"{child.element} is required (minimum {child.min})")


class JsonWalk(Walk):
    """The walk over FHIR JSON (a dict, decimals as ``Decimal``)."""

    def __init__(self, tables: Definitions) -> None:
        super().__init__(tables)
        self.wanted: dict[str, str] = {}  # primitive type -> its JSON type

    def run(self, resource: dict[str, Any]) -> list[Finding]:
        self.resource(resource, str(resource.get("resourceType")))
        return self.findings

    def resource(self, obj: dict[str, Any], path: str) -> None:
        kind = obj.get("resourceType")
        node = self.tables.node(kind) if isinstance(kind, str) and self.tables.is_resource(kind) else None
        if node is not None:  # an unknown or abstract type is the models' finding
            self.object(obj, node, path, resource=True)

    def object(self, obj: dict[str, Any], node: Node, path: str, resource: bool = False) -> None:
        seen: dict[str, str] = {}  # element -> the name it came under
        for key, value in obj.items():
            if (key == "resourceType" and resource) or (key == "fhir_comments" and self.version == "STU3"):
                continue
            name = key[1:] if key.startswith("_") else key
            child = node.children.get(name)
            where = f"{path}.{name}"
            if child is None or (key != name and not child.primitive):
                self.unknown(f"{path}.{key}", key, node)
                continue
            if seen.setdefault(child.element, name) != name:  # valueString and valueQuantity
                self.too_many(child, 2, where)
                continue
            if key != name:
                self.extensions(child, value, where)
            elif type(value) is str and child.primitive and child.max == 1 and self.json_type(child) == "string":
                if self.pattern(child, value, where) and child.binding:  # the common case, without the calls below
                    self.code(child, value, where)
            else:
                self.value(child, value, where)
        self.missing(node, set(seen), path)

    def value(self, child: Child, value: Any, where: str) -> None:
        if isinstance(value, list):
            if child.max == 1:
                self.add("cardinality", where, f"{child.element} occurs at most once: a single value, not an array")
                return
            if not value:
                self.add("cardinality", where, "an empty array: leave the element out instead")
                return
            if child.max is not None and self.too_many(child, len(value), f"{where}[{child.max}]"):
                return
            for i, item in enumerate(value):
                if item is not None or not child.primitive:  # null pairs with an _element entry
                    self.item(child, item, f"{where}[{i}]")
        elif child.max != 1:
            self.add("cardinality", where, f"{child.element} repeats: its JSON value is an array")
        else:
            self.item(child, value, where)

    def item(self, child: Child, item: Any, where: str) -> None:
        if item is None:
            self.add("type", where, "null is not a FHIR value: leave the element out instead")
        elif child.primitive:
            self.primitive(child, item, where)
        elif not isinstance(item, dict):
            return  # the models refuse a non-object where an object belongs
        elif child.type == "Resource":
            self.resource(item, where)
        elif child.node is not None and (node := self.tables.node(child.node)) is not None:
            self.object(item, node, where)
            if child.binding and child.type in CODING_TYPES:
                codings = [item] if child.type == "Coding" else item.get("coding") or []
                pairs = [(c.get("system"), c.get("code")) for c in codings if isinstance(c, dict)]
                self.codings(child, pairs, where)

    def json_type(self, child: Child) -> str:
        """The JSON type of a primitive child's values (``string``, ``number`` or ``boolean``)."""
        wanted = self.wanted.get(child.type)
        if wanted is None:
            wanted = self.wanted[child.type] = (self.tables.primitives.get(child.type) or {}).get("json", "string")
        return wanted

    def primitive(self, child: Child, item: Any, where: str) -> None:
        wanted = self.json_type(child)
        if type(item) is str and wanted == "string":  # the common case first: a string where one belongs
            if self.pattern(child, item, where) and child.binding:
                self.code(child, item, where)
            return
        number = isinstance(item, int | Decimal) and not isinstance(item, bool)
        if wanted == "boolean" and not isinstance(item, bool):
            self.add("type", where, f"{child.type} must be a JSON boolean (true or false), not {_json_type(item)}")
        elif wanted == "number" and not number:
            self.add("type", where, f"{child.type} must be a JSON number, not {_json_type(item)}")
        elif wanted == "string" and not isinstance(item, str):
            self.add("type", where, f"{child.type} must be a JSON string, not {_json_type(item)}")
        elif isinstance(item, Decimal) and child.type != "decimal":
            self.add("type", where, f"{child.type} must be a whole number")
        elif isinstance(item, str) and self.pattern(child, item, where) and child.binding:
            self.code(child, item, where)
        elif isinstance(item, int) and not isinstance(item, bool):
            self.pattern(child, str(item), where)

    def extensions(self, child: Child, value: Any, where: str) -> None:
        """A primitive's ``_element`` sibling: its id and extensions (an array for a repeating one)."""
        node = self.tables.node(child.type)
        items = value if isinstance(value, list) else [value]
        for i, item in enumerate(items):
            if isinstance(item, dict) and node is not None:
                self.object(item, node, f"{where}[{i}]" if isinstance(value, list) else where)


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float | Decimal):
        return "a number"
    names: dict[type, str] = {dict: "an object", list: "an array", str: "a string"}
    return names.get(type(value), "null")
