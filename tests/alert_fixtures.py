"""A real local HTTP receiver for alert webhooks (the ``receiver`` fixture): it records each POST
(its ``Idempotency-Key``, JSON body and headers) and answers the statuses it is told to fail with first."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

HOOK_TOKEN = "T0K3N-in-the-url"  # Teams and Slack webhook URLs hold their secret


@dataclass
class Receiver:
    """Records each POST (its Idempotency-Key and JSON body); answers ``fail`` statuses first."""

    fail: list[int] = field(default_factory=list)
    got: list[tuple[str, dict[str, Any], dict[str, str]]] = field(default_factory=list)
    url: str = ""

    def keys(self) -> list[str]:
        return [key for key, _, _ in self.got]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    record = Receiver()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            data = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with lock:
                status = record.fail.pop(0) if record.fail else 200
                record.got.append((self.headers["Idempotency-Key"], data, dict(self.headers)))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    record.url = f"http://127.0.0.1:{server.server_address[1]}/hook/{HOOK_TOKEN}"
    yield record
    server.shutdown()
    server.server_close()
