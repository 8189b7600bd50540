"""Opening the configured Bridge (or, for ``status``, only its store) for a command, with expected
errors as one line and an exit code."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, TypeVar

import click

from ..errors import MeshbridgeError
from .exits import fail_for

if TYPE_CHECKING:
    from ..bridge import Bridge
    from ..config import Config
    from ..reader import Reader

T = TypeVar("T")


@contextmanager
def bridge_for(ctx: click.Context, *, secrets: bool | Callable[[Config], None] = False) -> Iterator[Bridge]:
    """Open the configured Bridge; turn expected errors into one line and their exit code (see :mod:`.exits`).

    ``secrets``: True resolves every secret (MESH's and the destinations'), a function resolves
    those it asks the config for (``config.require(...)``), before the store is even opened, so a
    missing one is exit 2 naming it and nothing is done. Without, none is resolved until something
    needs it (reading commands never do). Whatever is resolved, now or later, is redacted from the logs.
    """
    from ..bridge import Bridge
    from ..config import load
    from ..logs import redact

    try:
        config = load(ctx.obj["config"])
        redact(source=config.revealed)
        if secrets is True:
            config.require()
        elif secrets:
            secrets(config)
        with Bridge(config) as bridge:
            yield bridge
    except MeshbridgeError as exc:
        fail_for(exc)


@contextmanager
def opened(ctx: click.Context, opener: Callable[[Config], AbstractContextManager[T]]) -> Iterator[T]:
    """What ``opener`` makes of the loaded config (a store, a reader), with the same one-line errors
    and exit codes as :func:`bridge_for`; no plugins, no MESH client, no secret resolved."""
    from ..config import load
    from ..logs import redact

    try:
        config = load(ctx.obj["config"])
        redact(source=config.revealed)
        with opener(config) as thing:
            yield thing
    except MeshbridgeError as exc:
        fail_for(exc)


def reader_for(ctx: click.Context) -> AbstractContextManager[Reader]:
    """The configured store opened for reading only (:class:`~meshbridge.reader.Reader`: no
    plugins, no MESH client, never migrated)."""
    from ..reader import Reader

    return opened(ctx, Reader)
