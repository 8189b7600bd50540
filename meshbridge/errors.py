"""Every exception meshbridge raises on purpose, all under :class:`MeshbridgeError`. Catch by meaning::

MeshbridgeError
├── ConfigError          meshbridge.toml is wrong (exit code 2); names file, key and problem
├── PluginError          a plugin cannot be loaded, or clashes with another (exit code 2)
├── InvalidRequest       a call contradicts itself or its route (exit code 2); nothing was done
├── Refused              what was asked may not be done to this message now (exit code 1); nothing changed
│   ├── AckRefused       a business ack: not an inbound ITK message, not asked for, answered, not valid
│   ├── ReplayRefused    a replay: wrong direction or state, nacked, payload removed
│   └── RetryRefused     a retry: not failed or undelivered, payload removed
├── UnknownMessage       no message with that id (exit code 1)
├── PayloadError         a payload cannot be read or is refused (exit code 1)
│   ├── PayloadRejected  validation refused it (quarantined in the store, with findings)
│   ├── SourceChanged    a source file changed after it was stored (the copy is discarded unsent)
│   ├── PayloadTooLarge  decompressing it would pass the size cap (a gzip bomb, or just too big)
│   ├── XMLRejected      not acceptable XML (not well-formed, over a parser limit, a DOCTYPE)
│   ├── SchemaUnavailable  a configured XSD or Schematron cannot be found, read or compiled
│   ├── FhirJsonError    JSON that cannot be read as FHIR JSON
│   ├── XmlRefused       XML that cannot be read as FHIR XML (its reason only, for ITK)
│   └── ItkError         an ITK3 message cannot be used as asked (e.g. no Binary payload to unwrap)
│       └── ItkUnreadable  the bytes are not a readable ITK3 message (answered with 10009)
├── TransportError       MESH refused or failed a request (exit code 3: MESH could not be reached)
│   ├── MeshRejected     MESH answered a send with an error code (not worth retrying as is; exit code 1)
│   ├── MeshAuthRefused  MESH refused our login (password, shared key): no message's fault (exit code 4)
│   ├── SendAbandoned    a send failed too often and is now ``failed`` (exit code 1)
│   └── UndecodableBody  a downloaded body cannot be decoded (corrupt or cut-short gzip, over a limit)
├── StoreError           the correlation store or a payload file is unusable or corrupt (exit code 1)
│   ├── StoreDamaged     the store file is empty, truncated or not a meshbridge store (exit code 2)
│   ├── StoreOutdated    its schema is older and this command does not migrate (exit code 2)
│   ├── DiskFull         the store's disk refused a write: full, over a size limit, or failing
│   ├── SourceTaken      another process stored this source file first
│   ├── ArchiveError     a store archive cannot be imported: damaged, cut short, another schema
│   └── StoreNotEmpty    a store import's target already holds messages (or other rows)
├── DeliveryError        a destination did not take a payload (tried again after a backoff)
├── AlertFailed          an [alerts] notifier did not deliver a notification (tried again after a backoff)
├── DeliveryInterrupted  meshbridge stopped while a destination was still working
└── ClaimLost            another process took over a send whose claim had lapsed (this one stops)

Every class here is exported from :mod:`meshbridge`. The exit codes are those of the command line
(``meshbridge.cli.exits``), which maps these classes to them in one table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .mesh import Envelope
    from .payloads.base import Finding


class MeshbridgeError(Exception):
    """Base of every error meshbridge raises on purpose."""


class ConfigError(MeshbridgeError):
    """The configuration is invalid: ``file: key: problem``."""

    def __init__(self, file: str, key: str, problem: str) -> None:
        self.file, self.key, self.problem = file, key, problem
        where = f"{file}: {key}" if key else file
        super().__init__(f"{where}: {problem}")


class InvalidRequest(MeshbridgeError):
    """A call that contradicts itself or the config, refused before anything is stored or sent:
    a nack with a positive code, ``--to`` differing from the route's recipient (exit code 2)."""


class PayloadError(MeshbridgeError):
    """A payload cannot be read or was refused."""


class TransportError(MeshbridgeError):
    """A MESH request failed (network, HTTP status or protocol).

    ``message_id`` is the stored message it concerns, when there is one (set by ``Bridge.send``).
    """

    message_id: str | None = None


class MeshRejected(TransportError):
    """MESH answered with an error code, e.g. ``12 Unregistered to address``."""

    def __init__(self, message: str, code: str = "", event: str = "") -> None:
        self.code, self.event = code, event
        super().__init__(message)


class MeshAuthRefused(TransportError):
    """MESH refused the login of a mailbox (HTTP 403 on authentication: a wrong mailbox password or
    ``[mesh] shared_key``, a token it cannot read, a mailbox it does not know). About no message:
    a send it stops stays ``accepted`` and its attempts are not counted. ``refusals``: how many
    times in a row the mailbox's login was refused, once the store has counted this one (else 0)."""

    def __init__(self, message: str, mailbox: str) -> None:
        self.mailbox, self.refusals = mailbox, 0
        super().__init__(message)


class SendAbandoned(TransportError):
    """A send failed ``attempts`` times; the message is now ``failed`` (``meshbridge retry`` resumes it)."""


class UndecodableBody(TransportError):
    """A downloaded body cannot be decoded: corrupt or cut-short gzip, or over a decoded-size limit.

    ``envelope`` is the message's MESH envelope; ``raw_sha256`` and ``raw_size`` describe the body
    exactly as received (before decoding), so a second sighting of the same bytes can be recognised.
    """

    def __init__(self, message: str, envelope: Envelope, raw_sha256: str, raw_size: int) -> None:
        self.envelope, self.raw_sha256, self.raw_size = envelope, raw_sha256, raw_size
        super().__init__(message)


class StoreError(MeshbridgeError):
    """The store or a payload file is unusable or corrupt."""


class ClaimLost(MeshbridgeError):
    """This process's ``sending`` claim lapsed and another process took the send over: stop it here."""


class StoreDamaged(StoreError):
    """The store file is empty, truncated or not a meshbridge store; it is left untouched.

    The message is one line naming the file and what to do (recover it, or restore a backup).
    """


class StoreOutdated(StoreError):
    """The store's schema is older than this meshbridge and this command does not migrate it
    (``status``); ``meshbridge store migrate`` does, as does any command that opens a Bridge."""


class DiskFull(StoreError):
    """The store's disk refused a write: no space (ENOSPC, EDQUOT), a file-size limit (EFBIG),
    SQLite's page limit (SQLITE_FULL) or an I/O error (EIO). Nothing half-written is kept; work
    that needs no new space goes on, and the next pass tries again."""


class DeliveryInterrupted(MeshbridgeError):
    """meshbridge is stopping: a delivery still in progress was left (its claim released, tried at the next start)."""


class UnknownMessage(MeshbridgeError):
    """No message with that id."""


class PayloadRejected(PayloadError):
    """Validation refused a payload; it is quarantined in the store with its findings."""

    def __init__(self, message: str, findings: list[Finding], message_id: str | None = None) -> None:
        self.findings, self.message_id = findings, message_id
        super().__init__(message)


class SourceChanged(PayloadError):
    """A source folder's file changed after it was stored: the stored copy is ``discarded``
    unsent and the file waits to settle again."""

    def __init__(self, message: str, message_id: str) -> None:
        self.message_id = message_id
        super().__init__(message)


class PayloadTooLarge(PayloadError):
    """Decompressing would exceed the cap (a gzip bomb, or just too big to validate)."""


class XMLRejected(PayloadError):
    """The bytes are not acceptable XML; ``finding`` says why and where."""

    def __init__(self, finding: Finding) -> None:
        self.finding = finding
        super().__init__(str(finding))


class SchemaUnavailable(PayloadError):
    """A configured XSD or Schematron file cannot be found, read or compiled."""


class FhirJsonError(PayloadError):
    """The JSON cannot be read as FHIR JSON."""


class XmlRefused(PayloadError):
    """The bytes are not acceptable XML (not well-formed, or a DOCTYPE): the reason alone, without
    :class:`XMLRejected`'s position, as an ITK response carries it."""


class ItkError(PayloadError):
    """An ITK3 message cannot be used as asked (e.g. it has no Binary payload to unwrap)."""


class ItkUnreadable(ItkError):
    """The bytes are not a readable ITK3 message; answer with 10009 if anything at all.

    :param reason: what is wrong, in words a person can act on.
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class PluginError(MeshbridgeError):
    """A plugin is broken (cannot be loaded, an unknown hook, a duplicate payload type or destination kind)."""


class Refused(MeshbridgeError):
    """What was asked may not be done to this message in its state; nothing was changed (exit code 1)."""


class AckRefused(Refused):
    """A business ack that cannot be sent (not an inbound ITK message, not asked for, already answered, not valid)."""


class ReplayRefused(Refused):
    """A replay that cannot or may not be done (wrong direction or state, nacked, no payload)."""


class RetryRefused(Refused):
    """A retry that cannot be done (the message is not ``failed`` or ``undelivered``, or its payload was removed)."""


class SourceTaken(StoreError):
    """Another process stored this source file first (it sends it and moves it aside)."""


class ArchiveError(StoreError):
    """A store archive (``meshbridge store export``) that cannot be imported: not an archive,
    damaged, cut short, unlike its manifest, or of another schema than the target store. The
    target is left as it was."""


class StoreNotEmpty(StoreError):
    """``meshbridge store import`` was given a target store that already holds rows; nothing was imported."""


class AlertFailed(MeshbridgeError):
    """An ``[alerts]`` notifier (webhook, email) did not deliver a notification; the dispatcher
    tries it again after a backoff, or after the ``retry_after`` seconds the receiver asked for (a
    429's ``Retry-After``). Its text is one line that never holds a secret (no URL, header,
    username or password)."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class DeliveryError(MeshbridgeError):
    """The destination did not take the payload; it will be tried again (after a backoff).

    A plugin's destination raises it (``from meshbridge import DeliveryError``) with a one-line reason.
    """
