"""The local API attacked from outside, against a real uvicorn on 127.0.0.1 with raw sockets:
what a hostile or broken client does with the Host header, a body it never finishes, a download
it never reads, and a connection it opens and leaves. Each test failed before its fix."""

from __future__ import annotations

import logging
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import OUT_IN
from web_fixtures import TOKENS, with_web

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


def test_a_client_gone_mid_upload_is_not_an_error_and_leaves_no_file(api, caplog, tmp_path: Path) -> None:
    """A submit whose client disconnects part-way: logged as a client that went away (no
    traceback, not an error), its temporary folder removed, nothing stored."""
    import tempfile

    before = set(Path(tempfile.gettempdir()).glob("meshbridge-upload-*"))
    caplog.set_level(logging.INFO)
    with connect(api) as sock:
        head = (
            f"POST {API}/routes/out/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKENS['submitter']}\r\n"
            "Content-Length: 100000\r\n\r\n"
        )
        sock.sendall(head.encode() + b"x" * 5000)
        for _ in range(200):  # the upload's folder exists once the body is being received
            if set(Path(tempfile.gettempdir()).glob("meshbridge-upload-*")) - before:
                break
            time.sleep(0.02)
    for _ in range(200):
        if not set(Path(tempfile.gettempdir()).glob("meshbridge-upload-*")) - before:
            break
        time.sleep(0.02)
    assert not set(Path(tempfile.gettempdir()).glob("meshbridge-upload-*")) - before
    assert api.call("GET", f"{API}/messages").json()["items"] == []
    assert [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info] == []
    assert any("went away" in r.getMessage() for r in caplog.records)
