"""Hostile FHIR payloads against the checks beyond the models: patterns that backtrack, work that
grows with the square of the payload, answers cached across payloads."""

from __future__ import annotations

import itertools
import json
import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from meshbridge.payloads import fhir, fhir_references
from meshbridge.payloads.base import ValidationResult
from meshbridge.payloads.fhir_definitions import SAFE_PATTERNS, VERSIONS, definitions
from meshbridge.payloads.fhir_walk import Item


def _finished(data: bytes, version: str) -> ValidationResult:
    """validate() in a thread; a guard against a hang (exponential backtracking never ends in any
    useful time), not a speed check: the payload takes well under a second when it is fixed."""
    out: list[ValidationResult] = []
    worker = threading.Thread(target=lambda: out.append(fhir.validate(data, {"fhir_version": version})), daemon=True)
    worker.start()
    worker.join(120)
    assert out, "validate() did not return: the pattern backtracks exponentially"
    return out[0]


def test_a_base64_value_that_backtracks_is_refused_not_a_hang() -> None:
    """R4's official base64Binary pattern ``(\\s*([0-9a-zA-Z\\+/=]){4}\\s*)+`` doubles its time with
    each ``"AAAA  "`` before a character that does not match; the models let the value through."""
    binary = {"resourceType": "Binary", "id": "b", "contentType": "text/plain", "data": "AAAA  " * 60 + "!"}
    result = _finished(json.dumps(binary).encode(), "R4")
    assert [(f.code, f.where) for f in result.findings] == [("fhir.type", "Binary.data")]


@pytest.mark.parametrize(("official", "safe"), SAFE_PATTERNS.items())
def test_safe_patterns_match_what_the_official_ones_match(official: str, safe: str) -> None:
    alphabet = "A= \t!" if "{4}" in official else "a \t"
    old, new = re.compile(official), re.compile(safe)
    for size in range(9):
        for text in map("".join, itertools.product(alphabet, repeat=size)):
            assert bool(old.fullmatch(text)) == bool(new.fullmatch(text)), repr(text)


def test_the_shipped_tables_use_the_safe_patterns() -> None:
    used = {definitions(v).primitives[name].get("regex") for v in VERSIONS for name in definitions(v).primitives}
    assert set(SAFE_PATTERNS) <= used  # each rewrite names a pattern that ships
    for version in VERSIONS:
        tables = definitions(version)
        for name, primitive in tables.primitives.items():
            compiled = tables.pattern(name)
            if primitive.get("regex") in SAFE_PATTERNS:
                assert compiled is not None and compiled.pattern == SAFE_PATTERNS[primitive["regex"]]


class _Counting:
    """The Bundles' paths, counting every one looked at."""

    def __init__(self, paths: list[str]) -> None:
        self.paths, self.touched = set(paths), 0

    def __contains__(self, path: object) -> bool:
        self.touched += 1
        return path in self.paths

    def __iter__(self) -> Iterator[str]:
        for path in self.paths:
            self.touched += 1
            yield path

    def __len__(self) -> int:
        return len(self.paths)


def test_the_bundle_holding_a_reference_is_looked_up_not_searched() -> None:
    """A Bundle of 2,000 Bundles each with a reference: finding each reference's Bundle went
    through every Bundle (8,000 nested Bundles took 8 s in the reference check alone)."""
    paths = ["Bundle", *(f"Bundle.entry[{i}].resource" for i in range(2000))]
    bundles = _Counting(paths)
    where = "Bundle.entry[1500].resource.entry[7].resource.subject"
    item = Item({}, "Reference", "Basic.subject", "Reference", where, {}, {})
    assert fhir_references._entry_of(item, bundles) == ("Bundle.entry[1500].resource", 7)
    assert bundles.touched <= 3
    outer = Item({}, "Reference", "x", "Reference", "Bundle.entry[3].resource.subject", {}, {})
    assert fhir_references._entry_of(outer, bundles) == ("Bundle", 3)


def _nested(count: int) -> dict[str, Any]:
    entries = []
    for i in range(count):
        inner = {"resourceType": "Basic", "id": "p", "code": {"text": "x"}, "subject": {"reference": "Basic/nope"}}
        one = {"resourceType": "Bundle", "id": f"b{i}", "type": "message", "entry": [{"resource": inner}]}
        entries.append({"fullUrl": f"urn:uuid:{i:08d}-1111-4222-8333-444444444444", "resource": one})
    return {"resourceType": "Bundle", "id": "b", "type": "collection", "entry": entries}


def test_each_nested_bundle_resolves_its_own_references() -> None:
    result = fhir.validate(json.dumps(_nested(30)).encode(), {"fhir_version": "R4"})
    references = [f.where for f in result.findings if f.code == "fhir.reference"]
    assert references == [f"Bundle.entry[{i}].resource.entry[0].resource.subject" for i in range(30)]


def _range(low: dict[str, Any], high: dict[str, Any]) -> bytes:
    observation = {"resourceType": "Observation", "id": "o", "status": "final", "code": {"text": "x"}}
    return json.dumps({**observation, "valueRange": {"low": low, "high": high}}).encode()


def _quantity(value: int, code: str | None = "mg") -> dict[str, Any]:
    found: dict[str, Any] = {"value": value, "unit": code or "mg"}
    if code:
        found.update(system="http://unitsofmeasure.org", code=code)
    return found


@pytest.mark.parametrize("version", ["STU3", "R4"])
def test_rng_2_a_range_whose_low_is_above_its_high_is_refused(version: str) -> None:
    """fhirpathpy raises on ``low <= high`` for any two Quantities, so rng-2 was never evaluated."""
    result = fhir.validate(_range(_quantity(5), _quantity(2)), {"fhir_version": version})
    assert [(f.code, f.where, f.message[:6]) for f in result.findings] == [
        ("fhir.invariant", "Observation.valueRange", "rng-2:")
    ]
    for low, high in (
        (_quantity(2), _quantity(5)),
        (_quantity(5, "g"), _quantity(2)),
        (_quantity(5, None), _quantity(2, None)),
    ):
        assert fhir.validate(_range(low, high), {"fhir_version": version}).findings == ()  # other units: undecided
