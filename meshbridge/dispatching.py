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

from .alerts import Notifier, kinds, notifiers
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
        outbox.route(self.targets)
        checkpoint("alert:queued")
        started = now()  # each send at most once a pass: one due again at once waits for the next
        for _ in range(MOST):
            if stopping is not None and stopping.is_set():
                break
            failing = sorted({target for _, target in done.retried + done.given_up})
            claimed = outbox.claim(self.lease, limit=1, due_by=started, skip=failing)
            if not claimed:
                break
            self._send(claimed[0], done)
        return done

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
            self._failed(send, str(exc), done)
            return
        except Exception as exc:  # a notifier's own fault: its type only (its text may hold a secret)
            self._failed(send, f"failed ({type(exc).__name__})", done)
            return
        checkpoint("alert:sent")
        outbox.sent(send, {**facts, "attempt": send.attempts + 1})
        done.sent.append(key)

    def _failed(self, send: AlertSend, reason: str, done: Dispatched) -> None:
        attempts, config = send.attempts + 1, self.config
        what = f"{send.notification.kind} alert {send.notification.id} to {send.target}"
        if attempts >= config.attempts:
            log.error("%s given up after %d attempts: %s", what, attempts, reason)
            self.store.outbox.gave_up(send, reason, {"attempts": attempts})
            done.given_up.append((send.notification.id, send.target))
            return
        delay = min(config.backoff * 2 ** (attempts - 1), config.backoff_max)
        log.warning(
            "%s failed (attempt %d of %d): %s; tried again in %g s", what, attempts, config.attempts, reason, delay
        )
        self.store.outbox.retry(send, reason, delay)
        done.retried.append((send.notification.id, send.target))
