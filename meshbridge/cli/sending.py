"""Commands that send or answer: send, retry, replay, ack."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..actors import os_user
from ..errors import MeshAuthRefused, MeshRejected, PayloadRejected, SendAbandoned, TransportError
from ..models import RETRIABLE
from .exits import EXIT_LOGIN_REFUSED, EXIT_UNREACHABLE, fail_for, mesh_exit
from .output import echo, fail, format_finding
from .progress import transfer_bar
from .session import bridge_for
from .times import WHEN
from .words import TEXT

if TYPE_CHECKING:
    from ..config import Config


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
    """Validate, store and send one payload; print its meshbridge id (also when refused or not sent yet)."""
    if not route and not (sender and to and workflow):
        fail("give --route NAME, or --from MB --to MB --workflow WF", 2)

    def needs(config: Config) -> None:  # MESH's secrets for the sending mailbox only
        mailbox = config.route(route).mailbox if route else sender
        config.require(mailboxes=[mailbox] if mailbox else [], destinations=False)

    from .. import steps

    with bridge_for(ctx, secrets=needs) as bridge:
        try:
            with transfer_bar(bridge), steps.told_by_caller():
                message = bridge.send(
                    path,
                    route=route,
                    sender=sender,
                    to=to,
                    workflow_id=workflow,
                    payload_type=payload_type,
                    by=os_user(),
                )
        except PayloadRejected as exc:
            stored(exc.message_id)
            for finding in exc.findings:
                echo(format_finding(finding), err=True)
            fail_for(exc, f"refused, not sent: quarantined as {exc.message_id} (state rejected)")
        except MeshRejected as exc:
            stored(exc.message_id)
            fail_for(exc, f"MESH refused it (message kept in state failed): {exc}")
        except MeshAuthRefused as exc:
            stored(exc.message_id)
            fail_for(exc, f"stored, not sent yet: {exc}; it waits (accepted) and `meshbridge poll` sends it")
        except SendAbandoned as exc:
            stored(exc.message_id)
            fail_for(exc, f"not sent (message kept in state failed): {exc}")
        except TransportError as exc:
            stored(exc.message_id)
            fail_for(exc, f"stored, not sent yet ({exc}); `meshbridge poll` will retry")
        echo(message.id)


def stored(message_id: str | None) -> None:
    """Print the id of a message that was stored though not sent, so the caller can follow it up."""
    if message_id:
        echo(message_id)


@click.command()
@click.argument("message_ids", type=TEXT, metavar="[ID]...", nargs=-1)
@click.option("--state", type=click.Choice([s.value for s in RETRIABLE.values()]), help="Every message in this state.")
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
    from ..models import State

    if message_ids and (state or since or until):
        fail("give message ids, or --state/--since/--until to choose them, not both", 2)
    if not (message_ids or state or since or until):
        fail("give message ids, or --state/--since/--until to choose them", 2)
    from .. import steps

    with bridge_for(ctx, secrets=True) as bridge, steps.told_by_caller():  # each outcome is its line below
        done = bridge.retry_many(
            message_ids, state=State(state) if state else None, since=since, until=until, by=os_user()
        )
    if not done.messages:
        what = f"{state} message" if state else "failed outbound or undelivered inbound message"
        for word, moment in (("since", since), ("until", until)):
            if moment:
                what += f" {word} {moment.astimezone().isoformat(sep=' ', timespec='seconds')}"
        echo(f"nothing to retry: no {what}")
        return
    refused = [item for item in done.messages if not item.queued or item.state == State.FAILED]
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
@click.argument("message_id", type=TEXT)
@click.option("--force", is_flag=True, help="Replay a message we nacked; no new response is sent.")
@click.pass_context
def replay(ctx: click.Context, message_id: str, force: bool) -> None:
    """Deliver an inbound message again; route and validate an unrouted or invalid one again.

    An unrouted or invalid message goes through routing and validation against the current config
    (a route added since takes it) and is delivered if valid; an ITK one is answered as if new.
    One we nacked (the sender was told it was refused) is replayed only with --force, which sends
    no new response. Exit 0 delivered (or correlated); 1 refused, still unrouted or invalid, or
    its delivery failed (the service tries again).
    """
    from ..models import REROUTABLE, State

    with bridge_for(ctx, secrets=True) as bridge:
        before = bridge.show(message_id)
        message = bridge.replay(message_id, force=force, by=os_user())
    state, ident = message.state, message.id
    was = f"{ident}: {before.state} before, now"
    if before.state not in REROUTABLE:
        echo(f"{ident}: delivered again to {message.destination}")
    elif state == State.DELIVERED:
        echo(f"{was} delivered to {message.destination} (route {message.route})")
    elif state == State.VALID:  # another process (the service) claimed its delivery first
        echo(f"{was} valid on route {message.route}; the running service delivers it")
    elif state == State.CORRELATED:
        echo(f"{was} correlated (a response to a message of ours)")
    elif state == State.UNROUTED:
        where = f"workflow {message.workflow_id} on {message.mailbox}"
        fail(f"{ident}: still unrouted: no inbound route with a destination takes {where}")
    else:
        for finding in message.findings:
            echo(format_finding(finding), err=True)
        why = f": {message.last_error}" if message.last_error else ""
        fail(f"{ident}: {before.state} before, now {state}{why}")


@click.command()
@click.argument("message_id", type=TEXT)
@click.option("--ok", "ok", is_flag=True, help="Positive business response (30001, or another positive --code).")
@click.option("--nack", "nack", metavar="CODE", help="Negative business response code, e.g. 30002.")
@click.option("--code", help="With --ok: another positive business code, e.g. 30004 or 30016.")
@click.option("--text", help="Human-readable text for the response (no patient data).")
@click.pass_context
def ack(ctx: click.Context, message_id: str, ok: bool, nack: str | None, code: str | None, text: str | None) -> None:
    """The end application's business ack for an inbound ITK message; the response goes to the sender.

    --ok takes a positive business code and --nack a negative one, as ITK3 types them; anything else
    exits 2 and sends nothing. An answer recorded whose response is not sent yet exits 3 (MESH
    unreachable) or 4 (login refused), as ``send`` does: ``poll`` sends it.
    """
    from ..models import State

    if ok == (nack is not None):
        fail("give exactly one of --ok or --nack CODE", 2)
    if nack is not None and code is not None:
        fail("--code goes with --ok; a nack's code is given to --nack", 2)
    with bridge_for(ctx, secrets=True) as bridge:
        message = bridge.ack(
            message_id, code=nack if nack is not None else code, nack=nack is not None, text=text, by=os_user()
        )
        said = f"{message.id}: {message.state} ({message.bus_ack_code})"
        response = bridge.response_to(message.id)
        if response is None or response.state not in (State.ACCEPTED, State.SENDING, State.FAILED):
            echo(f"{said} sent to {message.peer}")
            return
        if response.state == State.FAILED:
            fail(
                f"{said} recorded, but MESH refused its response {response.id} (kept failed; "
                f"`meshbridge retry {response.id}` sends it again): {response.last_error}",
                1,
            )
        fail(
            f"{said} recorded; its response {response.id} to {message.peer} is not sent yet "
            f"({response.last_error}); `meshbridge poll` sends it",
            EXIT_LOGIN_REFUSED if bridge.login_refused(response.mailbox) else EXIT_UNREACHABLE,
        )
