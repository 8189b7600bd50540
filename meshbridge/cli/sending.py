"""Commands that send or answer: send, retry, replay, ack."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

import click

from ..errors import MeshAuthRefused, MeshRejected, PayloadRejected, TransportError
from .output import (
    EXIT_LOGIN_REFUSED,
    echo,
    fail,
    format_finding,
    mesh_exit,
)
from .session import bridge_for
from .times import WHEN


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
            for finding in exc.findings:
                echo(format_finding(finding), err=True)
            fail(f"refused, not sent: quarantined as {exc.message_id} (state rejected)", 1)
        except MeshRejected as exc:
            fail(f"MESH refused it (message kept in state failed): {exc}", 1)
        except MeshAuthRefused as exc:
            fail(f"stored, not sent yet: {exc}; it waits (accepted) and `meshbridge poll` sends it", EXIT_LOGIN_REFUSED)
        except TransportError as exc:
            fail(f"stored, not sent yet ({exc}); `meshbridge poll` will retry", 3)
        echo(message["id"])


@click.command()
@click.argument("message_ids", metavar="[ID]...", nargs=-1)
@click.option("--state", type=click.Choice(["failed", "undelivered"]), help="Every message in this state.")
@click.option("--since", type=WHEN, help="Last changed since then: 2h (ago) or an ISO 8601 time with an offset.")
@click.option("--until", type=WHEN, help="Last changed until then (same forms as --since).")
@click.pass_context
def retry(
    ctx: click.Context, message_ids: tuple[str, ...], state: str | None, since: datetime | None, until: datetime | None
) -> None:
    """Send failed outbound messages again, or deliver undelivered inbound ones again (next pass).

    Give ids, or choose by --state and/or --since/--until (without --state: both states). Prints
    each message queued with its state, and on stderr each that could not be retried (or that MESH
    refused again) with why. Exits 1 if there is one; else 4 if MESH refused a mailbox's login, 3
    if it could not be reached (those messages are queued: poll sends them).
    """
    if message_ids and (state or since or until):
        fail("give message ids, or --state/--since/--until to choose them, not both", 2)
    if not (message_ids or state or since or until):
        fail("give message ids, or --state/--since/--until to choose them", 2)
    with bridge_for(ctx) as bridge:
        done = bridge.retry_many(message_ids, state=state, since=since, until=until)
    if not done.messages:
        what = f"{state} message" if state else "failed outbound or undelivered inbound message"
        for word, moment in (("since", since), ("until", until)):
            if moment:
                what += f" {word} {moment.astimezone().isoformat(sep=' ', timespec='seconds')}"
        echo(f"nothing to retry: no {what}")
        return
    refused = [item for item in done.messages if not item.queued or item.state == "failed"]
    for item in done.messages:
        if not item.queued:
            echo(f"{item.message_id}: not retried: {item.problem}", err=True)
        else:  # (failed: MESH refused it again)
            line = f"{item.message_id}: {item.state}" + (f" ({item.problem})" if item.problem else "")
            echo(line, err=item in refused)
    if refused:
        sys.exit(1)
    code = mesh_exit(done.report.unreachable, done.report.login_refused)
    if code:
        sys.exit(code)


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
