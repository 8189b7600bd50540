"""meshbridge: NHS MESH with ITK3 reliable messaging, as a pluggable pipeline.

The public API::

    from meshbridge import Bridge
    with Bridge.from_file("meshbridge.toml") as bridge:
        message = bridge.send("letter.xml", route="discharge-out")
        bridge.poll()
        bridge.show(message["id"])
"""

__version__ = "0.1.0"

from .bridge import Bridge, PollReport
from .config import Config, Mailbox, Route, Secret, load
from .errors import (
    ConfigError,
    MeshbridgeError,
    MeshRejected,
    PayloadError,
    StoreError,
    TransportError,
    UnknownMessage,
)

__all__ = [
    "Bridge",
    "Config",
    "ConfigError",
    "Mailbox",
    "MeshRejected",
    "MeshbridgeError",
    "PayloadError",
    "PollReport",
    "Route",
    "Secret",
    "StoreError",
    "TransportError",
    "UnknownMessage",
    "__version__",
    "load",
]
