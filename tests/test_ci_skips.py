"""The CI rule of tests/conftest.py: under ``CI=true`` a skip fails, unless ../shared/fixtures is absent.

Each case runs pytest in a child process on a small project that uses a copy of our conftest.py, with
``shared/fixtures`` beside that project present or not.
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

CASES = """
import pytest

def test_runs():
    pass

def test_needs_a_browser():
    pytest.skip("no browser installed")

def test_needs_the_fixtures():
    pytest.skip("../shared/fixtures not present (fixtures live outside the project)")

@pytest.mark.skipif(True, reason="needs PostgreSQL")
def test_marked():
    pass
"""
PLUGIN_CASE = """
import pytest

def test_needs_a_mount():
    pytest.skip("cannot mount a tmpfs here")
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """``tmp_path/project`` with tests/ (our conftest.py) and plugin/tests/; ``tmp_path/shared`` is beside it."""
    root = tmp_path / "project"
    (root / "tests").mkdir(parents=True)
    (root / "plugin" / "tests").mkdir(parents=True)
    for name in ("conftest.py", "postgres_fixtures.py"):  # (the conftest imports the PostgreSQL fixtures)
        (root / "tests" / name).write_text((Path(__file__).parent / name).read_text())
    (root / "tests" / "test_cases.py").write_text(CASES)
    (root / "plugin" / "tests" / "test_plugin_case.py").write_text(PLUGIN_CASE)
    (root / "pytest.ini").write_text("[pytest]\n")
    return root


def outcomes(project: Path, ci: str | None) -> dict[str, tuple[str, str]]:
    """Run pytest on ``project``; ``{test name: (passed|skipped|failed, message)}``."""
    env = {k: v for k, v in os.environ.items() if k != "CI"} | ({"CI": ci} if ci is not None else {})
    report = project / "report.xml"
    subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", f"--junitxml={report}", "tests", "plugin/tests"],
        cwd=project,
        env=env,
        capture_output=True,
        timeout=120,
    )
    found = {}
    for case in ET.parse(report).iter("testcase"):
        verdict = next((c for c in case if c.tag in ("skipped", "failure", "error")), None)
        kind = "passed" if verdict is None else {"skipped": "skipped"}.get(verdict.tag, "failed")
        text = "" if verdict is None else f"{verdict.get('message', '')} {verdict.text or ''}"
        found[case.get("name")] = (kind, text)
    return found


def test_outside_ci_skips_are_skips(project: Path) -> None:
    found = outcomes(project, None)
    assert {name: kind for name, (kind, _) in found.items()} == {
        "test_runs": "passed",
        "test_needs_a_browser": "skipped",
        "test_needs_the_fixtures": "skipped",
        "test_marked": "skipped",
        "test_needs_a_mount": "skipped",
    }


def test_in_ci_only_absent_shared_fixtures_may_skip(project: Path) -> None:
    found = outcomes(project, "true")
    assert {name: kind for name, (kind, _) in found.items()} == {
        "test_runs": "passed",
        "test_needs_a_browser": "failed",
        "test_needs_the_fixtures": "skipped",
        "test_marked": "failed",
        "test_needs_a_mount": "failed",  # the rule covers tests outside tests/ too
    }
    assert "skipped under CI=true, where every test must run (no browser installed)" in found["test_needs_a_browser"][1]
    assert "needs PostgreSQL" in found["test_marked"][1]
    assert "cannot mount a tmpfs here" in found["test_needs_a_mount"][1]


def test_in_ci_a_fixture_skip_fails_when_the_fixtures_are_there(project: Path) -> None:
    (project.parent / "shared" / "fixtures").mkdir(parents=True)
    found = outcomes(project, "true")
    assert found["test_needs_the_fixtures"][0] == "failed"
    assert "fixtures not present" in found["test_needs_the_fixtures"][1]


def test_in_ci_a_skipped_module_fails(project: Path) -> None:
    skipped = 'import pytest\npytest.skip("no GPU", allow_module_level=True)\n\ndef test_gpu():\n    pass\n'
    (project / "tests" / "test_cases.py").write_text(skipped)
    env = os.environ | {"CI": "true"}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "tests"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "skipped under CI=true, where every test must run (no GPU)" in done.stdout
