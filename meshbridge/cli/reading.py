"""Commands that read the store or a file: status, messages, show, validate, plugins."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from ..errors import MeshbridgeError
from ..models import Direction, MessageSummary, Page, State
from ..views import Filters
from .exits import EXIT_USAGE, fail_for
from .expectations import line as expectation_line
from .listing import PagedTable, Pages
from .output import (
    SHOWN_FIELDS,
    JsonArray,
    console,
    echo,
    fail,
    format_finding,
    literal,
    print_timeline,
    table,
)
from .session import bridge_for, reader_for
from .times import LOCAL_WHEN, age, shown, spoken, stored
from .words import TEXT, shell_command


@click.command()
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Counts by direction and state, and by route; overdue expectations, and business acks we owe.

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
    by_route = ((r.route or "-", r.direction, r.state, r.messages) for r in result.by_route)
    out.print(table("route", "direction", "state", "messages", rows=by_route))
    messages = result.overdue_messages
    out.print(
        literal(
            f"overdue expectations: {result.overdue} (on {messages} message{'' if messages == 1 else 's'}; "
            "messages --overdue lists them)"
        )
    )
    out.print(literal(f"business acks we owe: {result.owed} (messages --owed lists them)"))


STATES = sorted(s.value for s in State)
PAGE = 500  # messages in memory at a time, whatever the length of the listing
SHOW_AT_MOST = 20  # messages a key naming several lists


@click.command()
@click.option(
    "--state", type=click.Choice(STATES), metavar="STATE", help=f"Only messages in this state: {', '.join(STATES)}."
)
@click.option("--direction", type=click.Choice(sorted(d.value for d in Direction)))
@click.option("--route", type=TEXT, help="Only messages of this route.")
@click.option("--mailbox", type=TEXT, help="Only messages of this mailbox of ours.")
@click.option("--peer", type=TEXT, help="Only messages to or from this mailbox (the other side).")
@click.option("--workflow", type=TEXT, help="Only messages on this MESH workflow id.")
@click.option("--overdue", is_flag=True, help="Only messages with an expectation past its deadline and not met.")
@click.option("--nacked", is_flag=True, help="Only messages nacked (inf-nacked or bus-nacked).")
@click.option("--owed", is_flag=True, help="Only inbound ITK messages still owing our business ack, with their age.")
@click.option("--since", type=LOCAL_WHEN, help="Created then or later: a date, a date and time (local unless it "
              "has an offset or Z), or a duration ago (2h).")  # fmt: skip
@click.option("--until", type=LOCAL_WHEN, help="Created before then (same forms as --since).")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many; the command to list the rest goes "
              "to stderr.")  # fmt: skip
@click.option("--after", type=TEXT, metavar="CURSOR", help="Go on from where a listing with --limit stopped.")
@click.option("--oldest-first", is_flag=True, help="Oldest first (default: newest first).")
@click.option("--utc", is_flag=True, help="Print times in UTC (default: the local time zone, with its offset).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def messages(
    ctx: click.Context,
    state: str | None,
    direction: str | None,
    route: str | None,
    mailbox: str | None,
    peer: str | None,
    workflow: str | None,
    overdue: bool,
    nacked: bool,
    owed: bool,
    since: datetime | None,
    until: datetime | None,
    limit: int | None,
    after: str | None,
    oldest_first: bool,
    utc: bool,
    as_json: bool,
) -> None:
    """List messages, newest first, a page at a time (all of them unless --limit)."""
    with bridge_for(ctx) as bridge:
        filters = Filters(
            state=State(state) if state else None,
            direction=Direction(direction) if direction else None,
            route=route,
            mailbox=mailbox,
            peer=peer,
            workflow_id=workflow,
            overdue=overdue,
            nacked=nacked,
            owed=owed,
            since=since,
            until=until,
        )
        pages = Pages(bridge.pages(filters, limit=limit, after=after, oldest_first=oldest_first, page=PAGE))
        if as_json:
            array = JsonArray()
            pages.each(lambda page: array.write(_items(page, owed)))
            array.close()
        else:
            columns = ["id", "dir", "state", "route", "workflow", "peer", "mesh id", "size", "created"]
            listing = PagedTable(*columns, *(["age"] if owed else []), whole=("id", "mesh id"))
            pages.each(lambda page: listing.print(_row(m, utc, owed) for m in page))
    if limit and pages.cursor:
        echo(f"more: {_rest(ctx, pages.cursor)}", err=True)


def _items(page: Page, owed: bool) -> Iterator[dict[str, Any]]:
    for m in page:
        item = m.as_json()
        if owed:
            item["age_seconds"] = round(age(m.created_at) or 0.0, 3)
        yield item


def _row(m: MessageSummary, utc: bool, owed: bool) -> list[object]:
    state = m.state + (" (overdue)" if m.overdue else "")
    row = [m.id, m.direction, state, m.route, m.workflow_id, m.peer, m.mesh_message_id, m.payload_size or ""]
    return [*row, shown(m.created_at, utc), *([spoken(age(m.created_at) or 0.0)] if owed else [])]


def _rest(ctx: click.Context, cursor: str) -> str:
    """The command that lists what follows ``cursor``: this one's options, times as UTC moments."""
    words = ["meshbridge", *(["--config", str(ctx.obj["config"])] if ctx.obj.get("config") else [])]
    words.append(ctx.info_name or "messages")
    for param in ctx.command.params:
        value = ctx.params.get(param.name or "")
        if param.name == "after" or value is None or value is False or not isinstance(param, click.Option):
            continue
        words += (
            [param.opts[0]]
            if param.is_flag
            else [param.opts[0], stored(value) if isinstance(value, datetime) else str(value)]
        )
    return shell_command([*words, "--after", cursor])


@click.command()
@click.argument("key", type=TEXT)
@click.option("--utc", is_flag=True, help="Print times in UTC (default: the local time zone, with its offset).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def show(ctx: click.Context, key: str, utc: bool, as_json: bool) -> None:
    """One message and its timeline. KEY: its meshbridge id, MESH message id or ITK id (any case),
    local id, or source file; a KEY naming several messages (not a meshbridge id) lists them (exit 2)."""
    with bridge_for(ctx) as bridge:
        found = bridge.lookup(key, SHOW_AT_MOST + 1)  # one more than listed: are there more?
        found = [m for m in found if m.id == key] or found  # a meshbridge id names its own message
        if len(found) > 1:
            many = f"more than {SHOW_AT_MOST}" if len(found) > SHOW_AT_MOST else str(len(found))
            named = ", ".join(
                f"{m.id} ({m.direction}, {m.state}, {shown(m.created_at, utc)})" for m in found[:SHOW_AT_MOST]
            )
            fail(f"{key!r} names {many} messages: {named}; show one by its meshbridge id", EXIT_USAGE)
        message = bridge.show(found[0].id if found else key)  # none: UnknownMessage, exit 1
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
