"""Who may call the API: named bearer tokens (``[[web.tokens]]``), each with a role.

========== ====== ====== ===================================== =========
role       read   submit ack, nack, retry, replay, download    /metrics
========== ====== ====== ===================================== =========
viewer     yes    no     no                                    yes
submitter  yes    yes    no                                    yes
operator   yes    no     yes                                   yes
admin      yes    yes    yes                                   yes
========== ====== ====== ===================================== =========

A submitter reads too (an integration engine follows up what it submitted), and so does an
operator. A request without a token, or with one no entry has, is 401 with ``WWW-Authenticate``;
a token whose role does not allow the action is 403. Every configured secret is compared with
:func:`hmac.compare_digest`, all of them each time, so the time taken says nothing of which
came close. A token's text is never logged nor echoed.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from enum import StrEnum

from ..actors import API, Actor
from ..config import ConfigError, Token


class Permission(StrEnum):
    READ = "read"  # lists, lookups, a message and its timeline, status counts, /metrics
    SUBMIT = "submit"  # a payload on a route
    OPERATE = "operate"  # ack, nack, retry, replay
    DOWNLOAD = "download"  # a stored payload's bytes


ROLES: dict[str, frozenset[Permission]] = {
    "viewer": frozenset({Permission.READ}),
    "submitter": frozenset({Permission.READ, Permission.SUBMIT}),
    "operator": frozenset({Permission.READ, Permission.OPERATE, Permission.DOWNLOAD}),
    "admin": frozenset(Permission),
}


@dataclass(frozen=True)
class Caller:
    """The token a request came with: its name and role."""

    name: str
    role: str

    def may(self, permission: Permission) -> bool:
        return permission in ROLES[self.role]

    @property
    def actor(self) -> Actor:
        """Who the timeline names for what this caller does."""
        return Actor(self.name, API)


class Tokens:
    """The configured tokens, their secrets resolved once (a missing one is a ConfigError now)."""

    def __init__(self, tokens: list[Token], file: str = "") -> None:
        self._known: list[tuple[bytes, Caller]] = []
        seen: dict[bytes, str] = {}
        for i, token in enumerate(tokens):
            secret = token.secret.reveal().encode()
            if secret in seen:
                raise ConfigError(file, f"web.tokens[{i}].secret", f"the same secret as token {seen[secret]!r}")
            seen[secret] = token.name
            self._known.append((secret, Caller(token.name, token.role)))

    def __len__(self) -> int:
        return len(self._known)

    def caller(self, authorization: str | None) -> Caller | None:
        """The caller an ``Authorization: Bearer …`` header names, or None (no header, another
        scheme, or a token no entry has)."""
        if not authorization:
            return None
        scheme, _, given = authorization.partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            return None
        offered = given.strip().encode("utf-8", "replace")
        found = None
        for secret, caller in self._known:  # every one compared, whichever matches
            if hmac.compare_digest(secret, offered):
                found = caller
        return found
