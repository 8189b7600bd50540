"""A store archive: what ``meshbridge store export`` writes and ``store import`` reads.

One tar stream (gzip or xz when the file's name says so), read and written in order, so it can be
piped; nothing in it is ever extracted to the file system (member names are matched, not used as
paths). Its members, in this order:

``manifest.json``
    ``{"format": "meshbridge-store", "version": 1, "schema": [migration names], "source": "sqlite",
    "exported_at": ..., "tables": [{"name", "columns", "rows"}, ...], "payloads": {"count", "bytes"}}``;
    tables in the order their rows are inserted (each after those it references).
``payloads/<sha256>``
    one per payload, its bytes (named by their sha256, which the import checks).
``tables/<name>.jsonl``
    one per table, in the manifest's order: a JSON array per row, the manifest's columns in order;
    a byte string is ``{"base64": "..."}``.

A member out of place, of another kind than a regular file, cut short, or any count unlike the
manifest's is an :class:`~meshbridge.errors.ArchiveError`.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
import tarfile
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any, cast

from ..errors import ArchiveError

FORMAT = "meshbridge-store"
VERSION = 1
MANIFEST = "manifest.json"
MAX_MANIFEST = 4 * 1024 * 1024
MAX_LINE = 64 * 1024 * 1024  # one row's JSON (no row holds payload bytes: those are members)
MAX_TABLES = 1000
_PAYLOAD = re.compile(r"payloads/([0-9a-f]{64})")
_TABLE = re.compile(r"tables/([A-Za-z_][A-Za-z0-9_]{0,62})\.jsonl")
MAX_HEADER = 64 * 1024  # a pax or GNU long-name header (tarfile reads one whole into memory)
READ_ERRORS = (tarfile.TarError, EOFError, OSError, ValueError)  # cut short, damaged, bad compression
_EXTENDED = (
    tarfile.XHDTYPE,
    tarfile.XGLTYPE,
    tarfile.SOLARIS_XHDTYPE,
    tarfile.GNUTYPE_LONGNAME,
    tarfile.GNUTYPE_LONGLINK,
)


class _Header(tarfile.TarInfo):
    """A member's header, refusing an extended header (pax, GNU long name) too big to read whole."""

    def _proc_member(self, tarfile_: tarfile.TarFile) -> Any:
        if self.type in _EXTENDED and self.size > MAX_HEADER:
            raise tarfile.HeaderError(f"extended header of {self.size} bytes: too big (over {MAX_HEADER})")
        return cast(Any, super())._proc_member(tarfile_)


@dataclass(frozen=True)
class TableSpec:
    """One table as the manifest describes it."""

    name: str
    columns: tuple[str, ...]
    rows: int


@dataclass(frozen=True)
class Manifest:
    schema: tuple[str, ...]
    source: str
    exported_at: str
    tables: tuple[TableSpec, ...]
    payloads: int
    payload_bytes: int

    def as_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "schema": list(self.schema),
            "source": self.source,
            "exported_at": self.exported_at,
            "tables": [{"name": t.name, "columns": list(t.columns), "rows": t.rows} for t in self.tables],
            "payloads": {"count": self.payloads, "bytes": self.payload_bytes},
        }


def compression(name: str) -> str:
    """The tar compression a file name asks for: ``gz`` (``.gz``, ``.tgz``), ``xz`` or none."""
    if name.endswith((".gz", ".tgz")):
        return "gz"
    return "xz" if name.endswith((".xz", ".txz")) else ""


# -- rows -----------------------------------------------------------------------------------


def encode_row(row: Sequence[Any]) -> bytes:
    """One row as a JSON line (bytes as ``{"base64": ...}``)."""
    values = [
        {"base64": base64.b64encode(v).decode()} if isinstance(v, bytes | bytearray | memoryview) else v for v in row
    ]
    return json.dumps(values, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def decode_row(line: bytes, width: int) -> list[Any]:
    """A row from its JSON line: ``width`` values, each null, a number, a string or ``{"base64": ...}``."""
    try:
        values = json.loads(line, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"not JSON ({exc})") from None
    if not isinstance(values, list) or len(values) != width:
        raise ValueError(f"not a list of {width} values")
    return [_value(v) for v in values]


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number a store holds")


def _value(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
        raise ValueError("a number out of a 64-bit integer's range")
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            raise ValueError("a string that is not Unicode text (a lone surrogate)") from None
        return value
    if value is None or isinstance(value, float) or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    if isinstance(value, dict) and set(value) == {"base64"} and isinstance(value["base64"], str):
        try:
            return base64.b64decode(value["base64"], validate=True)
        except binascii.Error:
            raise ValueError("bad base64") from None
    raise ValueError(f"a value of an unknown kind ({type(value).__name__})")


# -- writing --------------------------------------------------------------------------------


class _Blocks(io.RawIOBase):
    """A readable file over an iterator of byte blocks (so tar copies a payload a block at a time)."""

    def __init__(self, blocks: Iterable[bytes]) -> None:
        self._blocks, self._rest = iter(blocks), b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._rest:
            block = next(self._blocks, None)
            if block is None:
                return 0
            self._rest = block
        n = min(len(buffer), len(self._rest))
        buffer[:n], self._rest = self._rest[:n], self._rest[n:]
        return n


class ArchiveWriter:
    """Writes an archive's members in order, to a stream (nothing is sought back to)."""

    def __init__(self, out: IO[bytes], compress: str = "") -> None:
        pax = tarfile.PAX_FORMAT  # (the literal modes: typeshed knows each by name)
        if compress == "gz":
            self._tar = tarfile.open(fileobj=out, mode="w|gz", format=pax)  # noqa: SIM115 (closed by close())
        elif compress == "xz":
            self._tar = tarfile.open(fileobj=out, mode="w|xz", format=pax)  # noqa: SIM115
        else:
            self._tar = tarfile.open(fileobj=out, mode="w|", format=pax)  # noqa: SIM115

    def _add(self, name: str, size: int, data: IO[bytes]) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mode = size, 0o600
        self._tar.addfile(info, data)

    def manifest(self, manifest: Manifest) -> None:
        data = json.dumps(manifest.as_json(), indent=1).encode()
        self._add(MANIFEST, len(data), io.BytesIO(data))

    def payload(self, sha256: str, size: int, blocks: Iterable[bytes]) -> None:
        """One payload, streamed; ``blocks`` must give exactly ``size`` bytes (and may check them at their end)."""
        source = io.BufferedReader(_Blocks(blocks), 1024 * 1024)
        self._add(f"payloads/{sha256}", size, source)
        if source.read(1):
            raise ArchiveError(f"payload {sha256} is longer than its recorded {size} bytes: it changed while exported")

    def table(self, name: str, rows: Iterable[Sequence[Any]]) -> int:
        """One table's rows (spooled to a temporary file first: tar needs the size); how many."""
        with tempfile.TemporaryFile() as spool:
            n = 0
            for row in rows:
                spool.write(encode_row(row))
                n += 1
            size = spool.tell()
            spool.seek(0)
            self._add(f"tables/{name}.jsonl", size, spool)
        return n

    def close(self) -> None:
        self._tar.close()


# -- reading --------------------------------------------------------------------------------


class ArchiveReader:
    """Reads an archive's members in order, checking each against the manifest (see the module)."""

    def __init__(self, source: IO[bytes], label: str) -> None:
        self.label = label
        try:
            self._tar = tarfile.open(fileobj=source, mode="r|*", tarinfo=_Header)  # noqa: SIM115 (the caller closes source)
        except READ_ERRORS as exc:
            raise self.error(f"not a store archive ({exc})") from None
        self._held: tarfile.TarInfo | None = None
        info = self._next()
        if info is None or info.name != MANIFEST:
            raise self.error(f"not a store archive (its first member is not {MANIFEST})")
        self.manifest = parse_manifest(self._read_small(info, MAX_MANIFEST), self.error)

    def error(self, what: str) -> ArchiveError:
        return ArchiveError(f"archive {self.label}: {what}")

    def _next(self) -> tarfile.TarInfo | None:
        if self._held is not None:
            info, self._held = self._held, None
            return info
        try:
            found = self._tar.next()
        except READ_ERRORS as exc:
            raise self.error(f"damaged or cut short ({exc})") from None
        cast(Any, self._tar).members.clear()  # read in order: keep no list (an archive may hold millions)
        if found is not None and (not found.isreg() or found.sparse is not None):
            raise self.error(f"member {found.name!r} is not a regular file")
        return found

    def _open(self, info: tarfile.TarInfo) -> IO[bytes]:
        data = self._tar.extractfile(info)
        assert data is not None  # a regular file (checked by _next)
        return data

    def _read_small(self, info: tarfile.TarInfo, limit: int) -> bytes:
        if info.size > limit:
            raise self.error(f"member {info.name} is too big ({info.size} bytes)")
        try:
            return self._open(info).read()
        except READ_ERRORS as exc:
            raise self.error(f"damaged or cut short in {info.name} ({exc})") from None

    def payloads(self) -> Iterator[tuple[str, int, Iterator[bytes]]]:
        """Each payload member: its name's sha256, its size, and its bytes as blocks (read them
        before the next). At most the manifest's count."""
        seen = 0
        while (info := self._next()) is not None:
            found = _PAYLOAD.fullmatch(info.name)
            if found is None:
                if not _TABLE.fullmatch(info.name):
                    raise self.error(f"unexpected member {info.name!r}")
                self._held = info
                break
            seen += 1
            if seen > self.manifest.payloads:
                raise self.error(f"more payloads than the {self.manifest.payloads} its manifest lists")
            yield found.group(1), info.size, self._blocks(info)
        if seen != self.manifest.payloads:
            raise self.error(f"{seen} payloads, but its manifest lists {self.manifest.payloads} (cut short?)")

    def _blocks(self, info: tarfile.TarInfo) -> Iterator[bytes]:
        data = self._open(info)
        try:
            while block := data.read(1024 * 1024):
                yield block
        except READ_ERRORS as exc:
            raise self.error(f"damaged or cut short in {info.name} ({exc})") from None

    def tables(self) -> Iterator[tuple[TableSpec, Iterator[list[Any]]]]:
        """Each table of the manifest, in its order, with its rows (read them before the next)."""
        for spec in self.manifest.tables:
            info = self._next()
            if info is None:
                raise self.error(f"cut short: table {spec.name} is missing")
            found = _TABLE.fullmatch(info.name)
            if found is None or found.group(1) != spec.name:
                raise self.error(f"member {info.name!r} where tables/{spec.name}.jsonl belongs")
            yield spec, self._rows(spec, info)

    def _rows(self, spec: TableSpec, info: tarfile.TarInfo) -> Iterator[list[Any]]:
        data, n = self._open(info), 0
        try:
            while line := data.readline(MAX_LINE + 1):
                n += 1
                if n > spec.rows:
                    raise self.error(f"table {spec.name} has more rows than the {spec.rows} its manifest lists")
                if len(line) > MAX_LINE:
                    raise self.error(f"table {spec.name}, row {n}: longer than {MAX_LINE} bytes")
                try:
                    yield decode_row(line, len(spec.columns))
                except ValueError as exc:
                    raise self.error(f"table {spec.name}, row {n}: {exc}") from None
        except READ_ERRORS as exc:
            raise self.error(f"damaged or cut short in {info.name} ({exc})") from None
        if n != spec.rows:
            raise self.error(f"table {spec.name} has {n} rows, but its manifest lists {spec.rows}")

    def end(self) -> None:
        """Check that nothing follows the last table."""
        info = self._next()
        if info is not None:
            raise self.error(f"unexpected member {info.name!r} after the last table")


def parse_manifest(raw: bytes, error: Any) -> Manifest:
    """The manifest, checked member by member; ``error(what)`` makes the exception to raise."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise error(f"{MANIFEST} is not JSON") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise error(f"{MANIFEST} is not a meshbridge store manifest")
    if data.get("version") != VERSION:
        raise error(f"archive format version {data.get('version')!r}; this meshbridge reads version {VERSION}")
    try:
        tables = data["tables"]
        payloads = data["payloads"]
        if not isinstance(tables, list) or len(tables) > MAX_TABLES or not isinstance(payloads, dict):
            raise TypeError
        manifest = Manifest(
            schema=tuple(_strings(data["schema"])),
            source=str(data["source"]),
            exported_at=str(data["exported_at"]),
            tables=tuple(TableSpec(t["name"], tuple(_strings(t["columns"])), _count(t["rows"])) for t in tables),
            payloads=_count(payloads["count"]),
            payload_bytes=_count(payloads["bytes"]),
        )
    except (KeyError, TypeError):
        raise error(f"{MANIFEST} is incomplete or malformed") from None
    names = [t.name for t in manifest.tables]
    bad = [n for n in names if not isinstance(n, str) or not _TABLE.fullmatch(f"tables/{n}.jsonl")]
    if bad or len(set(names)) != len(names):
        raise error(f"{MANIFEST} lists bad or repeated table names: {bad or names}")
    for spec in manifest.tables:
        if not spec.columns or len(set(spec.columns)) != len(spec.columns):
            raise error(f"{MANIFEST}: table {spec.name} has no columns, or repeats one")
    return manifest


def _strings(value: Any) -> list[str]:
    if not isinstance(value, list) or len(value) > 10_000 or not all(isinstance(v, str) for v in value):
        raise TypeError
    return value


def _count(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise TypeError
    return value
