"""``[mesh] chunk_size``: live MESH wants every chunk but the last of at least 5 MB (5 MiB here), so a
smaller one is refused at load with one line and exit 2, unless ``sandbox = true``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from meshbridge import ConfigError, load

MIB_5 = 5 * 1024 * 1024

CONFIG = """
[store]
path = "var/mb.db"

[mesh]
url = "https://msg.intspineservices.nhs.uk"
shared_key = "TestKey"
{mesh}

[[mailboxes]]
id = "X26ABC1"
password = "password"
"""


def write(tmp_path: Path, mesh: str) -> Path:
    path = tmp_path / "meshbridge.toml"
    path.write_text(CONFIG.format(mesh=mesh))
    return path


@pytest.mark.parametrize("size", ['"1MB"', '"5MB"', "5242879", '"64KiB"'])
def test_a_chunk_under_5_mib_is_refused_for_live_mesh(tmp_path: Path, size: str) -> None:
    path = write(tmp_path, f"chunk_size = {size}")
    with pytest.raises(ConfigError, match=r"mesh\.chunk_size: \d+ bytes is under the 5 MiB MESH wants") as info:
        load(path)
    assert str(info.value).startswith(f"{path}: ") and "sandbox = true" in str(info.value)
    done = subprocess.run(
        [sys.executable, "-m", "meshbridge", "--config", str(path), "status"], capture_output=True, text=True
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "mesh.chunk_size" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(("size", "expected"), [('"5MiB"', MIB_5), ('"20MB"', 20_000_000), (None, 100_000_000)])
def test_5_mib_and_over_loads_for_live_mesh(tmp_path: Path, size: str | None, expected: int) -> None:
    config = load(write(tmp_path, f"chunk_size = {size}" if size else ""))
    assert (config.mesh.chunk_size, config.mesh.sandbox) == (expected, False)


def test_a_sandbox_takes_small_chunks(tmp_path: Path) -> None:
    config = load(write(tmp_path, 'chunk_size = "64KiB"\nsandbox = true'))
    assert (config.mesh.chunk_size, config.mesh.sandbox) == (64 * 1024, True)
