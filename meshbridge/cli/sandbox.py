"""``meshbridge sandbox``: a local mesh-sandbox with the test mailboxes, to try a config against."""

from __future__ import annotations

import signal
import socket
import sys
import threading

import click

from ..errors import MeshbridgeError
from .exits import fail_for
from .output import echo, fail

DEFAULT_PORT = 8700


@click.command()
@click.option("--port", type=click.IntRange(1, 65535), default=DEFAULT_PORT, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
def sandbox(port: int, host: str) -> None:
    """Run NHS England's mesh-sandbox (test mailboxes X26ABC1-3) until Ctrl-C, SIGTERM or SIGHUP.

    Prints its URL and a [mesh] snippet with the test credentials for meshbridge.toml.
    """
    from .. import sandbox as embedded

    if not embedded.installed():
        fail(f"meshbridge sandbox needs the mesh-sandbox package: {embedded.INSTALL}", 2)
    server = embedded.Sandbox(port=port, host=host)
    taken = in_use(host, port)
    if taken:  # else the health check could be answered by whatever holds the port (another sandbox)
        fail(f"mesh-sandbox did not start on {server.url}: {host} port {port}: {taken}", 1)
    stopping = threading.Event()
    # SIGHUP too: the server has a session of its own, which a closed terminal's hangup never reaches
    stops = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    previous = {sig: signal.signal(sig, lambda *_: stopping.set()) for sig in stops}
    try:
        server.start()
    except MeshbridgeError as exc:
        lines = [line for line in server.output().splitlines() if line.strip()]
        fail_for(exc, f"mesh-sandbox did not start on {server.url}: {lines[-1] if lines else 'no output'}")
    try:
        echo(f"mesh-sandbox running on {server.url} (Ctrl-C to stop)")
        echo(
            f"mailboxes {', '.join(embedded.MAILBOXES)}, each with password {embedded.PASSWORD!r}; "
            f"shared key {server.shared_key!r}; messages are kept in memory until it stops"
        )
        echo("for meshbridge.toml:")
        click.echo("\n" + embedded.mesh_text(server))  # our own text: printed as it is
        while not stopping.wait(0.2):
            if not server.running():
                lines = [line for line in server.output().splitlines() if line.strip()]
                fail(f"mesh-sandbox stopped by itself: {lines[-1] if lines else 'no output'}", 1)
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    echo("mesh-sandbox stopped")
    sys.exit(0)


def in_use(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be listened on (``Address already in use``), or None when it can.
    Bound as uvicorn binds it: IPv6 when the host has a colon, else IPv4, with SO_REUSEADDR."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no obstacle
        try:
            probe.bind((host, port))
        except socket.gaierror:  # a name that does not resolve: uvicorn says so
            return None
        except (OSError, UnicodeError) as exc:
            return getattr(exc, "strerror", None) or str(exc)
    return None
