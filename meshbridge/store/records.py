"""What a :class:`~.protocol.Store` returns to the pipeline besides the public models: typed, frozen.

A message as the pipeline reads it is a :class:`StoredMessage` (the public
:class:`~meshbridge.models.MessageSummary` and its claim's lease), a claim hands back a
:class:`Claimed` one; timelines and expectations are :class:`~meshbridge.models.Event` and
:class:`~meshbridge.models.Expectation`. Rows become these here, at the store's edge: no code
outside :mod:`meshbridge.store` reads a row (tests/test_store_protocol.py checks).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..errors import StoreError
from ..events import Notification
from ..models import MessageSummary, moment


@dataclass(frozen=True, kw_only=True)
class StoredMessage(MessageSummary):
    """A stored message with its claim (to send, or to deliver): who holds it, and its heartbeat
    on the lease clock (:mod:`meshbridge.clock`); all None when it was never claimed."""

    mailbox: str  # ours: every stored message has one
    lease_holder: str | None = None
    lease_boot: str | None = None
    lease_beat: float | None = None

    @property
    def sha256(self) -> str:
        """The payload's sha256, as the pipeline needs it (:class:`StoreError` once retention removed it)."""
        if not self.payload_sha256:
            raise StoreError(f"message {self.id}: its payload was removed (retention)")
        return self.payload_sha256


@dataclass(frozen=True, kw_only=True)
class Claimed(StoredMessage):
    """An outbound message this process just claimed to send (:meth:`~.protocol.Store.claim`).
    ``resumed``: it took over a ``sending`` claim that lapsed, so MESH may have part of it."""

    resumed: bool = False


@dataclass(frozen=True)
class OverdueExpectation:
    """An expectation the overdue sweep saw past its deadline for the first time."""

    message_id: str
    kind: str
    due_at: datetime | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> OverdueExpectation:
        return cls(row["message_id"], row["kind"], moment(row["due_at"]))


@dataclass(frozen=True)
class RefusedLogin:
    """A mailbox whose MESH login is refused: ``since`` the first refusal, ``refusals`` so far,
    ``last_at`` the latest, and what MESH said (``reason``)."""

    mailbox: str
    since: datetime
    last_at: datetime
    refusals: int
    reason: str | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> RefusedLogin:
        since, last_at = moment(row["since"]), moment(row["last_at"])
        assert since is not None  # NOT NULL columns
        assert last_at is not None
        return cls(row["mailbox"], since, last_at, int(row["refusals"]), row.get("reason"))


@dataclass(frozen=True)
class Counts:
    """What the store's counters hold, as of reading: messages by ``(direction, route, state)``
    (route None: none), open and overdue expectations by ``(direction, kind)``, and how many
    messages have an overdue expectation (overdue: :data:`~.queries.OVERDUE`, as of now)."""

    messages: Mapping[tuple[str, str | None, str], int]
    open: Mapping[tuple[str, str], int]
    overdue: Mapping[tuple[str, str], int]
    overdue_messages: int


@dataclass(frozen=True)
class AlertSend:
    """One notifier's delivery of one queued notification, claimed by this dispatcher: its
    ``target`` (``plugins``, ``webhook:NAME``, ``email:NAME``) and the attempts made before this one."""

    notification: Notification
    target: str
    attempts: int

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> AlertSend:
        detail = json.loads(row["detail"]) if row["detail"] else {}
        notification = Notification.restored(row["kind"], row["message_id"], row["summary"], detail, row["id"])
        return cls(notification, row["target"], int(row["attempts"]))
