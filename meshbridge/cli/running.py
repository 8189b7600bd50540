"""Commands that run the pipeline: poll, run, demo."""

from __future__ import annotations

import json
import os
import shlex
import signal
import sys
from pathlib import Path

import click

from ..errors import MeshbridgeError
from .exits import EXIT_STOPPED, fail_for, mesh_exit
from .output import echo, print_timeline
from .progress import transfer_bar
from .session import bridge_for


@click.command()
@click.option("--mailbox", help="Only this mailbox.")
@click.option("--json", "as_json", is_flag=True, help="Print what was done as JSON.")
@click.pass_context
def poll(ctx: click.Context, mailbox: str | None, as_json: bool) -> None:
    """One pass: send what waits, collect, acknowledge, deliver, correlate, track.

    Exits 3 when MESH could not be reached for a mailbox, 4 when it refused a mailbox's login
    (the rest of the pass is done all the same)."""
    import logging

    from .. import steps
    from ..pipeline import Logged
    from ..service import stopped_by_signals

    with bridge_for(ctx, secrets=True) as bridge, stopped_by_signals(bridge.stopping):
        with transfer_bar(bridge):
            report = bridge.poll(mailbox)
        if as_json:
            click.echo(json.dumps(report.as_json(), indent=2))
        else:
            for name in (
                "sent",
                "received",
                "delivered",
                "invalid",
                "unrouted",
                "undelivered",
                "undeliverable",
                "correlated",
                "orphan",
                "duplicate",
                "overdue",
                "tracked",
            ):
                ids = getattr(report, name)
                if ids:
                    echo(f"{name}: {len(ids)}")
            for mid in report.unrouted:
                m = bridge.show(mid)
                echo(f"unrouted: {mid} from {m.peer} on workflow {m.workflow_id} (kept in the store)")
            for problem in report.problems:
                if not (isinstance(problem, Logged) and steps.log.isEnabledFor(logging.WARNING)):
                    echo(f"problem: {problem}", err=True)  # a Logged one is its step's log line already
    code = mesh_exit(report.unreachable, report.login_refused)
    if code:
        sys.exit(code)


@click.command()
@click.option("--once", is_flag=True, help="Run every job once and exit (for cron).")
@click.pass_context
def run(ctx: click.Context, once: bool) -> None:
    """The service: scheduled polling, sending, tracking and deadline sweeps, and the local API
    when [web] is configured (docs/api.md), until SIGTERM.

    ``--once`` exits 3 when MESH could not be reached for a mailbox, 4 when it refused a
    mailbox's login (every job still ran)."""
    from ..service import Service
    from .serving import serve_beside

    with bridge_for(ctx, secrets=True) as bridge:
        service = Service(bridge)
        if not once:
            server = serve_beside(bridge, service.wake_alerts)  # the API too, when [web] is configured
            try:
                service.run()  # until SIGTERM or SIGINT set bridge.stopping, which stops the API too
            finally:
                if server is not None:
                    server.stop()
            return
        troubles = service.run_once()
    code = mesh_exit(troubles.unreachable, troubles.login_refused)
    if code:
        sys.exit(code)


@click.command()
@click.option("--keep", is_flag=True, help="Keep the temporary workspace and print where it is.")
@click.pass_context
def demo(ctx: click.Context, keep: bool) -> None:
    """Start an embedded MESH sandbox: round trips of every payload type, then an ITK3 exchange
    between two organisations (acks, a nack, an overdue expectation); print what happened."""
    from ..demo import abandon, run_demo

    def command(config: Path, *args: str) -> None:
        """Run a meshbridge command here, as typed at a shell (shown first), on one of the demo's configs."""
        click.echo(f"\n$ meshbridge --config {config.name} {shlex.join(args)}")
        root = ctx.find_root()  # with the demo's own --log-level and --log-format
        options = ["--log-level", root.params["log_level"], "--log-format", root.params["log_format"]]
        root.command.main([*options, "--config", str(config), *args], "meshbridge", standalone_mode=False)

    def stop(signum: int, frame: object) -> None:
        """Stop the sandbox (in its own session, it would outlive us) and the workspace, then end at once:
        no step of the demo may swallow the signal or run on without its sandbox."""
        abandon(keep=keep)
        sys.stdout.flush()
        echo(
            "meshbridge: demo stopped; its sandbox was stopped" + ("" if keep else " and its workspace removed"),
            err=True,
        )
        os._exit(EXIT_STOPPED)

    signal.signal(signal.SIGTERM, stop)
    try:
        ok = run_demo(keep=keep, echo=click.echo, show=print_timeline, command=command)
    except MeshbridgeError as exc:
        fail_for(exc)
    sys.exit(0 if ok else 1)
