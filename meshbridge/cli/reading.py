"""Commands that read the store or a file: status, messages, show, validate, plugins."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..errors import MeshbridgeError
from ..models import Direction
from .exits import EXIT_USAGE, fail_for
from .expectations import line as expectation_line
from .output import (
    SHOWN_FIELDS,
    console,
    echo,
    fail,
    format_finding,
    literal,
    print_timeline,
    table,
)
from .session import bridge_for, reader_for
from .times import age, shown, spoken


@click.command()
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Counts by direction and state, overdue expectations, and business acks we owe.

    Reads the store only (no plugins); a store older than this meshbridge is refused: run
    ``meshbridge store migrate``."""
    with reader_for(ctx) as reader:
        result = reader.status()
    if as_json:
        click.echo(json.dumps(result.as_json(), indent=2))
        return
    counts = ((direction, state, n) for direction, states in result.counts.items() for state, n in states.items())
    out = console()
    out.print(table("direction", "state", "messages", rows=counts))
    messages = result.overdue_messages
    out.print(
        literal(
            f"overdue expectations: {result.overdue} (on {messages} message{'' if messages == 1 else 's'}; "
            "messages --overdue lists them)"
        )
    )
    out.print(literal(f"business acks we owe: {result.owed} (messages --owed lists them)"))


@click.command()
@click.option("--state", help="Only messages in this state.")
@click.option("--overdue", is_flag=True, help="Only messages with an expectation past its deadline and not met.")
@click.option("--owed", is_flag=True, help="Only inbound ITK messages still owing our business ack, with their age.")
@click.option("--direction", type=click.Choice(sorted(d.value for d in Direction)))
@click.option("--limit", type=int, help="At most this many.")
@click.option("--utc", is_flag=True, help="Print times in UTC (default: the local time zone, with its offset).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def messages(
    ctx: click.Context,
    state: str | None,
    overdue: bool,
    owed: bool,
    direction: str | None,
    limit: int | None,
    utc: bool,
    as_json: bool,
) -> None:
    """List messages (oldest first)."""
    with bridge_for(ctx) as bridge:
        page = bridge.messages(state=state, overdue=overdue, owed=owed, direction=direction, limit=limit)
    if as_json:
        items = [m.as_json() for m in page]
        if owed:
            for item, m in zip(items, page, strict=True):
                item["age_seconds"] = round(age(m.created_at) or 0.0, 3)
        click.echo(json.dumps(items, indent=2))
        return
    cells = [
        [
            m.id,
            m.direction,
            m.state + (" (overdue)" if m.overdue else ""),
            m.route,
            m.workflow_id,
            m.peer,
            m.mesh_message_id,
            m.payload_size or "",
            shown(m.created_at, utc),
        ]
        for m in page
    ]
    columns = ["id", "dir", "state", "route", "workflow", "peer", "mesh id", "size", "created"]
    if owed:
        columns.append("age")
        for cell, m in zip(cells, page, strict=True):
            cell.append(spoken(age(m.created_at) or 0.0))
    console().print(table(*columns, rows=cells))


@click.command()
@click.argument("message_id")
@click.option("--utc", is_flag=True, help="Print times in UTC (default: the local time zone, with its offset).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def show(ctx: click.Context, message_id: str, utc: bool, as_json: bool) -> None:
    """One message and its timeline (by meshbridge id or MESH message id)."""
    with bridge_for(ctx) as bridge:
        message = bridge.show(message_id)
        damage = bridge.payload_problem(message) if not as_json else None
    if as_json:
        click.echo(json.dumps(message.as_json(), indent=2))
        return
    print_timeline(message, utc)
    for label, field in SHOWN_FIELDS:
        if getattr(message, field):
            echo(f"{label}: {getattr(message, field)}")
    if damage:
        echo(f"payload: {damage}")
    for finding in message.findings:
        echo(format_finding(finding))
    for e in message.expectations:
        echo(expectation_line(e, utc))


@click.command()
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--type", "payload_type", default="auto", show_default=True, help="Payload type, or auto to sniff.")
@click.option("--fhir-version", type=click.Choice(["STU3", "R4", "R5"]), help="FHIR release (default STU3).")
@click.option(
    "--fhir-strictness",
    type=click.Choice(["hl7", "structure"]),
    help="FHIR: hl7 (default) refuses what the HL7 validator calls an error; structure refuses only what "
    "the models refuse and warns about the rest. Overrides the route's fhir_strictness.",
)
@click.option("--route", help="Apply this route's settings (needs the config file).")
@click.option("--itk", "itk_rules", is_flag=True, help="Check ITK3 conformance (the TKW-x rules it ships).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def validate(
    ctx: click.Context,
    path: Path,
    payload_type: str,
    fhir_version: str | None,
    fhir_strictness: str | None,
    route: str | None,
    itk_rules: bool,
    as_json: bool,
) -> None:
    """Detect and validate one payload; print findings. Exit 0 valid, 1 invalid. No MESH needed."""
    from ..validating import validate as validated

    try:
        data = path.read_bytes()
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}", EXIT_USAGE)
    try:
        result = validated(
            data,
            filename=path.name,
            type=payload_type,
            fhir_version=fhir_version,
            fhir_strictness=fhir_strictness,
            itk=itk_rules,
            route=route,
            config=ctx.obj["config"] if route else None,
        )
    except MeshbridgeError as exc:  # the config or a plugin
        fail_for(exc)
    if as_json:
        click.echo(json.dumps(result.as_json(), indent=2))
    else:
        for finding in result.findings:
            echo(format_finding(finding))
        echo(f"{path}: {result.payload_type} {'valid' if result.valid else 'INVALID'}")
    sys.exit(0 if result.valid else 1)


@click.command()
@click.option("--json", "as_json", is_flag=True)
def plugins(as_json: bool) -> None:
    """Installed payload types and plugins."""
    from ..plugins import Plugins

    try:
        installed = Plugins()
        types = installed.payload_types()
        infos = installed.describe()
    except MeshbridgeError as exc:  # a broken plugin
        fail_for(exc)
    if as_json:
        listed = {"payload_types": [t.as_json() for t in types.values()], "plugins": [i.as_json() for i in infos]}
        click.echo(json.dumps(listed, indent=2))
        return
    out = console()
    rows = ((t.name, t.media_type, t.description) for t in types.values())
    out.print(
        table("payload type", "media type", "description", rows=rows, title="payload types", title_justify="left")
    )
    plugin_rows = ((i.name + (" (built-in)" if i.builtin else ""), i.version, ", ".join(i.hooks)) for i in infos)
    out.print(table("plugin", "version", "hooks", rows=plugin_rows, title="plugins", title_justify="left"))
