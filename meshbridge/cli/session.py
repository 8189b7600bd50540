"""Opening the configured Bridge for a command, with expected errors as one line and an exit code."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import click

from ..errors import MeshbridgeError
from .exits import fail_for

if TYPE_CHECKING:
    from ..bridge import Bridge
    from ..config import Config


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
