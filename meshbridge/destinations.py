"""Where inbound payloads go: a folder, an HTTP endpoint or a command.

Each destination takes the payload's blocks and a file name and either delivers or raises
:class:`DeliveryError`. Delivery is idempotent per MESH message id: the folder name is fixed by
that id, so a repeat after a crash overwrites the same file with the same bytes.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import weakref
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, ClassVar

import requests
import requests.adapters
import requests.auth
import urllib3
import urllib3.connection

from .config import DELIVERY_TIMEOUT, HEADER_VALUE, DestinationOptions
from .errors import DeliveryError  # (importable from here too, as plugins did)
from .hookspecs import Destination, hookimpl
from .printable import without_userinfo
from .store.payloads import fsync_dir, secure_dir


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
    batch = FolderBatch()
    outcome: list[str | DeliveryError] = []
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


def deliver(
    kind: str,
    destination: Destination,
    target: Any,
    blocks: Iterable[bytes],
    name: str,
    content_type: str | None,
    options: DestinationOptions,
) -> str:
    """Make one delivery to a route's destination of ``kind``: the built-in ``http`` and ``command``
    get the route's options, any other (folder, a plugin's) is called as
    ``destination(target, blocks, name, content_type)``."""
    if destination is to_http:
        return to_http(target, blocks, name, content_type, options)
    if destination is to_command:
        return to_command(target, blocks, name, content_type, options)
    return destination(target, blocks, name, content_type)


# -- HTTP ------------------------------------------------------------------------------------


def to_http(
    url: str,
    blocks: Iterable[bytes],
    name: str,
    content_type: str | None = None,
    options: DestinationOptions | None = None,
) -> str:
    """POST the payload, streamed (chunked transfer encoding: memory stays at one block); any 2xx
    answer means delivered. Redirects are not followed (a 3xx is a failure naming the Location)
    and the whole exchange has one total deadline, ``options.timeout``."""
    options = options or DestinationOptions()
    timeout = options.timeout or DELIVERY_TIMEOUT
    shown = shown_url(url)
    if not content_type or not HEADER_VALUE.fullmatch(content_type):  # the sender's: may be anything
        content_type = "application/octet-stream"
    headers = {"Content-Type": content_type, "X-Meshbridge-Name": name}
    headers.update({header: value.reveal() for header, value in options.headers.items()})
    auth = (options.auth[0], options.auth[1].reveal()) if options.auth else _NO_AUTH
    try:
        response = post_within(url, iter(blocks), headers, timeout, auth)
    except _DeadlinePassed:
        raise DeliveryError(f"POST {shown} took more than its {timeout:g}s deadline") from None
    except (requests.RequestException, ValueError) as exc:
        reason = _scrub(transport_reason(exc), options).replace(url, shown)
        raise DeliveryError(f"POST {shown} failed: {_without_query(reason, url)}") from None
    if 300 <= response.status_code < 400:
        where = _scrub(_redirect_target(url, response.headers.get("Location")), options)  # it may echo a secret
        raise DeliveryError(f"POST {shown} answered HTTP {response.status_code}, a redirect to {where} (not followed)")
    if not 200 <= response.status_code < 300:
        raise DeliveryError(f"POST {shown} answered HTTP {response.status_code}")
    return shown


class _DeadlinePassed(requests.Timeout):
    """:func:`post_within`'s total deadline was up before the answer's status and headers came."""


def post_within(url: str, data: Any, headers: dict[str, str], timeout: float, auth: Any = None) -> requests.Response:
    """POST ``data`` and return the answer with its body unread (closed: only its status and
    headers), within one total deadline of ``timeout`` seconds (:class:`_DeadlinePassed`; an
    endpoint that trickles bytes cannot hold it longer). No redirect is followed, nor even
    looked for, and without ``auth`` no credentials are sent (none from ``~/.netrc``)."""
    with _PostOnlySession() as session, Deadline(timeout) as deadline:
        adapter = _DeadlineAdapter()
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        try:
            response = session.post(
                url,
                data=data,
                headers=headers,
                auth=auth or _NO_AUTH,
                timeout=timeout,  # each step; the deadline bounds them all together
                allow_redirects=False,
                stream=True,  # the answer's body is never read: a status line and headers are enough
            )
            response.close()
        except (requests.RequestException, ValueError):
            if deadline.expired:
                raise _DeadlinePassed(f"no answer within {timeout:g}s") from None
            raise
    return response


class _PostOnlySession(requests.Session):
    """A session that never looks for a redirect: even with ``allow_redirects=False`` requests
    prepares the next request, reading the whole body of the 3xx answer into memory (an endpoint
    could send gigabytes) and parsing its Location (a bad one would hide the 3xx behind an error)."""

    def get_redirect_target(self, resp: requests.Response) -> str | None:
        return None


def _redirect_target(url: str, location: str | None) -> str:
    """Where a 3xx answer points, as it may be printed (``nowhere`` without a Location)."""
    if not location:
        return "nowhere"
    try:
        return shown_url(urllib.parse.urljoin(url, location))
    except ValueError:
        return "(an unreadable URL)"


def _scrub(text: str, options: DestinationOptions) -> str:
    """No secret in an error's text, whatever a library put there: neither the destination's
    nor a proxy's from the environment (``HTTPS_PROXY=http://user:password@proxy``), nor the user
    info of any URL quoted in it."""
    secrets = [value.reveal() for value in options.headers.values()]
    secrets += [options.auth[1].reveal()] if options.auth else []
    secrets += _proxy_credentials()
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "********")
    return without_userinfo(text)


def _without_query(text: str, url: str) -> str:
    """No query or fragment of the URL (where tokens hide) in a library's text that quotes it."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:  # (refused at config load)
        return text
    for hidden in sorted(filter(None, (parts.query, parts.fragment)), key=len, reverse=True):
        text = text.replace(hidden, "...")
    return text


def _proxy_credentials() -> list[str]:
    """The user info (``user:password``) and passwords of the proxies the environment names."""
    found = []
    for proxy in urllib.request.getproxies().values():
        userinfo, at, _ = proxy.rpartition("//")[2].rpartition("@")
        if at and userinfo:
            found += [userinfo, urllib.parse.unquote(userinfo.partition(":")[2])]
    return [secret for secret in found if secret]


def shown_url(url: str) -> str:
    """A URL as printed and stored: scheme, host, port and path; never user info, a query or a
    fragment (where credentials hide). A query is shown as ``?...``."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(an unreadable URL)"
    host = urllib.parse.quote(parts.hostname or "", safe=".-_:%")
    host = f"[{host}]" if ":" in host else host
    path = urllib.parse.quote(parts.path, safe="/%:@!$&'()*+,;=-._~")[:200]
    scheme = parts.scheme if parts.scheme in ("http", "https") else urllib.parse.quote(parts.scheme[:20])
    return f"{scheme}://{host[:200]}{port}{path}{'?...' if parts.query else ''}"


def transport_reason(exc: BaseException) -> str:
    """The innermost useful reason in an exception chain, e.g. ``certificate verify failed:
    self-signed certificate`` rather than ``SSLError``."""
    chain: list[BaseException] = []
    link: object = exc
    while isinstance(link, BaseException) and all(link is not seen for seen in chain):
        chain.append(link)
        reason = getattr(link, "reason", None)  # urllib3 keeps the cause of a MaxRetryError here
        wrapped = next((arg for arg in link.args if isinstance(arg, BaseException)), None)
        link = link.__cause__ or (reason if isinstance(reason, BaseException) else None) or wrapped or link.__context__
    for link in reversed(chain):
        if text := _describe(link):
            return text[:300]  # (it may quote what the endpoint sent)
    return exc.__class__.__name__


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
        return f"certificate verify failed: {exc.verify_message}"
    if isinstance(exc, OSError) and exc.strerror and not isinstance(exc, ssl.SSLError):
        return exc.strerror
    text = re.sub(r"^\[SSL(: [A-Z0-9_]+)?\] ", "", str(exc))
    return re.sub(r" \(_ssl\.c:\d+\)$", "", text).strip()


class _NoAuth(requests.auth.AuthBase):
    """No credentials at all: without an ``auth``, requests would look in ``~/.netrc``."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        return request


_NO_AUTH = _NoAuth()


class Deadline:
    """The total time one delivery may take. When it is up, every socket the delivery opened is
    shut down, so whatever send or read is blocked on it fails at once (a per-read timeout would
    let an endpoint that trickles a byte at a time hold the delivery for ever)."""

    _current: ContextVar[Deadline | None] = ContextVar("meshbridge_delivery_deadline", default=None)

    def __init__(self, seconds: float) -> None:
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> Deadline:
        self._token = self._current.set(self)
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        self._current.reset(self._token)
        with self._lock:
            for sock in self._sockets:
                sock.close()
            self._sockets.clear()

    @classmethod
    def watch(cls, sock: socket.socket) -> None:
        """Put a newly connected socket under the current deadline, if there is one."""
        deadline = cls._current.get()
        if deadline is None:
            return
        with deadline._lock:
            # a second descriptor for the same socket: shutting it ends the connection whatever
            # object urllib3 or ssl holds for it then (an SSL handshake takes the first one over)
            watched = sock.dup()
            deadline._sockets.append(watched)
            if deadline.expired:
                _shut(watched)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


class _WatchedHTTPConnection(urllib3.connection.HTTPConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        Deadline.watch(sock)
        return sock


class _WatchedHTTPSConnection(urllib3.connection.HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        Deadline.watch(sock)
        return sock


class _WatchedPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedTlsPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class _DeadlineAdapter(requests.adapters.HTTPAdapter):
    """requests' adapter whose connections are put under the current :class:`Deadline`."""

    _pools: ClassVar[dict[str, type]] = {"http": _WatchedPool, "https": _WatchedTlsPool}

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = self._pools

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):  # SOCKS has pools of its own (per-step timeouts only)
            manager.pool_classes_by_scheme = self._pools
        return manager


# -- command ---------------------------------------------------------------------------------


def to_command(
    command: list[str],
    blocks: Iterable[bytes],
    name: str,
    content_type: str | None = None,
    options: DestinationOptions | None = None,
) -> str:
    """Run the command with ``{path}`` replaced by a private temp copy of the payload; exit 0 =
    delivered. It runs in a process group of its own with a minimal environment (``PATH``,
    ``LANG`` and the names in ``options.env``); when it exits, or at the deadline, whatever is
    left of its group is killed."""
    options = options or DestinationOptions()
    timeout = options.timeout or DELIVERY_TIMEOUT
    with tempfile.TemporaryDirectory(prefix="meshbridge-") as tmp, tempfile.TemporaryFile() as stderr:
        path = Path(secure_dir(Path(tmp))) / name
        with path.open("wb") as out:
            for block in blocks:
                out.write(block)
        argv = [arg.replace("{path}", str(path)) for arg in command]
        try:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,  # files, not pipes: a child left running cannot hold them open
                stderr=stderr,
                env=command_environment(options.env),
                start_new_session=True,
            )
        except OSError as exc:
            raise DeliveryError(f"command {command[0]} could not run: {exc.strerror or exc}") from None
        _Groups.started(process.pid)
        if not _run_bounded(process, timeout):
            raise DeliveryError(
                f"command {command[0]} did not finish within its {timeout:g}s deadline (its process group was killed)"
            )
        if process.returncode != 0:
            raise DeliveryError(f"command {command[0]} exited {process.returncode}: {_last_line(stderr)}")
    return " ".join(command)


def command_environment(names: Iterable[str]) -> dict[str, str]:
    """``PATH``, ``LANG`` and the named variables that are set: never meshbridge's own secrets."""
    env = {"PATH": os.environ.get("PATH", os.defpath), "LANG": os.environ.get("LANG", "C.UTF-8")}
    env.update({name: os.environ[name] for name in names if name in os.environ})
    return env


def _run_bounded(process: subprocess.Popen[bytes], timeout: float) -> bool:
    """Wait for the command until the deadline, kill what is left of its process group, reap it.
    True if it exited in time. It is left unreaped until then, so its pid still names its group."""
    deadline = time.monotonic() + timeout
    pause = 0.001
    exited = False
    while not exited:
        exited = os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
        left = deadline - time.monotonic()
        if exited or left <= 0:
            break
        time.sleep(min(pause, left))
        pause = min(pause * 2, 0.05)
    _kill_group(process.pid)
    process.wait()
    _Groups.ended(process.pid)
    return exited


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


class _Groups:
    """The process groups of the commands running now, by the thread that runs each: a delivery
    that is interrupted or abandoned, and the service when it stops, kill theirs (see
    :func:`kill_commands`), so no command outlives meshbridge's record of its delivery."""

    lock = threading.Lock()
    running: ClassVar[dict[int, threading.Thread]] = {}  # process group id -> the thread running it
    ran: ClassVar[weakref.WeakSet[threading.Thread]] = weakref.WeakSet()  # threads that started a command
    abandoned: ClassVar[weakref.WeakSet[threading.Thread]] = weakref.WeakSet()

    @classmethod
    def started(cls, pgid: int) -> None:
        thread = threading.current_thread()
        with cls.lock:
            cls.ran.add(thread)
            cls.running[pgid] = thread
            if thread not in cls.abandoned:
                return
        _kill_group(pgid)  # its delivery was given up while it was starting

    @classmethod
    def ended(cls, pgid: int) -> None:
        with cls.lock:
            cls.running.pop(pgid, None)


def kill_commands(thread: threading.Thread | None = None) -> bool:
    """SIGKILL the process groups of the commands ``thread`` runs (every thread's when None), and
    of any it starts from now on. True when ``thread`` has run a command destination."""
    with _Groups.lock:
        if thread is not None:
            _Groups.abandoned.add(thread)
        groups = [pgid for pgid, runner in _Groups.running.items() if thread in (None, runner)]
        ran = thread in _Groups.ran if thread is not None else bool(groups)
    for pgid in groups:
        _kill_group(pgid)
    return ran


def _last_line(stderr: IO[bytes]) -> str:
    """The last line the command wrote to its standard error (from the file's last 4 KiB)."""
    stderr.seek(max(0, stderr.seek(0, os.SEEK_END) - 4096))
    lines = stderr.read().decode(errors="replace").strip().splitlines()
    return lines[-1][:200] if lines else ""
