"""The local API (meshbridge.web) against real parts: the app itself (starlette's TestClient),
the real mesh-sandbox, real SQLite and PostgreSQL stores. Submit, list, show, download, ack,
retry and replay, each with the caller's token name on the timeline; roles; bad input."""

from __future__ import annotations

import getpass
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import ITK_RECEIVER_ROUTE, ITK_SENDER_ROUTE, OUT_IN, PATIENT, WORKFLOW
from web_fixtures import NAMES, TOKENS, with_web

from meshbridge import Bridge, load
from meshbridge.faultproxy import FaultProxy, answer
from meshbridge.testing import run_cli

API = "/api/v1"
JSON_TYPE = {"content-type": "application/json"}
XSS = ("<script>alert(1)</script>", '"><img src=x onerror=alert(1)>')


def events_by(message: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e["detail"] for e in message["events"] if e["kind"] == kind]


def test_submit_then_list_show_and_download_name_the_token(backend_config, web_api, tmp_path: Path) -> None:
    api = web_api(with_web(backend_config(OUT_IN)))
    data = b"\x00\x01 a payload through the API \xff" * 1000
    done = api.call("POST", f"{API}/routes/out/messages?filename=note.bin", "submitter", content=data)
    assert done.status_code == 201, done.text
    sent = done.json()
    assert done.headers["location"] == f"{API}/messages/{sent['id']}"
    assert (sent["state"], sent["route"], sent["filename"]) == ("sent", "out", "note.bin")
    assert sent["payload_size"] == len(data)
    [accepted] = events_by(sent, "accepted")
    assert (accepted["by"], accepted["via"]) == (NAMES["submitter"], "api")

    listed = api.call("GET", f"{API}/messages?direction=out&route=out", "viewer").json()
    assert [m["id"] for m in listed["items"]] == [sent["id"]] and listed["next"] is None
    assert list(listed["items"][0]) == [*load_fields(api), "findings"]  # messages --json's names, in order
    shown = api.call("GET", f"{API}/messages/{sent['id']}", "viewer").json()
    assert shown["events"][0]["detail"]["by"] == NAMES["submitter"]

    got = api.call("GET", f"{API}/messages/{sent['id']}/payload", "operator")
    assert got.status_code == 200 and got.headers["content-type"] == "application/octet-stream"
    digest = hashlib.sha256(data).hexdigest()
    assert hashlib.sha256(got.content).hexdigest() == digest == got.headers["x-meshbridge-sha256"]
    after = api.call("GET", f"{API}/messages/{sent['id']}", "viewer").json()
    [downloaded] = events_by(after, "downloaded")
    assert (downloaded["by"], downloaded["via"], downloaded["size"]) == (NAMES["operator"], "api", len(data))
    shown_cli = run_cli(api.config, "show", sent["id"])
    assert shown_cli.returncode == 0 and f"{NAMES['operator']} (api)" in shown_cli.stdout


def load_fields(api: Any) -> list[str]:
    from meshbridge.models import JSON_FIELDS

    return list(JSON_FIELDS)


def test_pages_follow_the_cursor(meshbridge_config, web_api, tmp_path: Path) -> None:
    api = web_api(with_web(meshbridge_config(OUT_IN)))
    ids = [api.call("POST", f"{API}/routes/out/messages", content=f"p{i}".encode()).json()["id"] for i in range(5)]
    seen, after = [], None
    while True:
        page = api.call("GET", f"{API}/messages", "viewer", params={"limit": 2, **({"after": after} if after else {})})
        assert page.status_code == 200, page.text
        seen += [m["id"] for m in page.json()["items"]]
        after = page.json()["next"]
        if after is None:
            break
    assert seen == ids[::-1]  # newest first, each once
    status = api.call("GET", f"{API}/status", "viewer").json()
    assert status["counts"]["out"]["sent"] == 5
    [found] = api.call("GET", f"{API}/lookup", "viewer", params={"key": ids[2]}).json()["items"]
    assert found["id"] == ids[2]


def test_a_refused_payload_is_422_with_its_findings_and_quarantined(meshbridge_config, web_api) -> None:
    api = web_api(with_web(meshbridge_config(ITK_SENDER_ROUTE)))
    done = api.call("POST", f"{API}/routes/toc-out/messages?filename=bad.xml", "submitter", content=b"<Patient>")
    assert done.status_code == 422 and done.headers["content-type"] == "application/json"
    body = done.json()
    assert body["type"] == "PayloadRejected" and body["findings"] and body["message_id"]
    shown = api.call("GET", f"{API}/messages/{body['message_id']}").json()
    assert shown["state"] == "rejected" and events_by(shown, "rejected")[0]["by"] == NAMES["submitter"]
    empty = api.call("POST", f"{API}/routes/toc-out/messages", "submitter", content=b"")
    assert empty.status_code == 422 and empty.json()["findings"][0]["code"] == "payload.empty"


def test_business_ack_and_nack_through_the_api(meshbridge_config, web_api, tmp_path: Path) -> None:
    config = meshbridge_config(ITK_SENDER_ROUTE + ITK_RECEIVER_ROUTE)
    api = web_api(with_web(config))
    patient = tmp_path / "patient.xml"
    patient.write_bytes(PATIENT)
    ids = [api.call("POST", f"{API}/routes/toc-out/messages", "submitter", content=PATIENT).json()["id"] for _ in "ab"]
    with Bridge(load(config)) as bridge:
        bridge.poll()
        inbound = [m.id for m in bridge.messages(direction="in", workflow_id=WORKFLOW, oldest_first=True)]
    assert len(ids) == len(inbound) == 2
    acked = api.call("POST", f"{API}/messages/{inbound[0]}/ack", "operator", json={"text": "seen"})
    assert acked.status_code == 200, acked.text
    assert acked.json()["state"] == "bus-acked" and events_by(acked.json(), "bus-acked")[0]["by"] == NAMES["operator"]
    nacked = api.call("POST", f"{API}/messages/{inbound[1]}/nack", "admin", json={"code": "30002", "text": "no"})
    assert nacked.status_code == 200 and nacked.json()["state"] == "bus-nacked"
    assert events_by(nacked.json(), "bus-nacked")[0]["by"] == NAMES["admin"]
    again = api.call("POST", f"{API}/messages/{inbound[0]}/ack", "operator", json={})
    assert again.status_code == 409 and "already answered" in again.json()["error"]
    wrong_kind = api.call("POST", f"{API}/messages/{inbound[1]}/nack", "operator", json={"code": "30001"})
    assert wrong_kind.status_code == 400
    outbound = api.call("POST", f"{API}/messages/{ids[0]}/ack", "operator")
    assert outbound.status_code == 409 and outbound.json()["type"] == "AckRefused"


MESH_FAILS_FAST = 'send_attempts = 1\nretry_backoff = "0s"\ntracking_interval = "0s"\ntimeout = "10s"\n'


def test_retry_through_the_api_names_the_token_and_from_the_cli_the_os_user(
    meshbridge_config, mesh_fault_proxy: FaultProxy, web_api
) -> None:
    config = with_web(meshbridge_config(OUT_IN, url=mesh_fault_proxy.url, mesh=MESH_FAILS_FAST))
    api = web_api(config)
    mesh_fault_proxy.add("POST", r"/X26ABC1/outbox$", answer(503), times=None)
    failed = [api.call("POST", f"{API}/routes/out/messages", "submitter", content=f"{i}".encode()) for i in range(2)]
    assert [f.status_code for f in failed] == [502, 502]  # MESH refused every attempt: kept failed
    first, second = (f.json()["message_id"] for f in failed)
    assert api.call("GET", f"{API}/messages/{first}").json()["state"] == "failed"
    mesh_fault_proxy.clear()

    retried = api.call("POST", f"{API}/messages/{first}/retry", "operator")
    assert retried.status_code == 200 and retried.json()["state"] == "sent"
    assert events_by(retried.json(), "retry") == [{"by": NAMES["operator"], "via": "api"}]
    assert api.call("POST", f"{API}/messages/{first}/retry", "operator").status_code == 409  # sent: nothing to retry

    done = run_cli(config, "retry", second)
    assert done.returncode == 0, done.stderr
    shown = json.loads(run_cli(config, "show", second, "--json").stdout)
    assert events_by(shown, "retry") == [{"by": getpass.getuser(), "via": "cli"}]
    table = run_cli(config, "show", second).stdout
    assert f"{getpass.getuser()} (cli)" in table


def test_replay_names_the_token(meshbridge_config, web_api, tmp_path: Path) -> None:
    config = with_web(meshbridge_config(OUT_IN))
    api = web_api(config)
    api.call("POST", f"{API}/routes/out/messages", "submitter", content=b"to replay")
    with Bridge(load(config)) as bridge:
        bridge.poll()
        [inbound] = bridge.messages(direction="in").items
    replayed = api.call("POST", f"{API}/messages/{inbound.id}/replay", "operator")
    assert replayed.status_code == 200, replayed.text
    assert events_by(replayed.json(), "replay") == [{"by": NAMES["operator"], "via": "api"}]
    refused = api.call("POST", f"{API}/messages/{replayed.json()['id']}/replay?force=true", "operator")
    assert refused.status_code == 200
    outbound = api.call("GET", f"{API}/messages?direction=out").json()["items"][0]["id"]
    assert api.call("POST", f"{API}/messages/{outbound}/replay", "operator").status_code == 409


# -- access -------------------------------------------------------------------------------

ENDPOINTS = {  # (method, path, permission); ID is replaced by a real message's id
    "status": ("GET", f"{API}/status", "read"),
    "messages": ("GET", f"{API}/messages", "read"),
    "lookup": ("GET", f"{API}/lookup?key=ID", "read"),
    "show": ("GET", f"{API}/messages/ID", "read"),
    "metrics": ("GET", "/metrics", "read"),
    "openapi": ("GET", "/openapi.json", "read"),
    "submit": ("POST", f"{API}/routes/out/messages", "submit"),
    "ack": ("POST", f"{API}/messages/ID/ack", "operate"),
    "nack": ("POST", f"{API}/messages/ID/nack", "operate"),
    "retry": ("POST", f"{API}/messages/ID/retry", "operate"),
    "replay": ("POST", f"{API}/messages/ID/replay", "operate"),
    "download": ("GET", f"{API}/messages/ID/payload", "download"),
}
MAY = {
    "viewer": {"read"},
    "submitter": {"read", "submit"},
    "operator": {"read", "operate", "download"},
    "admin": {"read", "submit", "operate", "download"},
}


@pytest.fixture
def one_message(meshbridge_config, web_api) -> tuple[Any, str]:
    api = web_api(with_web(meshbridge_config(OUT_IN)))
    return api, api.call("POST", f"{API}/routes/out/messages", content=b"x").json()["id"]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_every_endpoint_but_healthz_needs_a_known_token(one_message, endpoint: str) -> None:
    api, message_id = one_message
    method, path, _ = ENDPOINTS[endpoint]
    for headers in ({}, {"Authorization": "Bearer not-a-token-of-ours-at-all"}, {"Authorization": "Basic eDp5"}):
        done = api.call(method, path.replace("ID", message_id), None, headers=headers, content=b"x")
        assert done.status_code == 401, (endpoint, headers, done.text)
        assert done.headers["www-authenticate"].startswith('Bearer realm="meshbridge"')
        assert done.json()["type"] == "Unauthorized"
        assert "not-a-token" not in done.text
    assert api.call("GET", "/healthz", None).json() == {"status": "ok"}


@pytest.mark.parametrize("role", list(TOKENS))
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_each_role_is_refused_what_it_may_not_do(one_message, role: str, endpoint: str) -> None:
    api, message_id = one_message
    method, path, permission = ENDPOINTS[endpoint]
    body = {"json": {"code": "30002"}} if endpoint == "nack" else {"content": b"x"} if endpoint == "submit" else {}
    done = api.call(method, path.replace("ID", message_id), role, **body)
    if permission in MAY[role]:
        assert done.status_code not in (401, 403), (role, endpoint, done.text)
    else:
        assert done.status_code == 403, (role, endpoint, done.text)
        assert done.json() == {"error": f"token '{NAMES[role]}' ({role}) may not {permission}", "type": "Forbidden"}


# -- peer text and bad input ----------------------------------------------------------------


def test_peer_text_comes_back_as_json_data(meshbridge_config, web_api, mesh_peer) -> None:
    api = web_api(with_web(meshbridge_config(OUT_IN)))
    peer = mesh_peer("X26ABC1")
    for i, attack in enumerate(XSS):
        peer.send_message("X26ABC2", b"peer data", workflow_id=attack, subject=attack, local_id=f"{attack}{i}")
    with Bridge(load(api.config)) as bridge:
        bridge.poll()
    listed = api.call("GET", f"{API}/messages?direction=in", "viewer")
    assert listed.headers["content-type"] == "application/json"
    assert listed.headers["x-content-type-options"] == "nosniff"
    items = listed.json()["items"]
    assert sorted((m["workflow_id"], m["subject"], m["local_id"]) for m in items) == sorted(
        (a, a, f"{a}{i}") for i, a in enumerate(XSS)
    )
    for attack in XSS:
        by_workflow = api.call("GET", f"{API}/messages", "viewer", params={"workflow": attack}).json()["items"]
        assert [m["subject"] for m in by_workflow] == [attack]
        shown = api.call("GET", f"{API}/messages/{by_workflow[0]['id']}", "viewer")
        assert shown.headers["content-type"] == "application/json" and shown.json()["workflow_id"] == attack
    metrics = api.call("GET", "/metrics", "viewer").text
    assert not any(attack in metrics for attack in XSS)


@pytest.mark.parametrize(
    ("method", "path", "status", "kwargs"),
    [
        ("GET", "/no/such/path", 404, {}),
        ("DELETE", f"{API}/status", 405, {}),
        ("GET", f"{API}/messages?after=not-a-cursor", 400, {}),
        ("GET", f"{API}/messages?stat=failed", 400, {}),  # a misspelt filter would list everything
        ("GET", f"{API}/messages?state=flying", 422, {}),  # the error lists the states
        ("GET", f"{API}/messages?direction=sideways", 422, {}),
        ("GET", f"{API}/messages?since=2024-01-01T00:00:00", 400, {}),  # no offset: ambiguous
        ("GET", f"{API}/messages?since=yesterday", 422, {}),
        ("GET", f"{API}/messages?limit=0", 422, {}),
        ("GET", f"{API}/messages?limit=501", 422, {}),
        ("GET", f"{API}/messages?route=a%00b", 400, {}),
        ("GET", f"{API}/messages/no-such-id", 404, {}),
        ("GET", f"{API}/messages/a%00b", 400, {}),
        ("GET", f"{API}/messages/no-such-id/payload", 404, {}),
        ("GET", f"{API}/lookup", 422, {}),
        ("POST", f"{API}/routes/nope/messages", 404, {"content": b"x"}),
        ("POST", f"{API}/routes/in/messages", 404, {"content": b"x"}),  # inbound: not for submitting
        ("POST", f"{API}/routes/out/messages?filename=../../etc/passwd", 400, {"content": b"x"}),
        ("POST", f"{API}/routes/out/messages?filename=..", 400, {"content": b"x"}),
        ("POST", f"{API}/routes/out/messages", 413, {"content": b"x" * 2049}),
        ("POST", f"{API}/messages/no-such-id/nack", 422, {"json": {}}),  # a nack needs its code
        ("POST", f"{API}/messages/no-such-id/ack", 422, {"content": b"{not", "headers": JSON_TYPE}),
        ("POST", f"{API}/messages/no-such-id/ack", 404, {"json": {"text": "fine"}}),
        ("POST", f"{API}/messages/no-such-id/retry", 404, {}),
    ],
)
def test_bad_input_is_a_clear_json_error(one_message_small, method: str, path: str, status: int, kwargs: Any) -> None:
    api = one_message_small
    done = api.call(method, path, **kwargs)
    assert done.status_code == status, done.text
    assert done.headers["content-type"] == "application/json"
    body = done.json()
    assert body["error"] and body["type"] and "Traceback" not in done.text


@pytest.fixture
def one_message_small(meshbridge_config, web_api) -> Any:
    return web_api(with_web(meshbridge_config(OUT_IN), 'max_upload = "2KiB"\n'))


def test_a_chunked_body_over_the_limit_is_413(one_message_small) -> None:
    """No Content-Length (chunked): counted as it comes, refused once over, nothing stored."""
    api = one_message_small

    def chunks() -> Any:
        for _ in range(10):
            yield b"y" * 1024

    done = api.call("POST", f"{API}/routes/out/messages", "submitter", content=chunks())
    assert done.status_code == 413 and "max_upload" in done.json()["error"]
    assert api.call("GET", f"{API}/messages").json()["items"] == []


def test_concurrent_requests_each_have_a_bridge_of_their_own(backend_config, web_api) -> None:
    """Many requests at once (FastAPI's worker threads): each borrows a bridge (its own store
    connection) for its whole length; at most POOL_SIZE are ever open, and every request is served."""
    from concurrent.futures import ThreadPoolExecutor

    from meshbridge.web.bridges import POOL_SIZE

    api = web_api(with_web(backend_config(OUT_IN)))

    def work(i: int) -> tuple[int, int]:
        sent = api.call("POST", f"{API}/routes/out/messages?filename=n{i}.txt", "submitter", content=f"{i}".encode())
        listed = api.call("GET", f"{API}/messages?limit=5", "viewer")
        return sent.status_code, listed.status_code

    with ThreadPoolExecutor(12) as pool:
        codes = list(pool.map(work, range(24)))
    assert codes == [(201, 200)] * 24
    assert api.call("GET", f"{API}/status").json()["counts"]["out"]["sent"] == 24
    assert 1 <= api.app.state.pool._open <= POOL_SIZE
