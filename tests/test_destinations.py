"""Destinations: folder batches, HTTP POST (2xx = delivered, retried otherwise) and command (exit 0 = delivered)."""

from __future__ import annotations

import contextlib
import http.server
import json
import logging
import os
import re
import shutil
import ssl
import stat
import subprocess
import tempfile
import threading
import time
import typing
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from conftest import OUT_IN

from meshbridge.destinations import DeliveryError, FolderBatch


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
    bridge = make_bridge(meshbridge_config(routes + '\n[service]\ndelivery_backoff = "0s"\n'))  # retried at once
    recorded = []  # a POST is not repeated lightly: its delivery is recorded durably, not left to a later sync
    real = bridge.store.transition
    monkeypatch.setattr(
        bridge.store, "transition", lambda i, to, **k: recorded.append((to, k.get("durable", True))) or real(i, to, **k)
    )
    mesh_id = mesh_peer("X26ABC1").send_message("X26ABC2", b"to the EPR", workflow_id="TEST_WORKFLOW")
    first = bridge.poll()
    message = bridge.store.find("in", mesh_id)
    assert message.state == "valid" and "answered HTTP 503" in message.last_error
    assert "POST" in first.problems[0] and handler.received == []
    second = bridge.poll()
    assert second.delivered == [message.id] and second.problems == []
    assert handler.received == [(b"to the EPR", f"{mesh_id}_{mesh_id}.dat")]
    assert bridge.store.get(message.id).state == "delivered"
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


def test_folder_batch_shows_nothing_until_every_file_is_durable(tmp_path: Path) -> None:
    batch, outbox = FolderBatch("cafe0123"), tmp_path / "epr" / "in"
    done: list[object] = []
    for n in range(3):
        batch.add(outbox, [b"part one, ", f"part two of {n}".encode()], f"m{n}.dat", done.append)
    assert len(batch) == 3 and batch.size == sum(len(f"part one, part two of {n}") for n in range(3))
    assert all(p.name.startswith(".meshbridge-cafe0123-") and p.suffix == ".part" for p in outbox.iterdir())
    batch.finish()
    assert done == [str(outbox / f"m{n}.dat") for n in range(3)]
    expected = [f"part one, part two of {n}".encode() for n in range(3)]
    assert [(outbox / f"m{n}.dat").read_bytes() for n in range(3)] == expected
    assert stat.S_IMODE((outbox / "m0.dat").stat().st_mode) == 0o640
    assert sorted(p.name for p in outbox.iterdir()) == ["m0.dat", "m1.dat", "m2.dat"] and len(batch) == 0


def test_folder_batch_failures_are_per_file_and_leftovers_are_cleaned(tmp_path: Path) -> None:
    batch, good, gone = FolderBatch("cafe0123"), tmp_path / "good", tmp_path / "gone"
    done: list[object] = []
    batch.add(good, [b"kept"], "a.dat", done.append)
    batch.add(gone, [b"lost"], "b.dat", done.append)
    (gone / "b.dat").mkdir()  # a folder where the file should go: the rename fails
    batch.finish()
    assert done[0] == str(good / "a.dat") and (good / "a.dat").read_bytes() == b"kept"
    assert isinstance(done[1], DeliveryError) and f"cannot write to folder {gone}" in str(done[1])
    assert [p.name for p in gone.iterdir()] == ["b.dat"]  # the failed one's temp file is gone

    crashed = FolderBatch("cafe0123")  # a pass dies with files staged ...
    crashed.add(good, [b"half a pass"], "c.dat", done.append)
    os.close(crashed._staged[0].fd)  # (the dead process's descriptor)
    (good / ".meshbridge-0ther5t0re-inflight.part").write_bytes(b"another store's")
    FolderBatch("cafe0123").clean([good, gone])  # ... the next one removes what it left, only that
    assert sorted(p.name for p in good.iterdir()) == [".meshbridge-0ther5t0re-inflight.part", "a.dat"]


def test_folder_batch_records_every_file_when_one_record_fails(tmp_path: Path) -> None:
    batch, done = FolderBatch("cafe0123"), []

    def refuse(outcome: object) -> None:
        raise RuntimeError("database is locked")

    batch.add(tmp_path, [b"one"], "1.dat", refuse)
    batch.add(tmp_path, [b"two"], "2.dat", done.append)
    with pytest.raises(RuntimeError, match="database is locked"):
        batch.finish()
    assert done == [str(tmp_path / "2.dat")] and (tmp_path / "1.dat").read_bytes() == b"one"


def test_folder_batch_files_take_the_folders_group(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to give the folder another group")
    shared = tmp_path / "epr"
    shared.mkdir()
    os.chown(shared, -1, 65534)
    shared.chmod(0o2770)  # setgid: files made here belong to the EPR's group
    batch, done = FolderBatch("cafe0123"), []
    batch.add(shared, [b"for the EPR"], "m.dat", done.append)
    batch.finish()
    assert (shared / "m.dat").stat().st_gid == 65534


def test_a_folder_on_another_file_system_than_the_store(meshbridge_config, make_bridge, mesh_peer) -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir():
        pytest.skip("needs /dev/shm")
    with tempfile.TemporaryDirectory(dir=shm) as other:
        routes = OUT_IN.replace('destination = { folder = "delivered" }', f'destination = {{ folder = "{other}" }}')
        bridge = make_bridge(meshbridge_config(routes))
        mesh_id = mesh_peer("X26ABC1").send_message("X26ABC2", b"to tmpfs", workflow_id="TEST_WORKFLOW")
        report = bridge.poll()
        message = bridge.store.find("in", mesh_id)
        assert report.problems == [] and report.delivered == [message.id]
        assert message.state == "delivered" and Path(message.destination).read_bytes() == b"to tmpfs"
        assert Path(message.destination).parent == Path(other)


# -- HTTP: redirects, a total deadline, credentials from secret references, causes kept -------


def inbound(destination: str) -> str:
    """The OUT_IN routes with another destination for the inbound route."""
    return OUT_IN.replace('destination = { folder = "delivered" }', f"destination = {destination}")


class Recorder(http.server.BaseHTTPRequestHandler):
    """Records each request (method, path, headers, body) and answers ``answer(handler)``'s status."""

    protocol_version = "HTTP/1.1"
    requests: typing.ClassVar[list[tuple[str, str, dict[str, str], bytes]]]
    answer: typing.ClassVar[typing.Callable[..., tuple[int, dict[str, str]] | None]]

    def do_any(self) -> None:
        type(self).requests.append((self.command, self.path, dict(self.headers), self.body()))
        answered = type(self).answer(self)
        if answered is None:  # the answer function wrote its own
            return
        status, headers = answered
        self.send_response(status)
        for name, value in {**headers, "Content-Length": "0"}.items():
            self.send_header(name, value)
        self.end_headers()

    do_GET = do_POST = do_PUT = do_any

    def body(self) -> bytes:
        if self.headers["Transfer-Encoding"] == "chunked":
            body = b""
            while size := int(self.rfile.readline().strip(), 16):
                body += self.rfile.read(size)
                self.rfile.readline()
            self.rfile.readline()
            return body
        return self.rfile.read(int(self.headers["Content-Length"] or 0))

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def serving(answer: typing.Callable[..., tuple[int, dict[str, str]] | None], tls: ssl.SSLContext | None = None):
    """A real HTTP(S) server on 127.0.0.1 in a thread: yields (base URL, the requests it got)."""
    handler = type("Handler", (Recorder,), {"requests": [], "answer": staticmethod(answer)})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{server.server_address[1]}", handler.requests
    finally:
        server.shutdown()
        server.server_close()


def poll_within(bridge, seconds: float = 60.0):
    """Poll in a thread; the poll must come back within a generous bound (a hang fails the test)."""
    outcome: list[object] = []
    thread = threading.Thread(target=lambda: outcome.append(bridge.poll()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"the poll did not come back within {seconds:g}s"
    return outcome[0]


@pytest.mark.parametrize("status", [302, 307])
def test_http_redirect_is_a_failed_delivery_and_never_followed(
    status: int, meshbridge_config, make_bridge, mesh_peer
) -> None:
    with serving(lambda h: (204, {})) as (elsewhere, diverted):
        location = f"{elsewhere}/other-host?sig=Token-In-Query-3c9d"
        with serving(lambda h: (status, {"Location": location})) as (url, received):
            bridge = make_bridge(meshbridge_config(inbound(f'{{ http = "{url}/epr" }}')))
            mesh_id = mesh_peer("X26ABC1").send_message("X26ABC2", b"for the EPR", workflow_id="TEST_WORKFLOW")
            report = bridge.poll()
            message = bridge.store.find("in", mesh_id)
            assert report.delivered == [] and message.state == "valid" and message.destination is None
            error = message.last_error
            assert f"answered HTTP {status}, a redirect to {elsewhere}/other-host?... (not followed)" in error
            assert "Token-In-Query" not in error and "Token-In-Query" not in " ".join(report.problems)
            assert [(m, b) for m, _, _, b in received] == [("POST", b"for the EPR")]
            assert diverted == []  # the redirect target never heard of it


def endless_redirect(sent: list[int], cap: int) -> typing.Callable[[Recorder], None]:
    """A 302 whose chunked body goes on (up to ``cap`` bytes, then the endpoint holds the line)."""

    def answer(handler: Recorder) -> None:
        handler.send_response(302)
        handler.send_header("Location", "/elsewhere")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        chunk = b"%x\r\n%s\r\n" % (1 << 20, b"x" * (1 << 20))
        with contextlib.suppress(OSError):
            while sum(sent) < cap:
                handler.wfile.write(chunk)
                sent.append(1 << 20)
            time.sleep(30)
        handler.close_connection = True

    return answer


def test_http_redirect_body_is_never_read(meshbridge_config, make_bridge, mesh_peer) -> None:
    """requests reads a 3xx's whole body into memory even when not following it: an endpoint could
    send gigabytes. Only the status line and headers are read; the connection is then dropped."""
    sent: list[int] = []
    with serving(endless_redirect(sent, cap=200 << 20)) as (url, received):
        bridge = make_bridge(meshbridge_config(inbound(f'{{ http = "{url}/epr", timeout = "20s" }}')))
        mesh_id = mesh_peer("X26ABC1").send_message("X26ABC2", b"redirected", workflow_id="TEST_WORKFLOW")
        poll_within(bridge, 60)
        message = bridge.store.find("in", mesh_id)
        assert message.state == "valid" and len(received) == 1
        assert f"answered HTTP 302, a redirect to {url}/elsewhere (not followed)" in message.last_error
    assert sum(sent) < 64 << 20  # what socket buffers hold, not the 200 MiB the endpoint had ready


@pytest.mark.parametrize("location", ["http://[evil/x", "http://evil:99999/x"])
def test_http_redirect_with_an_unreadable_location_is_still_a_redirect(
    location: str, meshbridge_config, make_bridge, mesh_peer
) -> None:
    with serving(lambda h: (307, {"Location": location})) as (url, received):
        bridge = make_bridge(meshbridge_config(inbound(f'{{ http = "{url}/epr" }}')))
        mesh_id = mesh_peer("X26ABC1").send_message("X26ABC2", b"odd location", workflow_id="TEST_WORKFLOW")
        bridge.poll()
    message = bridge.store.find("in", mesh_id)
    assert message.state == "valid" and len(received) == 1
    assert message.last_error.endswith("answered HTTP 307, a redirect to (an unreadable URL) (not followed)")


def trickle(handler: Recorder) -> None:
    """An endpoint that takes the POST, then answers one byte every half second for a minute."""
    with contextlib.suppress(OSError):
        for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"." * 120:
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()
            time.sleep(0.5)
    handler.close_connection = True


def test_http_total_deadline_ends_a_trickling_endpoint(meshbridge_config, make_bridge, mesh_peer) -> None:
    with serving(trickle) as (url, received):
        bridge = make_bridge(meshbridge_config(inbound(f'{{ http = "{url}/epr", timeout = "2s" }}')))
        mesh_id = mesh_peer("X26ABC1").send_message("X26ABC2", b"slowly", workflow_id="TEST_WORKFLOW")
        report = poll_within(bridge, 30)  # the trickle would take a minute; a per-read timeout never fires
        message = bridge.store.find("in", mesh_id)
        assert report.delivered == [] and message.state == "valid"
        assert f"POST {url}/epr took more than its 2s deadline" in message.last_error
        assert len(received) == 1


TOKEN = "Bearer tok-Distinctive-5e1f0a"


def test_http_header_secret_from_env_reaches_the_endpoint_and_nothing_else(
    meshbridge_config, make_bridge, mesh_peer, monkeypatch, tmp_path: Path, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("EPR_TOKEN", TOKEN)
    answers = iter([500, 204])
    with serving(lambda h: (next(answers), {})) as (url, received):
        headers = 'headers = { Authorization = { env = "EPR_TOKEN" } }'
        routes = inbound(f'{{ http = "{url}/epr", {headers} }}') + '\n[service]\ndelivery_backoff = "0s"\n'
        bridge = make_bridge(meshbridge_config(routes))  # a failed delivery is retried at once
        mesh_id = mesh_peer("X26ABC1").send_message("X26ABC2", b"with a token", workflow_id="TEST_WORKFLOW")
        first = bridge.poll()
        assert "answered HTTP 500" in first.problems[0]
        second = bridge.poll()
        message = bridge.store.find("in", mesh_id)
        assert second.delivered == [message.id] and message.state == "delivered"
    assert [h["Authorization"] for _, _, h, _ in received] == [TOKEN, TOKEN]
    stored = b"".join(p.read_bytes() for p in (tmp_path / "var").rglob("*") if p.is_file())
    assert TOKEN.encode() not in stored and b"tok-Distinctive" not in stored
    assert "tok-Distinctive" not in caplog.text + " ".join(first.problems) + repr(bridge.config)


def test_http_redirect_echoing_a_secret_never_stores_it(
    meshbridge_config, make_bridge, mesh_peer, monkeypatch, caplog
) -> None:
    """An endpoint whose Location quotes our Authorization header (a login redirect carrying it on)."""
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("EPR_TOKEN", "tok-Echoed-7a2c")
    with serving(lambda h: (302, {"Location": f"/login/{h.headers['Authorization']}/next"})) as (url, received):
        headers = 'headers = { Authorization = { env = "EPR_TOKEN" } }'
        bridge = make_bridge(meshbridge_config(inbound(f'{{ http = "{url}/epr", {headers} }}')))
        mesh_id = mesh_peer("X26ABC1").send_message("X26ABC2", b"to be echoed", workflow_id="TEST_WORKFLOW")
        report = bridge.poll()
    message = bridge.store.find("in", mesh_id)
    assert message.state == "valid" and len(received) == 1
    assert f"a redirect to {url}/login/********/next (not followed)" in message.last_error
    assert "tok-Echoed" not in message.last_error + " ".join(report.problems) + caplog.text


def test_http_basic_auth_from_a_secret_reference(meshbridge_config, make_bridge, mesh_peer, monkeypatch) -> None:
    import base64

    monkeypatch.setenv("EPR_PASSWORD", "pw-Basic-Distinctive-41")
    with serving(lambda h: (204, {})) as (url, received):
        auth = 'auth = { username = "meshbridge", password = { env = "EPR_PASSWORD" } }'
        bridge = make_bridge(meshbridge_config(inbound(f'{{ http = "{url}/epr", {auth} }}')))
        mesh_id = mesh_peer("X26ABC1").send_message("X26ABC2", b"authenticated", workflow_id="TEST_WORKFLOW")
        assert bridge.poll().problems == []
    assert bridge.store.find("in", mesh_id).state == "delivered"
    expected = "Basic " + base64.b64encode(b"meshbridge:pw-Basic-Distinctive-41").decode()
    assert [(h["Authorization"], b) for _, _, h, b in received] == [(expected, b"authenticated")]


@pytest.mark.parametrize("port", ["3128", "99999"])  # refused, or a URL the library quotes back
def test_http_proxy_credentials_from_the_environment_never_reach_an_error(
    port: str, meshbridge_config, make_bridge, mesh_peer, monkeypatch, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    routes = inbound('{ http = "http://epr.invalid/epr" }') + '\n[service]\ndelivery_backoff = "0s"\n'
    bridge = make_bridge(meshbridge_config(routes))
    mesh_id = mesh_peer("X26ABC1").send_message("X26ABC2", b"via a proxy", workflow_id="TEST_WORKFLOW")
    bridge.poll()  # stored; its delivery failed (no such host)
    for name in ("HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(name, f"http://proxyuser:Proxy-Secret-77@127.0.0.1:{port}")
    report = bridge.poll()  # tried again, through the proxy
    message = bridge.store.find("in", mesh_id)
    assert message.state == "valid" and message.last_error.startswith("POST http://epr.invalid/epr failed: ")
    assert any(message.last_error in problem for problem in report.problems)
    shown = message.last_error + " ".join(report.problems) + caplog.text
    assert "Proxy-Secret" not in shown and "proxyuser" not in shown


def test_http_tls_error_keeps_its_cause(meshbridge_config, make_bridge, mesh_peer, tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        assert os.environ.get("CI") != "true", "openssl is needed to make a self-signed certificate"
        pytest.skip("needs openssl")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", "key.pem", "-out", "cert.pem", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        cwd=tmp_path, check=True, capture_output=True,
    )  # fmt: skip
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    with serving(lambda h: (204, {}), tls=tls) as (url, received):
        bridge = make_bridge(meshbridge_config(inbound(f'{{ http = "{url}/epr" }}')))
        mesh_id = mesh_peer("X26ABC1").send_message("X26ABC2", b"over TLS", workflow_id="TEST_WORKFLOW")
        report = bridge.poll()
    message = bridge.store.find("in", mesh_id)
    assert report.delivered == [] and message.state == "valid" and received == []
    assert re.search(r"failed: certificate verify failed: self.signed certificate$", message.last_error)


# -- command: a total deadline over the process group, a minimal environment -----------------


def leftovers(marker: str) -> list[psutil.Process]:
    """Processes still running whose command line holds ``marker`` (unique to one test)."""
    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        if marker in " ".join(process.info["cmdline"] or []) and process.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(process)
    return found


def gone(marker: str) -> bool:
    """Wait (bounded) for the processes with ``marker`` to end; kill any left so none outlives the test."""
    for _ in range(100):
        if not leftovers(marker):
            return True
        time.sleep(0.1)
    for process in leftovers(marker):
        process.kill()
    return False


def test_command_leaving_a_background_child_is_delivered_once(
    tmp_path: Path, meshbridge_config, make_bridge, mesh_peer
) -> None:
    target = tmp_path / "imported.txt"
    script = f'cat "$0" >> {target}; sleep 98761 & exit 0'  # the child holds stdout and stderr open
    bridge = make_bridge(
        meshbridge_config(inbound(f"{{ command = {json.dumps(['/bin/sh', '-c', script, '{path}'])} }}"))
    )
    mesh_id = mesh_peer("X26ABC1").send_message("X26ABC2", b"once\n", workflow_id="TEST_WORKFLOW")
    try:
        report = poll_within(bridge, 60)
        message = bridge.store.find("in", mesh_id)
        assert report.problems == [] and report.delivered == [message.id] and message.state == "delivered"
        assert poll_within(bridge, 60).delivered == []
        assert target.read_bytes() == b"once\n"
    finally:
        assert gone("sleep 98761")  # the command's group ends with it


def test_command_deadline_kills_its_whole_process_group(meshbridge_config, make_bridge, mesh_peer) -> None:
    script = "sleep 98762 & sleep 98763"
    command = json.dumps(["/bin/sh", "-c", script, "{path}"])
    bridge = make_bridge(meshbridge_config(inbound(f'{{ command = {command}, timeout = "1s" }}')))
    mesh_id = mesh_peer("X26ABC1").send_message("X26ABC2", b"too slow", workflow_id="TEST_WORKFLOW")
    try:
        report = poll_within(bridge, 60)
        message = bridge.store.find("in", mesh_id)
        assert report.delivered == [] and message.state == "valid"
        assert "command /bin/sh did not finish within its 1s deadline" in message.last_error
    finally:
        assert gone("sleep 9876")


def test_command_gets_a_minimal_environment(
    tmp_path: Path, meshbridge_config, make_bridge, mesh_peer, monkeypatch
) -> None:
    monkeypatch.setenv("MB_TEST_MESH_PASSWORD", "password")  # the sandbox mailboxes' password
    monkeypatch.setenv("EPR_HOME", "/srv/epr")
    monkeypatch.setenv("UNRELATED", "not for the command")
    seen = tmp_path / "env.txt"
    command = json.dumps(["/bin/sh", "-c", f"env > {seen}", "{path}"])
    for options, wanted in (("", set()), (', env = ["EPR_HOME"]', {"EPR_HOME"})):
        config = meshbridge_config(inbound(f"{{ command = {command}{options} }}"), name=f"c{len(wanted)}.toml")
        config.write_text(
            config.read_text().replace('password = "password"', 'password = { env = "MB_TEST_MESH_PASSWORD" }')
        )
        bridge = make_bridge(config)
        mesh_peer("X26ABC1").send_message("X26ABC2", b"env", workflow_id="TEST_WORKFLOW")
        assert bridge.poll().problems == []
        env = dict(line.split("=", 1) for line in seen.read_text().splitlines() if "=" in line)
        assert "MB_TEST_MESH_PASSWORD" not in env and "UNRELATED" not in env
        assert env["PATH"] == os.environ["PATH"] and "LANG" in env
        assert set(env) - {"PATH", "LANG", "PWD", "SHLVL", "_"} == wanted  # (sh sets PWD, SHLVL and _)
        bridge.close()
