"""Commands that send or answer: send, retry, replay, ack."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import MeshRejected, PayloadRejected, TransportError
from .output import (
    echo,
    fail,
    format_finding,
)
from .session import bridge_for


@click.command()
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--route", help="Outbound route name from the config.")
@click.option("--from", "sender", help="Sending mailbox (instead of --route).")
@click.option("--to", help="Recipient mailbox (instead of --route).")
@click.option("--workflow", help="MESH workflow id (instead of --route).")
@click.option("--type", "payload_type", help="Payload type (default: the route's, else auto).")
@click.pass_context
def send(
    ctx: click.Context,
    path: Path,
    route: str | None,
    sender: str | None,
    to: str | None,
    workflow: str | None,
    payload_type: str | None,
) -> None:
    """Validate, store and send one payload; print its meshbridge id."""
    if not route and not (sender and to and workflow):
        fail("give --route NAME, or --from MB --to MB --workflow WF", 2)
    with bridge_for(ctx) as bridge:
        try:
            message = bridge.send(
                path, route=route, sender=sender, to=to, workflow_id=workflow, payload_type=payload_type
            )
        except PayloadRejected as exc:
            if exc.message_id:  # stored as rejected: its id on stdout, for a caller to follow it up
                echo(exc.message_id)
            for finding in exc.findings:
                echo(format_finding(finding), err=True)
            fail(f"refused, not sent: quarantined as {exc.message_id} (state rejected)", 1)
        except MeshRejected as exc:
            fail(f"MESH refused it (message kept in state failed): {exc}", 1)
        except TransportError as exc:
            fail(f"stored, not sent yet ({exc}); `meshbridge poll` will retry", 3)
        echo(message["id"])


@click.command()
@click.argument("message_id")
@click.pass_context
def retry(ctx: click.Context, message_id: str) -> None:
    """Send a failed outbound message again, or deliver an undelivered inbound one again (next pass)."""
    with bridge_for(ctx) as bridge:
        message = bridge.retry(message_id)
        echo(f"{message['id']}: {message['state']}")


@click.command()
@click.argument("message_id")
@click.pass_context
def replay(ctx: click.Context, message_id: str) -> None:
    """Deliver an inbound message to its destination again."""
    with bridge_for(ctx) as bridge:
        message = bridge.replay(message_id)
        echo(f"{message['id']}: delivered again to {message['destination']}")


@click.command()
@click.argument("message_id")
@click.option("--ok", "ok", is_flag=True, help="Positive business response (30001, or --code).")
@click.option("--nack", "nack", metavar="CODE", help="Negative business response code, e.g. 30002.")
@click.option("--code", help="With --ok: another positive or outcome code, e.g. 30004 or 30016.")
@click.option("--text", help="Human-readable text for the response (no patient data).")
@click.pass_context
def ack(ctx: click.Context, message_id: str, ok: bool, nack: str | None, code: str | None, text: str | None) -> None:
    """The end application's business ack for an inbound ITK message; the response goes to the sender."""
    if ok == bool(nack):
        fail("give exactly one of --ok or --nack CODE", 2)
    with bridge_for(ctx) as bridge:
        message = bridge.ack(message_id, code=nack or code or "30001", text=text)
        echo(f"{message['id']}: {message['state']} ({message['bus_ack_code']}) sent to {message['peer']}")
