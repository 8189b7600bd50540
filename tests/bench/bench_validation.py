"""Validation throughput per payload type against the bare library, in one run.

    python tests/bench/bench_validation.py

Ratios are meshbridge time / library time for FHIR and XML (goal: at most 1.10, i.e. within
10% of fhir.resources / lxml) and pydifact time / meshbridge time for EDIFACT (goal: at least 5).
Medians of repeated timings; the machine is shared, so read ratios, not absolute times.

Then the FHIR checks beyond the models (issue 17): their cost against the models' parse on ~5 KB
and ~100 KB Bundles, and the STU3 XSD first-pass experiment when the npm fhir@3.3.1 tarball is in
``$MESHBRIDGE_FHIR_CACHE`` (see validation_fhir_checks.py).
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import validation_edifact
import validation_fhir_checks
import validation_fhir_xml


def main() -> int:
    print(f"validation bench: {os.cpu_count()} cores, Python {platform.python_version()}")
    ok = True
    print(f"{'payload':58} {'meshbridge':>11} {'library':>11} {'ratio':>7}  goal")
    for label, ours, theirs in validation_fhir_xml.run():
        ratio = ours / theirs
        ok &= ratio <= 1.10
        verdict = "met" if ratio <= 1.10 else "MISSED"
        print(f"{label[:58]:58} {ours * 1e3:9.3f}ms {theirs * 1e3:9.3f}ms {ratio:7.2f}  <= 1.10 {verdict}")
    for label, ours, theirs in validation_edifact.run():
        speedup = theirs / ours
        ok &= speedup >= 5
        verdict = "met" if speedup >= 5 else "MISSED"
        print(f"{label[:58]:58} {ours * 1e3:9.3f}ms {theirs * 1e3:9.3f}ms {speedup:6.1f}x  >= 5x pydifact {verdict}")
    cache = os.environ.get("MESHBRIDGE_FHIR_CACHE")
    ok &= validation_fhir_checks.run(15, Path(cache) if cache else None)
    print("all goals met" if ok else "some goals MISSED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
