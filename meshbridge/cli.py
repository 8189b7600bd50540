"""The command line. Thin: parse, call :class:`~meshbridge.Bridge`, print.

Exit codes: 0 done; 1 refused or failed (the reason is printed); 2 usage or configuration error;
3 ``send`` stored the message but MESH could not take it yet (``poll`` will retry it).

Text from a peer (workflow ids, subjects, file names, local ids, findings, ack texts) is data: every
human line goes through :func:`echo` or :func:`literal`, never through rich markup, and control
characters are shown as escapes (:func:`visible`).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from .errors import (
    ConfigError,
    MeshbridgeError,
    MeshRejected,
    PayloadRejected,
    StoreDamaged,
    StoreError,
    TransportError,
    UnknownMessage,
)
from .printable import visible

if TYPE_CHECKING:
    from rich.text import Text

    from .bridge import Bridge

SHOWN_FIELDS = (("file", "filename"), ("subject", "subject"), ("local id", "local_id"), ("last error", "last_error"))
PIPED_WIDTH = 10_000  # a table piped to a file or grep is never wrapped: each row stays one line

JSON_FIELDS = (
    "id",
    "direction",
    "state",
    "route",
    "mailbox",
    "peer",
    "mesh_message_id",
    "workflow_id",
    "filename",
    "subject",
    "local_id",
    "payload_type",
    "payload_size",
    "itk_message_id",
    "inf_ack_code",
    "bus_ack_code",
    "overdue",
    "last_error",
    "created_at",
    "updated_at",
)


def literal(value: object) -> Text:
    """A rich cell or title for ``value``, printed as it is: never read as markup, emoji codes or control codes."""
    from rich.text import Text

    return Text("" if value is None else visible(value))


def echo(line: str, err: bool = False) -> None:
    """Print one human line; the text it carries is shown literally (see :func:`visible`)."""
    click.echo(visible(line), err=err)


def fail(message: str, code: int = 1) -> NoReturn:
    echo(f"meshbridge: {message}", err=True)
    sys.exit(code)


@contextmanager
def bridge_for(ctx: click.Context) -> Iterator[Bridge]:
    """Open the configured Bridge; turn expected errors into one line and an exit code."""
    from .bridge import Bridge
    from .logs import redact

    try:
        with Bridge.from_file(ctx.obj["config"]) as bridge:
            config = bridge.config
            redact(secret.reveal() for secret in config.secrets())
            yield bridge
    except (ConfigError, StoreDamaged) as exc:
        fail(str(exc), 2)
    except UnknownMessage as exc:
        fail(str(exc), 1)
    except MeshbridgeError as exc:
        fail(str(exc), 1)


def _console() -> Any:
    """A rich console that reads no markup or emoji codes; when output is piped, wide enough that no cell wraps."""
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else PIPED_WIDTH, markup=False, emoji=False, highlight=False)


def _table(*columns: str, rows: Iterable[tuple[object, ...]], **options: Any) -> Any:
    """A rich table whose cells are all :func:`literal`."""
    from rich.table import Table

    table = Table(*columns, **options)
    for row in rows:
        table.add_row(*(literal(cell) for cell in row))
    return table


def _public(row: dict[str, Any]) -> dict[str, Any]:
    public = {k: row.get(k) for k in JSON_FIELDS}
    public["findings"] = json.loads(row["findings"]) if row.get("findings") else []
    return public


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config",
    type=click.Path(path_type=Path),
    default=None,
    help="Config file (default: $MESHBRIDGE_CONFIG, else ./meshbridge.toml).",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json: one JSON object per line (for journald, Splunk, ELK).",
)
@click.option(
    "--log-level",
    default="WARNING",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
)
@click.version_option(package_name="meshbridge")
@click.pass_context
def main(ctx: click.Context, config: Path | None, log_format: str, log_level: str) -> None:
    """meshbridge: NHS MESH with ITK3 reliable messaging."""
    from .logs import configure

    configure(log_level, log_format)
    ctx.obj = {"config": config}


@main.command()
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
        except TransportError as exc:
            fail(f"stored, not sent yet ({exc}); `meshbridge poll` will retry", 3)
        echo(message["id"])


@main.command()
@click.option("--mailbox", help="Only this mailbox.")
@click.option("--json", "as_json", is_flag=True, help="Print what was done as JSON.")
@click.pass_context
def poll(ctx: click.Context, mailbox: str | None, as_json: bool) -> None:
    """One pass: send what waits, collect, acknowledge, deliver, correlate, track."""
    from .service import stopped_by_signals

    with bridge_for(ctx) as bridge, stopped_by_signals(bridge.stopping):
        report = bridge.poll(mailbox)
        if as_json:
            click.echo(json.dumps(report.__dict__, indent=2))
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
                "overdue",
                "tracked",
            ):
                ids = getattr(report, name)
                if ids:
                    echo(f"{name}: {len(ids)}")
            for mid in report.unrouted:
                m = bridge.store.get(mid)
                echo(f"unrouted: {mid} from {m['peer']} on workflow {m['workflow_id']} (kept in the store)")
            for problem in report.problems:
                echo(f"problem: {problem}", err=True)


@main.command()
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Counts by direction and state, and overdue expectations."""
    with bridge_for(ctx) as bridge:
        result = bridge.status()
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    counts = ((direction, state, n) for direction, states in result["counts"].items() for state, n in states.items())
    console = _console()
    console.print(_table("direction", "state", "messages", rows=counts))
    console.print(literal(f"overdue expectations: {result['overdue']}"))


@main.command()
@click.option("--state", help="Only messages in this state.")
@click.option("--overdue", is_flag=True, help="Only messages with an overdue expectation.")
@click.option("--direction", type=click.Choice(["in", "out"]))
@click.option("--limit", type=int, help="At most this many.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def messages(
    ctx: click.Context, state: str | None, overdue: bool, direction: str | None, limit: int | None, as_json: bool
) -> None:
    """List messages (oldest first)."""
    with bridge_for(ctx) as bridge:
        rows = bridge.messages(state=state, overdue=overdue, direction=direction, limit=limit)
    if as_json:
        click.echo(json.dumps([_public(r) for r in rows], indent=2))
        return
    cells = (
        (
            r["id"],
            r["direction"],
            r["state"] + (" (overdue)" if r["overdue"] else ""),
            r["route"],
            r["workflow_id"],
            r["peer"],
            r["mesh_message_id"],
            r["payload_size"] or "",
            r["created_at"][:19],
        )
        for r in rows
    )
    columns = ("id", "dir", "state", "route", "workflow", "peer", "mesh id", "size", "created")
    _console().print(_table(*columns, rows=cells))


@main.command()
@click.argument("message_id")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def show(ctx: click.Context, message_id: str, as_json: bool) -> None:
    """One message and its timeline (by meshbridge id or MESH message id)."""
    with bridge_for(ctx) as bridge:
        message, events = bridge.show(message_id)
        expectations = bridge.store.expectations(message["id"])
        damage = payload_damage(bridge, message) if not as_json else None
    if as_json:
        click.echo(json.dumps({**_public(message), "events": events, "expectations": expectations}, indent=2))
        return
    print_timeline(message, events)
    for label, field in SHOWN_FIELDS:
        if message.get(field):
            echo(f"{label}: {message[field]}")
    if damage:
        echo(f"payload: {damage}")
    for finding in json.loads(message.get("findings") or "[]"):
        echo(format_finding(finding))
    for e in expectations:
        status = f"met {e['met_at'][:19]} ({e['outcome']})" if e["met_at"] else "OVERDUE" if e["overdue_at"] else "open"
        echo(f"expects {e['kind']} by {(e['due_at'] or 'no deadline')[:19]}: {status}")


def payload_damage(bridge: Bridge, message: dict[str, Any]) -> str | None:
    """What is wrong with the stored payload (missing, changed, not a file), or None: read whole
    and its sha256 checked, so that ``show`` says so before a replay or delivery meets it."""
    if not message["payload_sha256"]:
        return None
    try:
        bridge.store.payloads.verify(message["payload_sha256"])
    except StoreError as exc:
        return str(exc)
    return None


def print_timeline(message: dict[str, Any], events: list[dict[str, Any]]) -> None:
    arrow = "→" if message["direction"] == "out" else "←"
    title = literal(
        f"{message['id']}  {message['mailbox']} {arrow} {message['peer'] or '?'}  {message['workflow_id']}  "
    )
    title.append(visible(message["state"]), style="bold")
    rows = (
        (e["at"][11:23], e["kind"], e["state"], ", ".join(f"{k}={v}" for k, v in e["detail"].items())) for e in events
    )
    _console().print(_table("at", "event", "state", "detail", rows=rows, title=title, title_justify="left"))


def format_finding(finding: Any) -> str:
    """``error edifact.unt-count segment 14 (UNT): ...`` from a Finding or its dict."""
    f = finding if isinstance(finding, dict) else finding.as_dict()
    where = f" {f['where']}:" if f.get("where") else ""
    return f"{f.get('severity', 'error')} {f.get('code') or ''}{where} {f['message']}".replace("  ", " ")


@main.command()
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--type", "payload_type", default="auto", show_default=True, help="Payload type, or auto to sniff.")
@click.option("--fhir-version", type=click.Choice(["STU3", "R4", "R5"]), help="FHIR release (default STU3).")
@click.option("--route", help="Apply this route's settings (needs the config file).")
@click.option("--itk", "itk_rules", is_flag=True, help="Check ITK3 conformance (the TKW-x rules in schemas/).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def validate(
    ctx: click.Context,
    path: Path,
    payload_type: str,
    fhir_version: str | None,
    route: str | None,
    itk_rules: bool,
    as_json: bool,
) -> None:
    """Detect and validate one payload; print findings. Exit 0 valid, 1 invalid. No MESH needed."""
    from .config import load
    from .plugins import Plugins
    from .validation import check

    route_obj = None
    try:
        if route:
            route_obj = load(ctx.obj["config"]).route(route)
            if payload_type == "auto":
                payload_type = route_obj.payload_type
        data = path.read_bytes()
        plugins = Plugins()
    except ConfigError as exc:
        fail(str(exc), 2)
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}", 2)
    except MeshbridgeError as exc:
        fail(str(exc), 2)
    options = {"fhir_version": fhir_version} if fhir_version else {}
    result = check(plugins, data, payload_type=payload_type, options=options, route=route_obj, filename=path.name)
    if itk_rules:
        from .itk import check as itk_check
        from .payloads.base import ValidationResult

        result = ValidationResult(result.payload_type, (*result.findings, *itk_check(data)), result.details)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "valid": result.valid,
                    "payload_type": result.payload_type,
                    "details": dict(result.details),
                    "findings": [f.as_dict() for f in result.findings],
                },
                indent=2,
                default=str,
            )
        )
    else:
        for finding in result.findings:
            echo(format_finding(finding))
        echo(f"{path}: {result.payload_type} {'valid' if result.valid else 'INVALID'}")
    sys.exit(0 if result.valid else 1)


@main.command()
@click.option("--once", is_flag=True, help="Run every job once and exit (for cron).")
@click.pass_context
def run(ctx: click.Context, once: bool) -> None:
    """The service: scheduled polling, sending, tracking and deadline sweeps, until SIGTERM."""
    from .service import Service

    with bridge_for(ctx) as bridge:
        service = Service(bridge)
        service.run_once() if once else service.run()


@main.command()
@click.argument("message_id")
@click.pass_context
def retry(ctx: click.Context, message_id: str) -> None:
    """Send a failed outbound message again, or deliver an undelivered inbound one again (next pass)."""
    with bridge_for(ctx) as bridge:
        message = bridge.retry(message_id)
        echo(f"{message['id']}: {message['state']}")


@main.command()
@click.argument("message_id")
@click.pass_context
def replay(ctx: click.Context, message_id: str) -> None:
    """Deliver an inbound message to its destination again."""
    with bridge_for(ctx) as bridge:
        message = bridge.replay(message_id)
        echo(f"{message['id']}: delivered again to {message['destination']}")


@main.command()
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


@main.command()
@click.option("--json", "as_json", is_flag=True)
def plugins(as_json: bool) -> None:
    """Installed payload types and plugins."""
    from .plugins import Plugins

    try:
        installed = Plugins()
        types = installed.payload_types()
        infos = installed.describe()
    except MeshbridgeError as exc:
        fail(str(exc), 2)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "payload_types": [
                        {"name": t.name, "media_type": t.media_type, "description": t.description}
                        for t in types.values()
                    ],
                    "plugins": [i.__dict__ for i in infos],
                },
                indent=2,
            )
        )
        return
    console = _console()
    rows = ((t.name, t.media_type, t.description) for t in types.values())
    console.print(
        _table("payload type", "media type", "description", rows=rows, title="payload types", title_justify="left")
    )
    rows = ((i.name + (" (built-in)" if i.builtin else ""), i.version, ", ".join(i.hooks)) for i in infos)
    console.print(_table("plugin", "version", "hooks", rows=rows, title="plugins", title_justify="left"))


@main.command()
@click.option("--keep", is_flag=True, help="Keep the temporary workspace and print where it is.")
def demo(keep: bool) -> None:
    """Start an embedded MESH sandbox and run a full round trip; print each timeline."""
    from .demo import run_demo

    try:
        ok = run_demo(keep=keep, echo=click.echo, show=print_timeline)
    except MeshbridgeError as exc:
        fail(str(exc), 1)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":  # pragma: no cover
    main()
