"""The one place meshbridge reaches into mesh-client's private state.

mesh-client 5 has no public way to (a) reach the ``requests`` session and timeout it sends with,
which meshbridge needs to stream chunks 2+ (``send_chunk`` copies them into memory first, so an
upload would read nothing and give no heartbeat) and to track a message by local id (a MESH v1
endpoint mesh-client no longer wraps), nor (b) stop that session re-reading the proxy
environment on every request (``trust_env``). :func:`session` is the only access to them; it
checks their types, so a mesh-client that renames or retypes them fails at once with one clear
line naming the installed version, not with an AttributeError mid-send
(``tests/test_mesh_private.py`` pins them on a real client against the sandbox).
"""

from __future__ import annotations

from dataclasses import dataclass

import requests
from mesh_client import MeshClient

from .errors import TransportError


@dataclass(frozen=True)
class Session:
    """A MeshClient's HTTP session (authenticated, mTLS, retries mounted) and its request timeout."""

    http: requests.Session
    timeout: float


def session(client: MeshClient) -> Session:
    """The session and timeout ``client`` sends with (its private ``_session`` and ``_timeout``).

    :raises TransportError: this mesh-client keeps them under other names or types.
    """
    http, timeout = getattr(client, "_session", None), getattr(client, "_timeout", None)
    if not isinstance(http, requests.Session) or isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise TransportError(
            f"mesh-client {installed_version()} keeps its HTTP session or timeout elsewhere "
            "(MeshClient._session, MeshClient._timeout): meshbridge needs a mesh-client it supports (5.0)"
        )
    return Session(http, float(timeout))


def installed_version() -> str:
    """The installed mesh-client's version."""
    from importlib.metadata import version

    return version("mesh-client")
