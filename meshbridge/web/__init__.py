"""The local HTTP API (FastAPI; OpenAPI document at ``/openapi.json``): :func:`create_app`.

Nothing in meshbridge imports this package but the command line (``meshbridge serve``, ``run``):
every endpoint is a :class:`~meshbridge.Bridge` call. See ``docs/api.md``.
"""

from __future__ import annotations

from .app import create_app

__all__ = ["create_app"]
