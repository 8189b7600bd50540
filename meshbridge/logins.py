"""Refused MESH logins, per mailbox: the ``mesh-auth`` event, raised once until it clears.

A refused login (:class:`~meshbridge.errors.MeshAuthRefused`: a wrong mailbox password or
``[mesh] shared_key``) is about the mailbox, not a message. The first refusal of a mailbox is
logged and passed to ``meshbridge_on_event`` as ``mesh-auth`` (no message id); further refusals
are only counted, in the store (``mesh_logins``), so "once" holds across passes and processes.
The first call on that mailbox that succeeds afterwards clears it: ``mesh-auth-cleared``, and its
waiting outbound messages are due at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from .errors import MeshAuthRefused, MeshRejected, TransportError, UndecodableBody
from .events import EventKind, Notification
from .models import stamp
from .pipeline import PollReport
from .plugins import Plugins
from .store import Store

log = logging.getLogger("meshbridge")


class LoginWatch:
    """One Bridge's view of its mailboxes' logins (the state itself is in the store)."""

    def __init__(self, store: Store, plugins: Plugins, handshake: Callable[[str], None]) -> None:
        self.store, self.plugins, self._handshake = store, plugins, handshake
        self._probed: set[str] = set()  # mailboxes whose login this process has seen refused, or tried

    def refused(self, exc: MeshAuthRefused, report: PollReport | None = None) -> None:
        """Count a refusal (unless the send that met it did) and raise ``mesh-auth`` if it is the first."""
        self._probed.add(exc.mailbox)  # this process has met the refusal: no handshake needed to learn it
        if not exc.refusals:
            exc.refusals = self.store.logins.refused(exc.mailbox, str(exc))
        if report is not None:
            report.mailbox_trouble(exc.mailbox, refused=True)
        if exc.refusals == 1:
            summary = (
                f"MESH refused the login of mailbox {exc.mailbox}: {exc}; its messages wait (accepted) "
                "until the login works again"
            )
            self._raise(EventKind.MESH_AUTH, summary, logging.WARNING, mailbox=exc.mailbox, reason=str(exc))

    def ok(self, mailbox: str) -> None:
        """A call on ``mailbox`` succeeded: clear its refusal, if any (``mesh-auth-cleared``)."""
        row = self.store.logins.accepted(mailbox)
        if row is not None:
            summary = (
                f"MESH takes the login of mailbox {mailbox} again (refused {row.refusals} times since "
                f"{stamp(row.since)}); its waiting messages are due now"
            )
            self._raise(EventKind.MESH_AUTH_CLEARED, summary, logging.INFO, mailbox=mailbox, since=stamp(row.since))

    def probe(self, report: PollReport) -> None:
        """Once per process, a handshake on each mailbox whose login was refused: a config fixed
        since (a new process) sends its waiting messages on this pass, whatever their backoff."""
        for mailbox in self.store.logins.refusing():
            if mailbox in self._probed:
                continue
            self._probed.add(mailbox)
            try:
                self._handshake(mailbox)
            except MeshAuthRefused as exc:
                report.problems.append(str(exc))
                self.refused(exc, report)
            except TransportError as exc:
                report.problems.append(str(exc))
                report.mailbox_trouble(mailbox)
            else:
                self.ok(mailbox)

    def failed(self, report: PollReport, mailbox: str, exc: Exception) -> None:
        """A MESH call on ``mailbox`` failed: note a refused login or an unreachable MESH in the
        report (a refusal of one message, or a body that cannot be decoded, is neither)."""
        if isinstance(exc, MeshAuthRefused):
            self.refused(exc, report)
        elif isinstance(exc, TransportError) and not isinstance(exc, MeshRejected | UndecodableBody):
            report.mailbox_trouble(mailbox)

    def _raise(self, kind: EventKind, summary: str, level: int, **detail: Any) -> None:
        log.log(level, "%s: %s", kind, summary)
        self.plugins.notify(Notification(kind, None, summary, detail))
