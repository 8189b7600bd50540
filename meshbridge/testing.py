"""pytest fixtures for meshbridge and its plugins (a ``pytest11`` plugin, loaded automatically).

- ``mesh_sandbox_server``: one real NHS mesh-sandbox per test session (memory store).
- ``mesh_sandbox``: that sandbox with every mailbox emptied before the test.
- ``meshbridge_config``: ``meshbridge_config(routes_toml, mesh="...") -> Path`` writes a config
  for the sandbox's mailboxes X26ABC1..3 into the test's ``tmp_path`` (``url=`` puts another
  address in ``[mesh] url``, e.g. the fault proxy's).
- ``make_bridge``: ``make_bridge(config_path) -> Bridge``, closed after the test.
- ``mesh_peer``: ``mesh_peer(mailbox) -> mesh_client.MeshClient``, a plain mesh-client session on
  the sandbox: a foreign sender or receiver that is not meshbridge.
- ``mesh_fault_proxy``: a :class:`meshbridge.faultproxy.FaultProxy` in front of the sandbox, with no
  rules (healthy) at the start of each test: ``meshbridge_config(routes, url=mesh_fault_proxy.url)``,
  then ``mesh_fault_proxy.add("POST", r"/outbox$", answer(503))``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .faultproxy import FaultProxy
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
        url: str | None = None,
    ) -> Path:
        path = tmp_path / name
        text = config_text(mesh_sandbox, routes, store=store, mesh=mesh, mailboxes=mailboxes)
        if url:
            text = text.replace(f'url = "{mesh_sandbox.url}"', f'url = "{url}"', 1)
        path.write_text(text)
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


@pytest.fixture(scope="session")
def mesh_fault_proxy_server(mesh_sandbox_server: Sandbox) -> Iterator[FaultProxy]:
    with FaultProxy(mesh_sandbox_server.url) as proxy:
        yield proxy


@pytest.fixture
def mesh_fault_proxy(mesh_fault_proxy_server: FaultProxy, mesh_sandbox: Sandbox) -> FaultProxy:
    mesh_fault_proxy_server.clear()
    return mesh_fault_proxy_server
