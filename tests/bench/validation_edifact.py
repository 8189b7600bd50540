"""EDIFACT validation benchmark: meshbridge's envelope validator against pydifact's parser.

Run from the project root with the dev venv active (pydifact comes with the ``dev`` extra)::

    python tests/bench/validation_edifact.py [--repeat 5]

Rows: (a) a synthetic interchange of 10,000 segments (UNA + UNB + 100 messages x 100 segments with
release characters, about 440 KiB) and (b) each real fixture in ``../shared/fixtures/payloads/edifact``
(skipped when that folder is absent). meshbridge runs ``validate(data, {})``; the baseline runs
``pydifact.segmentcollection.Interchange.from_str`` plus ``list(get_messages())`` on the decoded text -
a parse only, as pydifact's own validation is a no-op. Each time is the median of ``repeat`` runs of a
batch sized to take a few milliseconds, divided by the batch size. Goal: pydifact / meshbridge >= 5.
Not part of the pytest run (``tests/bench`` is in ``norecursedirs``).
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path

from meshbridge.payloads.edifact import validate

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "payloads" / "edifact"
GOAL = 5.0


def synthetic(messages: int = 100, per_message: int = 100) -> bytes:
    """UNA + UNB + ``messages`` x ``per_message`` segments (UNH and UNT included) + UNZ."""
    parts = ["UNA:+.? '", "UNB+UNOC:3+000000004400001:80+000000024600002:80+250101:1200+REF0001++MEDRPT++1'\n"]
    for m in range(1, messages + 1):
        parts.append(f"UNH+{m}+MEDRPT:0:1:RT:NHS003'\n")
        parts.extend(f"FTX+RPD+++ST JAMES?'S {m:03d}-{i:02d}?: RATE 1??2 ?+5'\n" for i in range(per_message - 2))
        parts.append(f"UNT+{per_message}+{m}'\n")
    parts.append(f"UNZ+{messages}+REF0001'\n")
    return "".join(parts).encode("latin-1")


def _median(fn: Callable[[], object], repeat: int) -> float:
    """Median seconds per call of ``fn`` over ``repeat`` batches (each batch at least ~5 ms)."""
    start = time.perf_counter()
    fn()
    batch = max(1, int(0.005 / max(time.perf_counter() - start, 1e-7)))
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(batch):
            fn()
        times.append((time.perf_counter() - start) / batch)
    return statistics.median(times)


def _pydifact(data: bytes) -> Callable[[], object]:
    from pydifact.segmentcollection import Interchange

    def parse() -> object:
        return list(Interchange.from_str(data.decode("latin-1")).get_messages())

    return parse


def run(repeat: int = 5) -> list[tuple[str, float, float]]:
    """``(label, meshbridge_median_seconds, pydifact_median_seconds)`` per payload."""
    from pydifact.exceptions import MissingImplementationWarning

    payloads = [(f"synthetic 10,000 segments ({len(data) / 1024:.0f} KiB)", data) for data in [synthetic()]]
    if FIXTURES.is_dir():
        payloads += [(path.name, path.read_bytes()) for path in sorted(FIXTURES.iterdir()) if path.is_file()]
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingImplementationWarning)
        for label, data in payloads:
            ours = _median(lambda data=data: validate(data, {}), repeat)
            try:
                theirs = _median(_pydifact(data), repeat)
            except Exception:  # pydifact refused the file: no baseline for it
                theirs = float("nan")
            rows.append((label, ours, theirs))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if not FIXTURES.is_dir():
        print(f"note: {FIXTURES} not present; synthetic payload only")
    rows = run(args.repeat)
    width = max(len(label) for label, _, _ in rows)
    print(f"{'payload':<{width}}  {'meshbridge':>12}  {'pydifact':>12}  {'pydifact/meshbridge':>20}")
    for label, ours, theirs in rows:
        print(f"{label:<{width}}  {ours * 1000:>9.3f} ms  {theirs * 1000:>9.3f} ms  {theirs / ours:>19.1f}x")
    ratio = rows[0][2] / rows[0][1]
    verdict = "met" if ratio >= GOAL else "MISSED"
    print(f"\nsynthetic interchange: pydifact / meshbridge = {ratio:.1f}x (goal >= {GOAL:.0f}x: {verdict})")


if __name__ == "__main__":
    main()
