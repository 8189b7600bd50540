"""The hl7v2 plugin's README (the plugin authors' tutorial) quotes its end-to-end test: the quote
must be that test as it is, so a reader copying it gets code that runs on this meshbridge."""

from __future__ import annotations

import re
from pathlib import Path

PLUGIN = Path(__file__).resolve().parent.parent / "plugins" / "meshbridge-hl7v2"


def test_the_tutorial_quotes_the_end_to_end_test_as_it_is() -> None:
    readme = (PLUGIN / "README.md").read_text(encoding="utf-8")
    found = re.search(r"The end-to-end test from `tests/test_hl7v2.py`:\n\n```python\n(.*?)```", readme, re.S)
    assert found, "the README no longer introduces the end-to-end test"
    quoted = found.group(1)
    assert quoted.startswith("def test_adt_a01_travels_end_to_end(")
    assert quoted in (PLUGIN / "tests" / "test_hl7v2.py").read_text(encoding="utf-8")
