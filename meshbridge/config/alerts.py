"""``[alerts]``: the built-in notifiers (webhooks, email over SMTP), which kinds each is sent, and
how hard the dispatcher tries (docs/alerts.md)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator, model_validator

from ..events import EventKind
from .types import ConfigPath, Deadline, Duration, Flag, SecretRef, Table, Text, Whole, problem

# Every kind but ``rejected``: an outbound payload refused by validation is told to its submitter at once.
DEFAULT_KINDS: tuple[str, ...] = tuple(k.value for k in EventKind if k is not EventKind.REJECTED)


def _kinds(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(k, str) for k in value):
        raise ValueError("expected a list of notification kinds")
    known = {k.value for k in EventKind}
    for kind in value:
        if kind not in known:
            raise ValueError(f"{kind!r} is not a notification kind (known: {', '.join(sorted(known))})")
    return value


class Notifier(Table):
    """What every notifier has: a name (on the timeline) and the kinds it is sent."""

    name: Text
    kinds: list[str] = Field(default_factory=lambda: list(DEFAULT_KINDS))
    """The notification kinds sent here (default: all but ``rejected``)."""

    @field_validator("kinds", mode="before")
    @classmethod
    def _known_kinds(cls, value: Any) -> list[str]:
        return _kinds(value)


class Webhook(Notifier):
    """``[[alerts.webhooks]]``: a JSON POST per notification (a body Teams and Slack incoming webhooks take)."""

    url: SecretRef
    """The webhook's URL: a secret (Teams' and Slack's hold their token), never logged."""
    headers: dict[str, SecretRef] = Field(default_factory=dict)
    """Extra request headers, each a secret reference (e.g. ``Authorization``)."""


class Email(Notifier):
    """``[[alerts.email]]``: a mail per notification over SMTP."""

    host: Text
    port: Whole = 587
    starttls: Flag = True
    """Upgrade the connection with STARTTLS before logging in (refused if the server cannot)."""
    ca_bundle: ConfigPath | None = None
    """CA certificates to check the server's certificate with (default: the system's)."""
    username: SecretRef | None = None
    password: SecretRef | None = None
    sender: Text = Field(alias="from")
    to: list[str] = Field(min_length=1)

    @model_validator(mode="after")
    def _login_whole(self) -> Email:
        if (self.username is None) != (self.password is None):
            raise problem("username and password are given together", at="password" if self.username else "username")
        return self


class AlertsConfig(Table):
    """``[alerts]``: notifiers, and the dispatcher that sends them what the outbox holds."""

    webhooks: list[Webhook] = Field(default_factory=list)
    email: list[Email] = Field(default_factory=list)
    interval: Duration = 10.0
    """How often the service's dispatcher looks for notifications to send."""
    attempts: Whole = 10
    """Attempts per notifier and notification; then it is given up (on the message's timeline)."""
    backoff: Duration = 30.0
    """The wait after a failed attempt, doubled after each (up to ``backoff_max``)."""
    backoff_max: Duration = 3600.0
    timeout: Deadline = 10.0
    """The deadline of one attempt (connect, send, answer)."""
    burst: Whole = 10
    """Sends per notifier per pass; the rest due for it then go as one digest (docs/alerts.md)."""
    certificate_warning: Duration = 30 * 86400.0
    """``certificate-expiring`` when the MESH client certificate (or its CA) expires within this."""

    @model_validator(mode="after")
    def _names_unique(self) -> AlertsConfig:
        seen: set[str] = set()
        for table, notifiers in (("webhooks", self.webhooks), ("email", self.email)):
            for i, notifier in enumerate(notifiers):
                if notifier.name in seen:
                    raise problem(f"notifier {notifier.name!r} is named twice", at=f"{table}[{i}].name")
                seen.add(notifier.name)
        return self
