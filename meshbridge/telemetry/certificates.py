"""When the configured certificates expire, read from their files at scrape time (re-read only
when a file changes, so a renewed certificate shows at the next scrape).

``certificate`` is ``client`` (the first certificate of ``[mesh] client_cert``: ours),
``client_chain`` (the earliest to expire of the further certificates in that file: its issuers,
when the file carries them) and ``ca_bundle`` (the earliest to expire in ``[mesh] ca_bundle``,
which verifies MESH). A file that cannot be read or holds no certificate shows as
``meshbridge_certificate_readable 0``; its expiry is left out.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .. import certificates

if TYPE_CHECKING:
    from ..config import MeshConfig

log = logging.getLogger("meshbridge")
Expiries = tuple[float, ...]  # each certificate's notAfter (Unix time), in file order


def expiries(path: Path) -> Expiries:
    """The notAfter of each PEM certificate in ``path`` (read by :func:`meshbridge.certificates.read`:
    :class:`OSError` unreadable, :class:`ValueError` no certificate or a damaged one)."""
    return tuple(cert.not_after.timestamp() for cert in certificates.read(path))


class CertificateCollector(Collector):
    """``meshbridge_certificate_*`` for the client certificate, its chain and the CA bundle."""

    def __init__(self, mesh: MeshConfig) -> None:
        self.files = {
            name: path for name, path in (("client", mesh.client_cert), ("ca_bundle", mesh.ca_bundle)) if path
        }
        self._cache: dict[Path, tuple[tuple[int, int], Expiries | None]] = {}

    def _read(self, path: Path) -> Expiries | None:
        try:
            stat = os.stat(path)
        except OSError as exc:
            log.warning("metrics: cannot read certificate file %s: %s", path, exc.strerror)
            return None
        key = (stat.st_mtime_ns, stat.st_size)
        cached = self._cache.get(path)
        if cached and cached[0] == key:
            return cached[1]
        try:
            found: Expiries | None = expiries(path)
        except (OSError, ValueError) as exc:
            log.warning("metrics: cannot read certificate file %s: %s", path, exc)
            found = None
        self._cache[path] = (key, found)
        return found

    def collect(self) -> Iterator[GaugeMetricFamily]:
        readable = GaugeMetricFamily(
            "meshbridge_certificate_readable",
            "1 if the configured certificate file holds certificates",
            labels=["certificate"],
        )
        not_after = GaugeMetricFamily(
            "meshbridge_certificate_not_after_timestamp_seconds",
            "When the certificate expires (Unix time)",
            labels=["certificate"],
        )
        left = GaugeMetricFamily(
            "meshbridge_certificate_expires_in_seconds",
            "Seconds until the certificate expires (negative: expired)",
            labels=["certificate"],
        )
        now = time.time()
        for name, path in self.files.items():
            found = self._read(Path(path))
            readable.add_metric([name], 0 if found is None else 1)
            if not found:
                continue
            chosen = [(name, found[0] if name == "client" else min(found))]
            if name == "client" and len(found) > 1:
                chosen.append(("client_chain", min(found[1:])))
            for label, at in chosen:
                not_after.add_metric([label], at)
                left.add_metric([label], at - now)
        yield from (readable, not_after, left)
