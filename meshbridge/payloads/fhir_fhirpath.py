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
  (``dom-3`` on a resource without ``contained``);
* any other expression that reads nothing outside the element (no ``%`` variable, ``resolve()``
  or clock: ``where(use = 'home').empty()`` on a ContactPoint) gives one answer per element path
  and element value: small values (up to :data:`_FROZEN_LIMIT` JSON nodes) are the key. The same
  holds for a named child whose value is an object (``code != component.code``);
* a child read only through member chains ending in ``exists()``, ``empty()`` or ``count()``
  (``entry.request.empty()`` on a Bundle) is keyed by how many values each chain reaches, per JSON
  key at its end (chains through a resource or a choice element are not followed), and one read
  only through ``startsWith('x')``, ``endsWith('x')`` or ``contains('x')`` by their results
  (:class:`StringTests`).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass
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
_CHAIN = re.compile(r"((?:\.[A-Za-z_]\w*(?![\w(]))*)\.(?:exists|empty|count)\(\)")
_HEAD = re.compile(r"\s*([A-Za-z_]\w*)(?=\.)")
_STEP = re.compile(r"\.(\w+)(\()?")
_EMPTY_SAFE = frozenset({"where", "select", "all", "exists", "empty", "count", "not", "trace", "first", "last"})
_EMPTY_SAFE |= {"tail", "distinct", "isDistinct", "ofType", "single"}
# what makes an answer depend on more than the element's path and value
_NOT_LOCAL = re.compile(r"%|resolve\(|now\(|today\(|timeOfDay\(")
_CACHE_LIMIT = 4096
_FROZEN_LIMIT = 48
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
        self.chains: dict[str, tuple[tuple[str, ...], ...]] = {}  # name -> member chains tested for existence
        self.tests: dict[str, StringTests] = {}  # name -> the string tests it is only read through
        self.answers: dict[tuple[str, _Key], Any] = {}
        self.plans: dict[str, Plan] = {}
        self.head = chain_head(plain)  # for an opaque ``contained.where(...).empty()``: None when absent
        self.local = not _NOT_LOCAL.search(plain)  # the answer depends on the element's path and value only
        self.variables = "%" in plain  # reads %resource or %rootResource: they are made only then
        if not _OPAQUE.search(plain):
            names = sorted({m.group(1) for m in _ROOT_NAME.finditer(plain)} - _KEYWORDS)
            self.names = tuple(names)
            self.counted = frozenset(name for name in names if _only_counted(plain, name))
            for name in set(names) - self.counted:
                chains = _existence_chains(plain, name)
                if chains:
                    self.chains[name] = chains
                elif tests := _string_tests(text, name):
                    self.tests[name] = StringTests(tests)

    def result(self, item: Any, defs: Definitions, variables: Callable[[], dict[str, Any]]) -> Any:
        """fhirpathpy's result on ``item`` (a fhir_walk.Item), from the cache when the key is known."""
        key = self._key(item, defs)
        if key is not None and (item.path, key) in self.answers:
            return self.answers[(item.path, key)]
        result = self.evaluate(node(item.value, item.path), variables() if self.variables else {})
        if key is not None:
            if len(self.answers) > _CACHE_LIMIT:
                self.answers.clear()
            self.answers[(item.path, key)] = result
        return result

    def _key(self, item: Any, defs: Definitions) -> _Key | None:
        value = item.value
        plan = self.plan(defs, item.path)
        if self.names is None:
            if plan and all(value.get(name) is None for name in plan):
                return ("absent",)
            whole = frozen(value) if self.local and _datatype(defs, item.type) else _TOO_BIG
            return None if whole is _TOO_BIG else ("value", whole)
        return key_of(value, plan)

    def plan(self, defs: Definitions, path: str) -> Plan:
        """The JSON keys the answer depends on at ``path`` (see :meth:`_plan`), kept per path."""
        found = self.plans.get(path)
        if found is None:
            found = self.plans[path] = self._plan(defs, path)
        return found

    def _plan(self, defs: Definitions, path: str) -> Plan:
        """The JSON keys the answer depends on at ``path``, each with how: :data:`COUNT`,
        :data:`VALUE` or :data:`PRESENT_NOT_KEY` (a resource or backbone element: its value is no key)."""
        if self.names is None:
            return dict.fromkeys(_json_names(defs, path, self.head), PRESENT_NOT_KEY) if self.head else {}
        return {
            n: COUNT
            if name in self.counted
            else self.tests[name]
            if name in self.tests and not n.startswith("_")
            else _resolved(defs, path, n, self.chains.get(name))
            for name in self.names
            for n in _json_names(defs, path, name)
        }


#: how an answer depends on a JSON key (a plan merging two takes the larger), or the member chains
#: whose counts it depends on (each step: the JSON keys it reads)
COUNT, VALUE, PRESENT_NOT_KEY = 0, 1, 2
Chains = tuple[tuple[tuple[str, ...], ...], ...]


@dataclass(frozen=True)
class StringTests:
    """A key read only through ``startsWith('x')``, ``endsWith('x')`` or ``contains('x')``: for a
    string, the answer depends on their results (and on whether it is empty, which fhirpathpy's
    startsWith treats apart), not on the whole value (``reference.startsWith('#')`` on every
    Reference of a payload is one evaluation, whatever the references)."""

    tests: tuple[tuple[str, str], ...]

    def key(self, text: str) -> tuple[bool, ...]:
        return (text == "", *(_STRING_TESTS[name](text, literal) for name, literal in self.tests))


_STRING_TESTS: dict[str, Callable[[str, str], bool]] = {
    "startsWith": str.startswith,
    "endsWith": str.endswith,
    "contains": str.__contains__,
}
_TEST = re.compile(r"\.(startsWith|endsWith|contains)\('([^'\\]*)'\)")
Mode = int | Chains | StringTests
Plan = dict[str, Mode]


def merged(one: Mode, other: Mode) -> Mode:
    """What a plan reading a key both ways depends on (string tests and anything else: the value)."""
    if one == other:
        return one
    if isinstance(one, StringTests) or isinstance(other, StringTests):
        return merged(
            VALUE if isinstance(one, StringTests) else one, VALUE if isinstance(other, StringTests) else other
        )
    if isinstance(one, tuple) and isinstance(other, tuple):
        return tuple(dict.fromkeys(one + other))
    if isinstance(one, int) and isinstance(other, int):
        return max(one, other)
    chains, mode = (one, other) if isinstance(one, tuple) else (other, one)
    if isinstance(chains, tuple) and mode == COUNT:
        return (*chains, ())
    return mode


def _plain(mode: Mode) -> Mode:
    return VALUE if isinstance(mode, StringTests) else mode


def key_of(value: dict[str, Any], plan: Plan) -> _Key | None:
    """What an answer depends on: per JSON key of ``plan`` that ``value`` has, its count (when only
    that is read), what its chains reach or its value (frozen when small); None when a value is no
    key. Keys ``value`` does not have add nothing (one element type has one plan)."""
    key: list[Any] = []
    for json_name, content in value.items():
        mode = plan.get(json_name)
        if mode is None:
            continue
        if mode == COUNT:
            part: Any = 0 if content is None else len(content) if isinstance(content, list) else 1
        elif isinstance(mode, tuple):
            part = tuple(_reached(content, chain) for chain in mode)
        elif isinstance(mode, StringTests) and type(content) is str:
            part = ("tests", mode.key(content))
        elif content is None or isinstance(content, _PRIMITIVES):
            part = (type(content).__name__, str(content) if isinstance(content, Decimal) else content)
        elif mode == PRESENT_NOT_KEY:
            return None
        else:
            part = frozen(content)
            if part is _TOO_BIG:
                return None
        key.append((json_name, part))
    return tuple(key)


def _resolved(defs: Definitions, path: str, json_name: str, chains: tuple[tuple[str, ...], ...] | None) -> Mode:
    """How an answer depends on a key read by value: through its existence chains when each can
    be followed, else its value (no key when it is a resource or backbone element)."""
    node = defs.node(path)
    child = node.children.get(json_name.lstrip("_")) if node is not None else None
    if chains and child is not None and not json_name.startswith("_"):
        found = [_steps(defs, child.node, chain) for chain in chains]
        resolved = tuple(steps for steps in found if steps is not None)
        if len(resolved) == len(found):
            return resolved
    big = child is not None and child.type in ("Resource", "BackboneElement")
    return PRESENT_NOT_KEY if big else VALUE


def _steps(defs: Definitions, path: str | None, chain: tuple[str, ...]) -> tuple[tuple[str, ...], ...] | None:
    """Per step of ``chain`` from an element of ``path``, the JSON keys it reads (None if it cannot
    be followed: a resource, a choice or a primitive before the end, an unknown name)."""
    steps: list[tuple[str, ...]] = []
    for i, name in enumerate(chain):
        node = defs.node(path) if path else None
        if node is None or name == "length":
            return None
        children = [c for c in node.children.values() if c.element == f"{node.path}.{name}"]
        if len(children) != 1:
            return None
        child = children[0]
        last = i == len(chain) - 1
        if not last and (child.node is None or child.primitive):
            return None
        steps.append((child.name, f"_{child.name}"))  # fhirpathpy reads a _name beside the name
        path = child.node
    return tuple(steps)


def _reached(content: Any, steps: tuple[tuple[str, ...], ...]) -> tuple[tuple[int, int], ...]:
    """How many values (and how many of them null) ``steps`` reach from ``content``, per JSON key
    of the last step."""
    items = content if isinstance(content, list) else [content]
    if not steps:
        return ((len(items) if content is not None else 0, sum(item is None for item in items)),)
    for step in steps[:-1]:
        items = [x for item in items if isinstance(item, dict) for name in step for x in _listed(item.get(name))]
    found = []
    for name in steps[-1]:
        values = [x for item in items if isinstance(item, dict) for x in _listed(item.get(name))]
        found.append((len(values), sum(value is None for value in values)))
    return tuple(found)


def _listed(value: Any) -> list[Any]:
    return [] if value is None else value if isinstance(value, list) else [value]


_DATATYPES: dict[tuple[str, str], bool] = {}


def _datatype(defs: Definitions, kind: str) -> bool:
    """Whether ``kind`` is a datatype (small enough for its whole value to be a key), not a resource."""
    cached = (defs.version, kind)
    if cached not in _DATATYPES:
        _DATATYPES[cached] = defs.types.get(kind, {}).get("kind") == "complex-type"
    return _DATATYPES[cached]


class _TooBig(Exception):
    pass


_TOO_BIG = ("too big",)


def frozen(value: Any) -> Any:
    """A hashable copy of a small JSON value (types kept: ``1`` is not ``1.0``), or :data:`_TOO_BIG`."""
    budget = [_FROZEN_LIMIT]

    def freeze(item: Any) -> Any:
        budget[0] -= len(item) if isinstance(item, dict | list) else 1
        if budget[0] < 0:
            raise _TooBig
        if isinstance(item, dict):
            return ("{", *((key, freeze(inner)) for key, inner in item.items()))
        if isinstance(item, list):
            return ("[", *(freeze(inner) for inner in item))
        return (type(item).__name__, str(item) if isinstance(item, Decimal) else item)

    try:
        return freeze(value)
    except _TooBig:
        return _TOO_BIG


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


def _string_tests(text: str, name: str) -> tuple[tuple[str, str], ...] | None:
    """The string tests on ``name`` when every use of it (in the text, literals included) is
    ``name.startsWith('x')``, ``.endsWith('x')`` or ``.contains('x')`` (no escapes), else None."""
    tests = []
    for match in re.finditer(rf"(?<![.\w@]){re.escape(name)}(?!\w)", text):
        found = _TEST.match(text, match.end())
        if not found:
            return None
        tests.append((found.group(1), found.group(2)))
    return tuple(dict.fromkeys(tests)) or None


def _existence_chains(plain: str, name: str) -> tuple[tuple[str, ...], ...] | None:
    """The member chains after each top-level use of ``name`` when every use is
    ``name.a.b.exists()`` (or ``empty()``, ``count()``), else None."""
    chains = []
    for match in re.finditer(rf"(?<![.\w@]){re.escape(name)}(?!\w)", plain):
        found = _CHAIN.match(plain, match.end())
        if not found:
            return None
        chains.append(tuple(step for step in found.group(1).split(".") if step))
    return tuple(dict.fromkeys(chains)) or None


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
