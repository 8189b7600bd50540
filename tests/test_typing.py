"""Type checking (issue 11, point 8): ``mypy`` (strict, ``[tool.mypy]`` in pyproject.toml) runs in
``.ci/run``; here, the escape hatches it allows are kept few and explicit, without running mypy."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHECKED = [ROOT / "meshbridge", ROOT / "plugins" / "meshbridge-hl7v2" / "meshbridge_hl7v2"]
IGNORE = re.compile(r"#\s*type:\s*ignore(\[[a-z-]+(, *[a-z-]+)*\])?")
MAX_IGNORES = 0  # raise it only with a reason beside the ignore


def ignores() -> list[tuple[str, str]]:
    found = []
    for folder in CHECKED:
        for path in sorted(folder.rglob("*.py")):
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                for match in IGNORE.finditer(line):
                    found.append((f"{path.relative_to(ROOT)}:{n}", match.group(0)))
    return found


def test_every_type_ignore_names_its_error_code() -> None:
    unnamed = [where for where, text in ignores() if "[" not in text]
    assert unnamed == []


def test_type_ignores_do_not_grow() -> None:
    found = ignores()
    assert len(found) <= MAX_IGNORES, found


def test_mypy_is_strict_over_the_package_and_the_plugin() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["mypy"]
    assert config["strict"] is True
    assert set(config["files"]) == {str(p.relative_to(ROOT)) for p in CHECKED}
    assert "ignore-without-code" in config["enable_error_code"]
    assert "mypy" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
