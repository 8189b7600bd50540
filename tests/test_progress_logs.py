"""Log lines written while a progress bar is drawn go above the bar, each on a line of its own;
they were written into the bar's line (``… -:--:--2026-11-28 … sent …``), the bar then redrawn
below the mixture.

A real chunked ``meshbridge --log-level INFO send`` and ``poll`` under a pseudo-terminal, against
the real sandbox.
"""

from __future__ import annotations

import re
from pathlib import Path

from conftest import OUT_IN, write_random
from test_progress import CHUNK, SIZE, in_terminal, plain

LOGGED = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[.,]\d{3}\S* INFO meshbridge\.steps")


def screen_lines(drawn: str) -> list[str]:
    """What each line of the terminal starts with: the text after every line break or carriage return."""
    return re.split(r"\r\n|\r|\n", plain(drawn))


def test_log_lines_are_printed_above_the_bar_not_into_it(tmp_path: Path, meshbridge_config) -> None:
    config = meshbridge_config(OUT_IN, mesh=f"chunk_size = {CHUNK}\n")
    payload = write_random(tmp_path / "big.bin", SIZE)
    for args in (("send", str(payload), "--route", "out"), ("poll",)):
        code, drawn = in_terminal("--config", str(config), "--log-level", "INFO", *args)
        assert code == 0, plain(drawn)
        lines = screen_lines(drawn)
        logged = [line for line in lines if LOGGED.search(line)]
        assert logged, plain(drawn)
        assert [line for line in logged if not LOGGED.match(line)] == []  # each log line starts its own line
        step = "sent" if args[0] == "send" else "received"
        assert any(f"INFO meshbridge.steps: {step} " in line for line in logged), logged
        assert any("kB" in line and "meshbridge.steps" not in line for line in lines)  # the bar, on its own
