"""The exception tree. Catch by meaning::

MeshbridgeError
├── ConfigError      meshbridge.toml is wrong (exit code 2); names file, key and problem
├── PayloadError     a payload cannot be read or is refused
│   └── PayloadRejected  validation refused it (quarantined in the store, with findings)
├── TransportError   MESH refused or failed a request
│   ├── MeshRejected MESH answered a send with an error code (not worth retrying as is)
│   └── SendAbandoned   a send failed too often and is now ``failed``
├── StoreError       the correlation store or a payload file is unusable or corrupt
├── DeliveryInterrupted  meshbridge stopped while a destination was still working
└── UnknownMessage   no message with that id
"""

from __future__ import annotations


class MeshbridgeError(Exception):
    """Base of every error meshbridge raises on purpose."""


class ConfigError(MeshbridgeError):
    """The configuration is invalid: ``file: key: problem``."""

    def __init__(self, file: str, key: str, problem: str) -> None:
        self.file, self.key, self.problem = file, key, problem
        where = f"{file}: {key}" if key else file
        super().__init__(f"{where}: {problem}")


class PayloadError(MeshbridgeError):
    """A payload cannot be read or was refused."""


class TransportError(MeshbridgeError):
    """A MESH request failed (network, HTTP status or protocol)."""


class MeshRejected(TransportError):
    """MESH answered with an error code, e.g. ``12 Unregistered to address``."""

    def __init__(self, message: str, code: str = "", event: str = "") -> None:
        self.code, self.event = code, event
        super().__init__(message)


class SendAbandoned(TransportError):
    """A send failed ``attempts`` times; the message is now ``failed`` (``meshbridge retry`` resumes it)."""


class StoreError(MeshbridgeError):
    """The store or a payload file is unusable or corrupt."""


class DeliveryInterrupted(MeshbridgeError):
    """meshbridge is stopping: a delivery still in progress was left (its claim released, tried at the next start)."""


class UnknownMessage(MeshbridgeError):
    """No message with that id."""


class PayloadRejected(PayloadError):
    """Validation refused a payload; it is quarantined in the store with its findings."""

    def __init__(self, message: str, findings: list, message_id: str | None = None) -> None:
        self.findings, self.message_id = findings, message_id
        super().__init__(message)
