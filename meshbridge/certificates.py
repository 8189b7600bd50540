"""The MESH client certificate (and its CA bundle) checked for expiry: ``certificate-expiring``;
:func:`read`, the one reader of PEM certificates (the expiry metrics use it too).

Checked daily by the service (its housekeeping job) and on demand. Each certificate that expires
within ``[alerts] certificate_warning`` gives one notification a day: its id is made from the
certificate's fingerprint and the date, so the processes of a cluster, or a restarted service,
queue it once (:meth:`~meshbridge.store.protocol.AlertOutbox.queue` ignores a repeat).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from .events import EventKind, Notification

PEM = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)


@dataclass(frozen=True)
class Certificate:
    """One certificate: its subject, end of validity (UTC) and SHA-256 fingerprint (hex)."""

    subject: str
    not_after: datetime
    fingerprint: str


def read(path: Path) -> list[Certificate]:
    """Every certificate in a PEM file, in file order (other blocks, such as a key, are skipped).
    Raises :class:`OSError` when it cannot be read, :class:`ValueError` when it holds no
    certificate or a damaged one."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    found = []
    for block in PEM.findall(path.read_bytes()):
        cert = x509.load_pem_x509_certificate(block)
        found.append(
            Certificate(
                cert.subject.rfc4514_string(), cert.not_valid_after_utc, cert.fingerprint(hashes.SHA256()).hex()
            )
        )
    if not found:
        raise ValueError("no PEM certificate in it")
    return found


@dataclass(frozen=True)
class Expiry:
    """One certificate in a file: its role (``client_cert``, ``ca_bundle``), subject, end of validity."""

    role: str
    path: Path
    subject: str
    not_after: datetime
    fingerprint: str

    def days_left(self, now: datetime) -> float:
        return (self.not_after - now).total_seconds() / 86400


def expiries(files: dict[str, Path | None]) -> list[Expiry]:
    """Every certificate in these PEM files (by role); a file that cannot be read or parsed gives none
    (the MESH session reports it when it loads the file)."""
    found = []
    for role, path in files.items():
        if path is None:
            continue
        try:
            certificates = read(path)
        except (OSError, ValueError):
            continue
        found += [Expiry(role, path, c.subject, c.not_after, c.fingerprint) for c in certificates]
    return found


def expiring(files: dict[str, Path | None], within: float, now: datetime | None = None) -> list[Notification]:
    """A ``certificate-expiring`` notification for each certificate that expires within ``within``
    seconds (or has expired), with an id stable for the day."""
    now = now or datetime.now(UTC)
    notes = []
    for cert in expiries(files):
        left = cert.days_left(now)
        if left * 86400 > within:
            continue
        when = "expired" if left < 0 else f"expires in {left:.0f} days"
        summary = f"MESH {cert.role} {cert.path.name} ({cert.subject}) {when}, on {cert.not_after:%Y-%m-%d %H:%M} UTC"
        key = hashlib.sha256(f"certificate-expiring:{cert.fingerprint}:{now:%Y-%m-%d}".encode()).hexdigest()[:32]
        detail = {
            "certificate": cert.role,
            "file": str(cert.path),
            "subject": cert.subject,
            "not_after": cert.not_after.isoformat(),
            "days_left": round(left, 1),
        }
        notes.append(Notification(EventKind.CERTIFICATE_EXPIRING, None, summary, detail, key))
    return notes
