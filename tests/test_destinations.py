"""Destinations: HTTP POST (2xx = delivered, retried otherwise) and command (exit 0 = delivered)."""

from __future__ import annotations

import http.server
import threading
import typing
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import OUT_IN


class Endpoint(http.server.BaseHTTPRequestHandler):
    statuses: typing.ClassVar[list[int]] = []
    received: typing.ClassVar[list[tuple[bytes, str]]] = []

    def do_POST(self) -> None:
        assert self.headers["Transfer-Encoding"] == "chunked"  # streamed, not held in memory
        body = b""
        while size := int(self.rfile.readline().strip(), 16):
            body += self.rfile.read(size)
            self.rfile.readline()
        self.rfile.readline()
        status = self.statuses.pop(0) if self.statuses else 204
        if status < 300:
            self.received.append((body, self.headers["X-Meshbridge-Name"]))
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def endpoint() -> Iterator[tuple[str, type[Endpoint]]]:
    Endpoint.statuses, Endpoint.received = [], []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Endpoint)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/epr", Endpoint
    server.shutdown()
    server.server_close()


def test_http_destination_retries_until_2xx(meshbridge_config, make_bridge, mesh_peer, endpoint, monkeypatch) -> None:
    url, handler = endpoint
    handler.statuses = [503]  # the EPR is down at first
    routes = OUT_IN.replace('destination = { folder = "delivered" }', f'destination = {{ http = "{url}" }}')
    bridge = make_bridge(meshbridge_config(routes))
    recorded = []  # a POST is not repeated lightly: its delivery is recorded durably, not left to a later sync
    real = bridge.store.transition
    monkeypatch.setattr(
        bridge.store, "transition", lambda i, to, **k: recorded.append((to, k.get("durable", True))) or real(i, to, **k)
    )
    mesh_id = mesh_peer("X26ABC1").send_message("X26ABC2", b"to the EPR", workflow_id="TEST_WORKFLOW")
    first = bridge.poll()
    message = bridge.store.find("in", mesh_id)
    assert message["state"] == "valid" and "answered HTTP 503" in message["last_error"]
    assert "POST" in first.problems[0] and handler.received == []
    second = bridge.poll()
    assert second.delivered == [message["id"]] and second.problems == []
    assert handler.received == [(b"to the EPR", f"{mesh_id}_{mesh_id}.dat")]
    assert bridge.store.get(message["id"])["state"] == "delivered"
    assert ("delivered", True) in recorded
    bridge.poll()
    assert len(handler.received) == 1  # once


def test_command_destination(tmp_path: Path, meshbridge_config, make_bridge, mesh_peer) -> None:
    target = tmp_path / "imported.txt"
    command = f'["/bin/sh", "-c", "cat \\"$0\\" >> {target}; test -s {target}", "{{path}}"]'
    routes = OUT_IN.replace('destination = { folder = "delivered" }', f"destination = {{ command = {command} }}")
    bridge = make_bridge(meshbridge_config(routes))
    mesh_peer("X26ABC1").send_message("X26ABC2", b"via a command\n", workflow_id="TEST_WORKFLOW")
    assert bridge.poll().problems == []
    assert target.read_bytes() == b"via a command\n"
    failing = OUT_IN.replace('destination = { folder = "delivered" }', 'destination = { command = ["false"] }')
    other = make_bridge(meshbridge_config(failing, name="other.toml", store="other/mb.db"))
    mesh_peer("X26ABC1").send_message("X26ABC2", b"refused", workflow_id="TEST_WORKFLOW")
    report = other.poll()
    assert report.delivered == [] and "command false exited 1" in report.problems[0]
