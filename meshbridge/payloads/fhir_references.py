"""FHIR references checks (see :mod:`.fhir_rules`). Not written yet: finds nothing."""

from __future__ import annotations

from .base import Finding
from .fhir_rules import Parsed


def check(parsed: Parsed) -> list[Finding]:
    """Nothing yet."""
    return []
