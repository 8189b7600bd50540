"""``/metrics`` when its store is in trouble, and with awkward names in its labels: a scrape of a
store write-locked by another process (SQLite) or unreachable or frozen (PostgreSQL behind a real
TCP relay that is closed or stops relaying) answers, with ``meshbridge_store_up 0`` when the store
cannot be read in time, never a traceback; route names with quotes, backslashes and newlines are
escaped in the exposition (parsed back by prometheus_client's own parser).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import OUT_IN
from test_metrics import scrape, total, value

from meshbridge import Bridge
from meshbridge.telemetry import stored

LOCKER = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
db.execute("UPDATE counts SET n = n + 1000")
print("locked", flush=True)
time.sleep(120)
"""


def test_a_scrape_of_a_sqlite_store_write_locked_by_another_process_answers(
    meshbridge_config: Any, make_bridge: Any, tmp_path: Path
) -> None:
    bridge = make_bridge(meshbridge_config(OUT_IN))
    payload = tmp_path / "p.txt"
    payload.write_bytes(b"x")
    bridge.send(payload, route="out")
    locker = subprocess.Popen([sys.executable, "-c", LOCKER, str(bridge.store.path)], stdout=subprocess.PIPE, text=True)
    try:
        assert locker.stdout is not None and locker.stdout.readline() == "locked\n"
        samples = scrape(bridge)  # WAL: a reader is never held by a writer
    finally:
        locker.kill()
        locker.wait()
        locker.stdout.close()  # type: ignore[union-attr]
    assert value(samples, "meshbridge_store_up") == 1
    assert total(samples, "meshbridge_messages") == 1  # the committed count, not the locker's +1000


class Relay:
    """A real TCP relay to PostgreSQL: relays, then ``freeze()`` (holds every byte, connections
    open: a network black hole) or ``close()`` (its port closed, its connections cut)."""

    def __init__(self, port: int) -> None:
        self.target, self.frozen, self.socks = port, threading.Event(), list[socket.socket]()
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            self.socks += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                if self.frozen.is_set():
                    continue  # swallowed: the peer waits for an answer that never comes
                b.sendall(data)
        except OSError:
            pass

    def close(self) -> None:
        self.server.close()
        for sock in self.socks:
            sock.close()


@pytest.fixture
def relayed(meshbridge_config: Any, make_bridge: Any, postgres_url: str) -> Iterator[tuple[Bridge, Relay]]:
    from psycopg.conninfo import conninfo_to_dict

    port = int(conninfo_to_dict(postgres_url).get("port") or 5432)
    relay = Relay(port)
    url = postgres_url.replace(f":{port}/", f":{relay.port}/", 1)
    path = meshbridge_config(OUT_IN, store="var/x.db")
    path.write_text(path.read_text().replace('[store]\npath = "var/x.db"', f'[store]\nurl = "{url}"', 1))
    bridge = make_bridge(path)
    assert value(scrape(bridge), "meshbridge_store_up") == 1
    yield bridge, relay
    relay.close()


def answered(bridge: Bridge) -> dict[Any, float]:
    """A scrape, in a thread: it must answer at all (a hung one fails the test after a minute)."""
    got: list[dict[Any, float]] = []
    worker = threading.Thread(target=lambda: got.append(scrape(bridge)), daemon=True)
    worker.start()
    worker.join(60)
    assert got, "the scrape hung"
    return got[0]


def test_a_scrape_of_an_unreachable_postgres_store_says_it_is_down(relayed: Any) -> None:
    bridge, relay = relayed
    relay.close()  # the port closed, the connection cut
    samples = answered(bridge)
    assert value(samples, "meshbridge_store_up") == 0
    assert total(samples, "meshbridge_build_info") == 1  # the rest of the exposition is there


def test_a_scrape_of_a_frozen_postgres_store_answers_store_down_within_its_bound(
    relayed: Any, monkeypatch: Any
) -> None:
    bridge, relay = relayed
    monkeypatch.setattr(stored, "STORE_DEADLINE", 1.0, raising=False)
    relay.frozen.set()  # a network black hole: the read's answer never comes
    samples = answered(bridge)
    assert value(samples, "meshbridge_store_up") == 0
    assert answered(bridge)[("meshbridge_store_up", frozenset())] == 0  # the read still hung: not started again
    relay.frozen.clear()


NAMES = ['quo"te', "back\\slash", "new\nline", '"} 1\nmeshbridge_store_up{x="1']


def test_route_names_with_quotes_backslashes_and_newlines_are_escaped_in_the_exposition(
    meshbridge_config: Any, make_bridge: Any, tmp_path: Path
) -> None:
    routes = "".join(
        f'\n[[routes]]\nname = "{name.encode("unicode_escape").decode().replace(chr(34), chr(92) + chr(34))}"\n'
        f'direction = "outbound"\nfrom = "X26ABC1"\nto = "X26ABC2"\nworkflow_id = "WF{i}"\npayload_type = "binary"\n'
        for i, name in enumerate(NAMES)
    )
    bridge = make_bridge(meshbridge_config(routes))
    payload = tmp_path / "p.txt"
    payload.write_bytes(b"x")
    for name in NAMES:
        bridge.send(payload, route=name)
    samples = scrape(bridge)  # parsed back by prometheus_client's parser
    for name in NAMES:
        assert value(samples, "meshbridge_messages", route=name, direction="out", state="sent") == 1
    assert [k for k in samples if k[0] == "meshbridge_store_up"] == [("meshbridge_store_up", frozenset())]
