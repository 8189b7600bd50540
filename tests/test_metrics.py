"""Prometheus metrics (issue 14, point 3): the exposition ``/metrics`` serves, parsed with
prometheus_client's own parser, against what was really done on a real mesh-sandbox (behind the
fault proxy for MESH's errors) and real SQLite and PostgreSQL stores.

A scrape reads the store's counters once and nothing else (the statements it sends are captured
on their way to the database); no label carries what a peer sent.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from conftest import OUT_IN
from prometheus_client.parser import text_string_to_metric_families

from meshbridge import Bridge, MeshAuthRefused, TransportError, load
from meshbridge.faultproxy import FaultProxy, answer, reset
from meshbridge.store import pgconn
from meshbridge.store import sqlite as sqlite_store
from meshbridge.telemetry.inbox import taken_at
from meshbridge.web.metrics import exposition

MESH = 'send_attempts = 1\nretry_backoff = "0s"\ntracking_interval = "0s"\ntimeout = "10s"\n'
XSS = ("<script>alert(1)</script>", '"><img src=x onerror=alert(1)>')
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(bridge: Bridge) -> Samples:
    """Every sample of the exposition: (name, labels) -> value."""
    body, content_type = exposition(bridge)
    assert content_type.startswith("text/plain; version=")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over the samples of ``name`` carrying ``labels`` (and any others)."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


@contextmanager
def statements() -> Iterator[list[str]]:
    """The SQL the store sends in the block (both backends' sessions)."""
    seen: list[str] = []

    def spying(run: Callable[..., Any]) -> Callable[..., Any]:
        def spy(session: Any, sql: str, params: Any = (), **options: Any) -> Any:
            seen.append(sql)
            return run(session, sql, params, **options)

        return spy

    with pytest.MonkeyPatch.context() as patch:
        for session in (sqlite_store.Session, pgconn.Session):
            for name in ("execute", "rows"):
                patch.setattr(session, name, spying(getattr(session, name)))
        yield seen


def payloads(tmp_path: Path, n: int) -> list[Path]:
    paths = []
    for i in range(n):
        path = tmp_path / f"p{i}.txt"
        path.write_bytes(b"payload %d " % i * (i + 1))
        paths.append(path)
    return paths


def test_send_three_collect_three_on_each_store(backend_config, make_bridge, tmp_path: Path) -> None:
    bridge = make_bridge(backend_config(OUT_IN))
    sent = payloads(tmp_path, 3)
    for path in sent:
        bridge.send(path, route="out")
    assert bridge.poll().problems == []
    with statements() as seen:
        samples = scrape(bridge)
    assert len(seen) == 1 and seen[0].startswith("SELECT counter, direction, route, term, sum(n) AS n FROM counts")
    size = sum(p.stat().st_size for p in sent)
    assert value(samples, "meshbridge_messages", route="out", direction="out", state="sent") == 3
    assert value(samples, "meshbridge_messages", route="in", direction="in", state="delivered") == 3
    assert total(samples, "meshbridge_messages") == 6
    assert value(samples, "meshbridge_store_up") == 1
    assert value(samples, "meshbridge_mesh_sent_bytes_total", mailbox="X26ABC1") == size
    assert value(samples, "meshbridge_mesh_received_bytes_total", mailbox="X26ABC2") == size
    assert total(samples, "meshbridge_mesh_requests_total", mailbox="X26ABC1", operation="send") == 3
    assert total(samples, "meshbridge_mesh_requests_total", mailbox="X26ABC2", operation="download") == 3
    assert total(samples, "meshbridge_mesh_requests_total", mailbox="X26ABC2", operation="acknowledge") == 3
    assert total(samples, "meshbridge_mesh_errors_total") == 0
    assert value(samples, "meshbridge_send_duration_seconds_count", mailbox="X26ABC1") == 3
    assert value(samples, "meshbridge_poll_duration_seconds_count") == 1
    assert value(samples, "meshbridge_mesh_inbox_uncollected", mailbox="X26ABC2") == 0
    assert value(samples, "meshbridge_mesh_inbox_oldest_uncollected_age_seconds", mailbox="X26ABC2") == 0
    # the same numbers as `meshbridge status`
    status = bridge.status()
    assert {(r.route, r.direction, r.state): r.messages for r in status.by_route} == {
        ("out", "out", "sent"): 3,
        ("in", "in", "delivered"): 3,
    }


def test_mesh_errors_by_operation_and_status(
    meshbridge_config, mesh_fault_proxy: FaultProxy, make_bridge, mesh_peer, tmp_path: Path
) -> None:
    bridge = make_bridge(meshbridge_config(OUT_IN, url=mesh_fault_proxy.url, mesh=MESH))
    [path] = payloads(tmp_path, 1)
    mesh_fault_proxy.add("POST", r"/X26ABC1/outbox$", answer(500))
    with pytest.raises(TransportError):
        bridge.send(path, route="out")
    mesh_fault_proxy.add("POST", r"/messageexchange/X26ABC1$", answer(403))
    with pytest.raises(MeshAuthRefused):
        bridge.handshake("X26ABC1")
    bridge.handshake("X26ABC2")
    mesh_fault_proxy.add("GET", r"/X26ABC2/inbox", reset(), times=None)  # (mesh-client retries a reset 3 times)
    mesh_peer("X26ABC1").send_message("X26ABC2", b"waiting", workflow_id="TEST_WORKFLOW")
    report = bridge.collect("X26ABC2")
    assert report.problems and "X26ABC2" in report.problems[0]
    mesh_fault_proxy.clear()
    samples = scrape(bridge)
    errors = {
        (dict(ls)["mailbox"], dict(ls)["operation"], dict(ls)["status"]): v
        for (n, ls), v in samples.items()
        if n == "meshbridge_mesh_errors_total"
    }
    assert errors == {("X26ABC1", "send", "500"): 1, ("X26ABC1", "handshake", "403"): 1, ("X26ABC2", "inbox", "none"): 1}
    assert value(samples, "meshbridge_mesh_requests_total", mailbox="X26ABC1", operation="send", status="500") == 1
    assert value(samples, "meshbridge_mesh_handshake_failures_total", mailbox="X26ABC1") == 1
    assert value(samples, "meshbridge_mesh_handshake_failures_total", mailbox="X26ABC2") == 0
    assert value(samples, "meshbridge_mesh_handshake_last_success_timestamp_seconds", mailbox="X26ABC2")
    assert value(samples, "meshbridge_mesh_sent_bytes_total", mailbox="X26ABC1") == 0  # MESH took nothing

    # the message MESH listed stays uncollected while its download fails; the sandbox's ids carry no
    # timestamp (MESH's do: test_mesh_id_timestamp_is_when_mesh_took_it), so its age counts from
    # when this process first listed it
    mesh_fault_proxy.add("GET", r"/X26ABC2/inbox/[^/]+$", answer(500), times=None)
    before = time.time()
    bridge.collect("X26ABC2")
    samples = scrape(bridge)
    [waiting] = mesh_peer("X26ABC2").list_messages()
    assert taken_at(waiting, 0.0) == 0.0
    assert value(samples, "meshbridge_mesh_inbox_uncollected", mailbox="X26ABC2") == 1
    age = value(samples, "meshbridge_mesh_inbox_oldest_uncollected_age_seconds", mailbox="X26ABC2")
    assert age is not None and 0 < age <= time.time() - before
    assert value(samples, "meshbridge_mesh_errors_total", mailbox="X26ABC2", operation="download", status="500") == 1
    mesh_fault_proxy.clear()
    bridge.collect("X26ABC2")
    assert value(scrape(bridge), "meshbridge_mesh_inbox_uncollected", mailbox="X26ABC2") == 0


def test_mesh_id_timestamp_is_when_mesh_took_it() -> None:
    took = dt.datetime(2020, 6, 1, 12, 21, 52, 994285, tzinfo=dt.UTC).timestamp()
    assert taken_at("20200601122152994285_D59900", 5.0) == pytest.approx(took)
    assert taken_at("0f9c6b2e-no-timestamp", 5.0) == 5.0  # an id without one: when we first saw it
    assert taken_at("99991231235959000000_FUTURE", 5.0) == 5.0  # one far ahead of our clock is not believed
