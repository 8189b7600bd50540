"""MESH transport on NHS England's ``mesh-client``: one :class:`MeshMailbox` per mailbox.

It knows MESH only: no store, no ITK. Sends stream each chunk from a reader (memory stays
bounded by one chunk); downloads stream each chunk to a caller's writer and decode it by its own
``Content-Encoding`` (never by ``mex-Content-Compressed``, which the sandbox sets whenever it
serves gzip). Every failure becomes a :class:`TransportError` whose text names the mailbox and
the problem, never a secret.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from http import HTTPStatus
from types import TracebackType
from typing import Any, BinaryIO, Literal, Self, TypeVar, cast
from urllib.parse import quote

import requests
import urllib3
from mesh_client import DEFAULT_MEDIA_TYPE, MeshClient, MeshError, MeshRetry
from mesh_client.io_helpers import GzipCompressStream

from ._version import __version__
from .config import DEFAULT_CHUNK_SIZE, Mailbox, MeshConfig
from .errors import MeshAuthRefused, MeshRejected, TransportError, UndecodableBody
from .mesh_private import session
from .printable import without_userinfo
from .telemetry import MeshCalls

T = TypeVar("T")
PAGE_SIZE = 500  # MESH's maximum page of inbox ids
READ_SIZE = 1024 * 1024
MESH_CHUNK_MAX = DEFAULT_CHUNK_SIZE  # MESH takes at most 100 MB in one request: no chunk it stores is bigger
RATIO_FLOOR = 1024 * 1024  # a chunk that decodes to at most 1 MiB is never refused for its compression ratio
# MESH's answers (HTTP 403) when it refuses the caller's login rather than the request: the token
# (a wrong password or shared key, or unreadable), the mailbox (unknown to MESH, inactive)
LOGIN_REFUSALS = (
    "invalid authentication token",
    "error reading from authorization header",
    "mailbox id does not match token",
    "duplicated authentication token",
    "no mailbox matched",
    "inactive mailbox",
)
LOGIN_HINT = "MESH refused the login (check the mailbox password and [mesh] shared_key)"


class _Retry(MeshRetry):
    """mesh-client's retry policy, except that the answer it gives up on is read and its
    connection given back to the pool: mesh-client raises for a send it does not retry (a POST
    to the outbox) before urllib3 can do that, so its socket stayed open until garbage collected."""

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: urllib3.BaseHTTPResponse | None = None,
        error: Exception | None = None,
        _pool: urllib3.connectionpool.ConnectionPool | None = None,
        _stacktrace: TracebackType | None = None,
    ) -> Self:
        try:
            return cast(Self, super().increment(method, url, response, error, _pool, _stacktrace))
        except urllib3.exceptions.ResponseError:
            if response is not None:
                response.drain_conn()
                response.release_conn()
            raise


@dataclass(frozen=True)
class Envelope:
    """The mex-* headers of a downloaded message."""

    message_id: str
    message_type: str  # DATA or REPORT
    sender: str | None
    recipient: str | None
    workflow_id: str | None
    filename: str | None
    local_id: str | None
    subject: str | None
    content_type: str | None
    linked_message_id: str | None
    status_code: str | None
    status_event: str | None
    status_description: str | None
    chunks: int

    @property
    def is_report(self) -> bool:
        return self.message_type.upper() == "REPORT"

    @classmethod
    def from_headers(cls, message_id: str, headers: Any, chunks: int) -> Envelope:
        def mex(name: str) -> str | None:
            return headers.get(f"mex-{name}") or None

        return cls(
            message_id=mex("MessageID") or message_id,
            message_type=(mex("MessageType") or "DATA").upper(),
            sender=mex("From"),
            recipient=mex("To"),
            workflow_id=mex("WorkflowID"),
            filename=mex("FileName"),
            local_id=mex("LocalID"),
            subject=mex("Subject"),
            content_type=mex("Content-Type") or headers.get("Content-Type"),
            linked_message_id=mex("LinkedMsgID"),
            status_code=mex("StatusCode"),
            status_event=mex("StatusEvent"),
            status_description=mex("StatusDescription"),
            chunks=chunks,
        )


class _Slice:
    """A file-like window of ``length`` bytes on a reader, from where the reader stands: with a
    length so requests can stream it, ``tell``/``seek`` so a retry can rewind it, ``on_read``
    called after each read (an upload in progress reads: the sender's heartbeat) and ``at`` with
    the reader's offset after it (progress)."""

    def __init__(
        self,
        reader: BinaryIO,
        length: int,
        on_read: Callable[[], None] | None = None,
        at: Callable[[int], None] | None = None,
    ) -> None:
        self._reader, self._left, self._length, self._on_read, self._at = reader, length, length, on_read, at
        self._start = reader.tell()

    def __len__(self) -> int:
        return self._length

    def tell(self) -> int:
        return self._length - self._left

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence != 0 or not 0 <= offset <= self._length:
            raise OSError(f"cannot seek a chunk of {self._length} bytes to {offset} (whence {whence})")
        self._reader.seek(self._start + offset)
        self._left = self._length - offset
        return offset

    def read(self, n: int | None = -1) -> bytes:
        if self._left <= 0:
            return b""
        n = self._left if n is None or n < 0 else min(n, self._left)
        data = self._reader.read(n)
        self._left -= len(data)
        if self._on_read:
            self._on_read()
        if self._at:
            self._at(self._start + self.tell())
        return data


def header_text(value: str) -> str:
    """Text for a MESH header (HTTP carries Latin-1 only): each character beyond it, such as the
    curly apostrophe (U+2019) of a file name, written as ``%XX`` of its UTF-8 bytes."""
    return "".join(c if ord(c) < 0x100 else _percent(c) for c in value)


def _percent(char: str) -> str:
    return "".join(f"%{b:02X}" for b in char.encode("utf-8", "surrogatepass"))


def chunk_count(size: int, chunk_size: int) -> int:
    return max(1, math.ceil(size / chunk_size))


class MeshMailbox:
    """One authenticated MESH mailbox."""

    def __init__(self, mesh: MeshConfig, mailbox: Mailbox, calls: MeshCalls | None = None) -> None:
        """``calls`` counts its calls (a Bridge's metrics); without it, on a registry of its own."""
        self.id = mailbox.id
        self.calls = calls or MeshCalls(mailbox.id)
        self.chunk_size = mesh.chunk_size
        self.compress = mesh.compress
        self.limits = DecodeLimits(mesh.max_decoded_size, mesh.max_compression_ratio)
        cert: tuple[str, str] | None = None
        if mesh.client_cert and mesh.client_key:
            cert = (str(mesh.client_cert), str(mesh.client_key))
        self._client = MeshClient(
            mesh.url,
            mailbox.id,
            mailbox.password.reveal(),
            shared_key=mesh.shared_key.reveal().encode(),
            cert=cert,
            verify=str(mesh.ca_bundle) if mesh.ca_bundle else None,
            check_hostname=mesh.check_hostname,
            max_chunk_size=mesh.chunk_size,
            timeout=mesh.timeout,
            application_name=f"meshbridge=={__version__}",
            proxies=requests.utils.get_environ_proxies(mesh.url) or None,
            # mesh-client's retry policy, except that a server's Retry-After is not obeyed blindly:
            # urllib3 would sleep for any value it is given, stalling a poll for as long as it says.
            max_retries=_Retry(
                total=3,
                backoff_factor=0.5,
                status_forcelist=(425, 429, 502, 503, 504),
                allowed_methods=("HEAD", "GET", "PUT", "POST", "DELETE", "OPTIONS", "TRACE"),
                respect_retry_after_header=False,
            ),
        )
        # requests re-reads the proxy environment on every request (~0.7 ms each here); the
        # proxies were read once above, and the CA bundle comes from [mesh] ca_bundle, not the env.
        self._wire = session(self._client)  # mesh-client's private session: see mesh_private
        self._wire.http.trust_env = False
        self._wire.http.hooks["response"].append(self.calls.responded)  # each answer, by status

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> MeshMailbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- calls ----------------------------------------------------------------------------

    def handshake(self) -> None:
        """Validate the mailbox (MESH asks for this once a day)."""
        with self._errors("handshake", op="handshake"):
            self._client.handshake()

    def send(
        self,
        open_payload: Callable[[], BinaryIO],
        size: int,
        *,
        to: str,
        workflow_id: str,
        local_id: str | None = None,
        filename: str | None = None,
        subject: str | None = None,
        content_type: str | None = None,
        resume: tuple[str, int] | None = None,
        on_chunk: Callable[[str, int, int], None] | None = None,
        on_read: Callable[[], None] | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> str:
        """Send a payload, chunked above ``chunk_size``; return the MESH message id.

        ``on_chunk(message_id, n, total)`` is called after chunk n is accepted, so a caller can
        record progress (or stop between chunks by raising); ``resume=(message_id, n)`` continues
        an upload after chunk n. ``on_read()`` is called as each chunk's body is read on its way
        out, block by block: progress within a chunk (a caller's heartbeat). ``progress(done, size)``
        follows the payload's bytes as they are read, for a chunked payload only.
        """
        total = chunk_count(size, self.chunk_size)
        at = (lambda offset: progress(offset, size)) if progress and total > 1 else None
        headers = {
            k: header_text(v)
            for k, v in {
                "workflow_id": workflow_id,
                "local_id": local_id,
                "filename": filename,
                "subject": subject,
                "content_type": content_type,
            }.items()
            if v
        }
        message_id, done = resume if resume else (None, 0)
        took = self.calls.timed_send()
        with open_payload() as reader:
            reader.seek(done * self.chunk_size)
            for n in range(done + 1, total + 1):
                length = min(self.chunk_size, size - (n - 1) * self.chunk_size)
                chunk = _Slice(reader, length, on_read, at)
                operation = "send" if n == 1 else "send_chunk"
                with self._errors(f"send chunk {n}/{total} to {to}", about_message=n > 1, op=operation):
                    if n == 1:
                        response = self._client.send_chunk(to, chunk, 1, total, compress=self.compress, **headers)
                        message_id = self._sent_id(response, to)
                    else:
                        assert message_id is not None
                        self._send_later_chunk(to, chunk, n, total, message_id)
                assert message_id is not None
                self.calls.sent(length)
                if at:
                    at((n - 1) * self.chunk_size + length)
                if on_chunk:
                    on_chunk(message_id, n, total)
        assert message_id is not None
        took()
        return message_id

    def _send_later_chunk(self, to: str, chunk: _Slice, n: int, total: int, message_id: str) -> None:
        """Upload chunk n > 1, streamed and rewound on a retry (mesh-client's ``send_chunk`` would
        copy it into memory first, so the upload itself would read nothing: no heartbeat).

        MESH answers 423 once the last chunk has arrived (the message is final): when the answer
        to that last chunk was lost and it is sent again (mesh-client's own retry, or a resumed
        send), 423 plus a tracking status past ``uploading`` means it got there."""
        headers = {"Content-Type": DEFAULT_MEDIA_TYPE, "Mex-Chunk-Range": f"{n}:{total}"}
        body = chunk
        if self.compress:  # gzip is not seekable: compressed into memory, as mesh-client does
            packed = GzipCompressStream(chunk).read()
            body = _Slice(io.BytesIO(packed), len(packed), chunk._on_read)
            headers["Content-Encoding"] = "gzip"
        url = f"{self._client.mailbox_url}/outbox/{quote(message_id)}/{n}"
        try:
            response = self._wire.http.post(url, data=body, headers=headers, timeout=self._wire.timeout)
            if response.status_code not in (200, 202):
                response.raise_for_status()
        except requests.HTTPError as exc:
            if n < total or exc.response is None or exc.response.status_code != 423 or not self._final(message_id):
                raise

    def _final(self, message_id: str) -> bool:
        try:
            status = str(self._client.track_message(message_id).get("status") or "").lower()
        except (requests.RequestException, urllib3.exceptions.HTTPError, ValueError):
            return False
        return status not in ("", "uploading")

    def _sent_id(self, response: requests.Response, to: str) -> str:
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code in (200, 202) and isinstance(body, dict) and body.get("message_id"):
            return str(body.get("message_id") or body.get("messageID"))
        code, event, text = _error_of(body, response)
        if login_refused(response.status_code, code, text):
            said = f"HTTP {response.status_code} {code} {text}".replace("  ", " ").strip()
            raise MeshAuthRefused(f"MESH mailbox {self.id}: cannot send to {to}: {said}: {LOGIN_HINT}", self.id)
        raise MeshRejected(
            f"MESH refused the send from {self.id} to {to}: {code} {text}".replace("  ", " "), code, event
        )

    def find_sent(self, local_id: str) -> str | None:
        """The MESH id of a message this mailbox sent with ``local_id``, or None if MESH has none.

        Uses MESH's tracking by local id (a v1 endpoint), so a send whose answer was lost (a
        timeout, a crash) can be recognised instead of sent twice.
        """
        url = f"{self._client.mailbox_url}/outbox/tracking/{local_id}"
        with self._errors(f"look up local id {local_id}", op="find_sent"):
            response = self._wire.http.get(
                url, headers={"Accept": "application/vnd.mesh.v1+json"}, timeout=self._wire.timeout
            )
            if response.status_code == 404:
                return None
            if response.status_code == 300:  # sending again could make one more duplicate
                raise TransportError(
                    f"MESH mailbox {self.id}: several messages carry local id {local_id}: "
                    "cannot tell which attempt got through"
                )
            response.raise_for_status()
            body = response.json()
        status = str(body.get("status", "")).lower()
        if status in ("error", "undeliverable") and not body.get("messageId"):  # not a state: MESH's status
            return None
        return str(body.get("messageId") or body.get("message_id") or "") or None

    def inbox(self) -> Iterator[str]:
        """Every message id waiting in the inbox, following MESH's pages (500 ids each)."""
        self.calls.listing()
        with self._errors("list the inbox", op="inbox"):
            for message_id in self._client.iterate_message_ids(batch_size=PAGE_SIZE):
                self.calls.listed(message_id)
                yield message_id
        self.calls.listing_done()

    def download(
        self,
        message_id: str,
        write: Callable[[Iterable[bytes]], T],
        *,
        raw: Callable[[bytes], None] | None = None,
        progress: Callable[[int, int | None], None] | None = None,
    ) -> tuple[Envelope, T]:
        """Stream a message, all chunks in order and decoded, into ``write``; return its envelope and write's result.

        ``raw`` gets every block as received, before decoding (a copy of an undecodable body). A body
        that cannot be decoded (corrupt or cut-short gzip, over ``[mesh] max_decoded_size`` or
        ``max_compression_ratio``) is read to its end, raw, and :class:`UndecodableBody` raised with
        the sha256 of the raw bytes. ``progress(done, total)`` follows a chunked message's bytes as
        received (see :class:`meshbridge.progress.Progress`).
        """
        with self._errors(f"download {message_id}", about_message=True, op="download"):
            first = self._client.retrieve_message_chunk(message_id, 1)
            chunk_range = first.headers.get("mex-Chunk-Range") or "1:1"
            try:
                total = int(chunk_range.split(":")[1])
            except (IndexError, ValueError):
                raise TransportError(f"MESH sent a bad mex-Chunk-Range {chunk_range!r} for {message_id}") from None
            envelope = Envelope.from_headers(message_id, first.headers, total)
            body = _Body(
                lambda n: self._client.retrieve_message_chunk(message_id, n),
                first,
                total,
                self.limits,
                raw,
                progress if total > 1 else None,
            )
            try:
                result = write(self.calls.counted(body.decoded()))
            except _BadBody as exc:
                body.drain()
                raise UndecodableBody(
                    f"MESH mailbox {self.id}: cannot download {message_id}: {exc}", envelope, body.sha256(), body.size
                ) from None
            finally:
                body.close()
        return envelope, result

    def acknowledge(self, message_id: str) -> None:
        """Remove a message from the inbox. Call only once its bytes and row are durable."""
        with self._errors(f"acknowledge {message_id}", about_message=True, op="acknowledge"):
            self._client.acknowledge_message(message_id)
        self.calls.acknowledged(message_id)

    def track(self, message_id: str) -> dict[str, Any]:
        """The tracking record of a message this mailbox sent."""
        with self._errors(f"track {message_id}", op="track"):
            return dict(self._client.track_message(message_id))

    # -- errors ---------------------------------------------------------------------------

    def _errors(self, doing: str, about_message: bool = False, op: str = "other") -> _ErrorContext:
        return _ErrorContext(self.id, doing, about_message, self.calls, op)


def login_refused(status: int, code: str, text: str, about_message: bool = False) -> bool:
    """Is this answer MESH refusing our login (not the request)? 401; 403 with one of MESH's
    authentication answers; or any 403 on a call about no one message (a handshake, the inbox, a
    first chunk, tracking): a 403 on a download, acknowledge or later chunk without one may be
    about that message (someone else's), so it is not taken for a refused login."""
    if status == 401:
        return True
    if status != 403:
        return False
    said = f"{code} {text}".lower()
    return not about_message or "epl-151" in said or any(answer in said for answer in LOGIN_REFUSALS)


class _ErrorContext:
    """Turns requests / mesh-client errors into TransportError with a one-line reason
    (:class:`MeshAuthRefused` when MESH refused the login, see :func:`login_refused`)."""

    def __init__(
        self, mailbox: str, doing: str, about_message: bool = False, calls: MeshCalls | None = None, op: str = "other"
    ) -> None:
        self.mailbox, self.doing, self.about_message = mailbox, doing, about_message
        self.calls, self.op = calls, op
        self._call: list[str] | None = None

    def __enter__(self) -> None:
        if self.calls:
            self._call = self.calls.begin(self.op)

    def __exit__(self, typ: type | None, exc: BaseException | None, tb: object) -> Literal[False]:
        if self.calls and self._call is not None:
            self.calls.end(self._call, exc)
        if exc is None or isinstance(exc, TransportError):
            return False
        where = f"MESH mailbox {self.mailbox}: cannot {self.doing}"
        if isinstance(exc, MeshError):
            body = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], dict) else {}
            code, event, text = _error_of(body, None)
            if any(answer in f"{code} {text or exc.args[0]}".lower() for answer in LOGIN_REFUSALS):
                raise MeshAuthRefused(f"{where}: {text or exc.args[0]}: {LOGIN_HINT}", self.mailbox) from None
            raise MeshRejected(f"{where}: {code} {text or exc.args[0]}".strip(), code, event) from None
        if isinstance(exc, requests.HTTPError) and exc.response is not None:
            try:
                body = exc.response.json()
            except ValueError:
                body = {}
            code, event, text = _error_of(body, exc.response)
            status = exc.response.status_code
            if login_refused(status, code, text, self.about_message):
                said = f"HTTP {status} {code} {text}".replace("  ", " ").strip()
                raise MeshAuthRefused(f"{where}: {said}: {LOGIN_HINT}", self.mailbox) from None
            hint = " (check the mailbox password and [mesh] shared_key)" if status == 403 else ""
            raise TransportError(f"{where}: HTTP {status} {code} {text}{hint}".replace("  ", " ")) from None
        if isinstance(exc, _BadBody):
            raise TransportError(f"{where}: {exc}") from None
        if isinstance(exc, requests.RequestException | urllib3.exceptions.HTTPError | OSError):
            # mesh-client's retry re-raises urllib3's own errors, not requests' wrappers
            raise TransportError(f"{where}: {exc.__class__.__name__}: {_reason(exc)}") from None
        return False


_PHRASES = {s.value: s.phrase for s in HTTPStatus}


class _BadBody(Exception):
    """A downloaded body that cannot be decoded whole (corrupt, cut short, or over a size limit)."""


@dataclass(frozen=True)
class DecodeLimits:
    """How far one gzip chunk may inflate: an absolute size and a ratio to its compressed size."""

    max_size: int
    max_ratio: float

    def check(self, decoded: int, compressed: int, what: str) -> None:
        if decoded > self.max_size:
            raise _BadBody(f"{what} decodes to more than {self.max_size} bytes ([mesh] max_decoded_size)")
        if decoded > max(RATIO_FLOOR, self.max_ratio * compressed):
            raise _BadBody(
                f"{what} inflates more than {self.max_ratio:g} times its {compressed} compressed bytes "
                "([mesh] max_compression_ratio): a gzip bomb?"
            )


class _Body:
    """The chunks of one download: raw blocks counted, hashed and copied to ``raw``; decoded on request.

    ``progress(done, total)`` after each block: raw bytes so far, and the expected raw size (the
    chunks received, this one's Content-Length, and the first one's for each chunk still to come).
    """

    def __init__(
        self,
        fetch: Callable[[int], requests.Response],
        first: requests.Response,
        total: int,
        limits: DecodeLimits,
        raw: Callable[[bytes], None] | None,
        progress: Callable[[int, int | None], None] | None = None,
    ) -> None:
        self._fetch, self._response, self._total, self._limits, self._copy = fetch, first, max(total, 1), limits, raw
        self._n = 1
        self._current: Iterator[bytes] = iter(())
        self._digest, self.size = hashlib.sha256(), 0
        self._progress, self._expected = progress, _length(first)
        self._first = self._expected

    def _raw(self, n: int, gzipped: bool) -> Iterator[bytes]:
        seen, bound = 0, gzip_bound(MESH_CHUNK_MAX) if gzipped else MESH_CHUNK_MAX
        for block in iter(lambda: self._response.raw.read(READ_SIZE), b""):
            seen += len(block)
            if seen > bound:
                served = f" ({bound} gzip-encoded)" if gzipped else ""
                raise _BadBody(f"chunk {n}/{self._total} is over MESH's {MESH_CHUNK_MAX} bytes per chunk{served}")
            self._digest.update(block)
            self.size += len(block)
            if self._copy:
                self._copy(block)
            if self._progress:
                self._progress(self.size, self._expected)
            yield block

    def _open(self, n: int) -> Iterator[bytes]:
        length = self._first
        if n > 1:
            self._response.close()
            self._response = self._fetch(n)
            length = _length(self._response)
        if length is not None and self._first is not None:
            self._expected = self.size + length + self._first * (self._total - n)
        self._n, self._current = n, self._raw(n, self._gzipped())
        return self._current

    def _gzipped(self) -> bool:
        return self._response.headers.get("Content-Encoding", "").lower() == "gzip"

    def decoded(self) -> Iterator[bytes]:
        for n in range(1, self._total + 1):
            raw = self._open(n)
            if self._gzipped():
                yield from _gunzip(raw, f"chunk {n}/{self._total}", self._limits)
            else:
                yield from raw

    def drain(self) -> None:
        """Read the rest of the body raw (bounded per chunk), so its sha256 covers all of it."""
        try:
            for _ in self._current:
                pass
            for n in range(self._n + 1, self._total + 1):
                for _ in self._open(n):
                    pass
        except _BadBody:  # a chunk over MESH's size: the hash covers what was read
            pass

    def sha256(self) -> str:
        return self._digest.hexdigest()

    def close(self) -> None:
        self._response.close()  # a failed read: the connection is not reused


def gzip_bound(size: int) -> int:
    """The most bytes gzip can make of ``size`` bytes: zlib's own ``deflateBound()`` (deflate.c) for
    its default windowBits and memLevel, the ones Python's gzip (which mesh-sandbox uses to gzip a
    chunk stored plain), mesh-client, Java and Node use, plus gzip's 10-byte header and 8-byte trailer.

    Incompressible input costs most: zlib stores it in blocks of about 16 KiB (its memLevel-8 symbol
    buffer), 5 bytes of block header each, not in 64 KiB blocks. 100,000,000 random bytes gzip to
    100,030,523 (64 KiB blocks would give 100,007,648); the bound is 100,030,544.
    """
    return size + (size >> 12) + (size >> 14) + (size >> 25) + 13 - 6 + 18


def _length(response: requests.Response) -> int | None:
    """A chunk's Content-Length (its raw bytes), or None."""
    value = response.headers.get("Content-Length", "")
    return int(value) if value.isdigit() else None


def _gunzip(blocks: Iterable[bytes], what: str, limits: DecodeLimits) -> Iterator[bytes]:
    """Decompress a gzip body (one or more members), to its end: a cut-short stream is an error.

    (mesh-client's GzipDecompressStream returns whatever it got, so a body cut short where the
    transport cannot tell, e.g. by a middlebox, would be stored and acknowledged.) Output stops
    before it passes ``limits``: nothing over them is ever written.
    """
    decoder, started, decoded, compressed = zlib.decompressobj(47), False, 0, 0
    try:
        for block in blocks:
            compressed += len(block)
            data = b""
            while block or len(data) == READ_SIZE:  # input left, or output still pending
                if decoder.eof and block:  # another gzip member follows
                    decoder = zlib.decompressobj(47)
                started = True
                data = decoder.decompress(block, READ_SIZE)  # bounded: no gzip bomb in memory
                decoded += len(data)
                limits.check(decoded, compressed, what)
                if data:
                    yield data
                block = decoder.unconsumed_tail or decoder.unused_data
    except zlib.error as exc:
        raise _BadBody(f"{what} is not valid gzip: {exc}") from None
    if started and not decoder.eof:
        raise _BadBody(f"{what} was cut short: its gzip stream has no end")


def _reason(exc: BaseException) -> str:
    """The innermost cause of a requests / urllib3 error on one line, without pool or socket reprs."""
    while True:
        inner = exc.args[0] if exc.args and isinstance(exc.args[0], BaseException) else None
        inner = inner or getattr(exc, "reason", None)
        if not isinstance(inner, BaseException):
            break
        exc = inner
    text = str(exc)
    if isinstance(exc, urllib3.exceptions.ProtocolError) and len(exc.args) == 2:
        # ('Connection aborted.', RemoteDisconnected(..)), ('Connection broken: IncompleteRead(..)', IncompleteRead)
        first, cause = str(exc.args[0]), str(exc.args[1])
        text = first if cause in first else f"{first.rstrip('.')}: {cause}"
    elif status := re.fullmatch(r"too many (\d{3}) error responses", text):  # mesh-client's (retries spent)
        text = f"HTTP {status[1]} {_PHRASES.get(int(status[1]), '')}"
    text = re.sub(r"\w*(?:Connection|ConnectionPool)\(host='[^']*', port=\d+\): |<[^<>]* object at 0x\w+>: ", "", text)
    return " ".join(without_userinfo(text).split()) or exc.__class__.__name__


def _error_of(body: Any, response: requests.Response | None) -> tuple[str, str, str]:
    """``(code, event, text)`` from any of MESH's error shapes (v1, v2, FastAPI, plain)."""
    if isinstance(body, dict):
        if "errorCode" in body or "errorDescription" in body:
            return (
                str(body.get("errorCode", "")),
                str(body.get("errorEvent", "")),
                str(body.get("errorDescription", "")),
            )
        detail = body.get("detail")
        if isinstance(detail, list) and detail and isinstance(detail[0], dict):
            d = detail[0]
            return str(d.get("code", "")), str(d.get("event", "")), str(d.get("msg", ""))
        if "message" in body:
            return "", "", str(body["message"]).splitlines()[0]
    if response is not None:
        return "", "", response.reason or ""
    return "", "", ""
