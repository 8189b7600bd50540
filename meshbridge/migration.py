"""Bringing a configured store's schema up to date (``meshbridge store migrate``), and moving it
to another store (``store export`` and ``store import``; see :mod:`meshbridge.store.moving`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from .config import Config
    from .store.moving import Moved as Moved  # (re-exported for the command line, which names no store module)


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


def export_to(config: Config, out: IO[bytes], compress: str = "") -> Moved:
    """Write the configured store, every table and payload, to ``out`` as an archive (never migrated:
    a store older than this meshbridge is refused as :class:`~meshbridge.errors.StoreOutdated`)."""
    from .errors import StoreError
    from .store import connect
    from .store.moving import export_store

    if config.store.path is not None and not config.store.path.exists():
        raise StoreError(f"no store at {config.store.path}: check [store] path")
    db = connect(config.store, migrate=False)
    try:
        return export_store(db, out, compress)
    finally:
        db.close()


def compression(name: str) -> str:
    """The archive compression a file name asks for: ``gz`` (``.gz``, ``.tgz``), ``xz`` or none."""
    from .store.archive import compression as by_name

    return by_name(name)


def import_from(config: Config, source: IO[bytes], label: str) -> Moved:
    """Read an archive into the configured store (built, or migrated, first), which must hold no rows."""
    from .store import connect
    from .store.moving import import_store

    db = connect(config.store)
    try:
        return import_store(db, source, label)
    finally:
        db.close()
