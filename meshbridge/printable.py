"""Text for a terminal: what a peer sent, shown as it is, with nothing in it acting on the terminal."""

from __future__ import annotations

import re
import unicodedata

_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/?#@]*@")


def visible(text: object) -> str:
    """``text`` with each control or format character (C0, DEL, C1, bidi overrides, line breaks) as an escape
    such as ``\\x1b``: text from a peer can never move the cursor, recolour or rewrite the terminal."""
    shown = str(text)
    if shown.isprintable():
        return shown
    return "".join(c if c.isprintable() or unicodedata.category(c) == "Zs" else _escape(c) for c in shown)


def _escape(char: str) -> str:
    return char.encode("unicode_escape").decode("ascii")


def without_userinfo(text: str) -> str:
    """``text`` with the user info (``user:password@``) of every URL in it removed: a library's
    error may quote a URL with credentials, e.g. a proxy's from ``HTTPS_PROXY``."""
    return _USERINFO.sub(r"\1", text)
