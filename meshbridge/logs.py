"""Logging for the command line and the service: text or JSON lines, secrets redacted."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from .printable import visible

REDACTED = "********"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (and the exception, if any)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry)


class Redactor(logging.Filter):
    """Replaces every known secret value in a record's message (with its arguments), exception
    and stack text with ``********``. ``source``, if given, is asked for more values at each
    record: secrets resolved only when first needed (see :mod:`meshbridge.secret`)."""

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
            self._sorted = sorted(values, key=len, reverse=True)
        return self._sorted

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            record.msg, record.args = self.scrub(record.getMessage()), None
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


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message``, with control characters (a peer's text may carry them) shown as escapes."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        return visible(super().formatMessage(record))


def configure(level: str = "WARNING", fmt: str = "text") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("apscheduler").setLevel(max(logging.WARNING, root.level))


def redact(secrets: Iterable[str] = (), source: Callable[[], Iterable[str]] | None = None) -> None:
    """From now on, no handler prints these values, nor any ``source()`` gives (asked at each record)."""
    redactor = Redactor(secrets, source)
    for handler in logging.getLogger().handlers:
        handler.addFilter(redactor)
