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
    AckRefused,
    ClaimLost,
    ConfigError,
    DeliveryError,
    DeliveryInterrupted,
    DiskFull,
    FhirJsonError,
    InvalidRequest,
    ItkError,
    ItkUnreadable,
    MeshAuthRefused,
    MeshbridgeError,
    MeshRejected,
    PayloadError,
    PayloadRejected,
    PayloadTooLarge,
    PluginError,
    Refused,
    ReplayRefused,
    RetryRefused,
    SchemaUnavailable,
    SendAbandoned,
    SourceChanged,
    SourceTaken,
    StoreDamaged,
    StoreError,
    TransportError,
    UndecodableBody,
    UnknownMessage,
    XmlRefused,
    XMLRejected,
)
from .events import EventKind, Notification
from .hookspecs import hookimpl
from .payloads.base import ERROR, WARNING, Finding, Payload, PayloadType, ValidationResult
from .plugins import Plugins

__all__ = [
    "AckMatch",
    "AckProtocol",
    "AckRefused",
    "Bridge",
    "ClaimLost",
    "Config",
    "ConfigError",
    "DeliveryError",
    "DeliveryInterrupted",
    "Destination",
    "DestinationKind",
    "DiskFull",
    "ERROR",
    "EventKind",
    "FhirJsonError",
    "Finding",
    "hookimpl",
    "InvalidRequest",
    "ItkError",
    "ItkUnreadable",
    "load",
    "Mailbox",
    "MeshAuthRefused",
    "MeshbridgeError",
    "MeshRejected",
    "Notification",
    "Payload",
    "PayloadError",
    "PayloadRejected",
    "PayloadTooLarge",
    "PayloadType",
    "PluginError",
    "Plugins",
    "PollReport",
    "Refused",
    "ReplayRefused",
    "RetryRefused",
    "Route",
    "SchemaUnavailable",
    "Secret",
    "SendAbandoned",
    "SourceChanged",
    "SourceTaken",
    "StoreDamaged",
    "StoreError",
    "TransportError",
    "UndecodableBody",
    "UnknownMessage",
    "ValidationResult",
    "WARNING",
    "XmlRefused",
    "XMLRejected",
    "__version__",
]
