"""The command line's exit codes, and the one table that maps meshbridge's exceptions to them.

0 done; 1 refused or failed; 2 usage or configuration error; 3 MESH could not be reached;
4 MESH refused a mailbox's login (4 wins over 3); 130 stopped by a signal.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NoReturn

from ..errors import (
    ConfigError,
    InvalidRequest,
    MeshAuthRefused,
    MeshbridgeError,
    MeshRejected,
    PluginError,
    SendAbandoned,
    StoreDamaged,
    StoreOutdated,
    TransportError,
    UndecodableBody,
)
from .output import fail

EXIT_FAILED = 1  # refused or failed; the reason is printed
EXIT_USAGE = 2  # usage or configuration error: nothing was done
EXIT_UNREACHABLE = 3  # MESH could not be reached (for a mailbox); what waits is kept and tried again
EXIT_LOGIN_REFUSED = 4  # MESH refused a mailbox's login (its password or [mesh] shared_key)
EXIT_STOPPED = 130  # stopped by SIGINT or SIGTERM

# The most specific class in an exception's MRO decides; every MeshbridgeError has a code.
EXIT_CODES: dict[type, int] = {
    MeshbridgeError: EXIT_FAILED,
    ConfigError: EXIT_USAGE,
    InvalidRequest: EXIT_USAGE,
    PluginError: EXIT_USAGE,
    StoreDamaged: EXIT_USAGE,
    StoreOutdated: EXIT_USAGE,
    TransportError: EXIT_UNREACHABLE,
    MeshAuthRefused: EXIT_LOGIN_REFUSED,
    MeshRejected: EXIT_FAILED,  # about the message: sending it again as is will not help
    SendAbandoned: EXIT_FAILED,
    UndecodableBody: EXIT_FAILED,
}


def exit_code(error: MeshbridgeError | type[MeshbridgeError]) -> int:
    """The exit code for ``error`` (or its class): that of the nearest of its classes in :data:`EXIT_CODES`."""
    for cls in (error if isinstance(error, type) else type(error)).__mro__:
        if cls in EXIT_CODES:
            return EXIT_CODES[cls]
    return EXIT_FAILED


def fail_for(error: MeshbridgeError, message: str | None = None) -> NoReturn:
    """Print ``message`` (default: the error's own one line) and exit with the error's code."""
    fail(str(error) if message is None else message, exit_code(error))


def mesh_exit(unreachable: Iterable[str], login_refused: Iterable[str]) -> int:
    """The exit code of a command whose MESH calls met trouble: 4 when a mailbox's login was
    refused, else 3 when MESH could not be reached for one, else 0."""
    if any(True for _ in login_refused):
        return EXIT_LOGIN_REFUSED
    return EXIT_UNREACHABLE if any(True for _ in unreachable) else 0
