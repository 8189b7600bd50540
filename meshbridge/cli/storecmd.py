"""``meshbridge store``: the store itself (its schema)."""

from __future__ import annotations

from contextlib import nullcontext

import click

from .output import echo
from .session import opened


@click.group()
def store() -> None:
    """The store itself: bring its schema up to date."""


@store.command()
@click.pass_context
def migrate(ctx: click.Context) -> None:
    """Apply the migrations the store lacks (a missing store is built whole).

    ``status`` refuses a store older than this meshbridge until it is migrated; the commands that
    open the pipeline (send, poll, run, ...) migrate it themselves when they open it."""
    from ..migration import migrate as migrated

    with opened(ctx, lambda config: nullcontext(migrated(config))) as done:
        if done.created:
            echo(f"store {done.where}: created (schema {done.schema})")
        elif done.applied:
            n = len(done.applied)
            echo(f"store {done.where}: applied {n} migration{'' if n == 1 else 's'}: {', '.join(done.applied)}")
        else:
            echo(f"store {done.where}: up to date (schema {done.schema})")
