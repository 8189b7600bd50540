"""The FHIR corpus (issue 17, point 7): each one-defect variant gives exactly its one finding.

Under ``fhir_strictness = "hl7"`` the finding is an error; under ``"structure"`` the findings of the
checks beyond the models become warnings (the payload passes) while what the models refuse stays an
error. The baselines give no finding at all. ``python tests/fhir_corpus.py`` prints the catch count.
"""

from __future__ import annotations

from collections import Counter

import pytest
from fhir_corpus import Case, baselines, cases, gives_exactly

from meshbridge.payloads import fhir
from meshbridge.payloads.base import WARNING, ValidationResult

# cases the checks do not catch yet, with the reason and the module responsible; strict: a case
# that starts giving its finding fails here until it is taken off this list
KNOWN_MISSES: dict[str, str] = {}
CASES = cases()
BASELINES = list(baselines())
PARAMS = [
    pytest.param(case, id=case.name, marks=[pytest.mark.xfail(reason=KNOWN_MISSES[case.name], strict=True)])
    if case.name in KNOWN_MISSES
    else pytest.param(case, id=case.name)
    for case in CASES
]


def validated(data: bytes, version: str, strictness: str) -> ValidationResult:
    return fhir.validate(data, {"fhir_version": version, "fhir_strictness": strictness})


def test_the_corpus_covers_every_kind_in_both_versions_and_formats() -> None:
    kinds = Counter(case.kind for case in CASES)
    assert len(CASES) >= 100
    assert set(kinds) == {
        "required binding",
        "core invariant",
        "reference in the Bundle",
        "XML/JSON strictness",
        "cardinality, unknown elements, primitive formats",
    }
    assert {(case.version, case.format) for case in CASES} == {(v, f) for v in ("STU3", "R4") for f in ("json", "xml")}
    assert len({case.name for case in CASES}) == len(CASES)
    assert set(KNOWN_MISSES) <= {case.name for case in CASES}


@pytest.mark.parametrize(("version", "fmt", "data"), BASELINES, ids=[f"{v}-{f}" for v, f, _ in BASELINES])
@pytest.mark.parametrize("strictness", ["hl7", "structure"])
def test_baseline_is_clean(version: str, fmt: str, data: bytes, strictness: str) -> None:
    result = validated(data, version, strictness)
    assert result.details["format"] == fmt
    assert 4_000 < len(data) < 10_000
    assert result.findings == (), [str(f) for f in result.findings]


@pytest.mark.parametrize("case", PARAMS)
def test_defect_gives_exactly_its_finding(case: Case) -> None:
    result = validated(case.data, case.version, "hl7")
    got = [(f.code, f.where, f.message) for f in result.findings]
    assert gives_exactly(case, list(result.findings)), f"expected {case.code} at {case.where}, got {got}"
    assert not result.valid


@pytest.mark.parametrize("case", PARAMS)
def test_structure_strictness_keeps_only_model_errors(case: Case) -> None:
    result = validated(case.data, case.version, "structure")
    assert gives_exactly(case, list(result.findings)), [str(f) for f in result.findings]
    if case.model_level:
        assert not result.valid
    else:
        assert result.valid
        assert [f.severity for f in result.findings] == [WARNING]
