"""One FHIRPath constraint, parsed once, evaluated by fhirpathpy only when its answer is not known.

Evaluating a constraint costs 50-150 microseconds in fhirpathpy; a 100 KB Bundle has thousands of
places where a constraint applies. Two things, both exact, keep the count down:

* a top-level ``a or b or c`` is evaluated part by part, stopping at the first ``true`` (``ref-1``'s
  ``reference.startsWith('#').not()`` settles it for every reference that is not local), and
  ``a implies b`` needs ``b`` only when ``a`` is not false (``type = 'document' implies ...``);
* an expression that reads the element only through its own children (no ``%resource``,
  ``descendants()``, ``$this``, function call on the element itself ...) gives the same answer for
  two elements that agree on the children it names. Those it only tests with ``exists()``,
  ``empty()`` or ``count()`` are compared by count, the others by value when the value is a
  primitive. The answer is kept per constraint and element path under that key: ``ext-1`` on a
  thousand extensions is two evaluations (with value, with extensions);
* ``X.where(...)...empty()`` (functions that ignore their arguments on an empty collection) has
  one answer for every element without ``X``, even when its arguments read ``%resource``
  (``dom-3`` on a resource without ``contained``).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from .fhir_definitions import Definitions

_STRING = re.compile(r"'(?:[^'\\]|\\.)*'")
# what reads more than the element's named children: whole-tree functions, variables, a function
# on the element itself, a type name at the root (``Appointment.status``: a filter on the resource)
_OPAQUE = re.compile(r"children\(|descendants\(|repeat\(|[$%`]|resolve\(|(?<![.\w])[A-Za-z]\w*\(|(?<![.\w(@])[A-Z]")
_ROOT_NAME = re.compile(r"(?<![.\w@])([A-Za-z_]\w*)(?!\w|\s*\()")
_KEYWORDS = frozenset({"and", "or", "xor", "implies", "is", "as", "contains", "div", "mod", "true", "false"})
_KEYWORDS |= {"in"}  # not a state: FHIRPath's membership operator
_EXISTENCE = re.compile(r"\.(?:exists|empty|count)\(\)")
_HEAD = re.compile(r"\s*([A-Za-z_]\w*)(?=\.)")
_STEP = re.compile(r"\.(\w+)(\()?")
_EMPTY_SAFE = frozenset({"where", "select", "all", "exists", "empty", "count", "not", "trace", "first", "last"})
_EMPTY_SAFE |= {"tail", "distinct", "isDistinct", "ofType", "single"}
_CACHE_LIMIT = 4096
_PRIMITIVES = (str, int, float, bool, Decimal)
_Key = tuple[Any, ...]


def operands(text: str) -> tuple[str, list[str]]:
    """How to evaluate an expression in parts: ``("implies", [a, b])`` for a top-level ``a implies
    b``, ``("or", [a, b, c])`` for ``a or b or c``, else ``("one", [text])``. (``implies`` binds
    loosest, then ``or`` and ``xor``; a top-level ``xor`` or a second ``implies`` keeps it whole.)"""
    masked = _STRING.sub(lambda m: "x" * len(m.group()), text)
    cuts: dict[str, list[int]] = {" or ": [], " xor ": [], " implies ": []}
    depth = 0
    for i, char in enumerate(masked):
        depth += (char == "(") - (char == ")")
        for word, found in cuts.items():
            if depth == 0 and masked.startswith(word, i):
                found.append(i)
    if len(cuts[" implies "]) == 1:
        at = cuts[" implies "][0]
        return "implies", [text[:at].strip(), text[at + 9 :].strip()]
    if cuts[" implies "] or cuts[" xor "] or not cuts[" or "]:
        return "one", [text]
    bounds = [-4, *cuts[" or "], len(text)]
    return "or", [text[a + 4 : b].strip() for a, b in itertools.pairwise(bounds)]


class Part:
    """One operand: fhirpathpy's compiled function plus what its answer depends on."""

    def __init__(self, text: str, evaluate: Callable[..., Any]) -> None:
        self.evaluate = evaluate
        plain = _STRING.sub("''", text)
        self.names: tuple[str, ...] | None = None  # None: reads more than the element's children
        self.counted: frozenset[str] = frozenset()
        self.answers: dict[tuple[str, _Key], Any] = {}
        self.plans: dict[str, tuple[tuple[str, bool], ...]] = {}
        self.head = chain_head(plain)  # for an opaque ``contained.where(...).empty()``: None when absent
        if not _OPAQUE.search(plain):
            names = sorted({m.group(1) for m in _ROOT_NAME.finditer(plain)} - _KEYWORDS)
            self.names = tuple(names)
            self.counted = frozenset(name for name in names if _only_counted(plain, name))

    def result(self, item: Any, defs: Definitions, variables: Callable[[], dict[str, Any]]) -> Any:
        """fhirpathpy's result on ``item`` (a fhir_walk.Item), from the cache when the key is known."""
        key = self._key(item, defs)
        if key is not None and (item.path, key) in self.answers:
            return self.answers[(item.path, key)]
        result = self.evaluate(node(item.value, item.path), variables())
        if key is not None:
            if len(self.answers) > _CACHE_LIMIT:
                self.answers.clear()
            self.answers[(item.path, key)] = result
        return result

    def _key(self, item: Any, defs: Definitions) -> _Key | None:
        value = item.value
        plan = self.plans.get(item.path)
        if plan is None:
            plan = self.plans[item.path] = self._plan(defs, item.path)
        if self.names is None:
            return ("absent",) if plan and all(value.get(name) is None for name, _ in plan) else None
        key: list[Any] = []
        for json_name, counted in plan:
            content = value.get(json_name)
            if counted:
                key.append(0 if content is None else len(content) if isinstance(content, list) else 1)
            elif content is None or isinstance(content, _PRIMITIVES):
                key.append((type(content).__name__, content))
            else:
                return None
        return tuple(key)

    def _plan(self, defs: Definitions, path: str) -> tuple[tuple[str, bool], ...]:
        """The JSON keys the answer depends on at ``path``, each with whether only its count matters."""
        if self.names is None:
            return tuple((n, True) for n in _json_names(defs, path, self.head)) if self.head else ()
        return tuple((n, name in self.counted) for name in self.names for n in _json_names(defs, path, name))


def node(data: dict[str, Any], path: str | None) -> Any:
    """fhirpathpy's node for ``data``, typed as the element of ``path`` (for choice types and ``as()``)."""
    from fhirpathpy.engine.nodes import ResourceNode

    create: Callable[..., Any] = ResourceNode.create_node
    return create(data, path)


def chain_head(plain: str) -> str | None:
    """``X`` when the expression is ``X.f(...).g(...)...`` with functions that give the same
    answer on an empty collection whatever their arguments (so an element without ``X`` has one
    answer even when the arguments read ``%resource``), else None."""
    found = _HEAD.match(plain)
    if not found or found.group(1)[0].isupper():
        return None
    at = found.end()
    while at < len(plain):
        step = _STEP.match(plain, at)
        if not step or (step.group(2) and step.group(1) not in _EMPTY_SAFE):
            return None
        at = step.end()
        if step.group(2):
            depth = 1
            while depth and at < len(plain):
                depth += (plain[at] == "(") - (plain[at] == ")")
                at += 1
            if depth:
                return None
    return found.group(1)


def _only_counted(plain: str, name: str) -> bool:
    """Whether every top-level use of ``name`` is ``name.exists()``, ``.empty()`` or ``.count()``."""
    for match in re.finditer(rf"(?<![.\w@]){re.escape(name)}(?!\w)", plain):
        if not _EXISTENCE.match(plain, match.end()):
            return False
    return True


_NAMES: dict[tuple[int, str, str], tuple[str, ...]] = {}


def _json_names(defs: Definitions, path: str, name: str) -> tuple[str, ...]:
    """The JSON keys FHIRPath's ``name`` reads on an element of ``path`` (``value`` -> valueQuantity ...)."""
    cached = (id(defs), path, name)
    if cached not in _NAMES:
        node = defs.node(path)
        wanted = (f"{path}.{name}", f"{path}.{name}[x]")
        found = {name}
        if node is not None:
            found.update(child.name for child in node.children.values() if child.element in wanted)
        _NAMES[cached] = tuple(sorted(found | {f"_{n}" for n in found}))
    return _NAMES[cached]
