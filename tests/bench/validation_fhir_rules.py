"""The FHIR checks beyond the models (invariants, references, XML->JSON conversion) against
fhir.resources' own parse of the same payload, on ~5 KB and ~100 KB message Bundles.

    python tests/bench/validation_fhir_rules.py

Goal (issue 17): the added checks cost at most what fhir.resources' parse costs (ratio <= 1.0).
The parse is ``model_validate`` of the parsed JSON, or fhir-core's XML build that meshbridge runs.
Medians of repeated timings; the machine is shared, so read ratios, not absolute times.
"""

from __future__ import annotations

import copy
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parents[1]))

from fhir_bundles import bundle, to_json, to_xml

from meshbridge.payloads import fhir_invariants, fhir_references, fhir_rules, fhir_walk, xml
from meshbridge.payloads.fhir_models import VERSIONS, models
from meshbridge.payloads.fhir_xml_json import to_json as xml_to_json


def sized(version: str, target: int) -> dict[str, Any]:
    """The test Bundle grown with Observations (each with an extension, a period, a quantity,
    references to the Patient) until its JSON is about ``target`` bytes."""
    document = bundle(version)
    template = document["entry"][3]
    n = 0
    while len(to_json(document)) < target:
        n += 1
        entry = copy.deepcopy(template)
        uuid = f"{n:08x}-2222-4333-8444-555555555555"
        entry["fullUrl"], entry["resource"]["id"] = f"urn:uuid:{uuid}", uuid
        entry["resource"]["performer"] = [{"reference": document["entry"][2]["fullUrl"]}]
        document["entry"].append(entry)
    return document


def median(fn: Callable[[], Any], runs: int = 9) -> float:
    fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def checks(parsed: fhir_rules.Parsed) -> None:
    if parsed.format == "xml":
        parsed = fhir_rules.Parsed(parsed.version, "xml", xml_to_json(parsed.root, parsed.version), parsed.root)
    with fhir_walk.shared():
        assert not fhir_invariants.check(parsed) and not fhir_references.check(parsed)


def run() -> Iterator[tuple[str, float, float]]:
    """(label, added checks' seconds, fhir.resources' parse seconds) per payload."""
    for version in ("STU3", "R4"):
        for target in (5_000, 100_000):
            yield from _rows(version, sized(version, target))


def _rows(version: str, document: dict[str, Any]) -> Iterator[tuple[str, float, float]]:
    from fhir_core.xml_utils import Node

    cls = models(VERSIONS[version][1]).get_fhir_model_class("Bundle")
    data = to_json(document)
    obj = json.loads(data, parse_float=Decimal)
    parsed = fhir_rules.Parsed(version, "json", resource=obj)
    label = f"FHIR {version} JSON Bundle {len(data) // 1024} KB: invariants + references"
    yield label, median(lambda: checks(parsed)), median(lambda: cls.model_validate(obj))
    data = to_xml(document, version)
    root = xml.parse(data, strip_comments=True)
    tree = fhir_rules.Parsed(version, "xml", root=root)
    label = f"FHIR {version} XML Bundle {len(data) // 1024} KB: conversion + invariants + references"
    yield label, median(lambda: checks(tree)), median(lambda: Node.from_element(root, fhir_class=cls).to_fhir(cls))


def main() -> int:
    print(f"{'payload':72} {'checks':>10} {'parse':>10} {'ratio':>6}")
    for label, ours, theirs in run():
        print(f"{label:72} {ours * 1e3:8.2f}ms {theirs * 1e3:8.2f}ms {ours / theirs:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
