"""Where inbound payloads go: a folder, an HTTP endpoint or a command.

Each destination takes the payload's blocks and a file name and either delivers or raises
:class:`DeliveryError`. Delivery is idempotent per MESH message id: the folder name is fixed by
that id, so a repeat after a crash overwrites the same file with the same bytes.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from collections.abc import Iterable
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
    """Temp file in the same folder, fsync, rename: readers never see a partial file."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".meshbridge-", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out:
                for block in blocks:
                    out.write(block)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, 0o640)
            os.replace(tmp, folder / name)
            fsync_dir(folder)
        finally:
            Path(tmp).unlink(missing_ok=True)
    except OSError as exc:
        raise DeliveryError(f"cannot write to folder {folder}: {exc.strerror}") from None
    return str(folder / name)


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
