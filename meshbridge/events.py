"""Events that operators should hear about (``meshbridge_on_event``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# kinds: "overdue", "nack", "undeliverable", "orphan", "unrouted", "rejected", "invalid", "failed",
# "undelivered", "mesh-auth", "mesh-auth-cleared"


@dataclass(frozen=True)
class Event:
    """Something happened to a message (or a mailbox) that someone may need to act on.

    :param kind: ``overdue``, ``nack``, ``undeliverable``, ``orphan``, ``unrouted``, ``rejected``,
        ``invalid``, ``failed`` or ``undelivered`` (an inbound message's delivery attempts are spent);
        about a mailbox, not a message: ``mesh-auth`` (MESH refused its login: raised once, until a
        call on it succeeds again) and ``mesh-auth-cleared`` (it did), with ``detail["mailbox"]``.
    :param message_id: the meshbridge id of the message concerned; None for a mailbox's event.
    :param summary: one line for a person.
    :param detail: the facts (codes, reasons, findings) as a JSON-able dict.
    """

    kind: str
    message_id: str | None
    summary: str
    detail: dict[str, Any] = field(default_factory=dict)
