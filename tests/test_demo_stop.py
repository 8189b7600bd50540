"""``meshbridge demo`` stopped (SIGTERM, Ctrl-C) while its sandbox is still starting leaves no
sandbox running: the sandbox server runs in a session of its own, and one interrupted before it
answered was left behind, orphaned, for good.

A real ``meshbridge demo`` process and its real sandbox child.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil


def sandbox_child(demo: subprocess.Popen[str]) -> psutil.Process | None:
    """The demo's sandbox server, once it has been started (None if the demo ended first)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and demo.poll() is None:
        for child in psutil.Process(demo.pid).children(recursive=True):
            try:
                if "mesh_sandbox" in " ".join(child.cmdline()):
                    return child
            except psutil.NoSuchProcess:
                continue
        time.sleep(0.01)
    return None


def test_a_demo_stopped_while_its_sandbox_starts_leaves_no_sandbox(tmp_path: Path) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path)}  # the demo's workspace goes here
    for _attempt in range(5):  # until the signal lands while the sandbox is starting
        demo = subprocess.Popen(
            [sys.executable, "-m", "meshbridge", "demo"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            server = sandbox_child(demo)
            assert server is not None, "the demo started no sandbox"
            demo.send_signal(signal.SIGTERM)
            out, err = demo.communicate(timeout=60)
        finally:
            if demo.poll() is None:
                demo.kill()
        _, alive = psutil.wait_procs([server], timeout=10)
        for process in alive:  # (so that a failure strands nothing either)
            os.killpg(process.pid, signal.SIGKILL)
        assert not alive, "the sandbox was left running"
        assert demo.returncode == 130, (demo.returncode, err)
        assert err.strip().splitlines()[-1].startswith("meshbridge: demo stopped"), err
        assert list(tmp_path.glob("meshbridge-demo-*")) == []
        if "mesh-sandbox running" not in out:
            return  # stopped while starting: the case this test is about
    raise AssertionError("the sandbox always answered before the signal: the case was never met")
