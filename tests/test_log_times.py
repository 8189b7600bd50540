"""A text log line's time says its zone: local time with its offset, like every other time
meshbridge prints for people (it was Python's ``2026-11-28 13:30:46,012``, with no zone at all).
JSON lines keep UTC with an offset.

A real ``meshbridge send`` process, of an empty file (refused before any MESH call: no sandbox).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

CONFIG = """[store]
path = "var/meshbridge.db"

[mesh]
url = "http://127.0.0.1:9"
shared_key = "TestKey"

[[mailboxes]]
id = "X26ABC1"
password = "password"

[[routes]]
name = "out"
direction = "outbound"
from = "X26ABC1"
to = "X26ABC2"
workflow_id = "TEST_WORKFLOW"
payload_type = "text"
"""


def send_empty(tmp_path: Path, log_format: str) -> list[str]:
    config = tmp_path / "meshbridge.toml"
    config.write_text(CONFIG)
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    logged = ["--log-level", "INFO", "--log-format", log_format]
    done = subprocess.run(
        [sys.executable, "-m", "meshbridge", "--config", str(config), *logged, "send", str(empty), "--route", "out"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TZ": "Asia/Kolkata"},  # +05:30 all year
    )
    assert done.returncode == 1, done.stderr
    return [line for line in done.stderr.splitlines() if "meshbridge.steps" in line]


def test_text_log_times_carry_the_local_offset(tmp_path: Path) -> None:
    lines = send_empty(tmp_path, "text")
    assert lines, "no step line"
    for line in lines:
        assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\+05:30 INFO meshbridge\.steps", line), line


def test_json_log_times_stay_utc_with_an_offset(tmp_path: Path) -> None:
    lines = send_empty(tmp_path, "json")
    assert lines
    for line in lines:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", json.loads(line)["time"]), line
