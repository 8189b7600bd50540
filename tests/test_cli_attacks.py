"""Attacks on the reading commands from outside (``messages``, ``show``), on each backend: forged
cursors, arguments that are not UTF-8, peer text with control characters in the printed ``more:``
command, and a key naming more messages than ``show`` lists. Each must end in one line and an
exit code, or in output that says what is true; never a traceback, never rows lost."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import OUT_IN
from test_cli_listing import fill, run

from meshbridge.cli.reading import SHOW_AT_MOST
from meshbridge.cli.words import shell_command


def token(raw: bytes) -> str:
    """A cursor as the store spells one (URL-safe base64, unpadded), of any bytes."""
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


FORGED = {
    "lone surrogate": token(b'["\\ud800", "x"]'),
    "NUL": token(b'["2026-03-01T12:00:00.000000+00:00", "x\\u0000"]'),
    "nested deep": token(b"[" * 20_000 + b"]" * 20_000),
    "a string": token(b'"ab"'),  # two characters unpack like a pair
    "not a time": token(b'["zzz", "x"]'),
    "empty": "",
}


@pytest.mark.parametrize("forged", FORGED.values(), ids=FORGED.keys())
def test_a_forged_cursor_is_one_usage_line(
    backend: Any, backend_config: Callable[..., Path], forged: str, tmp_path: Path
) -> None:
    config = backend_config(OUT_IN)
    fill(backend.open(), 3)
    done = run(config, "messages", "--json", "--after", forged)
    assert (done.exit_code, done.stdout) == (2, ""), done.output
    assert done.stderr == f"meshbridge: not a page cursor: {forged!r}\n"


def meshbridge(config: Path, *args: str | bytes) -> subprocess.CompletedProcess[str]:
    """The real command line in a process of its own: an argument may be bytes that are not UTF-8."""
    return subprocess.run(
        [sys.executable, "-m", "meshbridge", "--config", str(config), *args],
        capture_output=True,
        text=True,
        errors="backslashreplace",
        timeout=120,
        env={**os.environ, "LC_ALL": "C.UTF-8"},
    )


@pytest.mark.parametrize(
    "args",
    [
        ["show", b"\xffkey"],
        ["messages", "--route", b"r\xff"],
        ["messages", "--workflow", b"\xfe"],
        ["messages", "--peer", b"\xff"],
        ["export", b"\xff"],
        ["retry", b"\xff"],
        ["replay", b"\xff"],
        ["ack", b"\xff", "--ok"],
    ],
    ids=["show", "route", "workflow", "peer", "export", "retry", "replay", "ack"],
)
def test_an_argument_that_is_not_utf8_is_one_usage_line(
    backend: Any, backend_config: Callable[..., Path], args: list[str | bytes]
) -> None:
    config = backend_config(OUT_IN)
    fill(backend.open(), 2)
    done = meshbridge(config, *args)
    assert done.returncode == 2 and done.stdout == "", done.stderr
    [line] = done.stderr.splitlines()[-1:]
    assert "Traceback" not in done.stderr and line.endswith("is not UTF-8 text"), done.stderr


def test_the_printed_more_command_lists_the_rest_of_a_workflow_with_a_newline(
    backend: Any, backend_config: Callable[..., Path]
) -> None:
    """A peer's workflow id with a line break and an escape: the ``more:`` command, run by a shell,
    lists the rest of that workflow's messages, and prints nothing that acts on a terminal."""
    config = backend_config(OUT_IN)
    store = backend.open()
    workflow = "WF\nnext\x1b[31m'$(x)"
    ids = [store.add("in", "delivered", durable=False, workflow_id=workflow, mailbox="X26ABC2").id for _ in range(3)]
    store.sync()
    first = run(config, "messages", "--json", "--limit", "2", "--workflow", workflow)
    assert first.exit_code == 0, first.output
    [hint] = first.stderr.splitlines()
    assert hint.startswith("more: meshbridge ") and hint.isprintable()
    words = subprocess.run(
        ["bash", "-c", f"printf '%s\\0' {hint.removeprefix('more: meshbridge ')}"],
        capture_output=True,
        check=True,
        text=True,
    ).stdout.split("\0")[:-1]
    assert words[words.index("--workflow") + 1] == workflow
    rest = run(config, *words[2:])
    assert rest.exit_code == 0 and rest.stderr == "", rest.output
    listed = [m["id"] for m in json.loads(first.stdout) + json.loads(rest.stdout)]
    assert sorted(listed) == sorted(ids)


def test_show_says_when_a_key_names_more_messages_than_it_lists(
    backend: Any, backend_config: Callable[..., Path]
) -> None:
    config = backend_config(OUT_IN)
    store = backend.open()
    for n in (SHOW_AT_MOST, 1):  # exactly as many as it lists, then one more
        for _ in range(n):
            store.add("in", "delivered", durable=False, local_id="SHARED", mailbox="X26ABC2")
        store.sync()
        done = run(config, "show", "SHARED")
        assert done.exit_code == 2 and done.stdout == ""
        [line] = done.stderr.splitlines()
        named = "names" + (f" {SHOW_AT_MOST}" if n == SHOW_AT_MOST else f" more than {SHOW_AT_MOST}")
        assert line.startswith(f"meshbridge: 'SHARED' {named} messages: "), line
        assert line.count(" (in, delivered, ") == SHOW_AT_MOST


@pytest.mark.parametrize(
    "word",
    ["a\nb\tc\rd", "x\x1b[31m'$(y)\\z`w`", "\u202eevil", "nb\xa0sp", "c1\x85", "b\udcffyte", "'$HOME' \"q\"", ""],
)
def test_a_printed_command_names_each_word_exactly_in_bash(word: str) -> None:
    """Control and format characters, quotes, ``$(...)``, a byte that was not UTF-8 (kept by Python as a
    lone surrogate): the printed line is printable and bash runs it with the very same word."""
    line = shell_command(["printf", "%s\\0", word])
    assert line.isprintable()
    said = subprocess.run(["bash", "-c", line], capture_output=True, check=True, env={"LC_ALL": "C.UTF-8"}).stdout
    assert said == word.encode("utf-8", "surrogateescape") + b"\0"
