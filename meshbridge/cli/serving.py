"""``meshbridge serve`` (the local API alone) and the API beside the scheduler in ``meshbridge run``:
uvicorn in a thread of its own, stopped by the same stop event as the service's workers (SIGTERM
or SIGINT set it: one stop path).

The API's bridges never send notifications inline (:mod:`meshbridge.web.bridges`): under ``run``
the service's ``alerts`` worker sends what an action queued, under ``serve`` an ``alerts`` worker
of its own (the same worker, on a bridge of its own); each action wakes it."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from ..errors import ConfigError, MeshbridgeError
from .exits import fail_for
from .output import echo, fail
from .session import bridge_for

if TYPE_CHECKING:
    from ..bridge import Bridge
    from ..config import Config
    from ..plugins import Plugins

log = logging.getLogger("meshbridge")
STOP_WAIT = 30.0  # seconds the server waits for requests in hand when stopping


class WebServer:
    """uvicorn serving the API on ``[web]``'s address in a thread; stops when ``stopping`` is set."""

    def __init__(
        self,
        config: Config,
        plugins: Plugins,
        stopping: threading.Event,
        acted: Callable[[], None] | None = None,
    ) -> None:
        """``acted``: called after each action the API takes (wakes the dispatcher)."""
        import uvicorn

        from ..secret import readable
        from ..web import create_app
        from ..web.protocol import CONNECTIONS, TimelyH11

        web = config.web
        if web is None:
            raise ConfigError(str(config.file), "web", "no [web] table: the API needs [web] and [[web.tokens]]")
        for name in ("tls_cert", "tls_key"):
            path = getattr(web, name)
            if path is not None:
                readable(config.file, f"web.{name}", path)
        self.stopping = stopping
        self.app = create_app(config, plugins=plugins, stopping=stopping, acted=acted)
        self.app.state.pool.first()  # the store opens (and migrates) before anything listens
        options: dict[str, Any] = {}
        if web.tls:
            options = {"ssl_certfile": str(web.tls_cert), "ssl_keyfile": str(web.tls_key)}
        self.server = uvicorn.Server(
            uvicorn.Config(
                self.app,
                host=web.host,
                port=web.port,
                log_config=None,  # meshbridge's logging (redacted, text or JSON)
                server_header=False,
                http=TimelyH11,  # a request head must come in time (no slowloris)
                limit_concurrency=CONNECTIONS,
                timeout_graceful_shutdown=int(STOP_WAIT),
                **options,
            )
        )
        self.url = f"{'https' if web.tls else 'http'}://{web.host}:{web.port}"
        self.thread = threading.Thread(target=self._serve, name="meshbridge-web", daemon=True)

    def _serve(self) -> None:
        try:
            self.server.run()
        except SystemExit:  # uvicorn exits when it cannot listen (it logged why)
            pass
        finally:
            if not self.stopping.is_set():
                log.error("the API server stopped by itself (%s): meshbridge stops", self.url)
                self.stopping.set()

    def start(self) -> None:
        """Serve; return once listening. Raises :class:`~meshbridge.errors.MeshbridgeError` when it cannot."""
        self.thread.start()
        while not self.server.started:
            if not self.thread.is_alive():
                raise MeshbridgeError(f"the API cannot listen on {self.url} (see the log line above)")
            self.thread.join(0.05)
        threading.Thread(target=self._stop_when_told, name="meshbridge-web-stop", daemon=True).start()
        log.info("API listening on %s", self.url)

    def _stop_when_told(self) -> None:
        self.stopping.wait()
        self.server.should_exit = True

    def stop(self) -> None:
        """Stop (if not stopping already) and wait for the requests in hand, at most :data:`STOP_WAIT` s."""
        self.stopping.set()
        self.server.should_exit = True
        if self.thread.is_alive():
            self.thread.join(STOP_WAIT + 5)
        self.app.state.pool.close()


def serve_beside(bridge: Bridge, acted: Callable[[], None] | None = None) -> WebServer | None:
    """Start the API for ``meshbridge run`` when ``[web]`` is configured (None when it is not);
    ``acted``: wakes the service's alerts worker after each action."""
    if bridge.config.web is None:
        return None
    server = WebServer(bridge.config, bridge.plugins, bridge.stopping, acted)
    server.start()
    return server


@click.command()
@click.pass_context
def serve(ctx: click.Context) -> None:
    """The local HTTP API alone (see docs/api.md), on [web]'s host and port (127.0.0.1:8780 by
    default), until SIGTERM or SIGINT. ``meshbridge run`` serves it too when [web] is configured."""
    from ..service import alerts_worker, stopped_by_signals

    with bridge_for(ctx) as bridge:
        if bridge.config.web is None:
            fail(f"{bridge.config.file}: no [web] table: configure [web] and [[web.tokens]] (docs/api.md)", 2)
        try:
            bridge.dispatch_after = False  # this bridge is the alerts worker's
            alerts = alerts_worker(bridge)
            server = WebServer(bridge.config, bridge.plugins, bridge.stopping, alerts.wake)
            with stopped_by_signals(bridge.stopping):
                server.start()
                alerts.start()  # sends what the API's actions queue (and what was left queued)
                echo(f"meshbridge API on {server.url}", err=True)
                try:
                    bridge.stopping.wait()
                finally:
                    server.stop()
                    alerts.wake()  # it sees the stop now, not after its interval
                    alerts.join(STOP_WAIT)  # its send in hand (its bridge closes after it)
        except MeshbridgeError as exc:
            fail_for(exc)
