"""The FHIR checks beyond the models (issue 17, point 6): what they add to fhir.resources' parse.

    python tests/bench/validation_fhir_checks.py [--repeat 15] [--fhir-cache DIR]

Bundles: the corpus' valid message Bundle (tests/fhir_corpus.py, about 7 KB) and the same grown to
about 100 KB with more Observations, as STU3 JSON, STU3 XML and R4 JSON. For each: the models' parse
as meshbridge runs it (``fhir_json.validate_json`` / ``fhir_xml.validate_xml``: JSON with Decimals
or the hardened XML parse, then the fhir.resources models), then each added check on its own
(structure and bindings, invariants, references; for XML the invariants and references read the
FHIR-JSON shape, converted from the tree once: ``xml->json`` is that conversion, timed apart) and
all of them as a payload gets them (``fhir_rules.check``: conversion included, one walk shared by
the invariants and the references).
Medians of ``repeat`` timings, taken in turns (parse, each check, total, then again) so that a busy
spell of the shared machine slows them alike. Goal: added / parse <= 1. ``references`` alone walks
the payload itself; in ``total`` the invariants' walk is shared, so total is less than the sum.
Repeating one payload lets the answers kept across payloads hit every time, so ``fresh`` also
times parse and checks on payloads never seen before (every uuid new, as in a stream of messages).

With the STU3 XSDs (``--fhir-cache`` or ``$MESHBRIDGE_FHIR_CACHE``: the directory holding
``fhir-3.3.1.tgz``), the XSD first-pass experiment: the official ``fhir-single.xsd`` through
lxml's ``XMLSchema`` (no network) against the models' XML path, and which STU3 XML corpus defects
the XSD catches. Without the file that part is skipped.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import statistics
import sys
import tarfile
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import fhir_corpus  # noqa: E402
from lxml import etree  # noqa: E402

from meshbridge.payloads import fhir_json, fhir_rules, fhir_xml  # noqa: E402
from meshbridge.payloads.fhir_models import VERSIONS, models  # noqa: E402

ROWS = (("STU3", "json"), ("STU3", "xml"), ("R4", "json"))
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def grown(version: str, target: int = 100_000) -> dict[str, Any]:
    """The baseline Bundle with Observations added (new fullUrls, each listed in the section)."""
    bundle = fhir_corpus.baseline(version)
    template = bundle["entry"][fhir_corpus.OBSERVATION]
    section = bundle["entry"][fhir_corpus.COMPOSITION]["resource"]["section"][0]
    n = 0
    while len(fhir_corpus.to_json(bundle)) < target:
        n += 1
        entry = copy.deepcopy(template)
        url = f"urn:uuid:5e0c1a2b-0000-4000-8000-{n:012d}"
        entry["fullUrl"] = url
        entry["resource"]["id"] = f"obs-{n + 1}"
        entry["resource"]["valueQuantity"]["value"] = 60 + n % 30
        bundle["entry"].append(entry)
        section["entry"].append({"reference": url})
    return bundle


def encoded(document: dict[str, Any], fmt: str) -> bytes:
    return fhir_corpus.to_json(document) if fmt == "json" else fhir_corpus.xml_bytes(fhir_corpus.to_xml(document))


def medians(calls: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    """The median time of each call, timed in turns (one timing of each per round), so that a busy
    spell of a shared machine slows them all rather than one of them."""
    loops = {}
    for name, call in calls.items():
        call()  # warm: imports, compiled expressions, tables
        loops[name] = 1
        while True:  # enough loops that one timing is at least 20 ms
            start = time.perf_counter()
            for _ in range(loops[name]):
                call()
            if time.perf_counter() - start >= 0.02:
                break
            loops[name] *= 2
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeat):
        for name, call in calls.items():
            start = time.perf_counter()
            for _ in range(loops[name]):
                call()
            times[name].append((time.perf_counter() - start) / loops[name])
    return {name: statistics.median(found) for name, found in times.items()}


def _parse(version: str, fmt: str, data: bytes) -> tuple[Callable[[], Any], Callable[[], fhir_rules.Parsed]]:
    """The models' parse as meshbridge runs it, and a maker of a fresh ``Parsed`` of its result."""
    package = VERSIONS[version][1]
    mod = models(package)
    if fmt == "json":

        def parse() -> Any:
            return fhir_json.validate_json(data, mod, version, {})

        found, model, document = parse()
        assert model is not None, found
        return parse, lambda: fhir_rules.Parsed(version, "json", resource=document)

    def parse_xml() -> Any:
        return fhir_xml.validate_xml(data, mod, version, {})

    found, model, root = parse_xml()
    assert model is not None, found
    return parse_xml, lambda: fhir_rules.Parsed(version, "xml", root=root)


def rule_rows(repeat: int) -> Iterator[tuple[str, dict[str, float]]]:
    """``(label, {"parse": s, "structure": s, ..., "total": s})`` for each Bundle."""
    for size, document_of in (("5 KB", fhir_corpus.baseline), ("100 KB", grown)):
        for version, fmt in ROWS:
            document = document_of(version)
            data = encoded(document, fmt)
            row = _row(version, fmt, data, repeat) | _fresh(version, fmt, document, repeat)
            yield f"{version} {fmt} {size} ({len(data) // 1000} KB)", row


def _fresh(version: str, fmt: str, document: dict[str, Any], repeat: int) -> dict[str, float]:
    """The models' parse and all checks on payloads never seen before (every uuid new, as in a
    stream of real messages, where the answers kept across payloads only help with what repeats):
    single timings of each, ``3 * repeat`` payloads."""
    text = json.dumps(document)
    uuids = sorted(set(_UUID.findall(text)))
    parses, totals = [], []
    for _ in range(3 * repeat):
        varied = text
        for old in uuids:
            varied = varied.replace(old, str(uuid.uuid4()))
        parse, parsed = _parse(version, fmt, encoded(json.loads(varied), fmt))
        started = time.perf_counter()
        parse()
        parses.append(time.perf_counter() - started)
        shaped = parsed()
        started = time.perf_counter()
        found = fhir_rules.check(shaped, "hl7")
        totals.append(time.perf_counter() - started)
        assert found == [], found
    return {"fresh parse": statistics.median(parses), "fresh total": statistics.median(totals)}


def _row(version: str, fmt: str, data: bytes, repeat: int) -> dict[str, float]:
    from meshbridge.payloads import fhir_invariants, fhir_references, fhir_structure

    parse, parsed = _parse(version, fmt, data)
    assert fhir_rules.check(parsed(), "hl7") == [], "the bench Bundles must be valid"
    calls: dict[str, Callable[[], object]] = {"parse": parse}
    shaped = parsed()
    if fmt == "xml":  # the invariants and references read the JSON shape: converted once, timed apart
        from meshbridge.payloads import fhir_xml_json

        root = shaped.root
        calls["xml->json"] = lambda: fhir_xml_json.to_json(root, version)
        shaped = fhir_rules.Parsed(version, "xml", resource=fhir_xml_json.to_json(root, version), root=root)
    calls["structure"] = lambda: fhir_structure.check(parsed())
    calls["invariants"] = lambda: fhir_invariants.check(shaped)
    calls["references"] = lambda: fhir_references.check(shaped)  # alone: walks the payload itself
    calls["total"] = lambda: fhir_rules.check(parsed(), "hl7")  # one walk shared by invariants and references
    return medians(calls, repeat)


# --------------------------------------------------------------------------- the XSD experiment


def stu3_schema(cache: Path) -> etree.XMLSchema | None:
    """The official STU3 ``fhir-single.xsd`` from npm fhir@3.3.1, compiled with no network."""
    tgz = cache / "fhir-3.3.1.tgz"
    if not tgz.exists():
        return None
    folder = Path(tempfile.mkdtemp(prefix="meshbridge-stu3-xsd-"))
    with tarfile.open(tgz) as archive:
        members = [m for m in archive.getmembers() if m.name.startswith("package/schemas/stu3/") and m.isfile()]
        archive.extractall(folder, members=members, filter="data")
    parser = etree.XMLParser(no_network=True, resolve_entities=False, load_dtd=False)
    started = time.perf_counter()
    schema = etree.XMLSchema(etree.parse(str(folder / "package/schemas/stu3/fhir-single.xsd"), parser))
    print(f"  fhir-single.xsd compiled in {time.perf_counter() - started:.2f} s")
    return schema


def xsd_rows(schema: etree.XMLSchema, repeat: int) -> Iterator[tuple[str, float, float]]:
    parser = etree.XMLParser(no_network=True, resolve_entities=False, load_dtd=False, remove_comments=True)
    for size, document_of in (("5 KB", fhir_corpus.baseline), ("100 KB", grown)):
        data = encoded(document_of("STU3"), "xml")
        assert schema.validate(etree.fromstring(data, parser))
        yield f"STU3 xml {size} ({len(data) // 1000} KB)", *_xsd_row(schema, parser, data, repeat)


def _xsd_row(schema: etree.XMLSchema, parser: etree.XMLParser, data: bytes, repeat: int) -> tuple[float, float]:
    parse, _ = _parse("STU3", "xml", data)
    found = medians({"xsd": lambda: schema.validate(etree.fromstring(data, parser)), "models": parse}, repeat)
    return found["xsd"], found["models"]


def xsd_catches(schema: etree.XMLSchema) -> tuple[Counter[str], Counter[str]]:
    parser = etree.XMLParser(no_network=True, resolve_entities=False, load_dtd=False)
    caught: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for case in fhir_corpus.cases():
        if case.version == "STU3" and case.format == "xml":
            total[case.kind] += 1
            caught[case.kind] += not schema.validate(etree.fromstring(case.data, parser))
    return caught, total


def run(repeat: int, cache: Path | None) -> bool:
    """Print the rows; True when every Bundle's checks cost at most its parse."""
    ok = True
    print("FHIR checks beyond the models: medians in ms; ratio = all checks / the models' parse (goal <= 1);")
    print("fresh: the same on payloads never seen before (new uuids each), single timings")
    header = ["parse", "xml->json", "structure", "invariants", "references", "total"]
    print(f"{'bundle':26}" + "".join(f"{h:>12}" for h in header) + f"{'ratio':>8}{'fresh':>8}")
    for label, row in rule_rows(repeat):
        cells = "".join(f"{row[h] * 1e3:10.2f}ms" if h in row else f"{'-':>12}" for h in header)
        ratio, fresh = row["total"] / row["parse"], row["fresh total"] / row["fresh parse"]
        ok &= ratio <= 1 and fresh <= 1
        print(f"{label:26}{cells}{ratio:8.2f}{fresh:8.2f}  {'met' if max(ratio, fresh) <= 1 else 'MISSED'}")
    schema = stu3_schema(cache) if cache else None
    if schema is None:
        print("STU3 XSD experiment skipped (no fhir-3.3.1.tgz: --fhir-cache DIR or $MESHBRIDGE_FHIR_CACHE)")
        return ok
    print("STU3 XSD first pass (lxml XMLSchema, fhir-single.xsd) against the models' XML path:")
    for label, xsd, models_path in xsd_rows(schema, repeat):
        speed = models_path / xsd
        print(f"  {label:24} xsd {xsd * 1e3:8.2f}ms  models {models_path * 1e3:8.2f}ms  xsd {speed:5.1f}x faster")
    caught, total = xsd_catches(schema)
    print("  STU3 XML corpus defects the XSD refuses:")
    for kind in total:
        print(f"    {kind:50} {caught[kind]:3} of {total[kind]}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--fhir-cache", type=Path, default=os.environ.get("MESHBRIDGE_FHIR_CACHE"))
    args = parser.parse_args()
    run(args.repeat, args.fhir_cache)
    return 0


if __name__ == "__main__":
    sys.exit(main())
