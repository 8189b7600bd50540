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
from .contract import Destination, DestinationKind
from .domain_acks import AckMatch, AckProtocol
from .errors import (
    ConfigError,
    DiskFull,
    InvalidRequest,
    MeshAuthRefused,
    MeshbridgeError,
    MeshRejected,
    PayloadError,
    PayloadRejected,
    StoreDamaged,
    StoreError,
    TransportError,
    UnknownMessage,
)
from .events import Event
from .hookspecs import hookimpl
from .payloads.base import ERROR, WARNING, Finding, Payload, PayloadType, ValidationResult
from .plugins import Plugins

__all__ = [
    "AckMatch",
    "AckProtocol",
    "ERROR",
    "WARNING",
    "Bridge",
    "Config",
    "ConfigError",
    "Destination",
    "DestinationKind",
    "DiskFull",
    "Event",
    "Finding",
    "InvalidRequest",
    "Mailbox",
    "MeshAuthRefused",
    "MeshRejected",
    "MeshbridgeError",
    "Payload",
    "PayloadError",
    "PayloadRejected",
    "PayloadType",
    "Plugins",
    "PollReport",
    "Route",
    "Secret",
    "StoreDamaged",
    "StoreError",
    "TransportError",
    "UnknownMessage",
    "ValidationResult",
    "__version__",
    "hookimpl",
    "load",
]
