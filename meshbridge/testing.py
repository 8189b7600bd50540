"""pytest fixtures for meshbridge and its plugins (a ``pytest11`` plugin, loaded automatically).

- ``mesh_sandbox_server``: one real NHS mesh-sandbox per test session (memory store).
- ``mesh_sandbox``: that sandbox with every mailbox emptied before the test.
- ``meshbridge_config``: ``meshbridge_config(routes_toml, mesh="...") -> Path`` writes a config
  for the sandbox's mailboxes X26ABC1..3 into the test's ``tmp_path``.
- ``make_bridge``: ``make_bridge(config_path) -> Bridge``, closed after the test.
- ``mesh_peer``: ``mesh_peer(mailbox) -> mesh_client.MeshClient``, a plain mesh-client session on
  the sandbox: a foreign sender or receiver that is not meshbridge.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .sandbox import MAILBOXES, PASSWORD, Sandbox, config_text


@pytest.fixture(scope="session")
def mesh_sandbox_server() -> Iterator[Sandbox]:
    with Sandbox() as sandbox:
        yield sandbox


@pytest.fixture
def mesh_sandbox(mesh_sandbox_server: Sandbox) -> Sandbox:
    mesh_sandbox_server.reset()
    return mesh_sandbox_server


@pytest.fixture
def meshbridge_config(tmp_path: Path, mesh_sandbox: Sandbox) -> Callable[..., Path]:
    def make(
        routes: str = "",
        *,
        name: str = "meshbridge.toml",
        store: str = "var/meshbridge.db",
        mesh: str = "",
        mailboxes: tuple[str, ...] = MAILBOXES,
    ) -> Path:
        path = tmp_path / name
        path.write_text(config_text(mesh_sandbox, routes, store=store, mesh=mesh, mailboxes=mailboxes))
        return path

    return make


@pytest.fixture
def make_bridge() -> Iterator[Callable[[Path], object]]:
    from .bridge import Bridge
    from .config import load

    opened: list[Bridge] = []

    def make(config_path: Path) -> Bridge:
        bridge = Bridge(load(config_path))
        opened.append(bridge)
        return bridge

    yield make
    for bridge in opened:
        bridge.close()


@pytest.fixture
def mesh_peer(mesh_sandbox: Sandbox) -> Iterator[Callable[[str], object]]:
    from mesh_client import MeshClient

    clients: list[MeshClient] = []

    def make(mailbox: str) -> MeshClient:
        client = MeshClient(mesh_sandbox.url, mailbox, PASSWORD, shared_key=mesh_sandbox.shared_key.encode())
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
