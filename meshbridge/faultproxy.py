"""A loopback HTTP fault proxy: put it between a MESH client and a MESH server to break things on purpose.

It forwards every request to ``upstream`` (both bodies streamed, ``Content-Length`` or chunked) and,
when a :class:`Rule` matches the method and the request target (path and query), injects a
:class:`Fault` instead::

    with FaultProxy(sandbox.url) as proxy:           # proxy.url goes in [mesh] url
        proxy.add("POST", r"/outbox$", drop_after())  # MESH takes the message, the answer is lost
        proxy.add("GET", r"/inbox/", truncate(100), times=2)
        ...
        assert proxy.fired("POST", r"/outbox$") == 1

Never forwarded: :func:`answer` (e.g. 429 or 503), :func:`reset` (TCP RST) and ``delay(s,
upstream=False)`` (a black hole). Forwarded, so upstream did the work, then the answer is lost:
``answer(502, after=True)``, :func:`drop_after`, ``delay(s)`` (held past the client's timeout) and
:func:`truncate` (the body cut). Forwarded whole, only slowly: :func:`throttle` (a slow link: bodies
at so many bytes a second) and :func:`latency` (a slow server: forwarded after a fixed delay).
Plain HTTP, 127.0.0.1, the standard library only.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import random
import re
import socket
import struct
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal
from urllib.parse import urlsplit

BLOCK = 64 * 1024
SEGMENT = 1460  # bytes: the TCP maximum segment size of an Ethernet link
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"}


@dataclass(frozen=True)
class Fault:
    """What to do instead of a plain forward; made by the functions below."""

    kind: Literal["answer", "reset", "drop", "delay", "truncate", "throttle", "latency"]
    status: int = 0  # answer: the status sent
    after: bool = False  # answer: forward first (upstream did it), then replace upstream's answer
    seconds: float = 0.0  # delay: how long the answer is held; latency: how long before forwarding
    upstream: bool = True  # delay: forward first (a late answer) or never (a black hole)
    keep: int = 0  # truncate: body bytes sent before the connection is closed
    framed: bool = False  # truncate: send only ``keep`` bytes, with a Content-Length to match
    rate: float = 0.0  # throttle: bytes a second
    upload: bool = True  # throttle: the request body
    download: bool = True  # throttle: the response body

    @property
    def forwarded(self) -> bool:
        """Does upstream get the request (and do the work) before the fault?"""
        return {"answer": self.after, "reset": False, "delay": self.upstream}.get(self.kind, True)

    def __str__(self) -> str:
        extra = {"answer": f"{self.status}{'-after' if self.after else ''}", "truncate": f"{self.keep}"}
        extra["delay"] = f"{self.seconds:g}s{'' if self.upstream else '-unforwarded'}"
        extra["latency"] = f"{self.seconds:g}s"
        ways = "-".join(w for w, on in (("up", self.upload), ("down", self.download)) if on)
        extra["throttle"] = f"{self.rate:g}Bps-{ways}"
        return "-".join(x for x in (self.kind, extra.get(self.kind), "framed" if self.framed else "") if x)


def answer(status: int, *, after: bool = False) -> Fault:
    """Answer ``status`` without forwarding; ``after=True``: forward, then replace upstream's answer."""
    return Fault("answer", status=status, after=after)


def reset() -> Fault:
    """Reset the connection (TCP RST) before anything is forwarded."""
    return Fault("reset")


def drop_after() -> Fault:
    """Forward, let upstream answer, then close the connection without answering the client."""
    return Fault("drop")


def delay(seconds: float, *, upstream: bool = True) -> Fault:
    """Hold the answer ``seconds`` (forwarded first unless ``upstream=False``), then close."""
    return Fault("delay", seconds=seconds, upstream=upstream)


def truncate(keep: int = 0, *, framed: bool = False) -> Fault:
    """Forward, send upstream's status, headers and ``keep`` body bytes, then close the connection.

    ``framed=True``: a middlebox that cut the body, ``keep`` bytes with a matching Content-Length,
    so only the payload's own framing (e.g. gzip's trailer) can tell.
    """
    return Fault("truncate", keep=keep, framed=framed)


def throttle(bytes_per_s: float, *, upload: bool = True, download: bool = True) -> Fault:
    """A slow link: forward the request body (``upload``) and the response body (``download``) at
    ``bytes_per_s``, in pieces of a tenth of a second's worth; the client's body is read no faster."""
    if bytes_per_s <= 0:
        raise ValueError(f"a throttle needs a rate above 0 bytes a second, not {bytes_per_s}")
    return Fault("throttle", rate=bytes_per_s, upload=upload, download=download)


def latency(seconds: float) -> Fault:
    """A slow server: wait ``seconds``, then forward the request and relay the answer normally."""
    return Fault("latency", seconds=seconds)


@dataclass
class Rule:
    """Inject ``fault`` into ``method`` requests whose target matches ``path`` (``re.search``).

    It fires ``times`` times (None: for ever); with ``probability``, each match fires with that
    chance, drawn from ``random.Random(seed)``, so a run is repeatable.
    """

    method: str
    path: str
    fault: Fault
    times: int | None = 1
    probability: float | None = None
    seed: int = 0
    fired: int = 0
    _random: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def take(self, method: str, target: str) -> bool:
        if method != self.method.upper() or not re.search(self.path, target):
            return False
        if self.times is not None and self.fired >= self.times:
            return False
        if self.probability is not None and self._random.random() >= self.probability:
            return False
        self.fired += 1
        return True


@dataclass
class Hit:
    """A request the proxy saw, in arrival order; ``fault`` is None when it was forwarded untouched."""

    method: str
    target: str
    fault: Fault | None
    upstream_status: int | None = None  # None until (unless) upstream answers
    forwarded: int = 0  # request body bytes forwarded upstream so far


class FaultProxy:
    """A threaded forwarding proxy on a free 127.0.0.1 port: ``start()``/``stop()``, or ``with``."""

    def __init__(self, upstream: str, *, upstream_timeout: float = 60.0) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"the fault proxy forwards to plain http:// servers only, not {upstream!r}")
        self.upstream = (parts.hostname, parts.port or 80)
        self.upstream_timeout = upstream_timeout
        self.rules: list[Rule] = []
        self.hits: list[Hit] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = _Server(("127.0.0.1", 0), _Handler, self)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="fault-proxy", daemon=True)

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes held (delayed) answers
        self._server.shutdown()
        for conn in list(self._server.open):  # ends idle keep-alive connections
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def add(
        self,
        method: str,
        path: str,
        fault: Fault,
        *,
        times: int | None = 1,
        probability: float | None = None,
        seed: int = 0,
    ) -> Rule:
        """Add a :class:`Rule`; the first rule that takes a request decides its fault."""
        rule = Rule(method, path, fault, times, probability, seed)
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        """Forget every rule and hit: a healthy proxy again."""
        with self._lock:
            self.rules.clear()
            self.hits.clear()

    def seen(self, method: str | None = None, path: str | None = None, *, faulted: bool | None = None) -> list[Hit]:
        """The requests seen (with ``method``, a target matching ``path``, with or without a fault)."""
        with self._lock:
            return [
                h
                for h in self.hits
                if method in (None, h.method)
                and (path is None or re.search(path, h.target))
                and faulted in (None, h.fault is not None)
            ]

    def fired(self, method: str | None = None, path: str | None = None) -> int:
        """How many faults were injected (into ``method`` requests whose target matches ``path``)."""
        return len(self.seen(method, path, faulted=True))

    def _arrived(self, method: str, target: str) -> Hit:
        with self._lock:
            fault = next((rule.fault for rule in self.rules if rule.take(method, target)), None)
            self.hits.append(Hit(method, target, fault))
            return self.hits[-1]


def _counted(blocks: Iterable[bytes], hit: Hit) -> Iterator[bytes]:
    for block in blocks:
        yield block
        hit.forwarded += len(block)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[_Handler], proxy: FaultProxy) -> None:
        self.proxy = proxy
        self.open: set[socket.socket] = set()
        super().__init__(address, handler)

    def server_bind(self) -> None:
        # Segments of an Ethernet link, not loopback's 64 KiB (inherited by every connection): the
        # client's kernel sizes its send buffer by them, so a throttled upload holds the client's
        # writes back within about a hundred KB, as on a real link, instead of taking megabytes at once.
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, SEGMENT)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
        super().server_bind()

    def handle_error(self, request: socket.socket | tuple[bytes, socket.socket], client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], OSError):  # a client that went away is no news
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as MESH clients pool connections
    timeout = 30  # an idle client connection is closed after this long
    disable_nagle_algorithm = True  # head and body are separate writes: no 40 ms delayed-ACK stalls
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.open.add(self.connection)

    def finish(self) -> None:
        self.server.open.discard(self.connection)
        with contextlib.suppress(OSError, ValueError):
            super().finish()

    def log_message(self, format: str, *args: object) -> None:
        pass  # the hits are the log

    def do_request(self) -> None:
        hit = self.server.proxy._arrived(self.command, self.path)
        fault = hit.fault
        try:
            if fault is not None and fault.kind == "latency":
                self.server.proxy._stopping.wait(fault.seconds)
            if fault is None or fault.forwarded:
                self._forward(hit)
            elif fault.kind == "reset":
                self._reset()
            else:
                for _ in self._request_body():  # read, never forwarded
                    pass
                if fault.kind == "answer":
                    self._answer(fault.status)
                else:
                    self._hold(fault.seconds)
        except (OSError, http.client.HTTPException):  # the client left (e.g. timed out), or upstream failed
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = do_request

    def _forward(self, hit: Hit) -> None:
        proxy, fault = self.server.proxy, hit.fault
        upstream = http.client.HTTPConnection(*proxy.upstream, timeout=proxy.upstream_timeout)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            has_body = "Content-Length" in self.headers or "chunked" in self.headers.get("Transfer-Encoding", "")
            body = self._request_body()
            if fault is not None and fault.kind == "throttle" and fault.upload:
                body = self._paced(body, fault.rate)
            # http.client chunks an iterable body again when there is no Content-Length
            upstream.request(self.command, self.path, _counted(body, hit) if has_body else None, headers)
            response = upstream.getresponse()
            hit.upstream_status = response.status
            if fault is None or fault.kind in ("truncate", "throttle", "latency"):
                self._relay(response, fault)
                return
            response.read()  # upstream did the work: now the answer is replaced, dropped or held
            if fault.kind == "answer":
                self._answer(fault.status)
            elif fault.kind == "delay":
                self._hold(fault.seconds)
            else:
                self.close_connection = True
        finally:
            upstream.close()

    def _request_body(self) -> Iterator[bytes]:
        """The client's request body as it arrives (``Content-Length`` or chunked)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            while size := int(self.rfile.readline().split(b";")[0], 16):
                yield self.rfile.read(size)
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                pass
            return
        left = int(self.headers.get("Content-Length") or 0)
        while left > 0:
            block = self.rfile.read(min(BLOCK, left))
            if not block:
                raise ConnectionError("the client closed the connection mid-body")
            left -= len(block)
            yield block

    def _relay(self, response: http.client.HTTPResponse, fault: Fault | None) -> None:
        """Stream upstream's answer to the client; a truncate fault cuts the body after ``keep`` bytes."""
        has_body = self.command != "HEAD" and response.status >= 200 and response.status not in (204, 304)
        headers = [(k, v) for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP]
        blocks: Iterator[bytes] = iter(lambda: response.read(BLOCK), b"") if has_body else iter(())
        keep = fault.keep if fault is not None and fault.kind == "truncate" else None
        if fault is not None and fault.kind == "throttle" and fault.download:
            blocks = self._paced(blocks, fault.rate)
        if fault is not None and fault.framed:  # the body cut, and a Content-Length that agrees
            cut = response.read()[: fault.keep]
            headers = [(k, v) for k, v in headers if k.lower() != "content-length"] + [
                ("Content-Length", str(len(cut)))
            ]
            blocks, keep = iter([cut]), None
        chunked = has_body and "content-length" not in {k.lower() for k, _ in headers}
        self.send_response_only(response.status, response.reason)
        for name, value in headers:
            self.send_header(name, value)
        if chunked:  # http.client took upstream's chunks apart: chunk it again
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        sent = 0
        for block in blocks:
            if keep is not None and sent + len(block) >= keep:  # cut mid-body (and mid-chunk)
                part = block[: keep - sent]
                self.wfile.write(b"%x\r\n%s" % (len(block), part) if chunked else part)
                break
            self.wfile.write(b"%x\r\n%s\r\n" % (len(block), block) if chunked else block)
            sent += len(block)
        else:
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
        self.close_connection = self.close_connection or keep is not None

    def _paced(self, blocks: Iterable[bytes], rate: float) -> Iterator[bytes]:
        """``blocks`` at ``rate`` bytes a second: each piece (a tenth of a second's worth) when due."""
        piece, sent, start = max(1, int(rate / 10)), 0, time.monotonic()
        for block in blocks:
            for at in range(0, len(block), piece):
                wait = start + sent / rate - time.monotonic()
                if wait > 0 and self.server.proxy._stopping.wait(wait):
                    raise ConnectionError("the fault proxy is stopping")
                part = block[at : at + piece]
                sent += len(part)
                yield part

    def _answer(self, status: int) -> None:
        body = b'{"message": "fault injected by meshbridge.faultproxy"}'
        self.send_response_only(status)
        if status in (429, 503):  # as a real server might: an hour. meshbridge must not sleep on it
            self.send_header("Retry-After", "3600")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _hold(self, seconds: float) -> None:
        self.server.proxy._stopping.wait(seconds)  # then close without an answer: the client has gone
        self.close_connection = True

    def _reset(self) -> None:
        """Close with a TCP RST (SO_LINGER 0) before reading the rest of the request."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.rfile.close()
        self.wfile.close()
        self.connection.close()  # its last reference: closed now, with a reset
        self.wfile = io.BytesIO()  # http.server flushes it after the request
        self.close_connection = True
