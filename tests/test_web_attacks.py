"""The local API attacked from outside, against a real uvicorn on 127.0.0.1 with raw sockets:
what a hostile or broken client does with the Host header, a body it never finishes, a download
it never reads, and a connection it opens and leaves. Each test failed before its fix."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from conftest import OUT_IN
from web_fixtures import with_web

API = "/api/v1"


def connect(api: Any) -> socket.socket:
    host, port = api.server.url.split("//")[1].rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=10)


def exchange(api: Any, request: bytes) -> bytes:
    """Send ``request`` on a new connection; everything the server answers until it closes."""
    with connect(api) as sock:
        sock.sendall(request)
        answer = b""
        while block := sock.recv(65536):
            answer += block
        return answer


@pytest.fixture
def api(meshbridge_config, web_api) -> Any:
    return web_api(with_web(meshbridge_config(OUT_IN), 'max_upload = "64MiB"\n'))


def test_a_trailing_slash_is_not_redirected_to_the_host_the_client_names(api) -> None:
    """Starlette answered ``/api/v1/status/`` with a 307 to ``http://<Host header>/api/v1/status``:
    a redirect to wherever the client said (an open redirect a token could follow)."""
    answer = exchange(api, b"GET /api/v1/status/ HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 404 "), head
    assert b"location" not in head.lower() and b"evil.example" not in answer
    assert b'"type":"NotFound"' in body
