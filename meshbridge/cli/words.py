"""Words on the command line: text arguments (UTF-8 only), and a command printed for a shell to run."""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    _TextParam = click.ParamType[str, object]
else:  # ParamType is generic only in recent click; older click cannot subscript it at run time
    _TextParam = click.ParamType


class Utf8(_TextParam):
    """Text that names something in the store (a key, a route, a workflow id): an argument whose bytes
    are not UTF-8 (Python keeps them as lone surrogates) is a usage error, not a traceback from the database."""

    name = "text"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        try:
            text.encode()
        except UnicodeEncodeError:
            self.fail(f"{text!a} is not UTF-8 text", param, ctx)
        return text


TEXT = Utf8()


def shell_command(words: list[str]) -> str:
    """``words`` as one printable line a shell runs as them: quoted by :func:`shlex.quote`, and a word
    with a control or format character (a peer's newline) as ``$'…'`` with escapes (bash, zsh, ksh),
    so that the line still names the same text."""
    return " ".join(shlex.quote(word) if word.isprintable() else _ansi_c(word) for word in words)


_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _ansi_c(word: str) -> str:
    """``word`` quoted as ``$'…'``: backslash and quote escaped, each character that is not printable as
    ``\\xHH`` (ASCII) or ``\\uHHHH``/``\\UHHHHHHHH`` (the shell's escapes for a character, not a byte)."""
    return "$'" + "".join("\\" + c if c in "\\'" else c if c.isprintable() else _escape(ord(c)) for c in word) + "'"


def _escape(code: int) -> str:
    if chr(code) in _NAMED:
        return _NAMED[chr(code)]
    if 0xDC80 <= code <= 0xDCFF:  # a byte of an argument that was not UTF-8 (Python's surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x80 else f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"
