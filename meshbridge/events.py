"""Events that operators should hear about (``meshbridge_on_event``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# kinds: "overdue", "nack", "undeliverable", "orphan", "unrouted", "rejected", "invalid", "failed",
# "undelivered"


@dataclass(frozen=True)
class Event:
    """Something happened to a message that someone may need to act on.

    :param kind: ``overdue``, ``nack``, ``undeliverable``, ``orphan``, ``unrouted``, ``rejected``,
        ``invalid``, ``failed`` or ``undelivered`` (an inbound message's delivery attempts are spent).
    :param message_id: the meshbridge id of the message concerned.
    :param summary: one line for a person.
    :param detail: the facts (codes, reasons, findings) as a JSON-able dict.
    """

    kind: str
    message_id: str
    summary: str
    detail: dict[str, Any] = field(default_factory=dict)
