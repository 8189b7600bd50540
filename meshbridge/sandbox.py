"""An embedded NHS mesh-sandbox in a child process, for ``meshbridge demo`` and the test fixtures.

The sandbox (PyPI ``mesh-sandbox``) is NHS England's own local MESH server. It runs here in its own
process group on a free 127.0.0.1 port, so stopping it never leaves a process behind and a test
can stop and restart it (``store_mode="file"`` keeps messages across restarts).
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from .errors import MeshbridgeError

MAILBOXES = ("X26ABC1", "X26ABC2", "X26ABC3")
PASSWORD = "password"  # the sandbox's built-in mailboxes all use this
SHARED_KEY = "TestKey"
INSTALL = "pip install 'meshbridge[sandbox]'"


def installed() -> bool:
    """Whether the ``[sandbox]`` extra (mesh-sandbox and uvicorn) can be imported."""
    return all(importlib.util.find_spec(name) is not None for name in ("mesh_sandbox", "uvicorn"))


@dataclass(frozen=True)
class TLS:
    """Serve HTTPS and demand a client certificate signed by ``ca`` (mutual TLS, as the real MESH does)."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    @classmethod
    def generate(cls, folder: Path) -> TLS:
        """A throw-away CA, a server certificate for 127.0.0.1/localhost and a client certificate (openssl)."""
        folder.mkdir(parents=True, exist_ok=True)

        def run(*args: str) -> None:
            subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=folder)

        run(
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=meshbridge test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        )
        (folder / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        for name, cn in (("server", "localhost"), ("client", "SERVER001.X26.api.mesh-client.nhs.uk")):
            run(
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                f"/CN={cn}",
                "-keyout",
                f"{name}.key",
                "-out",
                f"{name}.csr",
            )
            extra = ["-extfile", "server.ext"] if name == "server" else []
            run(
                "x509",
                "-req",
                "-in",
                f"{name}.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-out",
                f"{name}.pem",
                *extra,
            )
        return cls(
            folder / "ca.pem",
            folder / "server.pem",
            folder / "server.key",
            folder / "client.pem",
            folder / "client.key",
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Sandbox:
    """A running mesh-sandbox: ``with Sandbox() as sbx: sbx.url``."""

    def __init__(
        self,
        *,
        shared_key: str = SHARED_KEY,
        store_mode: str = "memory",
        store_dir: Path | None = None,
        tls: TLS | None = None,
        port: int | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        if not installed():
            raise MeshbridgeError(f"the embedded MESH sandbox needs the mesh-sandbox package: {INSTALL}")
        self.shared_key = shared_key
        self.store_mode = store_mode
        self.store_dir = store_dir
        self.tls = tls
        self.host = host
        self.port = port or free_port()
        shown = f"[{host}]" if ":" in host else host  # an IPv6 address
        self.url = f"{'https' if tls else 'http'}://{shown}:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the sandbox

    def start(self, timeout: float = 30.0) -> Sandbox:
        env = {
            **os.environ,
            "AUTH_MODE": "full",
            "STORE_MODE": self.store_mode,
            "SHARED_KEY": self.shared_key,
        }
        if self.store_dir is not None:
            env["FILE_STORE_DIR"] = str(self.store_dir)
        command = [sys.executable, "-m", "uvicorn", "mesh_sandbox.api:app", "--host", self.host]
        command += ["--port", str(self.port), "--workers", "1", "--log-level", "warning"]
        if self.tls:
            command += ["--ssl-certfile", str(self.tls.server_cert), "--ssl-keyfile", str(self.tls.server_key)]
            command += ["--ssl-ca-certs", str(self.tls.ca), "--ssl-cert-reqs", "2"]  # CERT_REQUIRED
        self._process = subprocess.Popen(
            command, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            if self._answers(timeout):
                return self
        except BaseException:  # interrupted while it starts (Ctrl-C, the demo's SIGTERM): in its own session, it
            self.stop()  # would outlive us
            raise
        output = self.output()
        self.stop()
        raise MeshbridgeError(f"mesh-sandbox did not start on {self.url}:\n{output}")

    def _answers(self, timeout: float) -> bool:
        """Wait until the started server answers its health check (False: it exited, or the time ran out)."""
        assert self._process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                return False
            try:
                if requests.get(f"{self.url}/health", timeout=1, **self._tls_args()).ok:
                    return True
            except requests.RequestException:
                time.sleep(0.05)
        return False

    def _tls_args(self) -> dict[str, Any]:
        if not self.tls:
            return {}
        return {"verify": str(self.tls.ca), "cert": (str(self.tls.client_cert), str(self.tls.client_key))}

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def output(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-4000:]

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self._log.close()

    # -- the sandbox's admin endpoints (no auth) --------------------------------------------

    def reset(self) -> None:
        requests.delete(f"{self.url}/messageexchange/admin/reset", timeout=10, **self._tls_args()).raise_for_status()

    def report(
        self,
        mailbox_id: str,
        linked_message_id: str,
        *,
        workflow_id: str,
        code: str = "14",
        description: str = "Message not collected by recipient after 5 days",
        local_id: str | None = None,
    ) -> str:
        """Put a non-delivery REPORT about ``linked_message_id`` into ``mailbox_id``'s inbox."""
        body: dict[str, Any] = {
            "mailbox_id": mailbox_id,
            "code": code,
            "description": description,
            "workflow_id": workflow_id,
            "linked_message_id": linked_message_id,
            "status": "undeliverable",
        }
        if local_id:
            body["local_id"] = local_id
        response = requests.post(f"{self.url}/messageexchange/admin/report", json=body, timeout=10, **self._tls_args())
        response.raise_for_status()
        return str(response.json()["message_id"])


def config_text(
    sandbox: Sandbox,
    routes: str = "",
    *,
    store: str = "var/meshbridge.db",
    mailboxes: tuple[str, ...] = MAILBOXES,
    mesh: str = "",
) -> str:
    """A ``meshbridge.toml`` for this sandbox: its mailboxes, fast polling, ``routes`` appended as TOML.
    ``store``: a SQLite file, or a ``postgresql://`` URL."""
    key = "url" if "://" in store else "path"  # postgresql://…
    return f'[store]\n{key} = "{store}"\n\n' + mesh_text(sandbox, mailboxes=mailboxes, mesh=mesh) + "\n" + routes


def mesh_text(sandbox: Sandbox, *, mailboxes: tuple[str, ...] = MAILBOXES, mesh: str = "") -> str:
    """The ``[mesh]`` table and ``[[mailboxes]]`` of a ``meshbridge.toml`` for this sandbox (fast polling)."""
    text = f'[mesh]\nurl = "{sandbox.url}"\nshared_key = "{sandbox.shared_key}"\nsandbox = true\n{mesh}'
    for mailbox in mailboxes:
        text += f'\n[[mailboxes]]\nid = "{mailbox}"\npassword = "{PASSWORD}"\npoll_interval = "5s"\n'
    return text
