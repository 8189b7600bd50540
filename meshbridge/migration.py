"""Bringing a configured store's schema up to date, for ``meshbridge store migrate``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import Config


@dataclass(frozen=True)
class Migration:
    """What :func:`migrate` did to a store: ``created`` it whole, or ``applied`` the migrations it
    lacked (none when it was up to date); ``schema`` is the newest migration's name; ``where`` names
    the store (its file, or its URL)."""

    where: str
    created: bool
    applied: tuple[str, ...]
    schema: str


def migrate(config: Config) -> Migration:
    """Open the configured store, apply the migrations it lacks (a missing store is built whole), close it."""
    from .store import connect
    from .store.migrating import NAMES

    db = connect(config.store)
    try:
        return Migration(db.where, db.created, tuple(db.migrated), NAMES[-1])
    finally:
        db.close()
