"""Delivering: every ``valid`` inbound message that is due, handed to its route's destination.

Each is claimed with a lease first, delivered within its deadline, and on failure due again after
a backoff (``undelivered`` once its attempts are spent). Folder deliveries are staged a batch at a
time. The machinery behind :meth:`Bridge.deliver <meshbridge.Bridge.deliver>`.
"""

from __future__ import annotations

import hashlib
import logging
from contextlib import nullcontext
from dataclasses import replace
from typing import TYPE_CHECKING

from . import pipeline
from .collecting import RECEIVE_BATCH
from .config import Route
from .destinations import FolderBatch
from .errors import DeliveryInterrupted, DiskFull, MeshbridgeError
from .models import State
from .pipeline import Logged, PollReport, store_full
from .store import StoredMessage

if TYPE_CHECKING:
    from .bridge import Bridge

log = logging.getLogger("meshbridge")
BATCH_BYTES = 100_000_000  # a folder batch is finished early once it holds this much (disk space)


def deliver_routes(bridge: Bridge, routes: list[Route], report: PollReport) -> None:
    """Deliver what is due on each route; a route that fails is reported and the others go on."""
    for route in routes:
        if bridge.stopping.is_set():
            break
        try:
            deliver_route(bridge, route, report)
        except DiskFull as exc:
            store_full(report, exc)
            break
        except MeshbridgeError as exc:
            report.problems.append(f"deliver on {route.name}: {exc}")


def deliver_route(bridge: Bridge, route: Route, report: PollReport) -> None:
    """Claim and deliver the due messages of one route (a folder: one process at a time, in batches)."""
    assert route.destination is not None
    store = bridge.store
    policy = bridge.delivery_policy
    due = [
        m
        for m in store.deliverable(route.mailbox, route.workflow_id, policy.lease)
        if pipeline.inbound_route(bridge.config, m) == route
    ]
    if not due:
        return
    [(kind, target)] = route.destination.items()
    folder = kind == "folder"
    # folder deliveries are staged a batch at a time (see FolderBatch); one process at a time
    # stages into a folder, so the temp files left by a crashed pass can be cleaned
    lock = f"folder-{hashlib.sha256(str(target).encode()).hexdigest()[:12]}"
    with store.exclusive(lock) if folder else nullcontext():
        batch = FolderBatch(store.tag)
        if folder:
            batch.clean([target])
        delivered = len(report.delivered)
        size = RECEIVE_BATCH if folder else 1  # a folder batch is claimed at once: it is quick
        try:
            for start in range(0, len(due), size):
                if bridge.stopping.is_set():
                    break
                chunk = due[start : start + size]
                taken = store.claim_deliveries([m.id for m in chunk], policy.lease)
                for message in chunk:
                    if message.id in taken:
                        deliver_one(bridge, route, replace(message, lease_holder=taken[message.id]), batch, report)
        finally:
            try:
                batch.finish()
            finally:
                if len(report.delivered) > delivered:
                    store.sync()  # folder deliveries were recorded lazily


def deliver_one(bridge: Bridge, route: Route, message: StoredMessage, batch: FolderBatch, report: PollReport) -> None:
    """Deliver one claimed message (a folder's: staged in ``batch``, reported when the batch is done)."""

    def done(error: MeshbridgeError | None) -> None:
        if isinstance(error, DiskFull):
            store_full(report, error)
        elif error:
            delivery_failed(bridge, route, message, error, report)
        else:
            report.delivered.append(message.id)

    try:
        if pipeline.deliver_inbound(
            bridge.store,
            bridge.plugins,
            route,
            message,
            batch=batch,
            on_done=done,
            policy=bridge.delivery_policy,
            deadline=bridge.delivery_deadline(route),
            stopping=bridge.stopping,
            claim=message.lease_holder,
        ):
            report.delivered.append(message.id)
        elif len(batch) >= RECEIVE_BATCH or batch.size >= BATCH_BYTES:
            batch.finish()
    except DeliveryInterrupted as exc:
        report.problems.append(Logged(f"deliver {message.id}: {exc}"))
    except DiskFull:
        raise  # a delivery that cannot be recorded would be made again: the route stops here
    except MeshbridgeError as exc:
        delivery_failed(bridge, route, message, exc, report)
    except Exception as exc:  # not the destination's (deliver_inbound catches all of those): the rest go on
        log.exception("delivering %s failed", message.id)
        report.problems.append(f"deliver {message.id}: {type(exc).__name__}: {exc}")


def delivery_failed(
    bridge: Bridge, route: Route, message: StoredMessage, error: MeshbridgeError, report: PollReport
) -> None:
    """Report a failed delivery (an ``undelivered`` one's notification was queued with its state)."""
    report.problems.append(Logged(f"deliver {message.id}: {error}"))  # delivery-failed or undelivered
    if bridge.store.get(message.id).state == State.UNDELIVERED:
        report.undelivered.append(message.id)
