"""Opening the configured Bridge for a command, with expected errors as one line and an exit code."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import click

from ..errors import ConfigError, InvalidRequest, MeshbridgeError, StoreDamaged, UnknownMessage
from .output import fail

if TYPE_CHECKING:
    from ..bridge import Bridge


@contextmanager
def bridge_for(ctx: click.Context) -> Iterator[Bridge]:
    """Open the configured Bridge; turn expected errors into one line and an exit code."""
    from ..bridge import Bridge
    from ..logs import redact

    try:
        with Bridge.from_file(ctx.obj["config"]) as bridge:
            config = bridge.config
            redact(secret.reveal() for secret in config.secrets())
            yield bridge
    except (ConfigError, InvalidRequest, StoreDamaged) as exc:
        fail(str(exc), 2)
    except UnknownMessage as exc:
        fail(str(exc), 1)
    except MeshbridgeError as exc:
        fail(str(exc), 1)
