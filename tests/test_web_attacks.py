"""The local API attacked from outside, against a real uvicorn on 127.0.0.1 with raw sockets:
what a hostile or broken client does with the Host header, a body it never finishes, a download
it never reads, and a connection it opens and leaves. Each test failed before its fix."""

from __future__ import annotations

import logging
import os
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


def slow_download(api: Any, message_id: str) -> tuple[socket.socket, bytes]:
    """A download whose client reads its answer's head and then nothing more (a tiny receive buffer)."""
    host, port = api.server.url.split("//")[1].rsplit(":", 1)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(30)
    sock.connect((host, int(port)))
    token = TOKENS["operator"]
    head = f"GET {API}/messages/{message_id}/payload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
    sock.sendall(head.encode() + b"\r\n")
    return sock, sock.recv(1000)


@pytest.fixture
def big_payload(api: Any) -> tuple[str, bytes]:
    """A stored payload bigger than the socket buffers and the download's handoff queue hold."""
    data = os.urandom(24 * 1024 * 1024)
    return api.call("POST", f"{API}/routes/out/messages", "submitter", content=data).json()["id"], data


def test_downloads_never_read_leave_the_api_to_everyone_else(api, big_payload) -> None:
    """Four downloads whose clients stop reading held all four bridges, so every later request
    (/healthz too) queued for ever. Now downloads hold at most half the pool, and a request
    waits for a bridge at most the pool's ``wait`` (then 503 Busy with Retry-After)."""
    pool = api.app.state.pool
    pool.wait = 1.0
    stuck = [slow_download(api, big_payload[0]) for _ in range(4)]
    try:
        heads = [head.split(b"\r\n")[0] for _, head in stuck]
        assert heads == [b"HTTP/1.1 200 OK"] * 2 + [b"HTTP/1.1 503 Service Unavailable"] * 2
        assert all(b"\r\nretry-after: 1\r\n" in head.lower() for _, head in stuck[2:]), stuck[2][1]
        assert api.call("GET", "/healthz", None).json() == {"status": "ok"}
        assert api.call("GET", f"{API}/status", "viewer").status_code == 200
        assert api.call("GET", f"{API}/messages/{big_payload[0]}", "viewer").status_code == 200
    finally:
        for sock, _ in stuck:
            sock.close()


def test_a_download_its_client_stops_reading_gives_its_bridge_back(api, big_payload, monkeypatch) -> None:
    """A download whose client takes no block for STALL seconds stops short and gives its bridge
    back (it held it for as long as the client kept the connection open); others download whole."""
    import hashlib

    from meshbridge.web import payload

    monkeypatch.setattr(payload, "STALL", 1.0)
    pool = api.app.state.pool
    sock, head = slow_download(api, big_payload[0])
    try:
        assert head.startswith(b"HTTP/1.1 200 OK")
        for _ in range(300):
            if len(pool._idle) == pool._open:
                break
            time.sleep(0.05)
        assert len(pool._idle) == pool._open  # every bridge back in the pool
    finally:
        sock.close()
    done = api.call("GET", f"{API}/messages/{big_payload[0]}/payload", "operator")
    assert done.status_code == 200 and hashlib.sha256(done.content).digest() == hashlib.sha256(big_payload[1]).digest()


def test_a_connection_that_never_finishes_its_request_head_is_closed(api, monkeypatch) -> None:
    """uvicorn waited for ever on a connection that sent part of a request head (or nothing): a
    client could hold connections open without end. Now each is closed HEAD_WAIT seconds on; a
    connection that sends its request in time is answered."""
    from meshbridge.web import protocol

    monkeypatch.setattr(protocol, "HEAD_WAIT", 1.0)
    with connect(api) as silent, connect(api) as partial:
        partial.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
        assert silent.recv(100) == b""  # closed by the server (the socket's timeout is 10 s)
        assert partial.recv(100) == b""
    assert exchange(api, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").startswith(b"HTTP/1.1 200")


def test_an_upload_to_a_full_disk_is_507_and_leaves_nothing(api, monkeypatch, tmp_path: Path) -> None:
    """The upload's temporary file meets a full disk (its path a link to /dev/full, which
    refuses every write with ENOSPC): 507 DiskFull, no traceback, its folder removed, nothing
    stored (it was a 500 InternalError with a logged traceback)."""
    import tempfile

    folder = tmp_path / "upload"

    def full_folder(**_: Any) -> str:
        folder.mkdir()
        (folder / "payload").symlink_to("/dev/full")
        return str(folder)

    monkeypatch.setattr(tempfile, "mkdtemp", full_folder)
    done = api.call("POST", f"{API}/routes/out/messages", "submitter", content=b"x" * 100_000)
    assert done.status_code == 507, done.text
    assert done.json()["type"] == "DiskFull" and "no space left" in done.json()["error"]
    assert not folder.exists()
    monkeypatch.undo()
    assert api.call("GET", f"{API}/messages").json()["items"] == []
