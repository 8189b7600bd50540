"""Notifications: what operators should hear about, handed to ``meshbridge_on_event`` plugins.

A :class:`Notification` is not a timeline event (the steps a message's timeline records, which
``meshbridge show`` prints): it is a call for attention, of one :class:`EventKind`, about a
message, (``mesh-auth``, ``mesh-auth-cleared``, ``handshake-failed``) about a mailbox, or
(``certificate-expiring``) about the MESH client certificate.

A notification is queued in the store's outbox (:mod:`meshbridge.store.outbox`), in the same
transaction as the change it reports where there is one, and handed on from there by the
dispatcher (:mod:`meshbridge.dispatching`): to the plugins and to the built-in notifiers.
"""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol


class EventKind(StrEnum):
    """Every kind of notification meshbridge emits (documented in README's Notifications section
    and in ``meshbridge_on_event``'s docstring; a test holds both to this list)."""

    OVERDUE = "overdue"  # an expected response's deadline passed unmet
    NACK = "nack"  # an outbound message got a negative ITK or domain response
    UNDELIVERABLE = "undeliverable"  # a MESH REPORT (or tracking) says the recipient will not get it
    ORPHAN = "orphan"  # a response, ack or REPORT that answers nothing it may answer
    UNROUTED = "unrouted"  # an inbound message no route takes
    REJECTED = "rejected"  # validation refused an outbound payload (quarantined)
    INVALID = "invalid"  # an inbound payload failed validation
    DUPLICATE = "duplicate"  # an inbound ITK message whose id its sender used before (answered 20007)
    FAILED = "failed"  # MESH refused an outbound message, or its send attempts are spent
    UNDELIVERED = "undelivered"  # an inbound message's delivery attempts are spent
    MESH_AUTH = "mesh-auth"  # MESH refused a mailbox's login (once, until it clears)
    MESH_AUTH_CLEARED = "mesh-auth-cleared"  # a call on that mailbox succeeded again
    HANDSHAKE_FAILED = "handshake-failed"  # the daily handshake with MESH failed (not a refused login)
    CERTIFICATE_EXPIRING = "certificate-expiring"  # the MESH client certificate (or its CA) expires soon


MAILBOX_KINDS = frozenset({EventKind.MESH_AUTH, EventKind.MESH_AUTH_CLEARED, EventKind.HANDSHAKE_FAILED})


@dataclass(frozen=True)
class Notification:
    """Something happened to a message (or a mailbox) that someone may need to act on.

    :param kind: an :class:`EventKind` (a plain string is converted; an unknown one is a ValueError).
    :param message_id: the meshbridge id of the message concerned; None when it concerns a mailbox
        (``mesh-auth``, ``mesh-auth-cleared``, ``handshake-failed``: ``detail["mailbox"]`` names
        it) or the client certificate (``certificate-expiring``).
    :param summary: one line for a person.
    :param detail: the facts (codes, reasons, findings) as a JSON-able dict.
    :param id: this notification's own id (uuid4 hex), the same for every plugin told of it: a
        notifier that may be told twice can use it to do its work once.
    """

    kind: EventKind
    message_id: str | None
    summary: str
    detail: Mapping[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", EventKind(self.kind))

    @classmethod
    def restored(
        cls, kind: str, message_id: str | None, summary: str, detail: Mapping[str, Any], id: str
    ) -> Notification:
        """A notification as the outbox stored it (its kind checked again, its id kept)."""
        return cls(EventKind(kind), message_id, summary, detail, id)

    @property
    def mailbox(self) -> str | None:
        """The mailbox a mailbox's notification is about (``detail["mailbox"]``), else None."""
        return self.detail.get("mailbox") if self.kind in MAILBOX_KINDS else None


class Notify(Protocol):
    """How the pipeline emits a notification: ``notify(kind, message_id, summary, **detail)``."""

    def __call__(self, kind: EventKind, message_id: str | None, summary: str, **detail: Any) -> None: ...


def __getattr__(name: str) -> Any:
    if name == "Event":  # the old name, before the timeline's entries took it
        warnings.warn("meshbridge.events.Event is now meshbridge.Notification", DeprecationWarning, stacklevel=2)
        return Notification
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
