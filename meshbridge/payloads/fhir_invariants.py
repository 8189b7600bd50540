"""The core error-level invariants of the FHIR specification, evaluated with fhirpathpy.

Each constraint of the definitions tables is evaluated where it applies: a resource's own and its
bases' (``dom-*`` for every DomainResource), a backbone element's at each occurrence
(``Bundle.entry``: ``bdl-5``, ``bdl-8``), a datatype's at each instance (``Quantity``: ``qty-3``,
``Reference``: ``ref-1``, ``Extension``: ``ext-1`` ...), and an element's own at each value of the
element (``Organization.telecom``: ``org-3``). A constraint fails only when its expression gives
``false``: an empty result means the expression could not decide (``reference.startsWith('#')``
on a Reference with only an identifier), and reporting it would be a false error.

``ele-1`` ("All FHIR elements must have a @value or children") is checked by a direct walk, not by
FHIRPath per element; so is ``txt-2`` (a narrative with content, :mod:`.fhir_narrative`), whose
``htmlChecks()`` fhirpathpy lacks. Each expression is parsed once per version (:data:`_COMPILED`): parsing is
what costs (about 1.5 ms an expression, seconds per 100 KB without the cache).

What fhirpathpy cannot evaluate is skipped, never reported as an error: :func:`unsupported` lists
it with the reason (a function fhirpathpy lacks, terminology, ``resolve()``, an element context the
walk does not visit). A constraint that raises inside fhirpathpy is skipped on that element and
the reason recorded in :data:`FAILED` (logged once). docs/fhir-invariants.md has the list.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from .base import Finding
from .fhir_definitions import Definitions, definitions
from .fhir_fhirpath import Mode, Part, Plan, key_of, merged, node, operands
from .fhir_rules import Parsed
from .fhir_walk import Item, walk

log = logging.getLogger(__name__)

ELE_1 = "ele-1: All FHIR elements must have a @value or children"

#: Constraints skipped on purpose, per version: key -> reason.
SKIPPED: dict[str, dict[str, str]] = {
    "*": {
        "ele-1": "checked directly by a walk over the payload, not by FHIRPath per element",
        "txt-1": "htmlChecks() (the allowed xhtml elements and attributes) is not a FHIRPath function fhirpathpy has",
        "txt-2": "checked directly (fhir_narrative.py: text that is not whitespace, or an img), not by htmlChecks()",
    },
    "STU3": {
        "cmr-1": "needs resolve() of a reference",
        "ctm-1": "needs resolve() of a reference",
        "mps-1": "needs resolve() of a reference",
        "rfr-1": "needs resolve() of a reference",
        "sdf-19": "applies to StructureDefinitions; hasValue() on a definition's own snapshot",
    },
    "R4": {"ctm-1": "needs resolve() of a reference"},
    "R5": {
        "apd-1": "needs resolve() of a reference",
        "ctm-1": "needs resolve() of a reference",
        "dgr-1": "needs resolve() of a reference",
        "enc-2": "needs resolve() of a reference",
        "obs-9": "needs resolve() of a reference",
        "prc-1": "needs resolve() of a reference",
        "prov-1": "needs resolve() of a reference",
        "prov-2": "needs resolve() of a reference",
        "prov-3": "needs resolve() of a reference",
        "exs-1": "needs terminology (memberOf())",
        "opd-3": "needs terminology (memberOf())",
        "per-1": "lowBoundary()/highBoundary() are not in fhirpathpy",
        "rng-2": "lowBoundary()/highBoundary()/comparable() are not in fhirpathpy",
        "ratrng-2": "lowBoundary()/highBoundary() are not in fhirpathpy",
        "eld-11": "fhirpathpy's parser refuses the expression",
    },
}

_BDL_7_FAST = "(entry.resource.meta.versionId.empty() and entry.fullUrl.isDistinct()) or "
_BDL_7_WHY = (
    "a cheap operand first, exact: with no versionId, fullUrl & versionId is fullUrl, so the entries' "
    "fullUrls being distinct settles it (the original select() over every entry costs milliseconds)"
)
_BDL_7 = {
    "STU3": "entry.where(fullUrl).select(fullUrl&resource.meta.versionId).isDistinct()",
    "R4": "(type = 'history') or entry.where(fullUrl.exists()).select(fullUrl&resource.meta.versionId).isDistinct()",
    "R5": "(type = 'history') or entry.where(fullUrl.exists()).select(fullUrl&iif(resource.meta.versionId.exists(), "
    "resource.meta.versionId, '')).isDistinct()",
}

_BDL_34_WHY = (
    "the same test with the Bundle's type read once, not once per entry (%resource is the Bundle), as "
    "two or-operands: entry.request.empty() on a message or document Bundle is answered from how many "
    "requests there are, without evaluating every entry"
)

_RNG_2 = (
    "(low <= high)",
    "(low.code != high.code) or (low.system != high.system) or (low.value <= high.value)",
    "fhirpathpy raises on every Quantity comparison (so rng-2 was never evaluated): the values are "
    "compared when both bounds have the same code and system; other units stay undecided",
)

#: Expressions changed before evaluation, per version: key -> (old, new, reason).
REWRITES: dict[str, dict[str, tuple[str, str, str]]] = {
    "STU3": {"bdl-7": (_BDL_7["STU3"], _BDL_7_FAST + _BDL_7["STU3"], _BDL_7_WHY), "rng-2": _RNG_2},
    "R5": {"bdl-7": (_BDL_7["R5"], _BDL_7_FAST + _BDL_7["R5"], _BDL_7_WHY)},
    "R4": {
        "bdl-7": (_BDL_7["R4"], _BDL_7_FAST + _BDL_7["R4"], _BDL_7_WHY),
        "rng-2": _RNG_2,
        "dom-3": (
            ".as(",
            ".ofType(",
            "fhirpathpy raises on as() over more than one item; R5 made the same change to dom-3",
        ),
        "bdl-3": (
            "entry.all(request.exists() = (%resource.type = 'batch' or %resource.type = 'transaction' "
            "or %resource.type = 'history'))",
            "(entry.request.empty() and type != 'batch' and type != 'transaction' and type != 'history') or "
            "((type = 'batch' or type = 'transaction' or type = 'history') and entry.all(request.exists()))",
            _BDL_34_WHY,
        ),
        "bdl-4": (
            "entry.all(response.exists() = (%resource.type = 'batch-response' or %resource.type = "
            "'transaction-response' or %resource.type = 'history'))",
            "(entry.response.empty() and type != 'batch-response' and type != 'transaction-response' and "
            "type != 'history') or ((type = 'batch-response' or type = 'transaction-response' or "
            "type = 'history') and entry.all(response.exists()))",
            _BDL_34_WHY,
        ),
    },
}

#: Constraints that raised inside fhirpathpy: (version, key) -> the first reason (that element is skipped).
FAILED: dict[tuple[str, str], str] = {}

_MODELS = {"STU3": "stu3", "R4": "r4", "R5": "r5"}
_COMPILED: dict[tuple[str, str], tuple[str, tuple[Part, ...]] | None] = {}
_Constraint = tuple[str, str, str, tuple[Part, ...]]
#: failed constraint keys per (version, path, element, type, key): see :func:`_failed_at`
_ANSWERS: dict[tuple[Any, ...], frozenset[str]] = {}
_ANSWERS_LIMIT = 8192


def check(parsed: Parsed) -> list[Finding]:
    """A finding per failed invariant, ``where`` being the element it failed on."""
    if parsed.resource is None or parsed.version not in _MODELS:
        return []
    version = parsed.version
    defs = definitions(version)
    findings: list[Finding] = []
    for item in walk(parsed.resource, defs):
        if item.extended or len(item.value) < 2:
            findings += _empty(item)
        if item.type == "Narrative":
            findings += _narrative(item)
        constraints, plan = _grouped(version, item.path, item.element, item.type)
        failed = _failed_at(version, constraints, plan, item, defs) if plan is not None else None
        for key, human, kind, parts in constraints:
            broken = key in failed if failed is not None else not _holds(version, key, kind, parts, item, defs)
            if broken:
                findings.append(Finding(f"{key}: {human}", item.where, code="fhir.invariant"))
    return findings


def _failed_at(
    version: str, constraints: tuple[_Constraint, ...], plan: Plan, item: Item, defs: Definitions
) -> frozenset[str] | None:
    """The keys of the failed constraints at ``item``, for a node whose constraints all read only
    the element's named children: one answer per path and key (None: evaluate one by one)."""
    key = key_of(item.value, plan)
    if key is None:
        return None
    cached = (version, item.path, item.element, item.type, key)
    failed = _ANSWERS.get(cached)
    if failed is None:
        failed = frozenset(c[0] for c in constraints if not _holds(version, c[0], c[2], c[3], item, defs))
        if len(_ANSWERS) > _ANSWERS_LIMIT:
            _ANSWERS.clear()
        _ANSWERS[cached] = failed
    return failed


@functools.cache
def _grouped(version: str, path: str, element: str | None, kind: str) -> tuple[tuple[_Constraint, ...], Plan | None]:
    """The constraints at a node and, when every one reads only the element's named children (or
    is ``X.where(...).empty()``-like), what their answers together depend on: the union of their
    parts' plans (:func:`.fhir_fhirpath.merged`)."""
    constraints = _constraints(version, path, element, kind)
    if not constraints or any(part.names is None and part.head is None for c in constraints for part in c[3]):
        return constraints, None
    defs = definitions(version)
    names: dict[str, Mode] = {}
    for constraint in constraints:
        for part in constraint[3]:
            for json_name, mode in part.plan(defs, path).items():
                names[json_name] = merged(names.get(json_name, mode), mode)
    return constraints, names


def unsupported(version: str) -> dict[str, str]:
    """Every constraint of ``version`` that is not evaluated with FHIRPath, with the reason."""
    defs = definitions(version)
    found = {**SKIPPED["*"], **SKIPPED.get(version, {})}
    for path, entry in defs.elements.items():
        if "." in path and not _complex_context(defs, entry):
            for constraint in entry.get("constraints", ()):
                found.setdefault(
                    constraint["key"], f"on a primitive element ({path}): the walk visits complex elements"
                )
    found.update({key: reason for (v, key), reason in FAILED.items() if v == version})
    return found


def _complex_context(defs: Definitions, entry: dict[str, Any]) -> bool:
    if "children" in entry or "ref" in entry:
        return True
    return any(defs.types.get(t, {}).get("kind") not in ("primitive-type", None) for t in entry.get("types", ()))


def _narrative(item: Item) -> list[Finding]:
    """txt-2: a narrative div with no content (see :mod:`.fhir_narrative`)."""
    from .fhir_narrative import TXT_2, has_content

    div = item.value.get("div")
    if isinstance(div, str) and has_content(div) is False:
        return [Finding(TXT_2, f"{item.where}.div", code="fhir.invariant")]
    return []


def _empty(item: Item) -> list[Finding]:
    """ele-1: a complex element with nothing but an id, or a primitive with neither value nor extension."""
    value = item.value
    found = []
    if item.element is not None and len(value) < 2 and "resourceType" not in value and all(k == "id" for k in value):
        found.append(Finding(ELE_1, item.where, code="fhir.invariant"))
    for key, extra in value.items():
        if key[:1] != "_":
            continue
        name = key[1:]
        if isinstance(extra, list):
            values = value.get(name)
            for i, one in enumerate(extra):
                has_value = isinstance(values, list) and i < len(values) and values[i] is not None
                if isinstance(one, dict) and not has_value and all(k == "id" for k in one):
                    found.append(Finding(ELE_1, f"{item.where}.{name}[{i}]", code="fhir.invariant"))
        elif isinstance(extra, dict) and value.get(name) is None and all(k == "id" for k in extra):
            found.append(Finding(ELE_1, f"{item.where}.{name}", code="fhir.invariant"))
    return found


@functools.cache
def _constraints(version: str, path: str, element: str | None, kind: str) -> tuple[_Constraint, ...]:
    """The evaluable constraints at a node: its path's, its type's bases', its element's own."""
    defs = definitions(version)
    entries = [defs.elements.get(path, {})]
    base = defs.types.get(kind, {}).get("base") if kind == path else None
    while base:
        entries.append(defs.elements.get(base, {}))
        base = defs.types.get(base, {}).get("base")
    if element and element != path:
        entries.append(defs.elements.get(element, {}))
    skipped = {**SKIPPED["*"], **SKIPPED.get(version, {})}
    found: dict[str, _Constraint] = {}
    for entry in entries:
        for constraint in entry.get("constraints", ()):
            key = constraint["key"]
            if key in found or key in skipped:
                continue
            compiled = _compiled(version, key, constraint["expression"])
            if compiled is not None:
                found[key] = (key, constraint["human"], *compiled)
    return tuple(found.values())


def _compiled(version: str, key: str, expression: str) -> tuple[str, tuple[Part, ...]] | None:
    """The parsed operands of the expression, once per version and expression (None if refused)."""
    cached = (version, expression)
    if cached not in _COMPILED:
        import fhirpathpy

        old, new, _ = REWRITES.get(version, {}).get(key, ("", "", ""))
        kind, texts = operands(expression.replace(old, new) if old else expression)
        try:
            parts = tuple(Part(text, fhirpathpy.compile(text, _model(version), _options(text))) for text in texts)
        except Exception as exc:
            _COMPILED[cached] = None
            _failed(version, key, f"fhirpathpy cannot parse it ({type(exc).__name__})")
        else:  # an or's operands that may be answered from the cache first: or does not care about order
            _COMPILED[cached] = (kind, tuple(sorted(parts, key=lambda p: p.names is None)) if kind == "or" else parts)
    return _COMPILED[cached]


def _holds(version: str, key: str, kind: str, parts: tuple[Part, ...], item: Item, defs: Definitions) -> bool:
    """False only when the expression is false (an empty result leaves it undecided: not reported)."""

    def variables() -> dict[str, Any]:
        resource, root = item.resource, item.root
        return {
            "resource": node(resource, resource.get("resourceType")),
            "rootResource": node(root, root.get("resourceType")),
        }

    results: list[bool | None] = []
    for part in parts:
        try:
            result = _truth(part.result(item, defs, variables))
        except Exception as exc:
            _failed(version, key, f"fhirpathpy failed on it ({type(exc).__name__})")  # its text may hold payload values
            return True
        if kind == "or" and result is True:
            return True
        if kind == "implies" and not results and result is False:
            return True  # false implies anything
        results.append(result)
    if kind == "implies":
        return not (results[0] is True and results[1] is False)
    return not all(result is False for result in results)


def _truth(result: list[Any]) -> bool | None:
    """FHIRPath's reading of a collection as a boolean: single true/false, single other item true,
    empty (or several items) undecided."""
    if len(result) != 1:
        return None
    return result[0] if isinstance(result[0], bool) else True


def _failed(version: str, key: str, reason: str) -> None:
    if (version, key) not in FAILED:
        FAILED[(version, key)] = reason
        log.warning("FHIR %s invariant %s is not evaluated: %s", version, key, reason)


def _has_value(inputs: list[Any]) -> list[bool]:
    """FHIRPath ``hasValue()``: a single primitive with a value (fhirpathpy does not have it)."""
    values = [x for x in inputs if x is not None and not isinstance(x, dict | list)]
    return [len(values) == 1]


def _quiet(label: str, value: Any) -> None:
    """trace() in an expression: fhirpathpy prints unless given this."""


_OPTIONS = {"userInvocationTable": {"hasValue": {"fn": _has_value, "arity": {0: []}}}, "traceFn": _quiet}


def _options(text: str) -> dict[str, Any] | None:
    """The options an expression needs: fhirpathpy prepares them on every evaluation (about 10
    microseconds), so only an expression with ``hasValue()`` or ``trace()`` gets them."""
    return _OPTIONS if "hasValue(" in text or "trace(" in text else None


@functools.cache
def _model(version: str) -> dict[str, Any]:
    from fhirpathpy.models import models

    return dict(models[_MODELS[version]])
