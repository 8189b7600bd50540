"""Following up what was sent: MESH tracking of sent messages, and the sweep that flags
expectations (acknowledgements owed to us) whose deadline passed. The machinery behind
:meth:`Bridge.track <meshbridge.Bridge.track>` and :meth:`Bridge.sweep <meshbridge.Bridge.sweep>`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import pipeline
from .errors import DiskFull, MeshbridgeError
from .models import Direction, State
from .pipeline import PollReport, store_full

if TYPE_CHECKING:
    from .bridge import Bridge


def track(bridge: Bridge, report: PollReport, *, force: bool = False) -> None:
    """Refresh MESH tracking of sent messages that are due for it (every one with ``force``)."""
    interval = bridge.config.mesh.tracking_interval
    for message in bridge.store.messages(state=State.SENT, direction=Direction.OUT):
        if not (force or pipeline.tracking_due(message, interval)) or message.mailbox in report.login_refused:
            continue
        try:
            pipeline.track(bridge.store, bridge.mailbox(message.mailbox), message)
            report.tracked.append(message.id)
        except DiskFull as exc:
            store_full(report, exc)
            break
        except MeshbridgeError as exc:
            report.problems.append(f"track {message.id}: {exc}")
            bridge.logins.failed(report, message.mailbox, exc)


def sweep(bridge: Bridge, report: PollReport) -> None:
    """Flag expectations whose deadline passed (once each; the store queues each ``overdue``
    notification with the flag); fold the store's counters (each connection's rows into one, on
    PostgreSQL)."""
    bridge.store.fold_counts()
    for row in bridge.store.sweep_overdue():
        report.overdue.append(row.message_id)
