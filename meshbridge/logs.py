"""Logging for the command line and the service: text or JSON lines, secrets redacted.

Every line may carry the fields in :data:`FIELDS` (as ``extra``): ``job``, the service job that
logged it (from :data:`JOB`, set by :func:`job`), and for a message's step (see
:mod:`meshbridge.steps`) the step and the message's fields.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from urllib.parse import urlsplit

from .printable import visible

REDACTED = "********"

FIELDS = ("job", "step", "message_id", "route", "mailbox", "peer", "mesh_message_id", "state", "code")

JOB: ContextVar[str | None] = ContextVar("meshbridge_job", default=None)


@contextmanager
def job(name: str) -> Iterator[None]:
    """Lines logged within (in this thread or context) name this job."""
    token = JOB.set(name)
    try:
        yield
    finally:
        JOB.reset(token)


class Context(logging.Filter):
    """Gives every record the :data:`FIELDS` (None unless given as ``extra``), ``job`` from :data:`JOB`."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name in FIELDS:
            if not hasattr(record, name):
                setattr(record, name, JOB.get() if name == "job" else None)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, every one of :data:`FIELDS` (null when it does
    not apply), and the exception, if any. JSON escapes every control character, so a peer's text never
    breaks the line; it is kept exactly as it came."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            entry[name] = getattr(record, name, None)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry)


class Redactor(logging.Filter):
    """Replaces every known secret value in a record's message (with its arguments), fields, exception
    and stack text with ``********``. ``source``, if given, is asked for more values at each record:
    secrets resolved only when first needed (see :mod:`meshbridge.secret`)."""

    def __init__(self, secrets: Iterable[str] = (), source: Callable[[], Iterable[str]] | None = None) -> None:
        super().__init__()
        self._fixed = {s for s in secrets if len(s) >= 4}
        self._source = source
        self._known: tuple[str, ...] = ()
        self._sorted: list[str] = []

    @property
    def secrets(self) -> list[str]:
        """Every value redacted now, longest first."""
        found = tuple(self._source()) if self._source else ()
        if found != self._known or not self._sorted:
            self._known = found
            values = self._fixed | {s for s in found if len(s) >= 4}
            values |= {p for p in map(url_path, values) if p is not None and len(p) >= 4}
            self._sorted = sorted(values, key=len, reverse=True)
        return self._sorted

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            record.msg, record.args = self.scrub(record.getMessage()), None
            for name in FIELDS:
                value = getattr(record, name, None)
                if isinstance(value, str):
                    setattr(record, name, self.scrub(value))
            if record.exc_info and not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            if record.exc_text:
                record.exc_text = self.scrub(record.exc_text)
            if record.stack_info:
                record.stack_info = self.scrub(record.stack_info)
        return True

    def scrub(self, text: str) -> str:
        for secret in self._sorted:
            text = text.replace(secret, REDACTED)
        return text


def url_path(secret: str) -> str | None:
    """The path and query of a secret that is an http(s) URL (a Slack or Teams webhook's secret is
    its path), which a line may name without the scheme and host (urllib3's request lines); None
    for anything else."""
    try:
        parts = urlsplit(secret)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc or (parts.path in ("", "/") and not parts.query):
        return None
    return parts.path + (f"?{parts.query}" if parts.query else "")


class TextFormatter(logging.Formatter):
    """``time LEVEL logger [job]: message (field=value …)``, the time local with its offset, with control
    characters (a peer's text may carry them) shown as escapes: a record is one line, and only a
    traceback adds lines."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(tag)s: %(message)s%(facts)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """Local time with its offset (``2026-11-28 13:30:46.012+00:00``): a time read off a log is
        never ambiguous, across zones or a clock change."""
        return datetime.fromtimestamp(record.created, UTC).astimezone().isoformat(sep=" ", timespec="milliseconds")

    def formatMessage(self, record: logging.LogRecord) -> str:
        running = getattr(record, "job", None)
        record.tag = f" [{running}]" if running else ""
        facts = [f"{name}={getattr(record, name)}" for name in FIELDS[3:] if getattr(record, name, None)]
        record.facts = f" ({' '.join(facts)})" if facts else ""
        return visible(super().formatMessage(record))

    def format(self, record: logging.LogRecord) -> str:
        return "\n".join(visible(line) for line in super().format(record).split("\n"))


def configure(level: str = "WARNING", fmt: str = "text") -> None:
    """One handler, on the root logger (so each record is written once), for the command line."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(Context())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("apscheduler").setLevel(max(logging.WARNING, root.level))
    # urllib3's DEBUG lines name each request's path, and a webhook's path is its secret (Slack,
    # Teams): never written, even at DEBUG (meshbridge's own lines say what was called)
    logging.getLogger("urllib3").setLevel(max(logging.INFO, root.level))


def redact(secrets: Iterable[str] = (), source: Callable[[], Iterable[str]] | None = None) -> None:
    """From now on, no handler prints these values, nor any ``source()`` gives (asked at each record)."""
    redactor = Redactor(secrets, source)
    for handler in logging.getLogger().handlers:
        handler.addFilter(redactor)
