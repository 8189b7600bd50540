"""meshbridge's only private use of mesh-client (``meshbridge.mesh_private``), pinned on a real
MeshClient against the real mesh-sandbox: when a mesh-client release renames or retypes what
meshbridge reaches into, these fail, naming what changed."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import OUT_IN
from mesh_client import MeshClient

import meshbridge
from meshbridge import TransportError
from meshbridge.mesh_private import Session, installed_version, session
from meshbridge.sandbox import PASSWORD, Sandbox

PACKAGE = Path(meshbridge.__file__).resolve().parent


def real_client(sandbox: Sandbox, **options: Any) -> MeshClient:
    return MeshClient(sandbox.url, "X26ABC1", PASSWORD, shared_key=sandbox.shared_key.encode(), **options)


def test_a_real_mesh_client_keeps_its_session_and_timeout_where_meshbridge_reads_them(mesh_sandbox) -> None:
    with real_client(mesh_sandbox, timeout=7) as client:
        assert isinstance(client._session, requests.Session), "mesh-client moved MeshClient._session"
        assert client._timeout == 7, "mesh-client no longer keeps the timeout in MeshClient._timeout"
        found = session(client)
        assert found == Session(client._session, 7.0)
        assert found.http.trust_env is True  # mesh-client's default: MeshMailbox turns it off
        # the session is the authenticated one: a request through it is answered, not refused
        answer = found.http.get(f"{client.mailbox_url}/inbox", timeout=found.timeout)
        assert answer.status_code == 200, answer.text


def test_the_mailbox_sends_and_tracks_through_that_session(meshbridge_config, make_bridge, mesh_peer) -> None:
    bridge = make_bridge(meshbridge_config(OUT_IN))
    mesh = bridge.mailbox("X26ABC1")
    assert mesh._wire.http.trust_env is False  # the proxy environment is read once, not per request
    assert mesh.find_sent("no-such-local-id") is None  # tracking by local id: the private session's GET
    sent = mesh_peer("X26ABC1").send_message("X26ABC2", b"hello", workflow_id="TEST_WORKFLOW", local_id="lid-1")
    assert mesh.find_sent("lid-1") == sent


def test_a_mesh_client_that_moved_them_fails_with_one_line_naming_its_version(mesh_sandbox) -> None:
    with real_client(mesh_sandbox) as client:
        client._timeout = None  # as if a release kept it elsewhere
        with pytest.raises(TransportError) as raised:
            session(client)
    assert f"mesh-client {installed_version()} keeps its HTTP session or timeout elsewhere" in str(raised.value)
    assert "\n" not in str(raised.value)


def test_no_other_module_touches_mesh_client_internals() -> None:
    """MeshClient's private session and timeout are read in mesh_private.py only."""
    offenders = [
        f"{path.relative_to(PACKAGE)}:{node.lineno} {ast.unparse(node)}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "mesh_private.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.Attribute) and node.attr in ("_session", "_timeout")
    ]
    assert offenders == []
