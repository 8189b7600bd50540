"""How the command line prints: literal text (never rich markup), tables, findings and timelines.

Text from a peer (workflow ids, subjects, file names, local ids, findings, ack texts) is data: every
human line goes through :func:`echo` or :func:`literal`, never through rich markup, and control
characters are shown as escapes (:func:`visible`).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

import click

from ..errors import StoreError
from ..printable import visible
from .times import iso, shown

if TYPE_CHECKING:
    from rich.text import Text

    from ..bridge import Bridge

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


def console() -> Any:
    """A rich console that reads no markup or emoji codes; when output is piped, wide enough that no cell wraps."""
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else PIPED_WIDTH, markup=False, emoji=False, highlight=False)


def table(*columns: str, rows: Iterable[Sequence[object]], **options: Any) -> Any:
    """A rich table whose cells are all :func:`literal`."""
    from rich.table import Table

    built = Table(*columns, **options)
    for row in rows:
        built.add_row(*(literal(cell) for cell in row))
    return built


def public(row: dict[str, Any]) -> dict[str, Any]:
    """A message for JSON: :data:`JSON_FIELDS`, its findings, times as ISO 8601 with their offset."""
    public = {k: row.get(k) for k in JSON_FIELDS}
    public["findings"] = json.loads(row["findings"]) if row.get("findings") else []
    for name in ("created_at", "updated_at"):
        public[name] = iso(public[name])
    return public


def public_event(event: dict[str, Any]) -> dict[str, Any]:
    """A timeline event for JSON, its time as ISO 8601 with its offset."""
    return {**event, "at": iso(event["at"])}


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


def print_timeline(message: dict[str, Any], events: list[dict[str, Any]], utc: bool = False) -> None:
    """A message's timeline as a table; times in the local zone (or UTC) with their offset."""
    arrow = "→" if message["direction"] == "out" else "←"
    title = literal(
        f"{message['id']}  {message['mailbox']} {arrow} {message['peer'] or '?'}  {message['workflow_id']}  "
    )
    title.append(visible(message["state"]), style="bold")

    def detail(event: dict[str, Any]) -> str:
        return ", ".join(
            f"{k}={shown(v, utc) if k.endswith('_at') and isinstance(v, str) else v}"
            for k, v in event["detail"].items()
        )

    rows = ((shown(e["at"], utc, "milliseconds"), e["kind"], e["state"], detail(e)) for e in events)
    console().print(table("at", "event", "state", "detail", rows=rows, title=title, title_justify="left"))


def format_finding(finding: Any) -> str:
    """``error edifact.unt-count segment 14 (UNT): ...`` from a Finding or its dict."""
    f = finding if isinstance(finding, dict) else finding.as_dict()
    where = f" {f['where']}:" if f.get("where") else ""
    return f"{f.get('severity', 'error')} {f.get('code') or ''}{where} {f['message']}".replace("  ", " ")
