"""Times on the command line: one parser for ``--since``/``--until`` and one way to print a stored time.

The store keeps UTC ISO 8601 text with an offset (``2026-11-28T12:00:00.123456+00:00``); JSON output
carries it as stored. Human output shows the local zone by default, or UTC with ``--utc``, always with
the offset, so that a time read off a screen is never ambiguous.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import click

from ..config import parse_duration


def parse_when(text: str, now: datetime | None = None) -> datetime:
    """``2h`` (that long ago), ``30m``, ``1d`` or an ISO 8601 time with an offset -> an aware UTC datetime.

    A time without an offset is refused: the same words must mean the same moment on every machine.
    """
    text = text.strip()
    try:
        seconds = parse_duration(text)
    except ValueError:
        pass
    else:
        return (now or datetime.now(UTC)) - timedelta(seconds=seconds)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"bad time {text!r}: give a duration ago (30m, 2h, 1d) or an ISO 8601 time with an offset "
            "(2026-11-28T09:00:00+00:00)"
        ) from None
    if moment.tzinfo is None:
        raise ValueError(f"time {text!r} has no offset: add one (+00:00 for UTC, or Z) so that it is unambiguous")
    return moment.astimezone(UTC)


class When(click.ParamType):
    """A click parameter for ``--since``/``--until``: see :func:`parse_when`."""

    name = "when"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            return parse_when(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


WHEN = When()


def stored(moment: datetime) -> str:
    """A moment as the store writes it (UTC, microseconds, offset), for comparing with stored text."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def shown(value: str | None, utc: bool = False, timespec: str = "seconds") -> str:
    """A stored time for people: local zone (or UTC) with its offset, e.g. ``2026-11-28 12:00:05+00:00``."""
    if not value:
        return ""
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:  # written by an older version: stored times were always UTC
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC) if utc else moment.astimezone()
    return moment.isoformat(sep=" ", timespec=timespec)
