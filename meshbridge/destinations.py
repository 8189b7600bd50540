"""Where inbound payloads go: a folder, an HTTP endpoint or a command.

Each destination takes the payload's blocks and a file name and either delivers or raises
:class:`DeliveryError`. Delivery is idempotent per MESH message id: the folder name is fixed by
that id, so a repeat after a crash overwrites the same file with the same bytes.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import requests

from .errors import MeshbridgeError
from .hookspecs import Destination, hookimpl
from .store.payloads import fsync_dir, secure_dir


class DeliveryError(MeshbridgeError):
    """The destination did not take the payload; it will be tried again."""


def safe_name(mesh_message_id: str, filename: str | None) -> str:
    """``<mesh id>_<sender's file name>`` with anything path-like or odd replaced."""
    base = Path(filename or "").name
    base = re.sub(r"[^A-Za-z0-9._-]", "_", base).lstrip(".")[:120] or "payload.dat"
    return f"{re.sub(r'[^A-Za-z0-9_-]', '_', mesh_message_id)}_{base}"


@hookimpl
def meshbridge_destinations() -> dict[str, Destination]:
    return {"folder": to_folder, "http": to_http, "command": to_command}


def to_folder(folder: str | Path, blocks: Iterable[bytes], name: str, content_type: str | None = None) -> str:
    """Temp file in the same folder, fsync, rename: readers never see a partial file (a batch of one)."""
    batch, outcome = FolderBatch(), []  # type: list[str | DeliveryError]
    batch.add(folder, blocks, name, outcome.append)
    batch.finish()
    if isinstance(outcome[0], DeliveryError):
        raise outcome[0]
    return outcome[0]


@dataclass
class _Staged:
    fd: int
    tmp: Path
    final: Path
    on_done: Callable[[str | DeliveryError], None]


class FolderBatch:
    """Folder deliveries made durable together, for a pass that delivers many small payloads.

    :meth:`add` writes a payload to a hidden temp file in its destination folder
    (``.meshbridge-<tag>-*.part``: it takes the folder's group, ACLs and file system, and a
    rename can always put it in place). :meth:`finish` starts the write-back of every file,
    fsyncs each, renames each to its name and fsyncs each folder once, then calls each
    ``on_done`` with the path or the error: the disk is waited on about once per batch instead of
    twice per file, and a reader never sees a partial file. ``tag`` names the store, so
    :meth:`clean` removes only what a crashed pass of this store left.
    """

    def __init__(self, tag: str = "") -> None:
        self.prefix = f".meshbridge-{tag}-" if tag else ".meshbridge-"
        self.size = 0  # bytes staged
        self._staged: list[_Staged] = []

    def __len__(self) -> int:
        return len(self._staged)

    def clean(self, folders: Iterable[str | Path]) -> None:
        """Remove temp files a crashed pass left (call only while holding the folder's lock: see Bridge)."""
        for folder in folders:
            for leftover in Path(folder).glob(f"{self.prefix}*.part"):
                leftover.unlink(missing_ok=True)

    def add(
        self, folder: str | Path, blocks: Iterable[bytes], name: str, on_done: Callable[[str | DeliveryError], None]
    ) -> None:
        """Stage one delivery (written, not yet durable nor visible under its name)."""
        folder = Path(folder)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=self.prefix, suffix=".part")
            try:
                for block in blocks:
                    _write_all(fd, block)
                    self.size += len(block)
            except BaseException:
                os.close(fd)
                os.unlink(tmp)
                raise
        except OSError as exc:
            raise DeliveryError(f"cannot write to folder {folder}: {exc.strerror}") from None
        self._staged.append(_Staged(fd, Path(tmp), folder / name, on_done))

    def finish(self) -> None:
        """Make every staged file durable under its name, then tell each ``on_done``. Every
        ``on_done`` is called even if one raises; the first exception is raised after them."""
        staged, self._staged, self.size = self._staged, [], 0
        outcome: dict[int, DeliveryError] = {}
        for item in staged:  # start writing every file back before waiting for any
            with contextlib.suppress(OSError, AttributeError):  # advice only (not on every system)
                os.posix_fadvise(item.fd, 0, 0, os.POSIX_FADV_DONTNEED)
        folders: dict[Path, list[_Staged]] = {}
        for item in staged:
            try:
                os.fsync(item.fd)
                os.fchmod(item.fd, 0o640)
                os.replace(item.tmp, item.final)
                folders.setdefault(item.final.parent, []).append(item)
            except OSError as exc:
                item.tmp.unlink(missing_ok=True)
                outcome[id(item)] = DeliveryError(f"cannot write to folder {item.final.parent}: {exc.strerror}")
            finally:
                with contextlib.suppress(OSError):
                    os.close(item.fd)
        for folder, items in folders.items():
            try:
                fsync_dir(folder)
            except OSError as exc:
                for item in items:
                    outcome[id(item)] = DeliveryError(f"cannot write to folder {folder}: {exc.strerror}")
        first: BaseException | None = None
        for item in staged:
            try:
                item.on_done(outcome.get(id(item), str(item.final)))
            except Exception as exc:  # the others are still recorded
                first = first or exc
        if first is not None:
            raise first


def _write_all(fd: int, block: bytes) -> None:
    view = memoryview(block)
    while view:
        view = view[os.write(fd, view) :]


def to_http(url: str, blocks: Iterable[bytes], name: str, content_type: str | None = None) -> str:
    """POST the payload, streamed (chunked transfer encoding: memory stays at one block);
    any 2xx answer means delivered."""
    try:
        response = requests.post(
            url,
            data=iter(blocks),
            headers={"Content-Type": content_type or "application/octet-stream", "X-Meshbridge-Name": name},
            timeout=60,
        )
    except requests.RequestException as exc:
        raise DeliveryError(f"POST {url} failed: {exc.__class__.__name__}") from None
    if not 200 <= response.status_code < 300:
        raise DeliveryError(f"POST {url} answered HTTP {response.status_code}")
    return url


def to_command(command: list[str], blocks: Iterable[bytes], name: str, content_type: str | None = None) -> str:
    """Run the command with ``{path}`` replaced by a private temp copy of the payload; exit 0 = delivered."""
    with tempfile.TemporaryDirectory(prefix="meshbridge-") as tmp:
        path = Path(secure_dir(Path(tmp))) / name
        with path.open("wb") as out:
            for block in blocks:
                out.write(block)
        argv = [arg.replace("{path}", str(path)) for arg in command]
        try:
            done = subprocess.run(argv, capture_output=True, timeout=300, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise DeliveryError(f"command {command[0]} could not run: {exc}") from None
        if done.returncode != 0:
            tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
            raise DeliveryError(f"command {command[0]} exited {done.returncode}: {tail[0][:200]}")
    return " ".join(command)
