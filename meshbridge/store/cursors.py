"""Keyset cursors for paged listings: opaque to callers, ``(created_at, id)`` to the store."""

from __future__ import annotations

import base64
import binascii
import json

from ..errors import InvalidRequest
from ..views import is_text


def cursor(created_at: str, message_id: str) -> str:
    """The opaque keyset cursor just after a message: its ``created_at`` as stored, and its ``id``."""
    raw = json.dumps([created_at, message_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def position(token: str) -> tuple[str, str]:
    """The ``(created_at, id)`` a cursor names; a cursor not made by :func:`cursor` is an :class:`InvalidRequest`."""
    try:
        created, ident = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if isinstance(created, str) and isinstance(ident, str) and is_text(created + ident):
            return created, ident
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        pass
    raise InvalidRequest(f"not a page cursor: {token!r}")
