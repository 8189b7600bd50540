"""``export``: a stored payload's bytes, as stored, checked against their sha256.

The bytes are streamed (one block in memory, however big the payload). To a file (``-o``) they are
written to a temporary name beside it, synced, and only then given its name, so a failed export
(a changed or missing payload, a full disk) leaves no file behind, never a partial one. To stdout
they are checked once before the first byte is written, and again as they are written.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .output import echo, fail
from .session import bridge_for
from .words import TEXT

if TYPE_CHECKING:
    from ..reader import Exported, Reading

NO_LINK = (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK)  # no hard links here


@click.command()
@click.argument("message_id", type=TEXT)
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to FILE (default: stdout)."
)
@click.option("--force", is_flag=True, help="Replace FILE if it exists.")
@click.pass_context
def export(ctx: click.Context, message_id: str, output: Path | None, force: bool) -> None:
    """Write a message's stored payload (by meshbridge id or MESH message id), checked against its sha256.

    Any message, inbound or outbound. The bytes are those stored: for an outbound ITK message,
    the ITK3 Bundle it was wrapped in (what MESH carried), not the payload given to ``send``.
    Without -o the bytes go to stdout, which must not be a terminal. -o FILE is written whole
    or not at all (mode 0600); an existing FILE is replaced only with --force.
    Exit 0 written; 1 the payload is missing, changed or removed by retention (no file left);
    2 stdout is a terminal, or FILE exists.
    """
    if output is None and sys.stdout.isatty():
        fail("a payload is bytes, not for a terminal: give -o FILE, or redirect stdout to a file or a pipe", 2)
    if output is not None and not force and os.path.lexists(output):
        fail(f"{output} exists: give --force to replace it", 2)
    if output is not None and force and (kind := special(output)):
        fail(f"{output} is {kind}, not a regular file: --force replaces only a file (for stdout, leave out -o)", 2)
    with bridge_for(ctx) as bridge:
        if output is None:
            to_stdout(bridge, message_id)
            return
        exported = to_file(bridge, message_id, output, force)
    echo(f"{exported.message_id}: {exported.size} bytes written to {output}")


def special(path: Path) -> str | None:
    """What is at ``path`` if it is there and not a regular file (a link is not followed), else None."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return None
    if stat.S_ISREG(mode):
        return None
    kinds = {stat.S_IFLNK: "a symbolic link", stat.S_IFIFO: "a FIFO", stat.S_IFSOCK: "a socket"}
    return kinds.get(stat.S_IFMT(mode), "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a folder")


def to_stdout(bridge: Reading, message_id: str) -> None:
    """Check the payload whole, then stream it to stdout (checked again as it goes)."""
    out = sys.stdout.buffer
    try:
        bridge.export(message_id, out, check_first=True)
        out.flush()
    except BrokenPipeError:  # the reader went away (``| head``): not an error of ours to print
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)


def to_file(bridge: Reading, message_id: str, output: Path, force: bool) -> Exported:
    """Write the payload to a temp file beside ``output``, sync it, then give it its name."""
    import tempfile  # here: --help need not load it

    folder = output.parent
    try:
        fd, name = tempfile.mkstemp(dir=folder, prefix=f".{output.name}.", suffix=".part")
    except OSError as exc:
        fail(f"cannot write in {folder}: {exc.strerror}", 1)
    temp = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            exported = bridge.export(message_id, out)  # raises at the end if the sha256 does not match
            out.flush()
            os.fsync(out.fileno())
        place(temp, output, force)
        return exported
    except OSError as exc:
        fail(f"cannot write {output}: {exc.strerror}", 1)
    finally:
        temp.unlink(missing_ok=True)


def place(temp: Path, output: Path, force: bool) -> None:
    """Give the finished temp file its name: replacing what is there only with ``force``, else
    atomically refusing (a hard link fails if the name was taken meanwhile)."""
    if force:
        os.replace(temp, output)
        return
    try:
        os.link(temp, output)
    except FileExistsError:
        fail(f"{output} exists: give --force to replace it", 2)
    except OSError as exc:
        if exc.errno not in NO_LINK:
            raise
        if os.path.lexists(output):
            fail(f"{output} exists: give --force to replace it", 2)
        os.replace(temp, output)
