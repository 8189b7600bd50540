"""Keyset cursors for paged listings: opaque to callers, ``(created_at, id)`` to the store."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime

from ..errors import InvalidRequest
from ..views import is_text


def cursor(created_at: str, message_id: str) -> str:
    """The opaque keyset cursor just after a message: its ``created_at`` as stored, and its ``id``."""
    raw = json.dumps([created_at, message_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def position(token: str) -> tuple[str, str]:
    """The ``(created_at, id)`` a cursor names; a cursor not made by :func:`cursor` (its time not
    a time, text no database takes: NUL, a lone surrogate) is an :class:`InvalidRequest`."""
    try:
        pair = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if isinstance(pair, list) and all(isinstance(s, str) for s in pair) and is_text("".join(pair)):
            created, ident = pair
            datetime.fromisoformat(created)
            return created, ident
    except (binascii.Error, ValueError, TypeError, RecursionError):  # UnicodeError is a ValueError
        pass
    raise InvalidRequest(f"not a page cursor: {token!r}")
