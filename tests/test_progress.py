"""Point 9 of issue 10: chunked ``send`` and ``poll`` draw a progress bar on a terminal, nothing when piped.

The command line runs as a real process against the real sandbox, once under a pseudo-terminal
(``pty``) and once with its output piped.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
from pathlib import Path

from conftest import OUT_IN, write_random

CHUNK = 64 * 1024
SIZE = 5 * CHUNK + 1234  # 6 chunks: 328,914 bytes, shown by rich as "328.9 kB"
BAR_BYTES = "328.9/328.9 kB"  # rich's DownloadColumn once every byte has moved


def in_terminal(*args: str) -> tuple[int, str]:
    """Run ``python -m meshbridge ARGS`` with stdin, stdout and stderr on a pseudo-terminal (160 columns)."""
    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 160, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "160"}
    env.pop("NO_COLOR", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "meshbridge", *args], stdin=child, stdout=child, stderr=child, env=env
    )
    os.close(child)
    output = bytearray()
    while True:
        ready, _, _ = select.select([main], [], [], 120)
        assert ready, f"no output for 120 s: {output.decode(errors='replace')}"
        try:
            block = os.read(main, 65536)
        except OSError:  # EIO: the child side is closed
            break
        if not block:
            break
        output += block
    os.close(main)
    return process.wait(timeout=60), output.decode(errors="replace")


def plain(shown: str) -> str:
    """Terminal output without its escape codes."""
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", shown)


def piped(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "meshbridge", *args],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def test_chunked_send_and_poll_show_a_bar_on_a_terminal(tmp_path: Path, meshbridge_config) -> None:
    config = meshbridge_config(OUT_IN, mesh=f"chunk_size = {CHUNK}\n")
    payload = write_random(tmp_path / "big.bin", SIZE)

    code, drawn = in_terminal("--config", str(config), "send", str(payload), "--route", "out")
    shown = plain(drawn)
    assert code == 0, shown
    assert "\x1b[" in drawn  # drawn with terminal codes
    message_id = shown.strip().splitlines()[-1].strip()
    assert f"send {message_id} to X26ABC2" in shown  # the bar names the transfer
    assert BAR_BYTES in shown  # bytes of the total
    assert re.search(r"\d B/s|kB/s|MB/s", shown) and re.search(r"\d:\d\d:\d\d", shown)  # rate and ETA

    code, drawn = in_terminal("--config", str(config), "poll")
    shown = plain(drawn)
    assert code == 0, shown
    assert re.search(r"receive [0-9A-F]{32} for X26ABC2", shown)
    assert re.search(r" (\d+\.\d)/\1 kB", shown)  # MESH's bytes (gzip on the wire), all of them
    assert "delivered: 1" in shown
    [delivered] = (tmp_path / "delivered").iterdir()
    assert delivered.read_bytes() == payload.read_bytes()


def test_piped_output_has_no_bar(tmp_path: Path, meshbridge_config) -> None:
    config = meshbridge_config(OUT_IN, mesh=f"chunk_size = {CHUNK}\n")
    payload = write_random(tmp_path / "big.bin", SIZE)

    sent = piped("--config", str(config), "send", str(payload), "--route", "out")
    assert sent.returncode == 0, sent.stderr
    assert sent.stderr == "" and len(sent.stdout.split()) == 1  # the id alone
    message_id = sent.stdout.strip()

    polled = piped("--config", str(config), "poll")
    assert polled.returncode == 0, polled.stderr
    assert polled.stderr == "" and "\x1b" not in polled.stdout and "kB" not in polled.stdout
    assert "delivered: 1" in polled.stdout
    shown = piped("--config", str(config), "show", message_id)
    assert "chunk=6/6" in shown.stdout  # it really was chunked
