"""Alerts against hostile or broken receivers: real local sockets that trickle, flood or never
answer. Each notifier has one total deadline (``[alerts] timeout``) and never reads more of an
answer than it needs; a notifier that fails delays only its own sends.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from meshbridge import Bridge, EventKind, Notification, load
from meshbridge.alerts import AlertFailed, EmailNotifier, WebhookNotifier
from meshbridge.config.alerts import Email, Webhook

SLOW = 40  # lines or bytes a trickling peer sends, one each 0.25 s: 10 s unless cut off


@dataclass
class Peer:
    """A raw TCP server running ``behave(connection, self)`` for each connection it accepts."""

    port: int = 0
    accepted: int = 0
    finished: int = 0  # connections whose whole answer went out (the client read all of it)
    sent: int = 0  # bytes sent, all connections
    ended: threading.Event = field(default_factory=threading.Event)  # a connection's handling ended
    stop: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def peer() -> Iterator[Callable[[Callable[[socket.socket, Peer], None]], Peer]]:
    servers: list[tuple[socket.socket, Peer]] = []

    def start(behave: Callable[[socket.socket, Peer], None]) -> Peer:
        record = Peer()
        server = socket.create_server(("127.0.0.1", 0))
        record.port = server.getsockname()[1]

        def serve(conn: socket.socket) -> None:
            with conn:
                try:
                    behave(conn, record)
                    record.finished += 1
                except OSError:
                    pass
                finally:
                    record.ended.set()

        def accept() -> None:
            while not record.stop.is_set():
                try:
                    conn, _ = server.accept()
                except OSError:
                    return
                record.accepted += 1
                threading.Thread(target=serve, args=(conn,), daemon=True).start()

        threading.Thread(target=accept, daemon=True).start()
        servers.append((server, record))
        return record

    yield start
    for server, record in servers:
        record.stop.set()
        server.close()


def request_read(conn: socket.socket) -> None:
    conn.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        more = conn.recv(65536)
        if not more:
            raise OSError("closed")
        data += more


def trickled_headers(conn: socket.socket, record: Peer) -> None:
    request_read(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\n")
    for _ in range(SLOW):
        if record.stop.wait(0.25):
            raise OSError("stopped")
        conn.sendall(b"X-Slow: 1\r\n")
    conn.sendall(b"Content-Length: 0\r\n\r\n")


def flooded_body(conn: socket.socket, record: Peer) -> None:
    request_read(conn)
    size = 200 * 2**20
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
    block = b"x" * 2**16
    for _ in range(size // len(block)):
        conn.sendall(block)
        record.sent += len(block)


def silent(conn: socket.socket, record: Peer) -> None:
    request_read(conn)
    record.stop.wait(30)  # never answers
    raise OSError("stopped")


def webhook(port: int, timeout: float = 0.5) -> WebhookNotifier:
    return WebhookNotifier(Webhook(name="hook", url=f"http://127.0.0.1:{port}/hook/s3cret"), timeout)


def orphan(summary: str = "an orphan") -> Notification:
    return Notification(EventKind.ORPHAN, None, summary, {"reason": "test"})


def test_a_webhook_receiver_trickling_its_answer_is_cut_off_at_the_deadline(peer: Any) -> None:
    slow = peer(trickled_headers)
    try:
        webhook(slow.port, timeout=2).send(orphan())  # the status line came (200): delivered, the rest not waited for
    except AlertFailed as exc:  # (a loaded machine: the status line itself came after the deadline)
        assert str(exc) == "no answer within 2 s"  # noqa: PT017 (which of the two it is depends on the load)
    assert slow.finished == 0  # cut off at the deadline (2 s), not held for the 10 s it trickles


def test_a_webhook_receiver_flooding_its_answer_is_not_read(peer: Any) -> None:
    flood = peer(flooded_body)
    assert webhook(flood.port).send(orphan()) == {"status": 200}
    assert flood.ended.wait(30)  # the connection closed: the server's sending failed (or it all went)
    assert flood.finished == 0 and flood.sent < 100 * 2**20  # the body was never read into memory


def trickled_greeting(conn: socket.socket, record: Peer) -> None:
    for _ in range(SLOW):  # a greeting of many continuation lines, each well within a per-read timeout
        if record.stop.wait(0.25):
            raise OSError("stopped")
        conn.sendall(b"220-hello\r\n")
    conn.sendall(b"220 ready\r\n")
    conn.recv(1024)
    conn.sendall(b"250 hello\r\n")  # no STARTTLS offered


def test_an_smtp_server_trickling_its_replies_is_cut_off_at_the_deadline(peer: Any) -> None:
    slow = peer(trickled_greeting)
    config = Email.model_validate({"name": "m", "host": "127.0.0.1", "port": slow.port, "from": "a@b", "to": ["c@d"]})
    with pytest.raises(AlertFailed, match=r"no answer within 0\.5 s"):
        EmailNotifier(config, 0.5).send(orphan())
    assert slow.finished == 0


def test_a_webhook_that_never_answers_is_tried_once_a_pass_and_the_others_go_on(
    meshbridge_config: Any, peer: Any, tmp_path: Path
) -> None:
    dead, good = peer(silent), peer(lambda c, r: (request_read(c), c.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")))
    path = meshbridge_config(f"""
[alerts]
timeout = "0.5s"
backoff = "0s"

[[alerts.webhooks]]
name = "dead"
url = "http://127.0.0.1:{dead.port}/hook"

[[alerts.webhooks]]
name = "good"
url = "http://127.0.0.1:{good.port}/hook"
""")
    with Bridge(load(path)) as bridge:
        bridge.dispatch_after = False
        for i in range(6):  # a hostile peer's orphans, say
            bridge.notify(EventKind.ORPHAN, None, f"orphan {i}")
        done = bridge.dispatch()
    assert len([t for _, t in done.sent if t == "webhook:good"]) == 6
    assert dead.accepted == 1  # not six deadlines in a row: the rest of its sends wait for the next pass
    assert len(done.retried) == 1


def test_a_webhook_url_holding_its_token_is_not_in_the_debug_log(meshbridge_config: Any, peer: Any) -> None:
    hook = peer(lambda c, r: (request_read(c), c.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")))
    token = "T0K3N-only-in-the-path"
    path = meshbridge_config("""
[[alerts.webhooks]]
name = "slack"
url = { env = "TEST_HOOK_URL" }
""")
    env = {**os.environ, "TEST_HOOK_URL": f"http://127.0.0.1:{hook.port}/services/T0/B0/{token}?x={token}2"}
    with Bridge(load(path)) as bridge:
        bridge.dispatch_after = False
        bridge.notify(EventKind.ORPHAN, None, "an orphan")
    run = subprocess.run(
        [sys.executable, "-m", "meshbridge", "--config", str(path), "--log-level", "debug", "poll"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert run.returncode == 0, run.stderr
    assert hook.accepted == 1  # sent (urllib3's request line, which names the path, is not logged: test_logs)
    assert token not in run.stderr + run.stdout
