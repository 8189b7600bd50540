"""Who asked for an action: a person at the command line (their operating-system user) or a
machine through the local API (its token's name). The action's timeline entry carries it in its
detail as ``by`` (the name) and ``via`` (``cli`` or ``api``): ``meshbridge show`` prints it.

Imports nothing heavy.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from typing import Any

CLI = "cli"
API = "api"


@dataclass(frozen=True)
class Actor:
    """``name`` asked, through ``via`` (:data:`CLI` or :data:`API`)."""

    name: str
    via: str

    def detail(self) -> dict[str, str]:
        """What a timeline entry's detail gets: ``{"by": name, "via": via}``."""
        return {"by": self.name, "via": self.via}


def os_user() -> Actor:
    """The operating-system user running this command (``unknown`` if it has no name: a container
    user with no passwd entry)."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):  # no $USER/$LOGNAME and no passwd entry
        name = "unknown"
    return Actor(name, CLI)


def with_actor(detail: dict[str, Any] | None, by: Actor | None) -> dict[str, Any] | None:
    """``detail`` with ``by``'s name and channel added (``detail`` itself when nobody is named)."""
    if by is None:
        return detail
    return {**(detail or {}), **by.detail()}
