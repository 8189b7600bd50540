"""A destination plugin: inbound payloads as rows of an SQLite table.

Register it (an entry point ``sqlite = "sqlite_destination"`` in the group ``meshbridge``, or
:func:`meshbridge.testing.register_plugin` in a test) and name it in an inbound route::

    [plugins.sqlite]
    busy_timeout = "10s"                 # optional: how long to wait for a locked database

    [[routes]]
    name = "letters-in"
    direction = "inbound"
    ...
    destination = { sqlite = { path = "var/inbox.db", table = "letters" }, timeout = "30s" }

The target is checked against :class:`Target` when meshbridge starts: a missing ``path``, an
unknown key or a table name that is not an identifier stops it with one line
(``meshbridge.toml: routes[1].destination.sqlite.table: ...``), before any message moves. ``path``
is relative to the config file's folder. A delivery is idempotent: the row is keyed on the name
meshbridge gives the payload (unique per MESH message id), so a repeat replaces it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from meshbridge import DestinationKind, hookimpl
from meshbridge.config import parse_duration
from meshbridge.destinations import DeliveryError


class Settings(BaseModel):
    """``[plugins.sqlite]``: settings for every route that delivers to SQLite."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    busy_timeout: Annotated[float, BeforeValidator(parse_duration)] = 5.0  # "10s", "1m" or seconds


@dataclass(frozen=True)
class Target:
    """``destination = { sqlite = { path = ..., table = ... } }``."""

    path: Path
    table: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")] = "inbox"


def make_destination(settings: Settings):
    def to_sqlite(target: Target, blocks: Iterable[bytes], name: str, content_type: str | None) -> str:
        data = b"".join(blocks)
        try:
            db = sqlite3.connect(target.path, timeout=settings.busy_timeout)
            try:
                with db:  # one transaction: committed, or rolled back on error
                    db.execute(
                        f"CREATE TABLE IF NOT EXISTS {target.table} "
                        "(name TEXT PRIMARY KEY, content_type TEXT, payload BLOB NOT NULL)"
                    )
                    db.execute(
                        f"INSERT OR REPLACE INTO {target.table} (name, content_type, payload) VALUES (?, ?, ?)",
                        (name, content_type, data),
                    )
            finally:
                db.close()
        except sqlite3.Error as exc:
            raise DeliveryError(f"cannot write to {target.path} table {target.table}: {exc}") from None
        return f"sqlite:{target.path}#{target.table}/{name}"

    return to_sqlite


@hookimpl
def meshbridge_config_model() -> type[Settings]:
    return Settings


@hookimpl
def meshbridge_destinations(plugin_config: Settings) -> dict[str, DestinationKind]:
    return {"sqlite": DestinationKind(make_destination(plugin_config), target=Target)}
