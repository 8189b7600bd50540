"""Value sets expanded from a package's CodeSystems and ValueSets (used by scripts/fhir_definitions.py).

An include is expanded from its listed concepts, from the whole code system, from other value sets
(intersected with the system when both are given), or from ``is-a`` / ``descendent-of`` filters on
the ``concept`` property over a complete code system's concept hierarchy (nested ``concept`` lists;
``is-a`` includes the code itself, ``descendent-of`` does not; several filters intersect). Anything
else cannot be expanded and is recorded in :attr:`Expander.unexpanded` with the reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

#: the filters expanded, and whether each includes the concept named in the filter
HIERARCHY_FILTERS = {"is-a": True, "descendent-of": False}


def _walk(concepts: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every concept of a code system, nested ones too."""
    stack = list(concepts)
    while stack:
        concept = stack.pop()
        yield concept
        stack += concept.get("concept", ())


class Expander:
    """Required-binding value sets expanded from the package's CodeSystems and ValueSets."""

    def __init__(self, valuesets: dict[str, Any], codesystems: dict[str, Any]) -> None:
        self.valuesets, self.codesystems = valuesets, codesystems
        self.unexpanded: dict[str, str] = {}

    def expand(self, url: str, depth: int = 0) -> dict[str, set[str]] | None:
        """``{system: codes}``, or None (with the reason in ``unexpanded``)."""
        vs = self.valuesets.get(url)
        if vs is None:
            self._fail(url, "the value set is not in the package")
            return None
        if depth > 10:
            self._fail(url, "value sets include each other too deeply")
            return None
        compose = vs.get("compose")
        if not compose:
            contains = (vs.get("expansion") or {}).get("contains")
            if contains:
                return self._from_expansion(contains)
            self._fail(url, "the value set has neither a compose nor an expansion")
            return None
        found: dict[str, set[str]] = {}
        for include in compose.get("include", ()):
            part = self._include(url, include, depth)
            if part is None:
                return None
            for system, codes in part.items():
                found.setdefault(system, set()).update(codes)
        for exclude in compose.get("exclude", ()):
            part = self._include(url, exclude, depth)
            if part is None:
                return None
            for system, codes in part.items():
                found.get(system, set()).difference_update(codes)
        return found

    def _include(self, url: str, include: dict[str, Any], depth: int) -> dict[str, set[str]] | None:
        found: dict[str, set[str]] = {}
        system: str = include.get("system", "")
        if include.get("filter"):
            filtered = self._filtered(url, system, include["filter"])
            if filtered is None:
                return None
            found[system] = filtered
        elif include.get("concept"):
            found[system] = {c["code"] for c in include["concept"]}
        elif system:
            codes = self._system(url, system)
            if codes is None:
                return None
            found[system] = {c["code"] for c in codes}
        for other in include.get("valueSet", ()):
            part = self.expand(other.split("|")[0], depth + 1)
            if part is None:
                self._fail(url, f"it includes {other}, which cannot be expanded")
                return None
            # a system and value sets together: the intersection
            found = {s: codes & part.get(s, set()) for s, codes in found.items()} if found else part
        return found

    def _filtered(self, url: str, system: str, filters: list[dict[str, Any]]) -> set[str] | None:
        """The codes of ``system`` that pass every filter (hierarchy filters only)."""
        for f in filters:
            if f.get("property") != "concept" or f.get("op") not in HIERARCHY_FILTERS:
                self._fail(url, f"a filter {f.get('property')} {f.get('op')} on {system} (not expanded)")
                return None
        concepts = self._system(url, system)
        if concepts is None:
            return None
        result: set[str] | None = None
        for f in filters:
            codes: set[str] = set()
            for concept in concepts:
                if concept["code"] == f.get("value"):  # a code may sit in several places of a hierarchy
                    codes |= {c["code"] for c in _walk(concept.get("concept", []))}
                    if HIERARCHY_FILTERS[f["op"]]:
                        codes.add(concept["code"])
            if not codes:
                self._fail(url, f"the filter's code {f.get('value')} is not in {system}")
                return None
            result = codes if result is None else result & codes
        return result

    def _system(self, url: str, system: str) -> list[dict[str, Any]] | None:
        """Every concept of a complete code system, nested ones too."""
        cs = self.codesystems.get(system)
        if cs is None:
            self._fail(url, f"the code system {system} is not in the package")
            return None
        if cs.get("content", "complete") != "complete":
            self._fail(url, f"the code system {system} is {cs.get('content')} in the package")
            return None
        return list(_walk(cs.get("concept", [])))

    @staticmethod
    def _from_expansion(contains: list[dict[str, Any]]) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        stack = list(contains)
        while stack:
            item = stack.pop()
            if "code" in item:
                found.setdefault(item.get("system", ""), set()).add(item["code"])
            stack += item.get("contains", ())
        return found

    def _fail(self, url: str, reason: str) -> None:
        self.unexpanded.setdefault(url, reason)
