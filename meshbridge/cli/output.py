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

from ..models import Direction
from ..printable import visible
from .times import shown

if TYPE_CHECKING:
    from rich.text import Text

    from ..models import Event, Message

ACTOR_KEYS = ("by", "via")  # who asked for an action (meshbridge.actors): the timeline's "by" column
SHOWN_FIELDS = (("file", "filename"), ("subject", "subject"), ("local id", "local_id"), ("last error", "last_error"))
PIPED_WIDTH = 10_000  # a table piped to a file or grep is never wrapped: each row stays one line


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


class JsonArray:
    """Writes ``json.dumps(every_item, indent=2)`` to stdout a chunk of items at a time, so that a
    listing of any length is written without being held: :meth:`write` each chunk, then :meth:`close`."""

    def __init__(self) -> None:
        self.empty = True

    def write(self, items: Iterable[Any]) -> None:
        pieces = []
        for item in items:
            pieces.append(("[\n  " if self.empty else ",\n  ") + json.dumps(item, indent=2).replace("\n", "\n  "))
            self.empty = False
        click.echo("".join(pieces), nl=False)

    def close(self) -> None:
        click.echo("[]" if self.empty else "\n]")


def print_timeline(message: Message, utc: bool = False) -> None:
    """A message's timeline as a table; times in the local zone (or UTC) with their offset."""
    arrow = "→" if message.direction == Direction.OUT else "←"
    title = literal(f"{message.id}  {message.mailbox} {arrow} {message.peer or '?'}  {message.workflow_id}  ")
    title.append(visible(message.state), style="bold")

    def detail(event: Event) -> str:
        return ", ".join(
            f"{k}={shown(v, utc) if k.endswith('_at') and isinstance(v, str) else v}"
            for k, v in event.detail.items()
            if k not in ACTOR_KEYS
        )

    def by(event: Event) -> str:
        name, via = event.detail.get("by"), event.detail.get("via")
        return "" if name is None else f"{name} ({via})" if via else str(name)

    rows = ((shown(e.at, utc, "milliseconds"), e.kind, e.state, by(e), detail(e)) for e in message.events)
    console().print(table("at", "event", "state", "by", "detail", rows=rows, title=title, title_justify="left"))


def format_finding(finding: Any) -> str:
    """``error edifact.unt-count segment 14 (UNT): ...`` from a Finding or its dict."""
    f = finding if isinstance(finding, dict) else finding.as_dict()
    where = f" {f['where']}:" if f.get("where") else ""
    return f"{f.get('severity', 'error')} {f.get('code') or ''}{where} {f['message']}".replace("  ", " ")
