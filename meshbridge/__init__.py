"""meshbridge: NHS MESH with ITK3 reliable messaging, as a pluggable pipeline.

The public API::

    from meshbridge import Bridge
    with Bridge.from_file("meshbridge.toml") as bridge:
        message = bridge.send("letter.xml", route="discharge-out")  # a Message
        bridge.poll()
        bridge.show(message.id).state  # State.DELIVERED, ... with .events and .expectations

    meshbridge.validate("letter.xml", type="fhir").valid

Names are imported when first used (:pep:`562`), so ``import meshbridge`` and the command line's
``--help`` load none of the pipeline (requests, lxml, fhir.resources, mesh-client, sqlite-utils).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:  # what type checkers and editors see; at run time, __getattr__ imports them
    from .actors import Actor
    from .bridge import Bridge, PollReport
    from .config import (
        Config,
        Mailbox,
        Route,
        Secret,
        load,
    )
    from .contract import Destination, DestinationKind
    from .domain_acks import AckMatch, AckProtocol
    from .errors import (
        AckRefused,
        AlertFailed,
        ArchiveError,
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
        StoreNotEmpty,
        StoreOutdated,
        TransportError,
        UndecodableBody,
        UnknownMessage,
        XmlRefused,
        XMLRejected,
    )
    from .events import EventKind, Notification
    from .hookspecs import hookimpl
    from .models import (
        Direction,
        Event,
        Expectation,
        Message,
        MessageSummary,
        Page,
        State,
        TimelineKind,
    )
    from .payloads.base import (
        ERROR,
        WARNING,
        Finding,
        Payload,
        PayloadType,
        ValidationResult,
    )
    from .plugins import Plugins
    from .reader import Exported, Reader
    from .validating import validate
    from .views import Filters, RouteCount, Status

# Each public name and the module it comes from (keep in step with the imports above: a test checks).
_HOMES = {
    ".actors": ("Actor",),
    ".bridge": ("Bridge", "PollReport"),
    ".config": ("Config", "Mailbox", "Route", "Secret", "load"),
    ".contract": ("Destination", "DestinationKind"),
    ".domain_acks": ("AckMatch", "AckProtocol"),
    ".errors": (
        "AckRefused",
        "AlertFailed",
        "ArchiveError",
        "ClaimLost",
        "ConfigError",
        "DeliveryError",
        "DeliveryInterrupted",
        "DiskFull",
        "FhirJsonError",
        "InvalidRequest",
        "ItkError",
        "ItkUnreadable",
        "MeshAuthRefused",
        "MeshbridgeError",
        "MeshRejected",
        "PayloadError",
        "PayloadRejected",
        "PayloadTooLarge",
        "PluginError",
        "Refused",
        "ReplayRefused",
        "RetryRefused",
        "SchemaUnavailable",
        "SendAbandoned",
        "SourceChanged",
        "SourceTaken",
        "StoreDamaged",
        "StoreError",
        "StoreNotEmpty",
        "StoreOutdated",
        "TransportError",
        "UndecodableBody",
        "UnknownMessage",
        "XmlRefused",
        "XMLRejected",
    ),
    ".events": ("EventKind", "Notification"),
    ".hookspecs": ("hookimpl",),
    ".models": (
        "Direction",
        "Event",
        "Expectation",
        "Message",
        "MessageSummary",
        "Page",
        "State",
        "TimelineKind",
    ),
    ".payloads.base": ("ERROR", "WARNING", "Finding", "Payload", "PayloadType", "ValidationResult"),
    ".plugins": ("Plugins",),
    ".reader": ("Exported", "Reader"),
    ".validating": ("validate",),
    ".views": ("Filters", "RouteCount", "Status"),
}
_HOME = {name: module for module, names in _HOMES.items() for name in names}

__all__ = [  # a literal, for type checkers (a test checks it names exactly the names above)
    "__version__",
    "AckMatch",
    "Actor",
    "AckProtocol",
    "AckRefused",
    "AlertFailed",
    "ArchiveError",
    "Bridge",
    "ClaimLost",
    "Config",
    "ConfigError",
    "DeliveryError",
    "DeliveryInterrupted",
    "Destination",
    "DestinationKind",
    "DiskFull",
    "Direction",
    "ERROR",
    "Event",
    "EventKind",
    "Expectation",
    "Filters",
    "Exported",
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
    "Message",
    "MessageSummary",
    "Notification",
    "Page",
    "Payload",
    "PayloadError",
    "PayloadRejected",
    "PayloadTooLarge",
    "PayloadType",
    "PluginError",
    "Plugins",
    "PollReport",
    "Reader",
    "Refused",
    "ReplayRefused",
    "RetryRefused",
    "Route",
    "RouteCount",
    "SchemaUnavailable",
    "Secret",
    "SendAbandoned",
    "SourceChanged",
    "SourceTaken",
    "State",
    "Status",
    "StoreDamaged",
    "StoreError",
    "StoreNotEmpty",
    "StoreOutdated",
    "TimelineKind",
    "TransportError",
    "UndecodableBody",
    "UnknownMessage",
    "validate",
    "ValidationResult",
    "WARNING",
    "XmlRefused",
    "XMLRejected",
]


def __getattr__(name: str) -> Any:
    """Import a public name from its module on first use (then it is an ordinary attribute)."""
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
