"""``retry``: which messages may be tried again, choosing them by id or by state and time, and queueing them.

A ``failed`` outbound message goes back to ``accepted`` with a fresh set of attempts (and is sent
at once, see :meth:`Bridge.retry_many`); an ``undelivered`` inbound one goes back to ``valid`` and
is delivered by the next pass. Nothing else is retried.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .actors import Actor, with_actor
from .errors import MeshAuthRefused, MeshbridgeError, MeshRejected, SendAbandoned, TransportError, UnknownMessage
from .models import AGAIN, RETRIABLE, Direction, State, TimelineKind
from .pipeline import PollReport
from .store import Store, StoredMessage


@dataclass(frozen=True)
class Retried:
    """One message a retry was asked for: its state now if it was queued, else why not.

    ``problem`` on a queued message says why it is not sent yet (MESH unreachable, login refused).
    """

    message_id: str
    state: State | None = None
    problem: str | None = None

    @property
    def queued(self) -> bool:
        return self.state is not None


@dataclass
class Retries:
    """What one retry did: each message, and the MESH troubles met sending (``unreachable``, ``login_refused``)."""

    messages: list[Retried] = field(default_factory=list)
    report: PollReport = field(default_factory=PollReport)


def refusal(message: StoredMessage) -> str | None:
    """Why this message cannot be retried, or None."""
    if RETRIABLE.get(message.direction) != message.state:
        return (
            f"it is {message.direction} and {message.state}: only a failed outbound message "
            "or an undelivered inbound one can be retried"
        )
    if not message.payload_sha256:
        return "its payload was removed by retention"
    return None


def requeue(store: Store, message: StoredMessage, by: Actor | None = None) -> bool:
    """``failed`` -> ``accepted`` or ``undelivered`` -> ``valid``, with a fresh set of attempts
    (its ``retry`` entry names ``by``, who asked). False when another process changed it first."""
    direction = message.direction
    return store.transition(
        message.id,
        AGAIN[direction],
        from_states=(RETRIABLE[direction],),
        kind=TimelineKind.RETRY,
        detail=with_actor(None, by),
        attempts=0,
        next_attempt_at=None,
    )


def matching(store: Store, state: State | None, since: datetime | None, until: datetime | None) -> list[StoredMessage]:
    """Retriable messages in ``state`` (default: both retriable states) that reached it
    (were last changed) within ``[since, until]``, oldest first."""
    states = [state] if state else list(RETRIABLE.values())
    low = since.astimezone(UTC) if since else None
    high = until.astimezone(UTC) if until else None
    found = [
        m
        for s in states
        for m in store.messages(state=s)
        if RETRIABLE.get(m.direction) == s
        and (low is None or m.updated_at >= low)
        and (high is None or m.updated_at <= high)
    ]
    return sorted(found, key=lambda m: (m.updated_at, m.id))


def by_ids(store: Store, ids: Iterable[str], done: Retries) -> list[StoredMessage]:
    """The messages these ids name, in order, each once; an unknown id is noted in ``done``."""
    rows, seen = [], set()
    for message_id in ids:
        try:
            row = store.get(message_id)
        except UnknownMessage as exc:
            done.messages.append(Retried(message_id, problem=str(exc)))
            continue
        if row.id not in seen:
            seen.add(row.id)
            rows.append(row)
    return rows


def retry(
    store: Store,
    rows: list[StoredMessage],
    send: Callable[[StoredMessage], object],
    done: Retries,
    by: Actor | None = None,
) -> Retries:
    """Queue each retriable message (asked for ``by``); send the outbound ones now with ``send``
    (one refused login or unreachable MESH and that mailbox's others wait for the next pass, queued)."""
    report = done.report
    for row in rows:
        problem = refusal(row)
        if problem is None and not requeue(store, row, by):
            problem = "its state changed meanwhile (another process retried it?)"
        if problem:
            done.messages.append(Retried(row.id, problem=problem))
            continue
        waiting = None
        if row.direction == Direction.OUT:
            if row.mailbox in report.login_refused or row.mailbox in report.unreachable:
                waiting = "not sent yet: MESH was not reached for its mailbox on this retry; poll sends it"
            else:
                waiting = _send(store, row, send, report)
        done.messages.append(Retried(row.id, State(store.get(row.id).state), waiting))
    return done


def _send(store: Store, row: StoredMessage, send: Callable[[StoredMessage], object], report: PollReport) -> str | None:
    try:
        send(store.get(row.id))
    except MeshAuthRefused as exc:
        report.mailbox_trouble(row.mailbox, refused=True)
        return f"not sent yet: {exc}"
    except MeshRejected as exc:
        return f"MESH refused it again: {exc}"
    except SendAbandoned as exc:  # failed again (its attempts spent): poll does not send it
        report.mailbox_trouble(row.mailbox)
        return f"not sent: {exc}"
    except TransportError as exc:
        report.mailbox_trouble(row.mailbox)
        return f"not sent yet: {exc}; poll sends it"
    except MeshbridgeError as exc:
        return f"not sent: {exc}"
    return None
