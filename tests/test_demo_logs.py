"""``meshbridge --log-format json --log-level INFO demo`` logs JSON at INFO to its end: the
commands the demo runs (``ack``, ``status``, ``show``) keep the global options it was given (they
fell back to text at WARNING after the first one).

A real ``meshbridge demo`` process (its own embedded sandbox).
"""

from __future__ import annotations

import json
import subprocess
import sys


def test_the_demo_keeps_its_log_options_through_the_commands_it_runs() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "meshbridge", "--log-format", "json", "--log-level", "INFO", "demo"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stderr.splitlines()
    not_json = []
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except ValueError:
            not_json.append(line)
    assert not_json == []
    steps = [(r["level"], r["step"]) for r in records if r["logger"] == "meshbridge.steps"]
    # after the practice's `ack` commands: the trust's poll applies them (INFO), and raises the overdue one
    assert ("info", "acked") in steps[steps.index(("warning", "nacked")) :]
    assert ("warning", "overdue") in steps
