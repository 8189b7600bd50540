"""The structure walk over FHIR XML (see :mod:`.fhir_structure`), with element order.

It walks the lxml tree the models read (comments and PIs already stripped). Order: the children of
an element must follow the definition's order; when they do not, the fewest elements that explain
it (those outside the longest run in order) are reported, so one moved element gives one finding.
"""

from __future__ import annotations

from bisect import bisect_right
from itertools import pairwise
from typing import Any

from .base import Finding
from .fhir_definitions import Child, Node
from .fhir_models import FHIR_NS
from .fhir_structure import CODING_TYPES, Walk

_PREFIX = "{" + FHIR_NS + "}"
_CUT = len(_PREFIX)
_XHTML = "{http://www.w3.org/1999/xhtml}"


class XmlWalk(Walk):
    """The walk over an lxml element tree in the FHIR namespace."""

    def run(self, root: Any) -> list[Finding]:
        tag = root.tag
        if isinstance(tag, str) and tag.startswith(_PREFIX):
            self.resource(root, tag[_CUT:])
        return self.findings

    def resource(self, element: Any, path: str) -> None:
        kind = element.tag[_CUT:]
        node = self.tables.node(kind) if self.tables.is_resource(kind) else None
        if node is not None:  # an unknown or abstract type is the models' finding
            self.element(element, node, path)

    def element(self, element: Any, node: Node, path: str) -> None:
        counts: dict[str, int] = {}
        placed: list[tuple[int, str, str]] = []  # (position, name, where) in document order
        children = node.children
        for sub in element:
            tag = sub.tag
            if not isinstance(tag, str):
                continue
            name = tag[_CUT:] if tag.startswith(_PREFIX) else tag
            child = children.get(name)
            if child is None and tag.startswith(_XHTML) and (div := children.get("div")) and div.type == "xhtml":
                child, name = div, "div"
            if child is None or child.attr or (name == tag and child.type != "xhtml"):
                self.unknown(f"{path}.{name}", name, node)
                continue
            count = counts[child.element] = counts.get(child.element, 0) + 1
            where = f"{path}.{name}" if child.max == 1 else f"{path}.{name}[{count - 1}]"
            if self.too_many(child, count, where):
                continue  # the repeated element is the finding; its content is not looked at
            placed.append((child.position, name, where))
            self.value(child, sub, where)
        self.order(placed)
        seen = set(counts)
        seen.update(child.element for child in node.required if child.attr and element.get(child.name) is not None)
        self.missing(node, seen, path)

    def value(self, child: Child, element: Any, where: str) -> None:
        if child.type == "xhtml":
            return  # the narrative's XHTML is not FHIR's to check here
        if child.primitive:
            value = element.get("value")
            if value is not None and self.pattern(child, value, where) and child.binding:
                self.code(child, value, where)
            node = self.tables.node(child.type)  # a primitive's own children: extensions
            if node is not None and len(element):
                self.element(element, node, where)
        elif child.type == "Resource":
            inner = [sub for sub in element if isinstance(sub.tag, str)]
            if len(inner) > 1:
                self.add("cardinality", where, f"{child.element} holds one resource, not {len(inner)}")
            elif inner and inner[0].tag.startswith(_PREFIX):
                self.resource(inner[0], where)
        elif child.node is not None and (node := self.tables.node(child.node)) is not None:
            self.element(element, node, where)
            if child.binding and child.type in CODING_TYPES:
                codings = [element] if child.type == "Coding" else element.iterchildren(_PREFIX + "coding")
                self.codings(child, [(_value(c, "system"), _value(c, "code")) for c in codings], where)

    def order(self, placed: list[tuple[int, str, str]]) -> None:
        """A finding for each element outside the longest run in the definition's order."""
        positions = [position for position, _, _ in placed]
        if all(a <= b for a, b in pairwise(positions)):
            return
        kept = _longest_run(positions)
        for i, (position, name, where) in enumerate(placed):
            if i in kept:
                continue
            after = [placed[k][1] for k in sorted(kept) if placed[k][0] > position]
            before = [placed[k][1] for k in sorted(kept) if placed[k][0] < position]
            hint = f"it belongs before <{after[0]}>" if after else f"it belongs after <{before[-1]}>" if before else ""
            self.add("order", where, f"<{name}> is out of the order FHIR {self.version} defines; {hint}".rstrip("; "))


def _value(element: Any, name: str) -> str | None:
    found = element.find(_PREFIX + name)
    return None if found is None else found.get("value")


def _longest_run(positions: list[int]) -> set[int]:
    """The indices of a longest non-decreasing subsequence of ``positions``; of several, the one
    that keeps the earlier elements (two swapped elements: the second is the one out of order, as
    the HL7 validator reports it)."""
    last = len(positions) - 1
    return {last - i for i in _longest_rising([-p for p in reversed(positions)])}


def _longest_rising(positions: list[int]) -> set[int]:
    tails: list[int] = []  # tails[k]: the smallest last position of a run of length k + 1
    tail_index: list[int] = []
    parent = [-1] * len(positions)
    for i, position in enumerate(positions):
        k = bisect_right(tails, position)
        if k == len(tails):
            tails.append(position)
            tail_index.append(i)
        else:
            tails[k], tail_index[k] = position, i
        parent[i] = tail_index[k - 1] if k else -1
    kept, i = set(), tail_index[-1]
    while i != -1:
        kept.add(i)
        i = parent[i]
    return kept
