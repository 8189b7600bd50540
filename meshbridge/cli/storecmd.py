"""``meshbridge store``: the store itself (its schema), and moving it to another (export, import)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import IO, TYPE_CHECKING

import click

from .exits import EXIT_USAGE
from .output import echo, fail
from .session import opened

if TYPE_CHECKING:
    from ..config import Config
    from ..migration import Moved


@click.group()
def store() -> None:
    """The store itself: bring its schema up to date, move it to another store."""


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


@store.command("export")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.pass_context
def export_cmd(ctx: click.Context, file: str) -> None:
    """Write the whole store to FILE, an archive for `store import`: every table and every payload.

    FILE is a tar file (compressed when named *.tar.gz or *.tar.xz); `-` writes it to standard
    output. An existing FILE is not overwritten. The store may be in use meanwhile: its rows are
    read as one snapshot."""
    from ..migration import compression, export_to

    if file != "-" and Path(file).exists():
        fail(f"{file} exists: name another file, or remove it first", EXIT_USAGE)

    def write(out: IO[bytes]) -> Callable[[Config], nullcontext[Moved]]:
        return lambda config: nullcontext(export_to(config, out, compression(file)))

    with _output(file) as out, opened(ctx, write(out)) as moved:
        pass
    echo(f"exported {_summary(moved)}" + ("" if file == "-" else f" to {file}"), err=file == "-")


@store.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.pass_context
def import_cmd(ctx: click.Context, file: str) -> None:
    """Read an archive written by `store export` into the configured store, which must be empty
    (a new one is built). Its schema version must be the store's. All or nothing: a damaged or
    cut-short archive leaves the store as it was. FILE `-` reads standard input."""
    from ..migration import import_from

    def load(config: Config) -> nullcontext[Moved]:
        if file == "-":
            return nullcontext(import_from(config, click.open_file("-", "rb"), "<stdin>"))
        with open(file, "rb") as source:
            return nullcontext(import_from(config, source, file))

    with opened(ctx, load) as moved:
        echo(f"imported {_summary(moved)} from {file}")


def _summary(moved: Moved) -> str:
    rows = ", ".join(f"{name} {n}" for name, n in moved.tables.items())
    return f"{sum(moved.tables.values())} rows ({rows}) and {moved.payloads} payloads ({moved.payload_bytes} bytes)"


@contextmanager
def _output(file: str) -> Iterator[IO[bytes]]:
    """Standard output for ``-``; else a file that becomes ``file`` only when the block ends well
    (nothing is left otherwise)."""
    if file == "-":
        yield click.open_file("-", "wb")
        return
    target = Path(file)
    fd, tmp = tempfile.mkstemp(dir=target.parent or ".", prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
