"""References inside a Bundle that do not resolve to one of its entries (``fhir.reference``).

Resolution follows the specification's rules for Bundles (bundle.html#references) as the HL7
validator applies them:

* an absolute reference (``urn:uuid:...``, ``urn:oid:...``, ``https://...``) matches an entry whose
  ``fullUrl`` is the same (or ``fullUrl/_history/versionId``); ``urn:uuid:`` + the Bundle's own id
  or identifier value names the Bundle itself (the EPS examples sign their message Bundle with a
  Provenance whose target is that). An unmatched URL is an external reference, never an error;
* a relative ``Type/id`` (or ``Type/id/_history/v``) reference in an entry whose ``fullUrl`` is a
  RESTful URL (``[base]/Type/id``) resolves against that base and must match an entry's
  ``fullUrl``; in an entry with a ``urn:`` fullUrl or none, it matches the entry whose resource has
  that type and id;
* local references (``#id``) are the invariants' business (``ref-1``, ``dom-3``), not this check's.

What is an error (the HL7 validator's choices, where its BundleValidator uses a rule, i.e. an error):

* an unmatched ``urn:`` or relative reference in ``MessageHeader.focus`` of a ``message`` Bundle or
  in ``Composition.section.entry`` of a ``document`` Bundle: what the message or document carries;
* an unmatched relative reference anywhere in a ``message`` or ``document`` Bundle: such a Bundle
  must carry what it references, and a relative reference there has no other meaning;
* not reported: an unmatched ``urn:`` reference elsewhere (``MessageHeader.receiver`` ...), which
  the HL7 validator reports as information only (BUNDLE_BUNDLE_ENTRY_NOTFOUND at hint level); the
  official ITK3 response examples have one. Other Bundle types (transaction, collection, searchset)
  may point at a server, so their relative references are not judged.

Each Bundle is checked on its own: a document Bundle inside a message Bundle's entry resolves
against its own entries.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

from .base import Finding
from .fhir_definitions import definitions
from .fhir_rules import Parsed
from .fhir_walk import Item, walk

_ABSOLUTE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_RELATIVE = re.compile(r"([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(/_history/[A-Za-z0-9\-.]{1,64})?")
_RESTFUL = re.compile(r"(https?://.+/)[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}(/_history/[A-Za-z0-9\-.]{1,64})?")
_ENTRY = re.compile(r"\.entry\[(\d+)\]")
_CARRIED = {"message": ("MessageHeader.focus",), "document": ("Composition.section.entry",)}


class _Entries:
    """What the references of one Bundle can resolve to."""

    def __init__(self, bundle: dict[str, Any]) -> None:
        entries = bundle.get("entry")
        self.entries: list[Any] = entries if isinstance(entries, list) else []
        self.kind = bundle.get("type")
        self.urls: set[str] = set()
        self.ids: set[tuple[str, str]] = set()
        for name in _own_names(bundle):  # the Bundle itself (a Provenance signing it)
            self.urls.update((f"urn:uuid:{name}", f"urn:oid:{name}"))
        for entry in self.entries:
            if not isinstance(entry, dict):
                continue
            url, resource = entry.get("fullUrl"), entry.get("resource")
            resource = resource if isinstance(resource, dict) else {}
            meta = resource.get("meta")
            version = meta.get("versionId") if isinstance(meta, dict) else None
            if isinstance(url, str):
                self.urls.add(url)
                if isinstance(version, str):
                    self.urls.add(f"{url}/_history/{version}")
            if isinstance(resource.get("resourceType"), str) and isinstance(resource.get("id"), str):
                self.ids.add((resource["resourceType"], resource["id"]))
                if isinstance(version, str):
                    self.ids.add((resource["resourceType"], f"{resource['id']}/_history/{version}"))

    def full_url(self, index: int) -> str | None:
        entry = self.entries[index] if index < len(self.entries) else None
        url = entry.get("fullUrl") if isinstance(entry, dict) else None
        return url if isinstance(url, str) else None

    def resolves(self, reference: str, full_url: str | None) -> bool | None:
        """True or False, or None for a reference this check does not judge (external, conditional)."""
        target = reference.split("#", 1)[0]
        if _ABSOLUTE.match(target):
            if target in self.urls:
                return True
            return False if target.startswith("urn:") else None
        relative = _RELATIVE.fullmatch(target)
        if relative is None:
            return None
        restful = _RESTFUL.fullmatch(full_url) if full_url else None
        if restful is not None:
            found = f"{restful.group(1)}{target}" in self.urls
        else:
            found = (relative.group(1), relative.group(2) + (relative.group(3) or "")) in self.ids
        return found

    def carried(self, element: str | None, reference: str) -> bool:
        """Whether an unmatched reference here is an error (see the module docstring)."""
        carried = _CARRIED.get(self.kind) if isinstance(self.kind, str) else None
        if carried is None:
            return False
        return element in carried or not _ABSOLUTE.match(reference)


def check(parsed: Parsed) -> list[Finding]:
    """A finding per reference in a Bundle that names an entry the Bundle does not have."""
    resource = parsed.resource
    if not isinstance(resource, dict) or parsed.version not in ("STU3", "R4", "R5"):
        return []
    items = walk(resource, definitions(parsed.version))
    bundles = {item.where: _Entries(item.value) for item in items if item.type == "Bundle" and item.path == "Bundle"}
    if not bundles:
        return []
    findings = []
    for item in items:
        reference = item.value.get("reference") if item.type == "Reference" else None
        if not isinstance(reference, str) or reference.startswith("#"):
            continue
        place = _entry_of(item, bundles)
        if place is None:
            continue
        entries = bundles[place[0]]
        resolved = entries.resolves(reference, entries.full_url(place[1]))
        if resolved is False and entries.carried(item.element, reference):
            findings.append(Finding(_message(reference), item.where, code="fhir.reference"))
    return findings


def _own_names(bundle: dict[str, Any]) -> list[str]:
    """The Bundle's id and identifier value: ``urn:uuid:`` + either names the Bundle itself."""
    identifier = bundle.get("identifier")
    value = identifier.get("value") if isinstance(identifier, dict) else None
    return [name for name in (bundle.get("id"), value) if isinstance(name, str)]


def _entry_of(item: Item, bundles: Collection[str]) -> tuple[str, int] | None:
    """The innermost Bundle (its path) and entry index holding ``item``: the longest prefix of its
    path that is a Bundle's path followed by ``.entry[n]`` (looked up, not searched: a payload of
    thousands of Bundles each with a reference was quadratic)."""
    where = item.where
    at = where.rfind(".entry[")
    while at != -1:
        if where[:at] in bundles:
            found = _ENTRY.match(where, at)
            if found:
                return where[:at], int(found.group(1))
        at = where.rfind(".entry[", 0, at)
    return None


def _message(reference: str) -> str:
    shown = reference if len(reference) <= 100 else reference[:97] + "..."
    return f"reference {shown!r} does not resolve to an entry of the Bundle (no entry has that fullUrl or resource)"
