"""Prometheus metrics (issue 14, point 3): the exposition ``/metrics`` serves, parsed with
prometheus_client's own parser, against what was really done on a real mesh-sandbox (behind the
fault proxy for MESH's errors) and real SQLite and PostgreSQL stores.

A scrape reads the store's counters once and nothing else (the statements it sends are captured
on their way to the database); no label carries what a peer sent.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import ITK_RECEIVER_ROUTE, ITK_SENDER_ROUTE, OUT_IN, PATIENT
from prometheus_client.parser import text_string_to_metric_families
from test_reads_at_scale import captured

from meshbridge import Bridge, MeshAuthRefused, TransportError, __version__, itk
from meshbridge.faultproxy import FaultProxy, answer, reset
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
    with captured() as seen:
        samples = scrape(bridge)
    assert len(seen) == 1 and seen[0][0].startswith("SELECT counter, direction, route, term, sum(n) AS n FROM counts")
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
    assert errors == {
        ("X26ABC1", "send", "500"): 1,
        ("X26ABC1", "handshake", "403"): 1,
        ("X26ABC2", "inbox", "none"): 1,
    }
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


def certificate(path: Path, days: float, issuer: tuple[Any, Any] | None = None) -> tuple[Any, Any]:
    """Write a PEM certificate valid for ``days`` from now (self-signed, or signed by ``issuer``:
    (certificate, key)) to ``path``, appending; its (certificate, key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"meshbridge test {days:g}d")])
    signer_cert, signer_key = issuer or (None, key)
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(signer_cert.subject if signer_cert else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=days))
        .sign(signer_key, hashes.SHA256())
    )
    with path.open("ab") as out:
        out.write(cert.public_bytes(serialization.Encoding.PEM))
    return cert, key


def test_certificate_expiry_from_the_configured_files(meshbridge_config, make_bridge, tmp_path: Path) -> None:
    root = certificate(tmp_path / "ca.pem", 400)
    certificate(tmp_path / "ca.pem", 3650)  # a bundle's earliest expiry is the one that matters
    intermediate = certificate(tmp_path / "chain.pem", 200, root)
    certificate(tmp_path / "client.pem", 37, intermediate)
    (tmp_path / "client.pem").write_bytes(
        (tmp_path / "client.pem").read_bytes() + (tmp_path / "chain.pem").read_bytes()
    )
    (tmp_path / "client.key").write_text("not read by the metrics")
    files = {"client_cert": "client.pem", "client_key": "client.key", "ca_bundle": "ca.pem"}
    mesh = "".join(f'{key} = "{tmp_path / name}"\n' for key, name in files.items())
    bridge = make_bridge(meshbridge_config(OUT_IN, mesh=mesh))
    samples = scrape(bridge)
    for label, days in (("client", 37), ("client_chain", 200), ("ca_bundle", 400)):
        left = value(samples, "meshbridge_certificate_expires_in_seconds", certificate=label)
        assert left is not None and abs(left / 86400 - days) <= 1, (label, left)
        at = value(samples, "meshbridge_certificate_not_after_timestamp_seconds", certificate=label)
        assert at is not None and abs(at - time.time() - days * 86400) <= 86400
        assert value(samples, "meshbridge_certificate_readable", certificate=label.replace("_chain", "")) == 1
    # renewed in place: the next scrape reads it again; a broken file shows, its expiry goes
    (tmp_path / "client.pem").unlink()
    certificate(tmp_path / "client.pem", 90, intermediate)
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    samples = scrape(bridge)
    left = value(samples, "meshbridge_certificate_expires_in_seconds", certificate="client")
    assert left is not None and abs(left / 86400 - 90) <= 1
    assert value(samples, "meshbridge_certificate_expires_in_seconds", certificate="client_chain") is None
    assert value(samples, "meshbridge_certificate_readable", certificate="ca_bundle") == 0
    assert value(samples, "meshbridge_certificate_expires_in_seconds", certificate="ca_bundle") is None


IN_ROUTE = """
[[routes]]
name = "in"
direction = "inbound"
mailbox = "X26ABC2"
workflow_id = "TEST_WORKFLOW"
payload_type = "binary"
destination = { folder = "delivered" }
"""


def test_ack_latency_expectations_and_no_peer_text_in_labels(
    meshbridge_config, make_bridge, mesh_peer, tmp_path: Path
) -> None:
    late = ITK_SENDER_ROUTE.replace('"toc-out"', '"toc-late"').replace('"1h"', '"0s"')  # overdue at once
    a = make_bridge(meshbridge_config(ITK_SENDER_ROUTE + late, name="a.toml", store="a/mb.db", mailboxes=("X26ABC1",)))
    b_config = meshbridge_config(ITK_RECEIVER_ROUTE + IN_ROUTE, name="b.toml", store="b/mb.db", mailboxes=("X26ABC2",))
    b = make_bridge(b_config)
    payload = tmp_path / "patient.xml"
    payload.write_bytes(PATIENT)
    sent = a.send(payload, route="toc-out")
    a.send(payload, route="toc-late")
    samples = scrape(a)
    for kind in ("inf-ack", "bus-ack"):
        assert value(samples, "meshbridge_expectations_open", direction="out", kind=kind) == 2
        assert value(samples, "meshbridge_expectations_overdue", direction="out", kind=kind) == 1  # before any sweep
    assert value(samples, "meshbridge_messages_overdue") == 1
    peer = mesh_peer("X26ABC1")
    for i, text in enumerate(XSS):  # a peer's text in every header it controls, routed and not
        for workflow in (text, "TEST_WORKFLOW"):
            peer.send_message(
                "X26ABC2", text.encode(), workflow_id=workflow, subject=text, local_id=f"{text}{i}", filename=f"{i}.txt"
            )
    b.poll()  # receive both, answer 20013; the peer's messages unrouted or delivered
    a.poll()  # correlate the 20013s
    [received] = [m for m in b.messages(direction="in") if itk.same_id(m.itk_message_id, sent.itk_message_id)]
    b.ack(received.id, code="30001")
    a.poll()  # correlate the 30001
    assert a.store.get(sent.id).state == "complete"

    samples = scrape(a)
    for route, level, n in (
        ("toc-out", "infrastructure", 1),
        ("toc-out", "business", 1),
        ("toc-late", "infrastructure", 1),
    ):
        labels = {"route": route, "level": level, "outcome": "ack"}
        assert value(samples, "meshbridge_ack_latency_seconds_count", **labels) == n
        assert value(samples, "meshbridge_ack_latency_seconds_bucket", **labels, le="+Inf") == n
        assert (value(samples, "meshbridge_ack_latency_seconds_sum", **labels) or 0) >= 0
    assert total(samples, "meshbridge_ack_latency_seconds_count") == 3
    assert total(samples, "meshbridge_expectations_open") == 1  # toc-late's business ack
    assert value(samples, "meshbridge_expectations_overdue", direction="out", kind="bus-ack") == 1
    assert value(samples, "meshbridge_expectations_overdue", direction="out", kind="inf-ack") is None
    assert value(samples, "meshbridge_messages_overdue") == 1

    body = exposition(b)[0].decode()
    counts = scrape(b)
    assert value(counts, "meshbridge_messages", route="", direction="in", state="unrouted") == 2
    assert value(counts, "meshbridge_messages", route="in", direction="in", state="delivered") == 2
    for text in (*XSS, "<script", "onerror", "alert(", "<", "TEST_WORKFLOW"):
        assert text not in body
    allowed = {"route": {"", "toc-in", "in"}, "mailbox": {"X26ABC2"}}
    for (_, labels), _ in counts.items():
        for name, label in labels:
            assert label in allowed.get(name, {label}), (name, label)


def test_the_served_api_answers_a_scrape_with_a_viewer_token_only(meshbridge_config, web_api) -> None:
    """``/metrics`` through the real server (uvicorn, as ``meshbridge serve`` runs it), called as
    Prometheus does with docs/metrics.md's scrape config: a viewer token as a Bearer header."""
    from web_fixtures import TOKENS, with_web

    api = web_api(with_web(meshbridge_config(OUT_IN)))
    submitted = api.call("POST", "/api/v1/routes/out/messages", "submitter", content=b"scraped")
    assert submitted.status_code == 201, submitted.text
    refused = api.call("GET", "/metrics", None)
    assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer")
    scraped = api.call("GET", "/metrics", None, headers={"Authorization": f"Bearer {TOKENS['viewer']}"})
    assert scraped.status_code == 200 and scraped.headers["content-type"].startswith("text/plain; version=")
    samples = {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(scraped.text)
        for s in family.samples
    }
    state = submitted.json()["state"]
    assert value(samples, "meshbridge_messages", route="out", direction="out", state=state) == 1
    assert value(samples, "meshbridge_build_info", version=__version__) == 1
