"""The steps of the flow, each a small function over the store and one MESH mailbox.

outbound: accept (bytes + row durable) -> transmit -> track                     (``outbound``)
inbound:  download (to disk, row durable) -> MESH acknowledge -> report | route -> deliver  (``inbound``)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields

from ..errors import DiskFull
from ..models import IN_FLIGHT
from .inbound import (
    acknowledge,
    apply_report,
    check_stored,
    deliver_inbound,
    download,
    inbound_route,
    mark_unrouted,
    retry_later,
    undecodable,
    validate_inbound,
)
from .outbound import SEND_LEASE, RetryPolicy, accept, due_for_sending, track, tracking_due, transmit

__all__ = [
    "IN_FLIGHT",
    "SEND_LEASE",
    "Logged",
    "PollReport",
    "RetryPolicy",
    "accept",
    "acknowledge",
    "apply_report",
    "check_stored",
    "deliver_inbound",
    "download",
    "goes_on",
    "due_for_sending",
    "inbound_route",
    "mark_unrouted",
    "retry_later",
    "store_full",
    "track",
    "tracking_due",
    "transmit",
    "undecodable",
    "validate_inbound",
]


class Logged(str):
    """A problem with a message whose step (``failed``, ``send-failed``, ``delivery-failed``,
    ``orphan`` …) the store has logged already (:mod:`meshbridge.steps`): ``poll`` shows it, the
    service does not log it again."""


@dataclass
class PollReport:
    """What one pass did; ``problems`` are one-line reasons to show an operator."""

    sent: list[str] = field(default_factory=list)
    received: list[str] = field(default_factory=list)
    delivered: list[str] = field(default_factory=list)
    unrouted: list[str] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)
    correlated: list[str] = field(default_factory=list)
    orphan: list[str] = field(default_factory=list)  # responses, acks and REPORTs that match nothing we may change
    duplicate: list[str] = field(default_factory=list)  # a response or ITK message seen before
    overdue: list[str] = field(default_factory=list)
    undeliverable: list[str] = field(default_factory=list)
    undelivered: list[str] = field(default_factory=list)  # inbound: delivery attempts spent
    tracked: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    unreachable: list[str] = field(default_factory=list)  # mailboxes MESH could not be reached for (or failed)
    login_refused: list[str] = field(default_factory=list)  # mailboxes whose login MESH refused

    def as_json(self) -> dict[str, list[str]]:
        """What ``poll --json`` prints: every list above, by its name, in this order."""
        return {f.name: [str(item) for item in getattr(self, f.name)] for f in fields(self)}

    def mailbox_trouble(self, mailbox: str, *, refused: bool = False) -> None:
        """Note a mailbox MESH could not be reached for, or whose login it refused (once each)."""
        found = self.login_refused if refused else self.unreachable
        if mailbox not in found:
            found.append(mailbox)


def store_full(report: PollReport, exc: DiskFull) -> None:
    """One line per pass for a full or failing store disk, however many steps met it."""
    if not any(problem.startswith("store disk") for problem in report.problems):
        report.problems.append(
            f"{exc}; new messages wait (in MESH, in source folders) until the store can write again, "
            "what is stored is still delivered and sent"
        )


@contextmanager
def goes_on(report: PollReport) -> Iterator[None]:
    """A full store disk ends this step of the pass with one line; the pass and the service go on."""
    try:
        yield
    except DiskFull as exc:
        store_full(report, exc)
