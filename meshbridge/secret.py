"""Secrets in the config: ``"literal"``, ``{ env = "NAME" }`` or ``{ file = "path" }``.

A reference is checked when the config is loaded (its shape), and resolved (the variable or the
file read) only when something first needs the value: a MESH session, a destination. So commands
that never contact MESH (``status``, ``messages``, ``show``, ``export``, ``validate``) work without
the secrets; ``run``, ``poll`` and ``send`` resolve every one they need before any work
(:meth:`meshbridge.config.Config.require`). A secret that cannot be resolved is a
:class:`~meshbridge.errors.ConfigError` naming the file and the key, never the value.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import ConfigError

Check = Callable[[str], "str | None"]  # a resolved value -> the problem with it, or None


class Secret:
    """A secret value, resolved on first :meth:`reveal`. Its text never appears in ``repr``,
    ``str`` or exceptions. ``where`` is its config key (``mesh.shared_key``), named by the errors
    of resolving it."""

    __slots__ = ("_resolve", "_value", "where")

    def __init__(self, value: str | None = None, *, resolve: Callable[[], str] | None = None) -> None:
        if value is None and resolve is None:
            raise ValueError("a Secret needs a value or a way to resolve it")
        self._value, self._resolve = value, resolve
        self.where = ""

    def reveal(self) -> str:
        """The value (resolved now if it was not yet: raises ConfigError if it cannot be)."""
        if self._value is None:
            assert self._resolve is not None
            self._value = self._resolve()
        return self._value

    @property
    def resolved(self) -> bool:
        return self._value is not None

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return False
        if self.resolved and other.resolved:
            return other._value == self._value
        return self is other  # comparing never resolves a secret

    def __hash__(self) -> int:
        return 0  # stable whether resolved or not (equal secrets must hash alike)


def reference(value: Any, file: Path, where: str, check: Check | None = None) -> tuple[Secret, str | None]:
    """A :class:`Secret` for a config value at key ``where``, and the environment variable it
    names (if any). A malformed reference, or a literal that ``check`` refuses, raises now; an
    unset variable, an unreadable file or a resolved value ``check`` refuses raise when revealed,
    naming the secret's ``where`` then (the loader sets it to the secret's key once it is known)."""
    secret: Secret | None = None

    def fail(problem: str) -> ConfigError:
        return ConfigError(str(file), secret.where if secret is not None else where, problem)

    def checked(resolved: str) -> str:
        problem = check(resolved) if check else None
        if problem:
            raise fail(problem)
        return resolved

    def located(made: Secret) -> Secret:
        nonlocal secret
        secret, made.where = made, where
        return made

    if isinstance(value, str):
        return located(Secret(checked(value))), None
    if isinstance(value, dict) and set(value) == {"env"} and isinstance(value["env"], str):
        name = value["env"]

        def from_env() -> str:
            resolved = os.environ.get(name)
            if not resolved:
                raise fail(f"environment variable {name} is not set")
            return checked(resolved)

        return located(Secret(resolve=from_env)), name
    if isinstance(value, dict) and set(value) == {"file"} and isinstance(value["file"], str):
        path = Path(value["file"]).expanduser()
        if not path.is_absolute():
            path = file.parent / path

        def from_file() -> str:
            try:
                resolved = path.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise fail(f"cannot read secret file {path}: {exc.strerror}") from None
            except UnicodeDecodeError:
                raise fail(f"secret file {path} is not UTF-8 text") from None
            if not resolved:
                raise fail(f"secret file {path} is empty")
            return checked(resolved)

        return located(Secret(resolve=from_file)), None
    raise fail('expected a string, { env = "NAME" } or { file = "path" }')


def readable(file: Path, where: str, path: Path) -> None:
    """A file MESH needs (client certificate, key, CA bundle) must be readable when it is needed."""
    if not os.access(path, os.R_OK):
        problem = "does not exist" if not path.exists() else "is not readable"
        raise ConfigError(str(file), where, f"file {path} {problem}")
