"""The built-in notifiers of ``[alerts]``: a webhook (JSON POST) and email over SMTP.

Each delivers one :class:`~meshbridge.Notification` and raises :class:`AlertFailed` (a one-line
reason that never holds a secret: no URL, header, username or password) when it was not taken.
The notification's id is the idempotency key: the webhook's ``Idempotency-Key`` header, the
email's ``Message-ID``; a delivery repeated after a crash carries the same one. The dispatcher
(:mod:`meshbridge.dispatching`) calls them, retries and records.
"""

from __future__ import annotations

import hashlib
import json
import re
import smtplib
import socket
import ssl
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate, parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Protocol

import requests

from ._version import __version__
from .destinations import Deadline, post_within
from .errors import AlertFailed
from .events import EventKind, Notification

if TYPE_CHECKING:
    from .config.alerts import AlertsConfig, Email, Webhook

USER_AGENT = f"meshbridge/{__version__}"
SUMMARY_MOST = 1000  # characters of a summary a notifier is sent (Teams refuses big bodies: 413)
FIELD_MOST = 500  # characters of each text in ``detail``
ITEMS_MOST = 20  # items of each list, keys of each table, in ``detail``
DEPTH_MOST = 4  # tables and lists nested in ``detail``; deeper ones are sent as cut text


def retry_after(value: str | None) -> float | None:
    """A ``Retry-After`` header's seconds (a number, or an HTTP date); None if absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class Notifier(Protocol):
    """One configured notifier: its target name and how it delivers a notification."""

    target: str

    def send(self, notification: Notification) -> dict[str, Any]:
        """Deliver it; the facts to record on the timeline (e.g. an HTTP status). Raises :class:`AlertFailed`."""
        ...


SCHEME = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]{0,30}):(?=/)")  # https: ftp: ... before a slash
MAILTO = re.compile(r"(?i)\b(mailto|tel|sip|callto|file):")
DOMAIN = re.compile(r"\b[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z][A-Za-z0-9-]{1,62}\b")  # evil.com, www.x.org
# markdown (Teams) and mrkdwn (Slack) link and code marks, and emphasis marks at a word's edge
# (inside a word, as in a workflow id NO_ROUTE_WF, they emphasise nothing and stay as they are)
MARKUP = re.compile(r"([\\`\[\]|]|(?<![A-Za-z0-9])[*_~]|[*_~](?![A-Za-z0-9]))")


def defanged(text: str) -> str:
    """Peer text made inert for a chat client: markdown marks escaped (``[click](…)`` is no link
    in Teams), URL schemes broken (``https://`` → ``https[:]//``), domains' dots bracketed
    (``evil.com`` → ``evil[.]com``: Slack and Teams link bare domains), and ``&``, ``<``, ``>``
    escaped (Slack's ``<https://x|click>``, ``<!channel>``, ``<@U123>`` and Teams' ``<at>`` stay text)."""
    text = MARKUP.sub(r"\\\1", text)
    text = SCHEME.sub(r"\1[:]", text)
    text = MAILTO.sub(r"\1[:]", text)
    text = DOMAIN.sub(lambda m: m.group(0).replace(".", "[.]"), text)
    return slack_text(text)


def slack_text(text: str) -> str:
    """``&``, ``<`` and ``>`` escaped, as Slack's ``text`` wants (so ``<!channel>`` is no mention)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def cut(text: str, most: int) -> str:
    """``text`` up to ``most`` characters, a cut one marked (the whole is on the message's timeline)."""
    if len(text) <= most:
        return text
    return f"{text[:most]}… [{len(text) - most} more characters cut; all of it: meshbridge show]"


def capped(value: Any, depth: int = 0) -> Any:
    """``detail`` (or a value in it) bounded: each text :data:`FIELD_MOST` characters, each list
    and table :data:`ITEMS_MOST` items, :data:`DEPTH_MOST` deep; each cut marked."""
    if isinstance(value, str):
        return cut(value, FIELD_MOST)
    if isinstance(value, bool | int | float) or value is None:
        return value
    if depth >= DEPTH_MOST or not isinstance(value, Mapping | list | tuple):
        return cut(json.dumps(value, sort_keys=True, default=str), FIELD_MOST)
    if isinstance(value, Mapping):
        items = list(value.items())
        kept = {cut(str(k), 100): capped(v, depth + 1) for k, v in items[:ITEMS_MOST]}
        if len(items) > ITEMS_MOST:
            kept["…"] = f"{len(items) - ITEMS_MOST} more keys cut; all of them: meshbridge show"
        return kept
    listed = [capped(v, depth + 1) for v in value[:ITEMS_MOST]]
    if len(value) > ITEMS_MOST:
        listed.append(f"… {len(value) - ITEMS_MOST} more items cut; all of them: meshbridge show")
    return listed


def body(notification: Notification) -> dict[str, Any]:
    """The JSON a webhook is sent: ``text`` for people (Teams and Slack incoming webhooks show
    it), and the notification's fields as data, each bounded (:func:`cut`, :func:`capped`)."""
    summary = cut(notification.summary, SUMMARY_MOST)
    return {
        "text": f"meshbridge {notification.kind}: {defanged(summary)}",
        "id": notification.id,
        "kind": str(notification.kind),
        "message_id": notification.message_id,
        "summary": summary,
        "detail": capped(dict(notification.detail)),
    }


def digest(notifications: Sequence[Notification], target: str) -> Notification:
    """One notification standing for many (a notifier's sends past ``[alerts] burst`` in a
    pass): how many of each kind, since when, and the first messages. Its id is made from theirs,
    so the same set sent again (after a crash) carries the same idempotency key."""
    counted = Counter(str(n.kind) for n in notifications)
    kinds = ", ".join(f"{n:,} {kind}" for kind, n in counted.most_common())
    ids = sorted(n.id for n in notifications)
    messages = list(dict.fromkeys(n.message_id for n in notifications if n.message_id))
    mailboxes = sorted({str(n.mailbox) for n in notifications if n.mailbox})
    summary = f"and {len(notifications):,} more alerts for {target.split(':', 1)[-1]}: {kinds} (meshbridge messages)"
    detail = {
        "digest": len(notifications),
        "kinds": dict(counted.most_common()),
        "messages": messages[:ITEMS_MOST],
        "mailboxes": mailboxes[:ITEMS_MOST],
        "alerts": ids[:ITEMS_MOST],
    }
    key = hashlib.sha256("\n".join([target, *ids]).encode()).hexdigest()[:32]
    return _digest_of(EventKind(counted.most_common(1)[0][0]), summary, detail, key)


def _digest_of(kind: EventKind, summary: str, detail: dict[str, Any], key: str) -> Notification:
    """A digest, of the kind most of its notifications are."""
    return Notification(kind, None, summary, detail, key)


class WebhookNotifier:
    """``[[alerts.webhooks]]``: POST :func:`body` as JSON, no redirects, within the timeout."""

    def __init__(self, config: Webhook, timeout: float) -> None:
        self.config, self.timeout = config, timeout
        self.target = f"webhook:{config.name}"

    def send(self, notification: Notification) -> dict[str, Any]:
        headers = {name: secret.reveal() for name, secret in self.config.headers.items()}
        headers |= {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "Idempotency-Key": notification.id,
        }
        data = json.dumps(body(notification), sort_keys=True, default=str).encode()
        try:  # one total deadline, the answer's body never read (a receiver may trickle or flood it)
            answer = post_within(self.config.url.reveal(), data, headers, self.timeout)
        except requests.Timeout:
            raise AlertFailed(f"no answer within {self.timeout:g} s") from None
        except (requests.RequestException, ValueError) as exc:  # its text names the URL: the type only
            raise AlertFailed(f"not reached ({type(exc).__name__})") from None
        if answer.status_code == 429:  # throttled (Slack): wait as long as it asks, at least
            wait = retry_after(answer.headers.get("Retry-After"))
            raise AlertFailed("answered HTTP 429" + (f", retry after {wait:g} s" if wait is not None else ""), wait)
        if not 200 <= answer.status_code < 300:
            raise AlertFailed(f"answered HTTP {answer.status_code}")
        return {"status": answer.status_code}


class EmailNotifier:
    """``[[alerts.email]]``: one mail per notification over SMTP (STARTTLS, then login)."""

    def __init__(self, config: Email, timeout: float) -> None:
        self.config, self.timeout = config, timeout
        self.target = f"email:{config.name}"

    def message(self, notification: Notification) -> EmailMessage:
        mail = EmailMessage()
        summary = " ".join(notification.summary.split())  # one line: a header never takes a newline
        mail["Subject"] = f"[meshbridge] {notification.kind}: {summary[:160]}"
        mail["From"] = self.config.sender
        mail["To"] = ", ".join(self.config.to)
        mail["Date"] = formatdate(localtime=False)
        mail["Message-ID"] = f"<{notification.id}@meshbridge>"
        mail["X-Meshbridge-Kind"] = str(notification.kind)
        facts = json.dumps(capped(dict(notification.detail)), indent=2, sort_keys=True, default=str)
        about = f"Message: {notification.message_id}\n" if notification.message_id else ""
        mail.set_content(f"{cut(notification.summary, SUMMARY_MOST)}\n\n{about}Kind: {notification.kind}\n\n{facts}\n")
        return mail

    def send(self, notification: Notification) -> dict[str, Any]:
        config = self.config
        secrets = [s.reveal() for s in (config.username, config.password) if s is not None]
        deadline = Deadline(self.timeout)  # the whole exchange: a server trickling replies cannot hold it
        try:
            with deadline, _WatchedSMTP(config.host, config.port, timeout=self.timeout) as smtp:
                if config.starttls:
                    context = ssl.create_default_context(cafile=str(config.ca_bundle) if config.ca_bundle else None)
                    smtp.starttls(context=context)
                if config.username is not None and config.password is not None:
                    smtp.login(secrets[0], secrets[1])
                refused = smtp.send_message(self.message(notification))
        except smtplib.SMTPNotSupportedError:
            raise AlertFailed(f"{config.host}:{config.port} does not offer STARTTLS") from None
        except (smtplib.SMTPException, OSError) as exc:
            if deadline.expired:
                raise AlertFailed(f"{config.host}:{config.port}: no answer within {self.timeout:g} s") from None
            raise AlertFailed(_scrubbed(f"{config.host}:{config.port}: {type(exc).__name__}: {exc}", secrets)) from None
        if refused:
            return {"refused": sorted(refused)}
        return {"to": len(config.to)}


class _WatchedSMTP(smtplib.SMTP):
    """An SMTP client whose connection is put under the current :class:`~.destinations.Deadline`."""

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        sock = socket.create_connection((host, port), timeout, self.source_address)  # (what smtplib does)
        Deadline.watch(sock)
        return sock


def _scrubbed(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "********")
    return " ".join(text.split())[:300]


def notifiers(config: AlertsConfig) -> Mapping[str, Notifier]:
    """The configured notifiers by target (``webhook:NAME``, ``email:NAME``)."""
    made: list[Notifier] = [WebhookNotifier(w, config.timeout) for w in config.webhooks]
    made += [EmailNotifier(e, config.timeout) for e in config.email]
    return {n.target: n for n in made}


def kinds(config: AlertsConfig) -> dict[str, frozenset[str]]:
    """The kinds each notifier (by target) is sent."""
    found = {f"webhook:{w.name}": frozenset(w.kinds) for w in config.webhooks}
    return found | {f"email:{e.name}": frozenset(e.kinds) for e in config.email}
