"""Folder sources: completely written files become outbound messages, then move aside.

A file is taken when it is *complete*, by either convention:

- **temp name, then rename** (preferred): write ``letter.xml.part`` (or ``.tmp``, or a name
  starting with ``.``) and rename it to ``letter.xml`` when done; such names are never taken;
- **stable size**: a file whose size and modification time have not changed for ``settle``
  seconds (``[service] source_settle``, default 2 s) is taken as complete.

Once stored (bytes and row durable) the file is stat'ed again: if its size, modification time or
inode changed meanwhile (its writer was not done after all), the stored copy is discarded unsent
(state ``discarded``) and the file waits to settle again. Otherwise it moves to
``<folder>/.meshbridge/sent/`` (or ``rejected/`` when validation refused it, an empty file too,
with the findings in the store). A name that is not UTF-8 is stored and sent with each such byte
as ``%XX``, a C0 control too (see :func:`text_name`). A file is never taken
twice: the store remembers each file's name, inode, modification time and sha256, so after a
crash between storing and moving, the next scan only moves it aside; and two processes scanning
one folder cannot both store it (the store checks and inserts in one transaction).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from .errors import (
    DiskFull,
    MeshbridgeError,
    PayloadError,
    PayloadRejected,
    SourceChanged,
    SourceTaken,
    TransportError,
)
from .faults import checkpoint
from .models import Message, State
from .store import Store, StoredMessage

log = logging.getLogger("meshbridge")

TEMP_SUFFIXES = (".part", ".partial", ".tmp", ".temp", "~")
ASIDE = ".meshbridge"
SENT_ASIDE, REJECTED_ASIDE = "sent", "rejected"  # the folders in it a taken file is moved to
NAME_MAX = 255  # bytes in one file name (ext4, xfs, tmpfs, btrfs)


def is_temporary(path: Path) -> bool:
    return path.name.startswith(".") or path.name.lower().endswith(TEMP_SUFFIXES)


@dataclass
class ScanReport:
    stored: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def complete_files(folder: Path, settle: float) -> list[Path]:
    """Files in ``folder`` (not below it) that are finished being written, oldest first."""
    now = time.time()
    ready = []
    for entry in os.scandir(folder):
        path = Path(entry.path)
        if not entry.is_file(follow_symlinks=False) or is_temporary(path):
            continue
        try:
            stat = entry.stat(follow_symlinks=False)
        except FileNotFoundError:  # another process took it between the listing and now
            continue
        if now - stat.st_mtime >= settle:
            ready.append((stat.st_mtime, path))
    return [path for _, path in sorted(ready)]


def open_regular(path: Path, *, follow: bool = True) -> BinaryIO:
    """Open a payload file for reading, refusing anything but a regular file (a FIFO or device
    would block or never end) and, with ``follow=False``, a symbolic link: a file in a source
    folder swapped for a link to ``/etc/shadow`` after the scan saw it is never read."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP and not follow:
            raise PayloadError(f"{path} is not a regular file (a symbolic link)") from None
        raise
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise PayloadError(f"{path} is not a regular file ({_KINDS.get(stat.S_IFMT(mode), 'special')})")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


_KINDS = {stat.S_IFDIR: "a folder", stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a device", stat.S_IFBLK: "a device"}


def text_name(name: str) -> str:
    """A file name as text for the store and MESH: each byte that is not UTF-8 (which the file
    system hands over as a lone surrogate) written ``%XX``, e.g. ``caf%E9.txt``, and so is each C0
    control (a line break, a tab), which MESH refuses in its headers: ``new%0Aline.txt``."""
    return "".join(
        f"%{ord(c) - 0xDC00:02X}" if "\udc80" <= c <= "\udcff" else f"%{ord(c):02X}" if c < " " else c for c in name
    )


def change_since(path: Path, opened: os.stat_result) -> str | None:
    """How the file at ``path`` differs from the one opened as ``opened`` (its inode, size or
    modification time), or None. A file gone from ``path`` is not a change: another process that
    found it stored moved it aside."""
    try:
        now = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return None
    if (now.st_dev, now.st_ino) != (opened.st_dev, opened.st_ino):
        return "it was replaced by another file"
    if now.st_size != opened.st_size:
        return f"its size went from {opened.st_size} to {now.st_size} bytes"
    if now.st_mtime_ns != opened.st_mtime_ns:
        return "it was modified"
    return None


def discard_if_changed(store: Store, path: Path, opened: os.stat_result, message: StoredMessage) -> None:
    """A source file stat'ed again once stored as ``message``: if it changed since it was opened
    (its writer was not done), the stored copy is ``discarded`` unsent and :class:`SourceChanged`
    raised; the file waits to settle again and is then taken anew."""
    change = change_since(path, opened)
    if change is None:
        return
    reason = f"the source file changed after it was stored ({change}): discarded unsent"
    store.transition(
        message.id,
        State.DISCARDED,
        from_states=(State.SENDING, State.REJECTED),
        detail={"reason": reason, "source_file": message.source_file},
        source_file=None,  # (the key is unique in the store: the file is taken anew)
        last_error=reason,
    )
    store.close_expectations(message.id, State.DISCARDED)
    raise SourceChanged(f"{reason} as {message.id}; it waits to settle again", message.id)


def source_key(path: Path) -> tuple[str, os.stat_result]:
    """``<path>@<inode>:<mtime ns>@<sha256>``: the same file (not just the same name and bytes),
    and the file's status as it was hashed.

    After a crash the file left behind has the same key and is only moved aside; a new file
    dropped later under the same name, even with the same bytes, is a new message.
    """
    digest = hashlib.sha256()
    with open_regular(path, follow=False) as f:
        info = os.fstat(f.fileno())
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return f"{text_name(str(path))}@{info.st_ino}:{info.st_mtime_ns}@{digest.hexdigest()}", info


def move_aside(path: Path, outcome: str, message_id: str) -> Path:
    """Move a taken file to ``.meshbridge/<outcome>/`` beside it. Those folders are never
    followed if they are symbolic links: whoever can write to the source folder could otherwise
    point ``sent`` at ``/etc/profile.d`` and have meshbridge move their file there."""
    name = _aside_name(message_id, path.name)
    with _own_folder(path.parent, ASIDE) as aside, _own_folder(aside, outcome) as folder:
        os.replace(path, name, dst_dir_fd=folder)
    return path.parent / ASIDE / outcome / name


def _aside_name(message_id: str, name: str) -> str:
    """``<message id>_<name>``, the name cut to fit a file system's 255-byte limit."""
    room = NAME_MAX - len(message_id.encode()) - 1
    return f"{message_id}_{os.fsdecode(os.fsencode(name)[:room])}"


@contextlib.contextmanager
def _own_folder(parent: Path | int, name: str) -> Iterator[int]:
    """A descriptor for folder ``name`` in ``parent`` (a path or a descriptor), made if missing;
    a symbolic link or anything but a folder there is refused."""
    at, base = (parent, name) if isinstance(parent, int) else (None, os.path.join(parent, name))
    with contextlib.suppress(FileExistsError):
        os.mkdir(base, 0o750, dir_fd=at)
    try:
        fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=at)
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
            raise
        raise PayloadError(
            f"{name} in the source folder is not a folder (a symbolic link?): taken files are not moved there"
        ) from None
    try:
        yield fd
    finally:
        os.close(fd)


def scan(
    folder: Path,
    route: str,
    store: Store,
    send: Callable[..., Message],
    settle: float,
    report: ScanReport | None = None,
) -> ScanReport:
    """Take every complete file in ``folder``: store and send it on ``route``, then move it aside."""
    report = report or ScanReport()
    if not folder.is_dir():
        report.problems.append(f"source folder {folder} of route {route} does not exist")
        return report
    for path in complete_files(folder, settle):
        try:
            _take(path, route, store, send, report, settle)
        except FileNotFoundError:  # another process took it and moved it aside meanwhile
            continue
        except OSError as exc:
            report.problems.append(f"source {_shown(path)}: {exc.strerror}")
        except DiskFull as exc:  # the files wait in the folder until the store can write again
            report.problems.append(f"source folder {_shown(folder)}: {exc}; its files wait")
            break
        except MeshbridgeError as exc:
            report.problems.append(f"source {_shown(path)}: {exc}")
    return report


def _shown(path: Path) -> str:
    """A path as it can be printed and logged, whatever bytes its name holds (``caf\\xe9.txt``)."""
    return os.fsencode(path).decode(errors="backslashreplace")


def _take(
    path: Path, route: str, store: Store, send: Callable[..., Message], report: ScanReport, settle: float
) -> None:
    key, info = source_key(path)
    if time.time() - info.st_mtime < settle:  # written to since the folder was listed: it waits again
        return
    already = store.from_source(key)
    if already is not None:  # stored before a crash, never moved aside
        move_aside(path, REJECTED_ASIDE if already.state == State.REJECTED else SENT_ASIDE, already.id)
        return
    try:
        message_id = send(path, route=route, source_file=key).id
    except SourceTaken:  # another process stored it first: it sends it and moves it aside
        return
    except PayloadRejected as exc:
        checkpoint("source:stored")
        move_aside(path, REJECTED_ASIDE, exc.message_id or "unstored")
        report.rejected.append(exc.message_id or path.name)
        return
    except TransportError as exc:  # stored; the next flush sends it
        stored = store.from_source(key)
        if stored is None:
            raise
        message_id = stored.id
        log.debug("source %s stored as %s, not sent yet: %s", path.name, message_id, exc)  # its step's line said
    checkpoint("source:stored")
    move_aside(path, SENT_ASIDE, message_id)
    report.stored.append(message_id)
