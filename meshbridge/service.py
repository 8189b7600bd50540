"""``meshbridge run``: the service. Workers, each a thread with its own :class:`~meshbridge.Bridge`
(so its own store connection: a connection is never shared), each running its jobs one at a time:

- ``send``: ``send`` every ``[service] send_interval`` (take complete files from source folders,
  then send what waits: retries with backoff, resumed claims), ``track`` every
  ``[mesh] tracking_interval``, ``sweep`` every ``sweep_interval`` (overdue expectations),
  ``handshake:<mailbox>`` and ``housekeeping`` daily;
- ``collect``: ``poll:<mailbox>`` every mailbox's ``poll_interval``: collect every page of the
  inbox, acknowledge, apply REPORTs and acknowledgements, answer and validate; then wake the send
  worker (responses) and the delivery workers;
- ``deliver:<route>`` for each inbound route with a destination, every
  ``[service] delivery_interval``: deliver what is due, each message claimed with a lease and
  given a total deadline, so a slow or broken destination holds only its own route;
- ``alerts``: the dispatcher (:mod:`meshbridge.dispatching`), every ``[alerts] interval``: hand
  what the store's outbox holds to the plugins and the ``[alerts]`` notifiers, so a slow webhook
  or mail server holds up nothing else.

The daily ``handshake:<mailbox>`` queues ``handshake-failed`` when it fails (not for a refused
login: that is ``mesh-auth``); the daily ``housekeeping`` checks the MESH client certificate
(``certificate-expiring``) and forgets finished notifications past retention.

SIGTERM/SIGINT set the shared stop event: a delivery in progress is left at once (its claim
released, the process group of a command destination killed), an upload stops between chunks,
every other job stops after its step in hand; the service waits at most :data:`STOP_WAIT` seconds
for that, kills what is left of any command destination, then exits anyway. Every step is durable
before the next, so what a stop interrupts is picked up by the next start.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

from .bridge import Bridge
from .destinations import kill_commands
from .errors import MeshbridgeError
from .logs import job
from .pipeline import Logged, PollReport
from .sources import ScanReport, scan

log = logging.getLogger("meshbridge")

STOP_WAIT = 30.0  # seconds SIGTERM waits for the steps in hand before the service exits anyway (README: Stopping)

Job = tuple[str, Callable[[], object], float]  # id, function, interval in seconds


class Worker(threading.Thread):
    """One thread, its own bridge, its jobs run one at a time when due (all due at the start)."""

    def __init__(self, name: str, bridge: Bridge, jobs: list[Job], stopping: threading.Event) -> None:
        super().__init__(name=f"meshbridge-{name}", daemon=True)  # daemon: a stuck step never blocks the exit
        self.bridge, self.jobs, self.stopping = bridge, jobs, stopping
        self._due = {job_id: 0.0 for job_id, _, _ in jobs}
        self._woken = threading.Event()
        self._last = ""  # the job run last (a late job names it)

    def wake(self, *job_ids: str) -> None:
        """Run these jobs (all, if none named) as soon as the job in hand is done."""
        for job_id in job_ids or self._due:
            if job_id in self._due:
                self._due[job_id] = 0.0
        self._woken.set()

    def run(self) -> None:
        while not self.stopping.is_set():
            self.run_due()
            wait = min(self._due.values()) - time.monotonic()
            if wait > 0:
                self._woken.wait(wait)
            self._woken.clear()

    def run_due(self) -> None:
        for job_id, function, interval in self.jobs:
            if self.stopping.is_set():
                return
            due, now = self._due[job_id], time.monotonic()
            if due <= now:
                if due and interval and now - due >= interval:  # due 0: at the start, or woken
                    self.missed(job_id, int((now - due) // interval), interval)
                self._due[job_id] = time.monotonic() + interval
                _guarded(job_id, function)()
                self._last = job_id

    def missed(self, job_id: str, runs: int, interval: float) -> None:
        """A job runs late, by whole intervals, because its worker was busy with another job (one
        at a time): it runs once now, the runs it missed are not made up."""
        log.warning(
            "%s missed %d run(s) (every %g s): worker %s was busy with %s; it runs now",
            job_id,
            runs,
            interval,
            self.name.removeprefix("meshbridge-"),
            self._last,
            extra={"job": job_id},
        )


def alerts_worker(bridge: Bridge) -> Worker:
    """The ``alerts`` worker: a pass of ``bridge``'s dispatcher every ``[alerts] interval`` (and
    when woken), stopped by its stop event. ``bridge`` is its own, with ``dispatch_after`` off."""
    job: Job = ("alerts", bridge.dispatch, bridge.config.model.alerts.interval)
    return Worker("alerts", bridge, [job], bridge.stopping)


class Service:
    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge
        self.config = bridge.config
        self.stopping = bridge.stopping  # one stop event, shared by every worker's bridge
        self.workers: dict[str, Worker] = {}
        bridge.store.keep_reserve()  # room to record state changes when the disk fills (README: The store)

    def _bridge(self) -> Bridge:
        worker = Bridge(self.config, self.bridge.plugins)
        worker.stopping = self.stopping
        worker.dispatch_after = False  # the alerts worker dispatches
        worker.store.keep_reserve()  # any worker may be the one that finds room for it again
        return worker

    def build(self) -> list[Worker]:
        """The workers and their jobs, each worker with a bridge (a store connection) of its own."""
        if self.workers:
            return list(self.workers.values())
        service, stopping = self.config.service, self.stopping
        sender = self._bridge()
        send_jobs: list[Job] = [
            ("send", lambda: self.send(sender), service.send_interval),
            ("track", sender.track, max(60.0, self.config.mesh.tracking_interval)),
            ("sweep", sender.sweep, service.sweep_interval),
        ]
        for mailbox in self.config.mailboxes.values():
            send_jobs.append(
                (
                    f"handshake:{mailbox.id}",
                    partial(sender.handshake, mailbox.id, alert=True),
                    service.handshake_interval,
                )
            )
        send_jobs.append(("housekeeping", lambda: self.housekeeping(sender), service.housekeeping_interval))
        self.workers["send"] = Worker("send", sender, send_jobs, stopping)

        collector = self._bridge()
        poll_jobs: list[Job] = [
            (f"poll:{mailbox.id}", self._poller(collector, mailbox.id), mailbox.poll_interval)
            for mailbox in self.config.mailboxes.values()
        ]
        if poll_jobs:
            self.workers["collect"] = Worker("collect", collector, poll_jobs, stopping)
        else:
            collector.close()

        self.workers["alerts"] = alerts_worker(self._bridge())

        for route in self.bridge.delivery_routes():  # a claim is renewed while it waits: any deadline fits the lease
            deliverer = self._bridge()
            job: Job = (f"deliver:{route.name}", self._deliverer(deliverer, route.name), service.delivery_interval)
            self.workers[f"deliver:{route.name}"] = Worker(f"deliver:{route.name}", deliverer, [job], stopping)
        return list(self.workers.values())

    # -- the jobs ---------------------------------------------------------------------------

    def send(self, bridge: Bridge | None = None) -> PollReport:
        bridge = bridge or self.bridge
        report = ScanReport()
        for route in self.config.routes:
            if route.source and "folder" in route.source:
                scan(
                    Path(route.source["folder"]),
                    route.name,
                    bridge.store,
                    bridge.send,
                    self.config.service.source_settle,
                    report,
                )
        for problem in report.problems:
            log.warning("source: %s", problem)
        sent = bridge.flush()
        for problem in unlogged(sent.problems):
            log.warning("send: %s", problem)
        return sent

    def housekeeping(self, bridge: Bridge | None = None) -> int:
        """Payloads past retention, and temp files of killed downloads and uploads (see ``Payloads.clean``);
        the MESH client certificate's expiry (``certificate-expiring``), finished notifications past retention."""
        bridge = bridge or self.bridge
        store = bridge.store
        bridge.check_certificates()
        store.outbox.remove_old(self.config.service.retention)
        store.payloads.clean()
        removed = store.remove_old_payloads(self.config.service.retention)
        if removed:
            log.info("housekeeping: removed %d payload files past retention", removed)
        return removed

    def _poller(self, bridge: Bridge, mailbox: str) -> Callable[[], PollReport]:
        def poll() -> PollReport:
            report = bridge.collect(mailbox)
            for problem in unlogged(report.problems):
                log.warning("poll %s: %s", mailbox, problem)
            if "send" in self.workers:  # responses to send, messages to deliver
                self.workers["send"].wake("send")
            for route in bridge.delivery_routes([mailbox]):
                worker = self.workers.get(f"deliver:{route.name}")
                if worker:
                    worker.wake()
            return report

        return poll

    @staticmethod
    def _deliverer(bridge: Bridge, route: str) -> Callable[[], None]:
        def deliver() -> None:
            for problem in unlogged(bridge.deliver(route).problems):
                log.warning("deliver %s: %s", route, problem)

        return deliver

    # -- running ----------------------------------------------------------------------------

    def run_once(self) -> PollReport:
        """Every job once, in flow order (for cron): sources and sends, inboxes, deliveries,
        responses, tracking, deadlines. Returns the mailboxes MESH could not be reached for or
        refused the login of (``unreachable``, ``login_refused``) on the way."""
        with stopped_by_signals(self.stopping):
            return self._run_once()

    def _run_once(self) -> PollReport:
        troubles = PollReport()
        try:
            workers = self.build()
            by_id = {job_id: job for worker in workers for job_id, job, _ in worker.jobs}
            order = [
                "send",
                *(j for j in by_id if j.startswith("poll:")),
                *(j for j in by_id if j.startswith("deliver:")),
            ]
            for job_id in [*order, "send", "track", "sweep", "alerts"]:
                report = _guarded(job_id, by_id[job_id])()
                if isinstance(report, PollReport):
                    for mailbox in report.unreachable:
                        troubles.mailbox_trouble(mailbox)
                    for mailbox in report.login_refused:
                        troubles.mailbox_trouble(mailbox, refused=True)
        finally:
            self.close()
        return troubles

    def run(self) -> None:
        """Run until SIGTERM or SIGINT; then stop within about :data:`STOP_WAIT` seconds."""
        workers = self.build()
        previous = {sig: signal.signal(sig, self._stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            for worker in workers:
                worker.start()
            jobs = sum(len(w.jobs) for w in workers)
            log.info("meshbridge running: %d workers, %d jobs", len(workers), jobs)
            while not self.stopping.wait(1.0):
                pass
            end = time.monotonic() + STOP_WAIT
            for worker in workers:
                worker.join(max(0.0, end - time.monotonic()))
            busy = [w.name for w in workers if w.is_alive()]
            if busy:
                log.warning(
                    "stopped after %g s with %s still busy: left as it was, the next start picks it up",
                    STOP_WAIT,
                    ", ".join(busy),
                )
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            kill_commands()  # no command destination outlives the service (its delivery is not recorded)
            self.close()
            log.info("meshbridge stopped")

    def wake_alerts(self) -> None:
        """Dispatch now what was queued (the API calls it after an action); no-op before :meth:`build`."""
        worker = self.workers.get("alerts")
        if worker is not None:
            worker.wake()

    def close(self) -> None:
        """Close the workers' bridges, except those still busy (abandoned to the exit)."""
        for worker in self.workers.values():
            if not worker.is_alive():
                worker.bridge.close()

    def _stop(self, signum: int, frame: object) -> None:
        if self.stopping.is_set():
            return
        self.stopping.set()
        log.info("stopping on signal %d: deliveries left at once, other jobs after their step in hand", signum)
        for worker in self.workers.values():
            worker.wake()


@contextmanager
def stopped_by_signals(stopping: threading.Event) -> Iterator[None]:
    """For one pass run in the foreground (``poll``, ``run --once``): SIGTERM or SIGINT set
    ``stopping`` instead of ending the process mid-step, so an upload stops between chunks and a
    delivery in hand is left with its command's process group killed; the pass then ends."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: object) -> None:
        log.info("stopping on signal %d after the step in hand", signum)
        stopping.set()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        kill_commands()


def unlogged(problems: list[str]) -> list[str]:
    """The problems whose step line is not in the log already (see :class:`~meshbridge.pipeline.Logged`)."""
    return [problem for problem in problems if not isinstance(problem, Logged)]


def _guarded(job_id: str, function: Callable[[], object]) -> Callable[[], object]:
    """A job that logs what it could not do instead of dying: the next run tries again.
    Returns what the job returned (None if it failed)."""

    def run() -> object:
        with job(job_id):  # every line it logs names it
            try:
                return function()
            except MeshbridgeError as exc:
                log.error("%s: %s", job_id, exc)
            except Exception:
                log.exception("%s failed", job_id)
        return None

    run.__name__ = job_id
    return run
