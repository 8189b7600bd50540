"""Mutual TLS: client certificate, key and CA bundle from the config reach the wire (sandbox demands a cert)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import OUT_IN

from meshbridge import Bridge, TransportError, load
from meshbridge.sandbox import TLS, Sandbox, config_text


@pytest.fixture(scope="module")
def tls_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    tls = TLS.generate(tmp_path_factory.mktemp("pki"))
    with Sandbox(tls=tls) as sandbox:
        yield sandbox


def config(tmp_path: Path, sandbox: Sandbox, mesh: str) -> Path:
    path = tmp_path / "meshbridge.toml"
    path.write_text(config_text(sandbox, OUT_IN, mesh=mesh))
    return path


def test_round_trip_over_mutual_tls(tmp_path: Path, tls_sandbox: Sandbox) -> None:
    tls = tls_sandbox.tls
    assert tls is not None and tls_sandbox.url.startswith("https://")
    mesh = f'client_cert = "{tls.client_cert}"\nclient_key = "{tls.client_key}"\nca_bundle = "{tls.ca}"\n'
    with Bridge(load(config(tmp_path, tls_sandbox, mesh))) as bridge:
        bridge.mailbox("X26ABC1").handshake()
        payload = tmp_path / "p.txt"
        payload.write_text("over mTLS")
        sent = bridge.send(payload, route="out")
        report = bridge.poll()
        assert report.problems == []
        inbound = bridge.store.find("in", sent.mesh_message_id)
        assert Path(inbound.destination).read_text() == "over mTLS"


def test_without_client_certificate_the_server_refuses(tmp_path: Path, tls_sandbox: Sandbox) -> None:
    assert tls_sandbox.tls is not None
    refused = r"MESH mailbox X26ABC1: cannot handshake: (SSLError|ConnectionError)"
    with (
        Bridge(load(config(tmp_path, tls_sandbox, f'ca_bundle = "{tls_sandbox.tls.ca}"\n'))) as bridge,
        pytest.raises(TransportError, match=refused),
    ):
        bridge.mailbox("X26ABC1").handshake()


def test_unknown_server_ca_is_refused(tmp_path: Path, tls_sandbox: Sandbox) -> None:
    tls = tls_sandbox.tls
    assert tls is not None
    mesh = f'client_cert = "{tls.client_cert}"\nclient_key = "{tls.client_key}"\n'  # system CAs only
    with (
        Bridge(load(config(tmp_path, tls_sandbox, mesh))) as bridge,
        pytest.raises(TransportError, match="certificate verify failed"),
    ):
        bridge.mailbox("X26ABC1").handshake()
