"""Times on the command line: one parser for ``--since``/``--until`` and one way to print a stored time.

The store keeps UTC ISO 8601 text with an offset (``2026-11-28T12:00:00.123456+00:00``); JSON output
carries it as stored. Human output shows the local zone by default, or UTC with ``--utc``, always with
the offset, so that a time read off a screen is never ambiguous.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    _MomentParam = click.ParamType[datetime, object]
else:  # ParamType is generic only in recent click; older click cannot subscript it at run time
    _MomentParam = click.ParamType


def parse_when(text: str, now: datetime | None = None, *, local: bool = False) -> datetime:
    """``2h`` (that long ago), ``30m``, ``1d`` or an ISO 8601 time with an offset -> an aware UTC datetime.

    A time without an offset is refused (the same words must mean the same moment on every
    machine) unless ``local``: then a date (``2026-11-28``, its midnight) or a date and time
    without an offset is in the local time zone (``TZ``). A time outside the years 1 to 9999 in
    UTC (``999999999d`` ago) is refused too.
    """
    from ..config import parse_duration  # here: the config's imports are not --help's

    text = text.strip()
    try:
        seconds: float | None = parse_duration(text)
    except ValueError:
        seconds = None
    try:
        moment = datetime.fromisoformat(text) if seconds is None else None
    except ValueError:
        raise ValueError(f"bad time {text!r}: give {_FORMS[local]}") from None
    if moment is not None and moment.tzinfo is None and not local:
        raise ValueError(f"time {text!r} has no offset: add one (+00:00 for UTC, or Z) so that it is unambiguous")
    try:
        if moment is None:
            return (now or datetime.now(UTC)) - timedelta(seconds=seconds or 0)
        return (moment if moment.tzinfo else moment.astimezone()).astimezone(UTC)
    except (OverflowError, ValueError):  # ValueError: a local time whose UTC is year 0 or 10000
        raise ValueError(f"time {text!r} is out of range: it must fall within the years 1 to 9999 (UTC)") from None


_FORMS = {
    False: "a duration ago (30m, 2h, 1d) or an ISO 8601 time with an offset (2026-11-28T09:00:00+00:00)",
    True: "a date (2026-11-28), a date and time (2026-11-28T09:00, local unless it ends in an offset such as "
    "+00:00 or Z) or a duration ago (30m, 2h, 1d)",
}


class When(_MomentParam):
    """A click parameter for ``--since``/``--until``: see :func:`parse_when` (``local``: a time
    without an offset is local)."""

    name = "when"

    def __init__(self, local: bool = False) -> None:
        self.local = local

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            return parse_when(str(value), local=self.local)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


WHEN = When()
LOCAL_WHEN = When(local=True)


def stored(moment: datetime) -> str:
    """A moment as the store writes it (UTC, microseconds, offset), for comparing with stored text."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _moment(value: str) -> datetime | None:
    """A stored time as an aware datetime (a time without an offset is UTC: meshbridge has only ever
    stored UTC), or None when it is not a time at all."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def shown(value: str | datetime | None, utc: bool = False, timespec: str = "seconds") -> str:
    """A stored time for people: local zone (or UTC) with its offset, e.g. ``2026-11-28 12:00:05+00:00``.

    Text that is not a time is returned as it is (never a traceback for a damaged row).
    """
    if not value:
        return ""
    moment = value if isinstance(value, datetime) else _moment(value)
    if moment is None:
        return str(value)
    moment = moment.astimezone(UTC) if utc else moment.astimezone()
    return moment.isoformat(sep=" ", timespec=timespec)


def iso(value: str | None) -> str | None:
    """A stored time for JSON: ISO 8601 with its offset, as stored (UTC); one without an offset gets +00:00."""
    if not value:
        return value
    moment = _moment(value)
    if moment is None or datetime.fromisoformat(value).tzinfo is not None:
        return value
    return moment.isoformat(timespec="microseconds")


def age(value: str | datetime | None, now: datetime | None = None) -> float | None:
    """Seconds since a (stored) time (None when there is none)."""
    moment = value if isinstance(value, datetime) else _moment(value) if value else None
    if moment is None:
        return None
    return ((now or datetime.now(UTC)) - moment).total_seconds()


def spoken(seconds: float) -> str:
    """A duration for people, to the minute: ``3d 4h``, ``2h 05m``, ``12m``, ``40s``."""
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m" if minutes else f"{secs}s"
