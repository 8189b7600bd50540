"""Alerts (``[alerts]``): notifications from the store's outbox delivered to a real local SMTP server
(aiosmtpd, STARTTLS and a login) and a real local HTTP receiver, against the real mesh-sandbox.

Each notifier gets each notification with a stable idempotency key (``Idempotency-Key``; the mail's
``Message-ID``), each delivery is on the message's timeline, a failing notifier is retried with the
same key and given up without holding the others, and no secret reaches the log. A ``meshbridge
poll`` killed (SIGKILL) between queueing and sending, and between sending and recording, loses
nothing: after a restart each receiver has each key, a repeat only with the same key.
"""

from __future__ import annotations

import email
import logging
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from alert_fixtures import HOOK_TOKEN, Receiver
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from test_crash import meshbridge

from meshbridge import Bridge, EventKind, load
from meshbridge.errors import TransportError
from meshbridge.models import State, TimelineKind

HEADER_SECRET = "Bearer hdr-s3cret"
SMTP_USER, SMTP_PASSWORD = "alerts", "smtp-pa55word"
NO_ROUTE = "NO_ROUTE_WF"  # a workflow no route takes: the message is unrouted


# -- a real SMTP server: STARTTLS required, then a login ----------------------------------------


@dataclass
class Mailroom:
    mails: list[email.message.Message] = field(default_factory=list)
    port: int = 0
    ca: Path = Path()

    def ids(self) -> list[str]:
        return [str(m["Message-ID"]).strip("<>").removesuffix("@meshbridge") for m in self.mails]


def certificate(path: Path, *, days: float, name: str = "127.0.0.1") -> tuple[Path, Path]:
    """A self-signed certificate for ``127.0.0.1`` valid for ``days`` more days, and its key."""
    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = path.with_suffix(".pem"), path.with_suffix(".key")
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


@pytest.fixture
def mailroom(tmp_path: Path) -> Iterator[Mailroom]:
    room = Mailroom()
    cert, key = certificate(tmp_path / "smtp", days=365)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            room.mails.append(email.message_from_bytes(envelope.original_content))
            return "250 OK"

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, auth: Any) -> AuthResult:
        expected = (SMTP_USER.encode(), SMTP_PASSWORD.encode())
        ok = isinstance(auth, LoginPassword) and (auth.login, auth.password) == expected
        return AuthResult(success=ok)

    with socket.socket() as probe:  # a free port (the Controller checks it is up by connecting to it)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(
        Handler(),
        hostname="127.0.0.1",
        port=port,
        tls_context=context,
        require_starttls=True,
        auth_require_tls=True,
        authenticator=authenticate,
    )
    controller.start()
    room.port, room.ca = port, cert
    yield room
    controller.stop()


def alerts_table(receiver: Receiver, mailroom: Mailroom, extra: str = "") -> str:
    return f"""
[alerts]
backoff = "0s"
timeout = "1s"
{extra}

[[alerts.webhooks]]
name = "teams"
url = {{ env = "TEST_ALERT_HOOK" }}
headers = {{ Authorization = {{ env = "TEST_ALERT_HEADER" }} }}

[[alerts.email]]
name = "oncall"
host = "127.0.0.1"
port = {mailroom.port}
ca_bundle = "{mailroom.ca}"
username = "{SMTP_USER}"
password = {{ env = "TEST_ALERT_SMTP" }}
from = "meshbridge@example.nhs.uk"
to = ["oncall@example.nhs.uk"]
"""


@pytest.fixture
def secrets_in_env(receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_ALERT_HOOK", receiver.url)
    monkeypatch.setenv("TEST_ALERT_HEADER", HEADER_SECRET)
    monkeypatch.setenv("TEST_ALERT_SMTP", SMTP_PASSWORD)


def alert_events(bridge: Bridge, message_id: str, kind: str = TimelineKind.ALERT_SENT) -> list[dict[str, Any]]:
    return [dict(e.detail) for e in bridge.store.events(message_id) if e.kind == kind]


def unrouted_from_peer(mesh_peer: Any, body: bytes = b"hello") -> None:
    mesh_peer("X26ABC1").send_message("X26ABC2", body, workflow_id=NO_ROUTE)


# -- the tests ------------------------------------------------------------------------------


@pytest.mark.usefixtures("secrets_in_env")
def test_each_notification_reaches_the_webhook_and_the_mail_server_with_its_key_on_the_timeline(
    tmp_path: Path, meshbridge_config: Any, mesh_peer: Any, receiver: Receiver, mailroom: Mailroom, caplog: Any
) -> None:
    from conftest import OUT_IN

    path = meshbridge_config(OUT_IN + alerts_table(receiver, mailroom))
    unrouted_from_peer(mesh_peer)
    payload = tmp_path / "p.bin"
    payload.write_bytes(b"to nobody")
    with caplog.at_level(logging.DEBUG), Bridge(load(path)) as bridge:
        bridge.poll()  # unrouted, notified with its state, dispatched after the pass
        [unrouted] = [m for m in bridge.messages(direction="in") if m.state == State.UNROUTED]
        with pytest.raises(TransportError):  # MESH refuses an unknown recipient: failed
            bridge.send(payload, sender="X26ABC1", to="X26ZZZ9", workflow_id="TEST_WORKFLOW")
        [failed] = [m for m in bridge.messages(direction="out") if m.state == State.FAILED]
        assert bridge.store.outbox.pending() == 0
        sent = {m.id: alert_events(bridge, m.id) for m in (unrouted, failed)}
    by_kind = {body["kind"]: (key, body, headers) for key, body, headers in receiver.got}
    assert set(by_kind) == {EventKind.UNROUTED, EventKind.FAILED}
    assert len(receiver.got) == 2 and len(mailroom.mails) == 2  # each once
    key, body, headers = by_kind[EventKind.UNROUTED]
    assert body["message_id"] == unrouted.id and body["id"] == key and NO_ROUTE in body["text"]
    assert headers["Authorization"] == HEADER_SECRET and headers["Content-Type"] == "application/json"
    assert sorted(mailroom.ids()) == sorted(receiver.keys())  # the same key in both: the notification's id
    mail = next(m for m in mailroom.mails if m["X-Meshbridge-Kind"] == "unrouted")
    assert unrouted.id in mail.get_payload() and mail["To"] == "oncall@example.nhs.uk"
    for message_id, events in sent.items():  # each delivery on the message's timeline, by notifier
        assert sorted(e["notifier"] for e in events) == ["email:oncall", "webhook:teams"], message_id
        assert {e["alert"] for e in events} == {by_kind[e["kind"]][0] for e in events}
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("meshbridge"))
    assert "alert-sent" in ours
    for secret in (HOOK_TOKEN, HEADER_SECRET, SMTP_PASSWORD):  # (urllib3's DEBUG lines: the CLI's redactor)
        assert secret not in ours


@pytest.mark.usefixtures("secrets_in_env")
def test_a_failing_webhook_is_retried_with_the_same_key_then_given_up_and_the_mail_goes_regardless(
    meshbridge_config: Any, mesh_peer: Any, receiver: Receiver, mailroom: Mailroom, caplog: Any
) -> None:
    receiver.fail = [500, 503, 500]
    path = meshbridge_config(alerts_table(receiver, mailroom, 'attempts = 3\nbackoff_max = "0s"'))
    unrouted_from_peer(mesh_peer)
    with caplog.at_level(logging.INFO), Bridge(load(path)) as bridge:
        bridge.poll()  # first attempt: the webhook fails, the mail is sent
        [message] = bridge.messages(direction="in")
        assert len(mailroom.mails) == 1 and len(receiver.got) == 1
        bridge.dispatch()
        bridge.dispatch()  # the third attempt fails too: given up
        assert bridge.dispatch().sent == []  # nothing left
        [given_up] = alert_events(bridge, message.id, TimelineKind.ALERT_GIVEN_UP)
        [sent] = alert_events(bridge, message.id)
    assert len(set(receiver.keys())) == 1 and len(receiver.got) == 3  # retried with the same key
    assert given_up["notifier"] == "webhook:teams" and given_up["error"] == "answered HTTP 500"
    assert sent["notifier"] == "email:oncall" and mailroom.ids() == receiver.keys()[:1]
    assert "given up after 3 attempts: answered HTTP 500" in caplog.text
    assert HOOK_TOKEN not in caplog.text


def test_a_failed_handshake_and_an_expiring_certificate_are_notified_once_a_day(
    tmp_path: Path, meshbridge_config: Any
) -> None:
    cert, key = certificate(tmp_path / "client", days=5, name="X26ABC1.example")
    path = meshbridge_config(mesh=f'client_cert = "{cert}"\nclient_key = "{key}"', url="http://127.0.0.1:9")
    with Bridge(load(path)) as bridge:
        heard = bridge.check_certificates()
        assert bridge.check_certificates() == []  # the same day: once
        with pytest.raises(TransportError):
            bridge.handshake("X26ABC1", alert=True)
        with pytest.raises(TransportError):
            bridge.handshake("X26ABC1", alert=True)  # once a day per mailbox
        bridge.dispatch()
        sends = bridge.store.outbox.pending()
    [expiring] = heard
    assert expiring.kind is EventKind.CERTIFICATE_EXPIRING and expiring.message_id is None
    assert expiring.detail["certificate"] == "client_cert" and 4 <= expiring.detail["days_left"] <= 5
    assert "X26ABC1.example" in expiring.summary and sends == 0


# -- killed between queueing and sending, and between sending and recording -------------------


@pytest.mark.usefixtures("secrets_in_env")
def test_killed_between_queueing_and_sending_and_between_sending_and_recording_each_key_arrives(
    meshbridge_config: Any, mesh_peer: Any, receiver: Receiver, mailroom: Mailroom
) -> None:
    path = meshbridge_config(alerts_table(receiver, mailroom))
    unrouted_from_peer(mesh_peer, b"first")
    killed = meshbridge(path, "poll", crash_at="alert:queued")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    with Bridge(load(path)) as bridge:  # queued with the unrouted state, sent to no one
        bridge.dispatch_after = False
        [first] = bridge.messages(direction="in")
        assert first.state == State.UNROUTED and bridge.store.outbox.pending() == 3  # plugins, webhook, mail
    assert receiver.got == [] and mailroom.mails == []
    assert meshbridge(path, "poll").returncode == 0  # restarted: sent
    assert len(receiver.got) == 1 and len(mailroom.mails) == 1

    unrouted_from_peer(mesh_peer, b"second")
    killed = meshbridge(path, "poll", crash_at="alert:sent")  # one notifier has it, not recorded
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert len(receiver.got) + len(mailroom.mails) == 3
    time.sleep(3.2)  # the dead process's claim lapses (3 x [alerts] timeout)
    assert meshbridge(path, "poll").returncode == 0
    with Bridge(load(path)) as bridge:
        bridge.dispatch_after = False
        keys = {e["alert"] for m in bridge.messages(direction="in") for e in alert_events(bridge, m.id)}
        assert bridge.store.outbox.pending() == 0
    assert len(keys) == 2
    for got in (receiver.keys(), mailroom.ids()):
        assert set(got) == keys  # each receiver has each key
    assert len(receiver.got) + len(mailroom.mails) == 5  # one repeat, with the same key


def run_until(config: Path, done: Callable[[], bool], crash_at: str | None = None, within: float = 60) -> int:
    """``meshbridge run`` until ``done()`` (then SIGTERM) or until it dies: its exit status."""
    env = {k: v for k, v in os.environ.items() if k != "MESHBRIDGE_CRASH_AT"}
    if crash_at:
        env["MESHBRIDGE_CRASH_AT"] = crash_at
    command = [sys.executable, "-m", "meshbridge", "--config", str(config), "run"]
    service = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + within
    while service.poll() is None and not done() and time.monotonic() < deadline:
        time.sleep(0.05)
    if service.poll() is None:
        service.send_signal(signal.SIGTERM)
    _, errors = service.communicate(timeout=60)
    assert "Traceback" not in errors, errors
    return service.returncode


@pytest.mark.usefixtures("secrets_in_env")
def test_the_service_killed_between_queueing_and_sending_and_between_sending_and_recording_loses_no_key(
    meshbridge_config: Any, mesh_peer: Any, receiver: Receiver, mailroom: Mailroom
) -> None:
    """The same as above with ``meshbridge run``: its alerts worker, not a command's last step."""
    path = meshbridge_config(alerts_table(receiver, mailroom, "interval = 0.2"))
    unrouted_from_peer(mesh_peer, b"first")
    assert run_until(path, lambda: False, crash_at="alert:queued") == -signal.SIGKILL
    assert receiver.got == [] and mailroom.mails == []
    assert run_until(path, lambda: len(receiver.got) == 1 and len(mailroom.mails) == 1) == 0

    unrouted_from_peer(mesh_peer, b"second")
    assert run_until(path, lambda: False, crash_at="alert:sent") == -signal.SIGKILL
    assert len(receiver.got) + len(mailroom.mails) == 3  # one notifier has the second, unrecorded
    time.sleep(3.2)  # the dead process's claim lapses (3 x [alerts] timeout)
    with Bridge(load(path)) as bridge:
        bridge.dispatch_after = False
        assert run_until(path, lambda: bridge.store.outbox.pending() == 0) == 0  # each send done and recorded
        keys = {e["alert"] for m in bridge.messages(direction="in") for e in alert_events(bridge, m.id)}
        assert bridge.store.outbox.pending() == 0
    assert len(keys) == 2
    for got in (receiver.keys(), mailroom.ids()):
        assert set(got) == keys
    assert len(receiver.got) + len(mailroom.mails) == 5  # one repeat, with the same key


@pytest.mark.usefixtures("secrets_in_env")
def test_at_debug_no_line_names_the_webhook_url_or_a_secret(
    meshbridge_config: Any, mesh_peer: Any, receiver: Receiver, mailroom: Mailroom
) -> None:
    """A Teams or Slack webhook's secret is its URL's path: urllib3 names it in its DEBUG request
    lines, which meshbridge's logging never writes; the redactor hides it wherever else it shows."""
    path = meshbridge_config(alerts_table(receiver, mailroom))
    unrouted_from_peer(mesh_peer)
    done = meshbridge(path, "--log-level", "DEBUG", "poll")
    assert done.returncode == 0, done.stderr
    assert len(receiver.got) == 1 and len(mailroom.mails) == 1  # sent: the lines were there to be written
    assert " DEBUG " in done.stderr  # logging at DEBUG
    for secret in (HOOK_TOKEN, "/hook/", HEADER_SECRET, SMTP_PASSWORD):
        assert secret not in done.stderr + done.stdout
