"""The dispatcher: hands each notification in the store's outbox to its targets, at least once.

A pass routes what was queued since the last (the plugins' ``meshbridge_on_event``, and each
``[alerts]`` notifier whose ``kinds`` take it: :mod:`meshbridge.alerts`), then takes the sends that
are due, one at a time, each claimed for a lease: delivered (``alert-sent`` on the message's
timeline), or due again after a backoff that doubles, or once ``[alerts] attempts`` are spent given
up (``alert-given-up``). A notifier that fails delays only its own sends: the rest of them wait
for the next pass (one that never answers costs a pass one ``[alerts] timeout``, not one per send).
A process killed between a delivery and its record leaves the send due again when the lease ends:
the receiver then sees the same idempotency key (the notification's id) twice, never a new one.

Plugins are told once per notification (``plugins`` target): a plugin that raises is logged and
ignored, as ``meshbridge_on_event`` documents, never retried.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

from .alerts import Notifier, digest, kinds, notifiers
from .config.alerts import AlertsConfig
from .errors import AlertFailed
from .events import Notification
from .faults import checkpoint
from .plugins import Plugins
from .store import Store, now
from .store.records import AlertSend

log = logging.getLogger("meshbridge")

PLUGINS = "plugins"  # the target that is the plugins' meshbridge_on_event
MOST = 1000  # sends one pass takes at most (the next pass takes the rest)
ROUTE_MOST = 500  # notifications routed in one transaction
DIGEST_MOST = 10_000  # sends one digest carries at most (the next pass's digest takes the rest)


@dataclass
class Dispatched:
    """What one pass did: ``(notification id, target)`` sent, tried again later, and given up."""

    sent: list[tuple[str, str]] = field(default_factory=list)
    retried: list[tuple[str, str]] = field(default_factory=list)
    given_up: list[tuple[str, str]] = field(default_factory=list)


class Dispatcher:
    """One store's outbox, its plugins and its ``[alerts]`` notifiers."""

    def __init__(self, store: Store, plugins: Plugins, config: AlertsConfig) -> None:
        self.store, self.plugins, self.config = store, plugins, config
        self.notifiers: Mapping[str, Notifier] = notifiers(config)
        self._kinds = kinds(config)
        self.lease = 3 * config.timeout  # a claim outlives one attempt, with room

    def targets(self, notification: Notification) -> list[str]:
        """Where a notification goes: the plugins, and each notifier whose kinds take it."""
        return [PLUGINS, *(t for t, taken in self._kinds.items() if notification.kind in taken)]

    def run(self, stopping: threading.Event | None = None) -> Dispatched:
        """One pass (see the module docstring); stops between sends when ``stopping`` is set."""
        done = Dispatched()
        outbox = self.store.outbox
        routed = 0
        while routed < DIGEST_MOST:  # a flood routed whole, so one digest can name it all
            fresh = outbox.route(self.targets, limit=ROUTE_MOST)
            routed += fresh
            if fresh < ROUTE_MOST:
                break
        checkpoint("alert:queued")
        started = now()  # each send at most once a pass: one due again at once waits for the next
        count: dict[str, int] = {}
        digested: set[str] = set()
        for _ in range(MOST):
            if stopping is not None and stopping.is_set():
                break
            failing = {target for _, target in done.retried + done.given_up}
            claimed = outbox.claim(self.lease, limit=1, due_by=started, skip=sorted(failing | digested))
            if not claimed:
                break
            send = claimed[0]
            if send.target != PLUGINS and count.get(send.target, 0) >= self.config.burst:
                digested.add(send.target)  # past its burst: the rest due for it go as one digest
                more = outbox.claim(self.lease, limit=DIGEST_MOST - 1, targets=[send.target], due_by=started)
                self._digest([send, *more], done)
                continue
            count[send.target] = count.get(send.target, 0) + 1
            self._send(send, done)
        return done

    def _digest(self, sends: list[AlertSend], done: Dispatched) -> None:
        """Send one notification standing for ``sends`` (:func:`~.alerts.digest`) and record
        each of them as delivered in it (``alert-sent`` with the digest's id on each timeline),
        or each failed attempt (all due again after the backoff, or given up)."""
        target, outbox = sends[0].target, self.store.outbox
        notifier, keys = self.notifiers.get(target), [(s.notification.id, target) for s in sends]
        summary = digest([s.notification for s in sends], target)
        try:
            if notifier is None:
                raise AlertFailed("no such notifier is configured now")
            facts = notifier.send(summary)
        except Exception as exc:  # an AlertFailed's reason, else a notifier's own fault: its type only
            reason = str(exc) if isinstance(exc, AlertFailed) else f"failed ({type(exc).__name__})"
            wait = exc.retry_after if isinstance(exc, AlertFailed) else None
            spent = [s for s in sends if s.attempts + 1 >= self.config.attempts or notifier is None]
            again = [(s, self._delay(s.attempts + 1, wait)) for s in sends if s not in spent]
            log.warning("a digest of %d alerts to %s failed: %s", len(sends), target, reason)
            if spent:
                log.error("%d alerts to %s given up: %s", len(spent), target, reason)
                outbox.gave_up_all(spent, reason, {"digest": summary.id})
            outbox.retry_all(again, reason)
            done.given_up += [(s.notification.id, target) for s in spent]
            done.retried += [(s.notification.id, target) for s, _ in again]
            return
        checkpoint("alert:sent")
        outbox.sent_all(sends, {**facts, "digest": summary.id})
        done.sent += keys
        log.warning(
            "%d alerts to %s past its burst of %d sent as one digest %s",
            len(sends),
            target,
            self.config.burst,
            summary.id,
        )

    def _delay(self, attempts: int, wait: float | None) -> float:
        """The backoff after ``attempts`` failed attempts, at least ``wait`` (a 429's Retry-After)."""
        config = self.config
        delay = float(min(config.backoff * 2 ** (attempts - 1), config.backoff_max))
        return delay if wait is None else max(delay, min(wait, config.backoff_max))

    def _send(self, send: AlertSend, done: Dispatched) -> None:
        outbox, key = self.store.outbox, (send.notification.id, send.target)
        if send.target == PLUGINS:
            self.plugins.on_event(send.notification)  # each plugin's failure logged, never retried
            outbox.sent(send, timeline=False)
            done.sent.append(key)
            return
        notifier = self.notifiers.get(send.target)
        if notifier is None:  # removed from [alerts] since it was routed
            outbox.gave_up(send, "no such notifier is configured now")
            done.given_up.append(key)
            return
        try:
            facts = notifier.send(send.notification)
        except AlertFailed as exc:
            self._failed(send, str(exc), done, exc.retry_after)
            return
        except Exception as exc:  # a notifier's own fault: its type only (its text may hold a secret)
            self._failed(send, f"failed ({type(exc).__name__})", done)
            return
        checkpoint("alert:sent")
        outbox.sent(send, {**facts, "attempt": send.attempts + 1})
        done.sent.append(key)

    def _failed(self, send: AlertSend, reason: str, done: Dispatched, wait: float | None = None) -> None:
        attempts, config = send.attempts + 1, self.config
        what = f"{send.notification.kind} alert {send.notification.id} to {send.target}"
        if attempts >= config.attempts:
            log.error("%s given up after %d attempts: %s", what, attempts, reason)
            self.store.outbox.gave_up(send, reason, {"attempts": attempts})
            done.given_up.append((send.notification.id, send.target))
            return
        delay = self._delay(attempts, wait)
        log.warning(
            "%s failed (attempt %d of %d): %s; tried again in %g s", what, attempts, config.attempts, reason, delay
        )
        self.store.outbox.retry(send, reason, delay)
        done.retried.append((send.notification.id, send.target))
