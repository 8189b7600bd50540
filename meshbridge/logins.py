"""Refused MESH logins, per mailbox: the ``mesh-auth`` event, raised once until it clears.

A refused login (:class:`~meshbridge.errors.MeshAuthRefused`: a wrong mailbox password or
``[mesh] shared_key``) is about the mailbox, not a message. The first refusal of a mailbox is
logged and queued as the notification ``mesh-auth`` (no message id) with the refusal; further
refusals are only counted, in the store (``mesh_logins``), so "once" holds across passes and processes.
The first call on that mailbox that succeeds afterwards clears it: ``mesh-auth-cleared``, and its
waiting outbound messages are due at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from .errors import MeshAuthRefused, MeshRejected, TransportError, UndecodableBody
from .events import EventKind
from .pipeline import PollReport
from .store import Store
from .store.logins import cleared_alert, refused_alert

log = logging.getLogger("meshbridge")


class LoginWatch:
    """One Bridge's view of its mailboxes' logins (the state itself is in the store)."""

    def __init__(self, store: Store, handshake: Callable[[str], None]) -> None:
        self.store, self._handshake = store, handshake
        self._probed: set[str] = set()  # mailboxes whose login this process has seen refused, or tried

    def refused(self, exc: MeshAuthRefused, report: PollReport | None = None) -> None:
        """Count a refusal (unless the send that met it did) and raise ``mesh-auth`` if it is the first."""
        self._probed.add(exc.mailbox)  # this process has met the refusal: no handshake needed to learn it
        if not exc.refusals:
            exc.refusals = self.store.logins.refused(exc.mailbox, str(exc))
        if report is not None:
            report.mailbox_trouble(exc.mailbox, refused=True)
        if exc.refusals == 1:  # the store queued the notification with the refusal (mesh-auth)
            log.warning("%s: %s", EventKind.MESH_AUTH, refused_alert(exc.mailbox, str(exc)).summary)

    def ok(self, mailbox: str) -> None:
        """A call on ``mailbox`` succeeded: clear its refusal, if any (``mesh-auth-cleared``,
        queued by the store with the change)."""
        row = self.store.logins.accepted(mailbox)
        if row is not None:
            log.info("%s: %s", EventKind.MESH_AUTH_CLEARED, cleared_alert(row).summary)

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
