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
- ``meshbridge_plugin``: ``meshbridge_plugin(obj, name=...)`` registers a plugin in-process for
  the rest of the test: every ``Bridge`` made meanwhile (``make_bridge``, ``CliRunner``) has it.
  :func:`register_plugin` is the same as a context manager.
- :func:`check_sniffer`: fails when a new payload type's sniffer claims another type's example
  or a near miss (``docs/plugins.md``, "Sniffing etiquette").
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from .faultproxy import FaultProxy
from .payloads.base import PayloadType
from .sandbox import MAILBOXES, PASSWORD, Sandbox, config_text


def run_cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``meshbridge --config CONFIG ARGS`` in a child process, as a user types it; its output as text."""
    return subprocess.run(
        [sys.executable, "-m", "meshbridge", "--config", str(config), *args],
        capture_output=True,
        encoding="utf-8",
        timeout=120,
    )


@contextmanager
def register_plugin(plugin: object, name: str | None = None) -> Iterator[str]:
    """Register ``plugin`` (a module, class instance or class with ``@hookimpl`` functions) in
    this process for the block: every plugin manager made inside it, so every ``Bridge`` and
    command run in-process, has it. ``name`` (default: its ``__name__`` or class name) is the
    plugin's name, as in ``[plugins.NAME]``. Yields the name."""
    from . import plugins

    name = name or getattr(plugin, "__name__", None) or type(plugin).__name__
    entry = (name, plugin)
    plugins.REGISTERED.append(entry)
    try:
        yield name
    finally:
        plugins.REGISTERED.remove(entry)


@pytest.fixture
def meshbridge_plugin() -> Iterator[Callable[..., str]]:
    """``meshbridge_plugin(obj, name=None)`` registers a plugin until the test ends (see :func:`register_plugin`)."""
    from . import plugins

    added: list[tuple[str, object]] = []

    def register(plugin: object, name: str | None = None) -> str:
        entry = (name or getattr(plugin, "__name__", None) or type(plugin).__name__, plugin)
        plugins.REGISTERED.append(entry)
        added.append(entry)
        return entry[0]

    yield register
    for entry in added:
        plugins.REGISTERED.remove(entry)


def check_sniffer(candidate: PayloadType, types: Mapping[str, PayloadType] | None = None) -> None:
    """Fail (``AssertionError`` listing each case) when adding ``candidate`` changes how meshbridge
    detects any payload of the corpus: every installed type's ``example`` (``types``, default the
    built-in ones) and :data:`meshbridge.payloads.near_misses.NEAR_MISSES`. Detection is compared
    on an ``auto`` route and on a route of each installed type, with ``candidate`` winning ties;
    its sniffer must also not raise on the corpus nor on odd input."""
    from .payloads.near_misses import NEAR_MISSES
    from .payloads.sniff import HEAD, detect
    from .plugins import Plugins, make_plugin_manager

    if types is None:
        types = Plugins(make_plugin_manager(load_entrypoints=False)).payload_types()
    installed = dict(types)
    installed.pop(candidate.name, None)
    corpus = {f"the {t.name} example": t.example for t in installed.values() if t.example}
    corpus |= {f"near miss {name!r}": data for name, data in NEAR_MISSES.items()}
    problems = []
    for what, data in [*corpus.items(), ("empty", b""), ("random bytes", os.urandom(4096)), ("NULs", b"\0" * 64)]:
        try:
            score = candidate.sniff(data[:HEAD])
        except Exception as exc:
            problems.append(f"{what}: sniff raised {type(exc).__name__}: {exc} (a sniffer must return 0.0)")
            continue
        if what not in corpus:
            continue
        for declared in ["auto", *installed]:
            before = _verdict(detect(data, declared, installed, len(data) + 1))
            after = _verdict(detect(data, declared, {candidate.name: candidate, **installed}, len(data) + 1))
            if after != before:
                route = "an auto route" if declared == "auto" else f"a route of type {declared}"
                change = f"{_said(after)}, not {_said(before)}"
                problems.append(f"{what}: sniff says {score:g}, so on {route} it is {change}")
    assert not problems, f"the {candidate.name} sniffer claims what is not its own:\n" + "\n".join(problems)


def _verdict(detection: Any) -> tuple[str, tuple[str, ...]]:
    return detection.payload_type, tuple(str(f) for f in detection.findings)


def _said(verdict: tuple[str, tuple[str, ...]]) -> str:
    payload_type, findings = verdict
    return f"refused ({'; '.join(findings)})" if findings else f"detected as {payload_type}"


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
