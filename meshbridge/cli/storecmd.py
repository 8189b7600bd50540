"""``meshbridge store``: the store itself (its schema)."""

from __future__ import annotations

from contextlib import closing

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
    from ..store import SQLiteStore
    from ..store.migrating import NAMES

    with opened(ctx, lambda config: closing(SQLiteStore(config.store.path, inline_max=config.store.inline_max))) as db:
        if db.created:
            echo(f"store {db.path}: created (schema {NAMES[-1]})")
        elif db.migrated:
            n = len(db.migrated)
            echo(f"store {db.path}: applied {n} migration{'' if n == 1 else 's'}: {', '.join(db.migrated)}")
        else:
            echo(f"store {db.path}: up to date (schema {NAMES[-1]})")
