"""One FHIRPath constraint, parsed once, evaluated by fhirpathpy only when its answer is not known.

Evaluating a constraint costs 50-150 microseconds in fhirpathpy; a 100 KB Bundle has thousands of
places where a constraint applies. Two things, both exact, keep the count down:

* a top-level ``a or b or c`` is evaluated part by part, stopping at the first ``true`` (``ref-1``'s
  ``reference.startsWith('#').not()`` settles it for every reference that is not local);
* an expression that reads the element only through its own children (no ``%resource``,
  ``descendants()``, ``$this``, function call on the element itself ...) gives the same answer for
  two elements that agree on the children it names. Those it only tests with ``exists()``,
  ``empty()`` or ``count()`` are compared by count, the others by value when the value is a
  primitive. The answer is kept per constraint and element path under that key: ``ext-1`` on a
  thousand extensions is two evaluations (with value, with extensions).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from .fhir_definitions import Definitions

_STRING = re.compile(r"'(?:[^'\\]|\\.)*'")
_OPAQUE = re.compile(r"children\(|descendants\(|repeat\(|[$%`]|resolve\(|(?<![.\w])[A-Za-z]\w*\(")
_ROOT_NAME = re.compile(r"(?<![.\w@])([A-Za-z_]\w*)(?!\w|\s*\()")
_KEYWORDS = frozenset({"and", "or", "xor", "implies", "is", "as", "in", "contains", "div", "mod", "true", "false"})
_EXISTENCE = re.compile(r"\.(?:exists|empty|count)\(\)")
_CACHE_LIMIT = 4096
_PRIMITIVES = (str, int, float, bool, Decimal)
_Key = tuple[Any, ...]


def split_or(text: str) -> list[str]:
    """The top-level operands of ``a or b or c``: the expression itself when it has no top-level
    ``or``, or also a top-level ``xor`` or ``implies`` (which bind as loosely or looser)."""
    masked = _STRING.sub(lambda m: "x" * len(m.group()), text)
    parts, depth, start = [], 0, 0
    for i, char in enumerate(masked):
        depth += (char == "(") - (char == ")")
        if depth == 0 and (masked.startswith(" xor ", i) or masked.startswith(" implies ", i)):
            return [text]
        if depth == 0 and masked.startswith(" or ", i):
            parts.append(text[start:i].strip())
            start = i + 4
    parts.append(text[start:].strip())
    return parts


class Part:
    """One operand: fhirpathpy's compiled function plus what its answer depends on."""

    def __init__(self, text: str, evaluate: Callable[..., Any]) -> None:
        self.evaluate = evaluate
        plain = _STRING.sub("''", text)
        self.names: tuple[str, ...] | None = None  # None: reads more than the element's children
        self.counted: frozenset[str] = frozenset()
        self.answers: dict[tuple[str, _Key], Any] = {}
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
        if self.names is None:
            return None
        value = item.value
        key: list[Any] = []
        for name in self.names:
            for json_name in _json_names(defs, item.path, name):
                content = value.get(json_name)
                if name in self.counted:
                    key.append(0 if content is None else len(content) if isinstance(content, list) else 1)
                elif content is None or isinstance(content, _PRIMITIVES):
                    key.append((type(content).__name__, content))
                else:
                    return None
        return tuple(key)


def node(data: dict[str, Any], path: str | None) -> Any:
    """fhirpathpy's node for ``data``, typed as the element of ``path`` (for choice types and ``as()``)."""
    from fhirpathpy.engine.nodes import ResourceNode

    create: Callable[..., Any] = ResourceNode.create_node
    return create(data, path)


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
