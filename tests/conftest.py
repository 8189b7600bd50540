"""Shared helpers for meshbridge's own tests (the sandbox fixtures come from meshbridge.testing).

Under ``CI=true`` a skipped test is a failure that names the skip's reason: only a test that skips
because ``../shared/fixtures`` (beside the repository) is absent may skip there.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alert_fixtures import receiver  # noqa: F401 (a fixture: a real local webhook receiver)
from postgres_fixtures import postgres, postgres_server, postgres_url  # noqa: F401 (fixtures for every test)
from store_backends import backend, backend_config, store  # noqa: F401 (fixtures: a test on each backend)
from web_fixtures import web_api  # noqa: F401 (a fixture: the local API on a real uvicorn)

SHARED_FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"

TRACK_NOW = 'tracking_interval = "0s"\n'  # track on every poll (MESH asks for it rarely; tests want it now)

OUT_IN = """
[[routes]]
name = "out"
direction = "outbound"
from = "X26ABC1"
to = "X26ABC2"
workflow_id = "TEST_WORKFLOW"
payload_type = "binary"

[[routes]]
name = "in"
direction = "inbound"
mailbox = "X26ABC2"
workflow_id = "TEST_WORKFLOW"
payload_type = "binary"
destination = { folder = "delivered" }
"""


# An ITK3 exchange between two organisations: X26ABC1 sends FHIR asking for both acks, X26ABC2 answers.
PATIENT = b"""<Patient xmlns="http://hl7.org/fhir"><id value="p1"/><gender value="unknown"/>
<birthDate value="1970-01-01"/></Patient>"""

WORKFLOW = "TOC_FHIR_OP_ATTEN"

ITK_SENDER_ROUTE = f"""
[[routes]]
name = "toc-out"
direction = "outbound"
from = "X26ABC1"
to = "X26ABC2"
workflow_id = "{WORKFLOW}"
payload_type = "fhir"
itk = {{ inf_ack = true, bus_ack = true, event = "ITK006D", inf_ack_within = "1h", bus_ack_within = "1h" }}
"""

ITK_RECEIVER_ROUTE = f"""
[[routes]]
name = "toc-in"
direction = "inbound"
mailbox = "X26ABC2"
workflow_id = "{WORKFLOW}"
payload_type = "fhir"
itk = {{}}
destination = {{ folder = "in" }}
"""


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_random(path: Path, size: int) -> Path:
    """A file of ``size`` pseudo-random bytes, written in blocks."""
    with path.open("wb") as f:
        left = size
        while left:
            block = os.urandom(min(left, 1 << 20))
            f.write(block)
            left -= len(block)
    return path


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def skip_allowed_in_ci(reason: str) -> bool:
    """Only the NHS example fixtures may be missing in CI: they live outside the repository."""
    return not SHARED_FIXTURES.is_dir() and "fixture" in reason and "shared" in reason


class SkipsFailInCI:
    """Turns a skipped test (or module) into a failure that quotes the skip's reason."""

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
        outcome = yield
        self.judge(outcome.get_result())

    @pytest.hookimpl(hookwrapper=True)
    def pytest_make_collect_report(self, collector: pytest.Collector) -> Iterator[None]:
        outcome = yield
        self.judge(outcome.get_result())

    @staticmethod
    def judge(report: Any) -> None:
        if not report.skipped or hasattr(report, "wasxfail"):
            return
        longrepr = report.longrepr
        reason = (longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)).removeprefix("Skipped: ")
        if not skip_allowed_in_ci(reason):
            report.outcome = "failed"
            report.longrepr = f"skipped under CI=true, where every test must run ({reason})"


class PostgresPassed:
    """Lists, at the end of the run, the tests with ``postgresql`` in their id and how each ended
    (the CI log shows the store's tests passed on PostgreSQL, not only on SQLite)."""

    def __init__(self) -> None:
        self.outcomes: dict[str, str] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if "postgresql" in report.nodeid and (report.when == "call" or report.outcome != "passed"):
            self.outcomes[report.nodeid] = report.outcome if report.nodeid not in self.outcomes else "failed"

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.outcomes:
            return
        passed = sum(outcome == "passed" for outcome in self.outcomes.values())
        terminalreporter.section(f"on PostgreSQL: {passed} of {len(self.outcomes)} passed")
        for nodeid, outcome in sorted(self.outcomes.items()):
            terminalreporter.write_line(f"{outcome.upper():7} {nodeid}")


def pytest_configure(config: pytest.Config) -> None:
    if in_ci() and not config.pluginmanager.has_plugin("meshbridge-ci-skips"):
        # a plugin, not conftest hooks: those would only see tests under tests/, not the plugin's tests
        config.pluginmanager.register(SkipsFailInCI(), "meshbridge-ci-skips")
    if in_ci() and not config.pluginmanager.has_plugin("meshbridge-postgres-passed"):
        config.pluginmanager.register(PostgresPassed(), "meshbridge-postgres-passed")
