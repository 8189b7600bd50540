"""Timings the tests no longer assert: hostile payloads against a well-formed one of their size, and the demo.

Run from the project root with the dev venv active::

    python tests/bench/bench_timings.py [--repeat 5] [--demo-runs 3]

1. Hostile input (the cases of ``test_edifact.py``, ``test_xml.py`` and ``test_validation.py``): the
   median time of ``--repeat`` validations of each, and of a well-formed payload of the same type
   and about the same size in the same run (the baseline), with their ratio. Goal: each hostile
   input refused within 1 s (once asserted by the tests) and within 10 x its baseline.
2. ``meshbridge demo``: its wall time, ``--demo-runs`` times, and the median. Goal: under a minute.
   ``--demo-runs 0`` skips it.

The machine may be shared: read ratios and medians, not single times. The exit status is non-zero
only if a check fails (a hostile input accepted, the demo failing), not for a missed goal.
Not part of the pytest run (``tests/bench`` is in ``norecursedirs``).
"""

from __future__ import annotations

import argparse
import functools
import gzip
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from validation_edifact import synthetic

from meshbridge.payloads import edifact, xml
from meshbridge.payloads.base import ValidationResult
from meshbridge.plugins import Plugins
from meshbridge.validation import check

LIMIT = 1.0  # seconds: the bound the tests used to assert for each hostile input
RATIO = 10.0  # hostile / well-formed of the same size
DEMO_GOAL = 60.0

# label, validator, hostile input, well-formed baseline, whether the tests expect it refused
Case = tuple[str, Callable[[bytes], ValidationResult], bytes, bytes, bool]


def edifact_cases() -> list[Case]:
    unb = "UNB+UNOA:2+SENDER:ZZ+RECIPIENT:ZZ+200101:1200+REF1'"

    def interchange(*segments: str) -> bytes:
        return "".join(f"{s}'\n" for s in segments).encode("latin-1")

    body = [f"FTX+AAI+++LINE ?'{i}" for i in range(100_000)]
    segments = [unb[:-1], "UNH+1+FHSREG:0:1:FH:FHS001", *body, "UNT+100002+1", "UNZ+1+REF1"]
    many = interchange(*segments)
    messages = [f"UNH+{i}+A:1:1:UN'UNT+2+{i}" for i in range(30_000)]
    rng = random.Random(2026)
    hostile = [
        ("100k segments (valid)", many),
        ("30k messages (valid)", interchange(unb[:-1], *messages, "UNZ+30000+REF1")),
        ("1 MiB of terminators, no UNB", b"'" * (1 << 20)),
        ("UNB + 1 MiB of terminators", unb.encode() + b"'" * (1 << 20)),
        ("UNB + 1 MiB of release characters", unb.encode() + b"?" * (1 << 20)),
        ("100k segments, UNT count wrong", many.replace(b"UNT+100002+1", b"UNT+100001+1")),
        ("1 MiB of random bytes", rng.randbytes(1 << 20)),
        ("UNB + 1 MiB of random bytes", unb.encode() + rng.randbytes(1 << 20)),
    ]

    def validate(data: bytes) -> ValidationResult:
        return edifact.validate(data, {})

    return [
        (f"edifact: {label}", validate, data, _edifact_like(len(data)), "(valid)" not in label)
        for label, data in hostile
    ]


def _edifact_like(size: int) -> bytes:
    """A well-formed interchange of about ``size`` bytes (100-segment messages of ~4.4 KiB)."""
    return synthetic(messages=max(1, round(size / 4500)))


def xml_cases() -> list[Case]:
    url = b"file:///nonexistent/secret.txt"
    lolz = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        + b"".join(
            b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10) for i in range(1, 10)
        )
        + b"]><lolz>&lol9;</lolz>"
    )
    hostile = [
        ("XXE, external entity", b'<!DOCTYPE r [<!ENTITY x SYSTEM "' + url + b'">]>\n<r>&x;</r>'),
        ("billion laughs", lolz),
        ("quadratic blow-up", b'<!DOCTYPE r [<!ENTITY a "' + b"x" * 50_000 + b'">]><r>' + b"&a;" * 50_000 + b"</r>"),
        ("300-deep nesting", b"<a>" * 300 + b"</a>" * 300),
        ("11 MB text node", b"<r>" + b"x" * 11_000_000 + b"</r>"),
        ("DOCTYPE after a 70 KiB comment", b"<!--" + b"x" * 70_000 + b'--><!DOCTYPE r SYSTEM "' + url + b'"><r/>'),
        ("invalid UTF-8", b'<?xml version="1.0" encoding="UTF-8"?><r>caf\xe9 \xff\xfe</r>'),
    ]

    def validate(data: bytes) -> ValidationResult:
        return xml.validate(data, {})

    return [(f"xml: {label}", validate, data, _xml_like(len(data)), True) for label, data in hostile]


def _xml_like(size: int) -> bytes:
    """A well-formed, namespaced document of about ``size`` bytes (elements of short text)."""
    element = b"<e>some ordinary text</e>\n"
    return b'<r xmlns="urn:bench">' + element * max(1, size // len(element)) + b"</r>"


def gzip_cases() -> list[Case]:
    plugins = Plugins()
    cap = 10_000_000

    def validate(data: bytes) -> ValidationResult:
        return check(plugins, data, payload_type="text", options={"max_size": cap})

    bomb = gzip.compress(b"\0" * 1_000_000_000, compresslevel=9)  # ~1 MB that inflates to 1 GB
    text = gzip.compress(b"plain words on a line\n" * (cap // 23), compresslevel=9)  # just under the cap
    return [("gzip bomb (1 GB inflated) vs gzip text at the cap", validate, bomb, text, True)]


def hl7v2_cases() -> list[Case]:
    """The hostile inputs of the HL7 v2 plugin's tests, when the plugin is installed."""
    try:
        import meshbridge_hl7v2
    except ImportError:
        return []
    mib = 1 << 20
    header = b"MSH|^~\\&|LAB|RAD|EPR|TRUST|20260101120000||ORU^R01|MSG1|P|2.4\r"
    rng = random.Random(2027)
    hostile = [
        ("random", rng.randbytes(mib)),
        ("1 MiB with no terminator", header.rstrip(b"\r") + b"A" * mib),
        ("1 MiB of separators", b"MSH|" + b"|" * mib),
        ("1 MiB of LFCR", header + b"\n\r" * (mib // 2)),
        ("262144 segments", header + b"PID\r" * (mib // 4)),
        ("1 MiB not UTF-8", header + b"PID|" + b"\xff" * mib),
    ]

    def validate(data: bytes) -> ValidationResult:
        meshbridge_hl7v2.sniff(data[: 64 * 1024])
        return meshbridge_hl7v2.validate(data, {})

    def well_formed(size: int) -> bytes:
        return header + b"OBX|1|ST|CODE||some ordinary value\r" * max(1, size // 36)

    return [
        (f"hl7v2: {label}", validate, data, well_formed(len(data)), label != "262144 segments")
        for label, data in hostile
    ]


def median(fn: Callable[[], object], repeat: int) -> float:
    """Median seconds per call over ``repeat`` batches, each batch sized to take at least ~5 ms."""
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


def hostile(repeat: int) -> bool:
    """Print one row per hostile input; False if one got another verdict than the tests expect."""
    ok = goals = True
    print(f"{'hostile or heavy input':56} {'size':>9} {'hostile':>11} {'well-formed':>11} {'ratio':>7}  goal")
    for label, validate, data, baseline, refused in [*edifact_cases(), *xml_cases(), *gzip_cases(), *hl7v2_cases()]:
        if validate(data).valid is refused or not validate(baseline).valid:
            print(f"{label[:56]:56} WRONG VERDICT: the tests expect it {'refused' if refused else 'valid'}")
            ok = False
            continue
        ours = median(functools.partial(validate, data), repeat)
        theirs = median(functools.partial(validate, baseline), repeat)
        ratio = ours / theirs
        met = ours < LIMIT and ratio <= RATIO
        goals &= met
        verdict = "met" if met else "MISSED"
        size = f"{len(data) / 1024:.0f} KiB"
        print(f"{label[:56]:56} {size:>9} {ours * 1e3:9.2f}ms {theirs * 1e3:9.2f}ms {ratio:7.2f}  {verdict}")
    print(f"goal: each under {LIMIT:g} s and <= {RATIO:g}x a well-formed payload of its size: ", end="")
    print("all met" if goals else "some MISSED")
    return ok


def demo(runs: int) -> bool:
    """Run ``meshbridge demo`` ``runs`` times; print each wall time and the median."""
    times = []
    for n in range(1, runs + 1):
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "meshbridge", "demo"], capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        print(f"meshbridge demo run {n}: {times[-1]:6.1f} s (exit {done.returncode})")
        if done.returncode != 0:
            print(done.stdout[-2000:] + done.stderr[-2000:])
            return False
    middle = statistics.median(times)
    verdict = "met" if middle < DEMO_GOAL else "MISSED"
    print(f"meshbridge demo: median {middle:.1f} s over {runs} runs (goal under {DEMO_GOAL:g} s: {verdict})")
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="timings per payload (the median is shown)")
    parser.add_argument("--demo-runs", type=int, default=3, help="runs of `meshbridge demo` (0: skip)")
    args = parser.parse_args()
    print(f"timings bench: {os.cpu_count()} cores, Python {platform.python_version()}")
    ok = hostile(args.repeat)
    if args.demo_runs:
        print()
        ok &= demo(args.demo_runs)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
