"""The MESH client certificate (and its CA bundle) checked for expiry: ``certificate-expiring``.

Checked daily by the service (its housekeeping job) and on demand. Each certificate that expires
within ``[alerts] certificate_warning`` gives one notification a day: its id is made from the
certificate's fingerprint and the date, so the processes of a cluster, or a restarted service,
queue it once (:meth:`~meshbridge.store.protocol.AlertOutbox.queue` ignores a repeat).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from .events import EventKind, Notification


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
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    found = []
    for role, path in files.items():
        if path is None:
            continue
        try:
            certificates = x509.load_pem_x509_certificates(path.read_bytes())
        except (OSError, ValueError):
            continue
        for cert in certificates:
            fingerprint = cert.fingerprint(hashes.SHA256()).hex()
            found.append(Expiry(role, path, cert.subject.rfc4514_string(), cert.not_valid_after_utc, fingerprint))
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
