"""`meshbridge sandbox` in a real process: it serves MESH on the chosen port with the test mailboxes,
prints a [mesh] snippet that works as printed, and stops cleanly on SIGTERM; without the
``[sandbox]`` extra it exits 2 naming the install command."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from conftest import OUT_IN
from mesh_client import MeshClient

from meshbridge.sandbox import free_port
from meshbridge.testing import run_cli as cli

START_TIMEOUT = 60.0  # generous: the machine may be busy; this is a deadline, not a measured duration


class Running:
    """A ``meshbridge sandbox`` process whose stdout is collected line by line."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "meshbridge", "sandbox", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def stdout(self) -> str:
        return "".join(self.lines)

    def wait_for(self, text: str, count: int = 1) -> str:
        deadline = time.monotonic() + START_TIMEOUT
        while self.stdout.count(text) < count:
            assert self.process.poll() is None, f"exited {self.process.returncode}: {self.stdout}"
            assert time.monotonic() < deadline, f"never printed {text!r}: {self.stdout}"
            time.sleep(0.05)
        return self.stdout

    def terminate(self) -> tuple[int, str]:
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(30)
        self._reader.join(5)
        assert self.process.stderr is not None
        return code, self.process.stderr.read()


@pytest.fixture
def started() -> Iterator[list[Running]]:
    runs: list[Running] = []
    yield runs
    for run in runs:  # a failed test leaves nothing running
        if run.process.poll() is None:
            for child in psutil.Process(run.process.pid).children(recursive=True):
                child.kill()
            run.process.kill()
            run.process.wait()
        run._reader.join(5)
        for pipe in (run.process.stdout, run.process.stderr):
            if pipe is not None:
                pipe.close()


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_sandbox_serves_the_printed_config_and_stops_on_sigterm(tmp_path: Path, started) -> None:
    port = free_port()
    run = Running("--port", str(port), "--host", "127.0.0.1")
    started.append(run)
    url = f"http://127.0.0.1:{port}"
    assert f"mesh-sandbox running on {url}" in run.wait_for("poll_interval", count=3)
    children = psutil.Process(run.process.pid).children(recursive=True)
    assert children, "the sandbox runs in a child process"

    # a plain MESH client against it, with the printed credentials
    assert "X26ABC1, X26ABC2, X26ABC3" in run.stdout and "'password'" in run.stdout and "'TestKey'" in run.stdout
    with MeshClient(url, "X26ABC3", "password", shared_key=b"TestKey") as client:
        client.handshake()
        assert client.list_messages() == []

    # the printed [mesh] snippet, as printed, makes a working meshbridge.toml
    snippet = run.stdout[run.stdout.index("[mesh]") :]
    assert f'url = "{url}"' in snippet and "sandbox = true" in snippet
    config = tmp_path / "meshbridge.toml"
    config.write_text('[store]\npath = "var/mb.db"\n\n' + snippet + "\n" + OUT_IN)
    payload = tmp_path / "note.txt"
    payload.write_text("through meshbridge sandbox")
    sent = cli(config, "send", str(payload), "--route", "out")
    assert sent.returncode == 0, sent.stderr
    polled = cli(config, "poll")
    assert polled.returncode == 0 and "delivered: 1" in polled.stdout, polled.stdout + polled.stderr
    [delivered] = (tmp_path / "delivered").iterdir()
    assert delivered.read_text() == "through meshbridge sandbox"

    code, stderr = run.terminate()
    assert code == 0, stderr
    assert run.stdout.rstrip().endswith("mesh-sandbox stopped") and "Traceback" not in stderr
    assert not any(child.is_running() and child.status() != psutil.STATUS_ZOMBIE for child in children)
    assert not listening(port)


def test_without_the_sandbox_extra_it_exits_2_naming_the_install(tmp_path: Path, started) -> None:
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text('import sys\nsys.modules["mesh_sandbox"] = None  # as if not installed\n')
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(shim), os.environ.get("PYTHONPATH", "")])}
    blocked = subprocess.run(
        [sys.executable, "-c", "import mesh_sandbox"], capture_output=True, text=True, env=env, timeout=60
    )
    assert blocked.returncode == 1 and "ModuleNotFoundError" in blocked.stderr  # the shim works

    port = free_port()
    done = subprocess.run(
        [sys.executable, "-m", "meshbridge", "sandbox", "--port", str(port)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert (
        done.stderr
        == "meshbridge: meshbridge sandbox needs the mesh-sandbox package: pip install 'meshbridge[sandbox]'\n"
    )
    assert not listening(port)


def test_a_port_in_use_is_one_line_and_exit_1(started) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = Running("--port", str(port))
        started.append(run)
        code = run.process.wait(START_TIMEOUT)
        run._reader.join(5)
        assert run.process.stderr is not None
        stderr = run.process.stderr.read()
    assert code == 1 and run.stdout == ""
    assert stderr.startswith(f"meshbridge: mesh-sandbox did not start on http://127.0.0.1:{port}: ")
    assert stderr.count("\n") == 1 and "address already in use" in stderr.lower()


def test_a_port_another_sandbox_serves_is_refused_not_claimed(started, mesh_sandbox) -> None:
    """The default port is one: a second `meshbridge sandbox` must not print "running" and a snippet
    because the first one answers its health check, then die."""
    run = Running("--port", str(mesh_sandbox.port))
    started.append(run)
    code = run.process.wait(START_TIMEOUT)
    run._reader.join(5)
    assert run.process.stderr is not None
    stderr = run.process.stderr.read()
    assert code == 1 and run.stdout == ""
    assert stderr.startswith(f"meshbridge: mesh-sandbox did not start on {mesh_sandbox.url}: ")
    assert stderr.count("\n") == 1 and "address already in use" in stderr.lower()
    with MeshClient(mesh_sandbox.url, "X26ABC3", "password", shared_key=b"TestKey") as client:
        client.handshake()  # the first sandbox is untouched


def test_sighup_stops_the_sandbox_and_its_server(started) -> None:
    """Closing the terminal (SIGHUP) stops the server too: it runs in a session of its own, which the
    terminal's hangup never reaches, so a sandbox left running would keep the port."""
    port = free_port()
    run = Running("--port", str(port))
    started.append(run)
    run.wait_for("poll_interval", count=3)
    children = psutil.Process(run.process.pid).children(recursive=True)
    assert children and listening(port)
    run.process.send_signal(signal.SIGHUP)
    code = run.process.wait(30)
    run._reader.join(5)
    _gone, alive = psutil.wait_procs(children, timeout=30)
    for child in alive:  # (the test leaves nothing behind either way)
        child.kill()
    assert alive == [] and not listening(port)
    assert code == 0 and run.stdout.rstrip().endswith("mesh-sandbox stopped")
