"""``meshbridge serve`` and ``meshbridge run`` serving the API, as processes: they listen on
``[web]``'s address (loopback by default, TLS when configured), answer, and stop on SIGTERM with
exit 0. ``[web]``'s checks: a non-loopback address needs TLS, tokens are required and strong."""

from __future__ import annotations

import re
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from alert_fixtures import HOOK_TOKEN, Receiver
from conftest import ITK_SENDER_ROUTE, OUT_IN
from web_fixtures import NAMES, auth, free_port, web_toml

from meshbridge import Bridge, ConfigError, EventKind, load
from meshbridge.models import TimelineKind


def start(config: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "meshbridge", "--config", str(config), "--log-level", "INFO", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(url: str, process: subprocess.Popen[str], **options: object) -> httpx.Response:
    """The first answer of ``url`` (GET /healthz) once the server listens."""
    for _ in range(600):
        if process.poll() is not None:
            raise AssertionError(f"exited {process.returncode}: {process.communicate()[1]}")
        try:
            return httpx.get(f"{url}/healthz", timeout=5, **options)  # type: ignore[arg-type]
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("the API never answered")


def stop(process: subprocess.Popen[str]) -> tuple[int, str]:
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    return process.returncode, err


@pytest.mark.parametrize("command", ["serve", "run"])
def test_serve_and_run_answer_and_stop_on_sigterm(meshbridge_config, tmp_path: Path, command: str) -> None:
    port = free_port()
    config = meshbridge_config(OUT_IN)
    config.write_text(config.read_text() + web_toml(f"port = {port}\n"))
    process = start(config, command)
    url = f"http://127.0.0.1:{port}"
    try:
        assert wait_for(url, process).json() == {"status": "ok"}
        sent = httpx.post(f"{url}/api/v1/routes/out/messages", content=b"over HTTP", headers=auth("submitter"))
        assert sent.status_code == 201, sent.text
        shown = httpx.get(f"{url}/api/v1/messages/{sent.json()['id']}", headers=auth("viewer")).json()
        assert shown["events"][0]["detail"]["by"] == NAMES["submitter"]
    finally:
        code, err = stop(process)
    assert code == 0, err
    assert f"API listening on {url}" in err and "Traceback" not in err
    assert "-token-0123456789abcdef" not in err  # no token in the log
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/healthz", timeout=2)


def rejected_alerts(interval: str) -> str:
    """``[alerts]`` with one webhook (its URL from the environment) that takes ``rejected``."""
    return f"""
[alerts]
interval = "{interval}"
backoff = "0s"
timeout = "5s"

[[alerts.webhooks]]
name = "teams"
url = {{ env = "TEST_ALERT_HOOK" }}
kinds = ["rejected"]
"""


def refuse_one(url: str) -> str:
    """Submit a payload its route refuses (422); the rejected message's id."""
    done = httpx.post(
        f"{url}/api/v1/routes/toc-out/messages?filename=bad.xml", content=b"<Patient>", headers=auth("submitter")
    )
    assert done.status_code == 422, done.text
    message_id: str = done.json()["message_id"]
    return message_id


def test_serve_sends_the_alert_an_action_queued(
    meshbridge_config, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``meshbridge serve`` alone runs a dispatcher: a refused submission's ``rejected`` alert
    reaches a real webhook receiver. Its interval is an hour, so only the action's wake-up
    (after the dispatcher's first pass at the start) can have sent it."""
    monkeypatch.setenv("TEST_ALERT_HOOK", receiver.url)
    port = free_port()
    config = meshbridge_config(ITK_SENDER_ROUTE)
    config.write_text(config.read_text() + web_toml(f"port = {port}\n") + rejected_alerts("1h"))
    process = start(config, "serve")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(url, process)
        message_id = refuse_one(url)
        for _ in range(600):
            if receiver.got or process.poll() is not None:
                break
            time.sleep(0.1)
    finally:
        code, err = stop(process)
    assert code == 0, err
    [(key, body, headers)] = receiver.got  # once
    assert body["kind"] == EventKind.REJECTED and headers["Idempotency-Key"] == key == body["id"]
    assert "bad.xml refused" in body["summary"]
    with Bridge(load(config)) as bridge:
        assert bridge.store.outbox.pending() == 0
        sent = [e.detail for e in bridge.store.events(message_id) if e.kind == TimelineKind.ALERT_SENT]
    assert [(d["notifier"], d["alert"]) for d in sent] == [("webhook:teams", key)]
    assert HOOK_TOKEN not in err and "Traceback" not in err


def test_the_api_never_sends_an_alert_inside_a_request(
    meshbridge_config, web_api, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The API's bridges do not dispatch inline: with no dispatcher beside it (the bare server),
    the alert stays queued after the response, and a dispatcher pass then sends it once."""
    monkeypatch.setenv("TEST_ALERT_HOOK", receiver.url)
    config = meshbridge_config(ITK_SENDER_ROUTE)
    config.write_text(config.read_text() + web_toml() + rejected_alerts("1h"))
    api = web_api(config)
    message_id = refuse_one(api.server.url)
    assert receiver.got == []
    with Bridge(load(config)) as bridge:
        assert bridge.store.outbox.pending() == 1
        bridge.dispatch()
        assert bridge.store.outbox.pending() == 0
    [(_, body, _)] = receiver.got
    assert (body["kind"], body["message_id"]) == (EventKind.REJECTED, message_id)


def test_serve_over_tls(meshbridge_config, tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    made = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        capture_output=True,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    port = free_port()
    config = meshbridge_config(OUT_IN)
    config.write_text(config.read_text() + web_toml(f'port = {port}\ntls_cert = "{cert}"\ntls_key = "{key}"\n'))
    process = start(config, "serve")
    try:
        url, trusted = f"https://127.0.0.1:{port}", ssl.create_default_context(cafile=str(cert))
        assert wait_for(url, process, verify=trusted).status_code == 200
        status = httpx.get(f"{url}/api/v1/status", headers=auth("viewer"), verify=trusted)
        assert status.status_code == 200 and "counts" in status.json()
        with pytest.raises(httpx.TransportError):  # plain HTTP is not served
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
    finally:
        code, err = stop(process)
    assert code == 0, err


def test_serve_without_web_or_on_a_taken_port_says_why(meshbridge_config) -> None:
    config = meshbridge_config(OUT_IN)
    done = subprocess.run(
        [sys.executable, "-m", "meshbridge", "--config", str(config), "serve"], capture_output=True, text=True
    )
    assert done.returncode == 2 and "no [web] table" in done.stderr
    port = free_port()
    config.write_text(config.read_text() + web_toml(f"port = {port}\n"))
    first = start(config, "serve")
    try:
        wait_for(f"http://127.0.0.1:{port}", first)
        second = subprocess.run(
            [sys.executable, "-m", "meshbridge", "--config", str(config), "serve"], capture_output=True, text=True
        )
        assert second.returncode == 1 and f"cannot listen on http://127.0.0.1:{port}" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        code, err = stop(first)
    assert code == 0, err


REFUSED = {
    "a public address without TLS": ('host = "0.0.0.0"\n', "web.host", "not a loopback address"),
    "a certificate without its key": ('tls_cert = "c.pem"\n', "web.tls_key", "together"),
    "a port out of range": ("port = 70000\n", "web.port", "65535"),
    "an unknown key": ("listen = 1\n", "web.listen", "unknown key"),
}


@pytest.mark.parametrize("case", REFUSED)
def test_web_config_is_checked(meshbridge_config, case: str) -> None:
    extra, key, words = REFUSED[case]
    config = meshbridge_config(OUT_IN)
    config.write_text(config.read_text() + web_toml(extra))
    with pytest.raises(ConfigError) as info:
        load(config)
    assert info.value.key == key and words in info.value.problem


def test_tokens_are_required_named_once_and_strong(meshbridge_config) -> None:
    config = meshbridge_config(OUT_IN)
    base = config.read_text()
    config.write_text(base + "\n[web]\n")
    with pytest.raises(ConfigError, match=re.escape("no [[web.tokens]]")):
        load(config)
    config.write_text(base + web_toml(tokens={"viewer": "short"}))
    with pytest.raises(ConfigError, match="at least 16 characters") as info:
        load(config)
    assert info.value.key == "web.tokens[0].secret" and "short" not in str(info.value)
    config.write_text(base + web_toml(tokens={"viewer": "a token with spaces in it"}))
    with pytest.raises(ConfigError, match="visible ASCII"):
        load(config)
    twice = web_toml(tokens={"viewer": "x" * 20}) + '[[web.tokens]]\nname = "viewer-engine"\nsecret = "y' + "y" * 20
    config.write_text(base + twice + '"\nrole = "admin"\n')
    with pytest.raises(ConfigError, match="defined twice"):
        load(config)
    allowed = base + web_toml('host = "0.0.0.0"\nallow_plain_http = true\n')
    config.write_text(allowed)
    assert load(config).web is not None and load(config).web.host == "0.0.0.0"  # type: ignore[union-attr]
