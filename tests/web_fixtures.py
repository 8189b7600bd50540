"""The local API for the tests: a config with ``[web]`` and a token of every role, served by a
real uvicorn on 127.0.0.1, and an httpx client."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from meshbridge import load

TOKENS = {role: f"{role}-token-0123456789abcdef" for role in ("viewer", "submitter", "operator", "admin")}
NAMES = {role: f"{role}-engine" for role in TOKENS}


def web_toml(extra: str = "", tokens: dict[str, str] = TOKENS) -> str:
    """A ``[web]`` table with one token per role (named ``ROLE-engine``)."""
    text = f"\n[web]\n{extra}"
    for role, secret in tokens.items():
        text += f'\n[[web.tokens]]\nname = "{NAMES.get(role, role)}"\nsecret = "{secret}"\nrole = "{role}"\n'
    return text


def auth(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[role]}"}


class Api:
    """The API of one config served by a real uvicorn on 127.0.0.1 (the server ``meshbridge serve``
    runs, on a free port), and an httpx client calling it as each role."""

    def __init__(self, config: Path) -> None:
        import httpx

        from meshbridge.cli.serving import WebServer
        from meshbridge.plugins import Plugins

        self.config = config
        self.stopping = threading.Event()
        self.server = WebServer(load(config), Plugins(), self.stopping)
        self.server.start()
        self.app = self.server.app
        self.client = httpx.Client(base_url=self.server.url, timeout=60)

    def call(self, method: str, path: str, role: str | None = "admin", **kwargs: Any) -> Any:
        headers = {**(auth(role) if role else {}), **kwargs.pop("headers", {})}
        return self.client.request(method, path, headers=headers, **kwargs)

    def close(self) -> None:
        self.client.close()
        self.server.stop()


@pytest.fixture
def web_api() -> Iterator[Callable[[Path], Api]]:
    """``web_api(config_path)``: an :class:`Api` on that config (it must have ``[web]``), closed after."""
    made: list[Api] = []

    def make(config: Path) -> Api:
        api = Api(config)
        made.append(api)
        return api

    yield make
    for api in made:
        api.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def with_web(path: Path, extra: str = "") -> Path:
    """Add :func:`web_toml` (on a free port) to a config file; its path."""
    path.write_text(path.read_text() + web_toml(f"port = {free_port()}\n{extra}"))
    return path
