"""``meshbridge run``: the service. apscheduler 3.x jobs over one :class:`~meshbridge.Bridge`.

Jobs (each at most one instance at a time; missed runs coalesce into one):

- ``poll:<mailbox>`` every mailbox's ``poll_interval``: collect (every page of the inbox, so a full
  page is followed at once), answer, deliver, correlate; then send what waits;
- ``send`` every ``[service] send_interval``: take complete files from source folders, then send
  what waits (retries with backoff; resumed claims);
- ``track`` every ``[mesh] tracking_interval``: MESH tracking of sent messages (kept rare);
- ``sweep`` every ``sweep_interval``: overdue expectations;
- ``handshake:<mailbox>`` daily; ``housekeeping`` daily: payload files past ``retention``, temp
  files of killed downloads and uploads.

Jobs run one at a time on a single worker thread, so the store's connection is never shared.
SIGTERM/SIGINT stop the scheduler after the job in hand finishes; every step of a job is
durable before the next, so what a stop interrupts is picked up by the next start.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .bridge import Bridge
from .errors import MeshbridgeError
from .sources import ScanReport, scan

log = logging.getLogger("meshbridge")


class Service:
    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge
        self.config = bridge.config
        self._scheduler: Any = None
        self._stopping = threading.Event()
        bridge.store.keep_reserve()  # room to record state changes when the disk fills (README: The store)

    def jobs(self) -> list[tuple[str, Callable[[], object], float]]:
        """``(id, function, interval seconds)`` for every job."""
        service = self.config.service
        jobs: list[tuple[str, Callable[[], object], float]] = [("send", self.send, service.send_interval)]
        for mailbox in self.config.mailboxes.values():
            jobs.append((f"poll:{mailbox.id}", _poller(self.bridge, mailbox.id), mailbox.poll_interval))
        jobs.append(("track", self.bridge.track, max(60.0, self.config.mesh.tracking_interval)))
        jobs.append(("sweep", self.bridge.sweep, service.sweep_interval))
        for mailbox in self.config.mailboxes.values():
            jobs.append(
                (f"handshake:{mailbox.id}", self.bridge.mailbox(mailbox.id).handshake, service.handshake_interval)
            )
        jobs.append(("housekeeping", self.housekeeping, service.housekeeping_interval))
        return jobs

    # -- the jobs ---------------------------------------------------------------------------

    def send(self) -> None:
        report = ScanReport()
        for route in self.config.routes:
            if route.source and "folder" in route.source:
                scan(
                    Path(route.source["folder"]),
                    route.name,
                    self.bridge.store,
                    self.bridge.send,
                    self.config.service.source_settle,
                    report,
                )
        for problem in report.problems:
            log.warning("source: %s", problem)
        for problem in self.bridge.flush().problems:
            log.warning("send: %s", problem)

    def housekeeping(self) -> int:
        """Payloads past retention, and temp files of killed downloads and uploads (see ``Payloads.clean``)."""
        self.bridge.store.payloads.clean()
        removed = self.bridge.store.remove_old_payloads(self.config.service.retention)
        if removed:
            log.info("housekeeping: removed %d payload files past retention", removed)
        return removed

    # -- running ----------------------------------------------------------------------------

    def run_once(self) -> None:
        """Every job once, in flow order (for cron): sources and sends, inboxes, tracking, deadlines."""
        for job_id, function, _ in self.jobs():
            if job_id.startswith(("handshake:", "housekeeping")):
                continue
            _guarded(job_id, function)()

    def run(self) -> None:
        """Run until SIGTERM or SIGINT."""
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.blocking import BlockingScheduler

        scheduler = BlockingScheduler(
            timezone="UTC",
            executors={"default": ThreadPoolExecutor(1)},  # one job at a time: one store connection
            job_defaults={"coalesce": True, "max_instances": 1},
        )
        for job_id, function, interval in self.jobs():
            scheduler.add_job(
                _guarded(job_id, function),
                "interval",
                seconds=interval,
                id=job_id,
                replace_existing=True,
                misfire_grace_time=max(30, int(interval)),
                next_run_time=_now(),
            )
        self._scheduler = scheduler
        previous = {sig: signal.signal(sig, self._stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        log.info("meshbridge running: %d jobs", len(scheduler.get_jobs()))
        try:
            scheduler.start()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            log.info("meshbridge stopped")

    def _stop(self, signum: int, frame: object) -> None:
        if self._stopping.is_set():
            return
        self._stopping.set()
        self.bridge.stopping.set()  # an upload in hand stops after its current chunk, resumable
        log.info("stopping on signal %d after the job in hand", signum)
        # shutdown(wait=True) must not run inside the signal handler that interrupted the
        # scheduler's own thread; a helper thread waits for the job in hand, then stops it.
        threading.Thread(target=self._scheduler.shutdown, kwargs={"wait": True}, daemon=True).start()


def _poller(bridge: Bridge, mailbox: str) -> Callable[[], None]:
    def poll() -> None:
        report = bridge.poll(mailbox, track=False)
        for problem in report.problems:
            log.warning("poll %s: %s", mailbox, problem)

    return poll


def _guarded(job_id: str, function: Callable[[], object]) -> Callable[[], None]:
    """A job that logs what it could not do instead of dying: the next run tries again."""

    def run() -> None:
        try:
            function()
        except MeshbridgeError as exc:
            log.error("%s: %s", job_id, exc)
        except Exception:
            log.exception("%s failed", job_id)

    run.__name__ = job_id
    return run


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)
