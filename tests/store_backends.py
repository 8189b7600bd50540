"""The store's two backends for the tests: a test that takes ``backend`` (or ``store``) runs on
SQLite and on PostgreSQL, with ids ``[sqlite]`` and ``[postgresql]``.

- ``backend``: a :class:`Backend`, the one store of the test: :meth:`Backend.open` gives a new
  connection to it (as another worker or process would have), :meth:`Backend.config` rewrites a
  ``meshbridge.toml``'s ``[store]`` to it, :meth:`Backend.execute` runs SQL beside the store's API
  (to tamper with it, as damage or a reboot would).
- ``store``: ``backend.open()``, closed after the test.
- ``backend_config``: ``meshbridge_config`` (meshbridge.testing) with the store on the backend.

On PostgreSQL the test module has one database (``postgres_url``) and each test a fresh, empty
``public`` schema in it: making and dropping a database for every test would cost a second each.
Temp files (the PostgreSQL store's spool) go under the test's ``tmp_path``, in this process and in
the processes it starts (``TMPDIR``).
"""

from __future__ import annotations

import re
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from meshbridge.store import Store

BACKENDS = ["sqlite", "postgresql"]
Spec = tuple[str, str, str]  # (backend, path or URL, spool): a store another process can open
STORE_TABLE = re.compile(r'\[store\]\npath = "[^"]*"\n')


class Backend:
    """One store, on one backend, for one test."""

    name = ""
    database_error: type[Exception] = Exception

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self._opened: list[Store] = []

    def open(self, **options: Any) -> Store:
        """A new connection to the test's store (``inline_max``, ``migrate`` as the store takes them)."""
        store = self._open(**options)
        self._opened.append(store)
        return store

    def _open(self, **options: Any) -> Store:
        return reopen(self.spec(), **options)

    def spec(self) -> Spec:
        """What another process needs to open this store (:func:`reopen`)."""
        raise NotImplementedError

    def store_toml(self) -> str:
        """The ``[store]`` table of a ``meshbridge.toml`` naming this store."""
        raise NotImplementedError

    def config(self, text: str) -> str:
        """``text`` (a ``meshbridge.toml`` with ``[store] path``) with its store on this backend."""
        assert STORE_TABLE.search(text), text[:200]
        return STORE_TABLE.sub(lambda _: self.store_toml(), text, count=1)

    def execute(self, sql: str, params: list[Any] | tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run one statement (``?`` markers) on the store's database, beside its API; its rows."""
        raise NotImplementedError

    def tamper(self, store: Store, sha256: str, data: bytes) -> None:
        """Replace the stored bytes of payload ``sha256`` with ``data`` (as damage would)."""
        raise NotImplementedError

    def close(self) -> None:
        for store in self._opened:
            store.close()


class SQLiteBackend(Backend):
    name = "sqlite"
    database_error = sqlite3.DatabaseError

    @property
    def path(self) -> Path:
        return self.tmp_path / "var" / "meshbridge.db"  # where meshbridge_config's store is

    def spec(self) -> Spec:
        return (self.name, str(self.path), "")

    def store_toml(self) -> str:
        return f'[store]\npath = "{self.path}"\n'

    def execute(self, sql: str, params: list[Any] | tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    def tamper(self, store: Store, sha256: str, data: bytes) -> None:
        if self.execute("SELECT 1 FROM payloads WHERE sha256 = ?", [sha256]):
            self.execute("UPDATE payloads SET data = ? WHERE sha256 = ?", [data, sha256])
            return
        path: Path = store.payloads.path(sha256)  # type: ignore[attr-defined]
        path.chmod(0o600)
        path.write_bytes(data)


class PostgresBackend(Backend):
    name = "postgresql"

    def __init__(self, tmp_path: Path, url: str) -> None:
        super().__init__(tmp_path)
        import psycopg

        self.url = url
        self.database_error = psycopg.Error
        self.spool = tmp_path / "spool"

    def empty(self) -> None:
        """Make the database empty again: no connection left to it, a new ``public`` schema."""
        self.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        self.execute("DROP SCHEMA public CASCADE")
        self.execute("CREATE SCHEMA public")

    def spec(self) -> Spec:
        return (self.name, self.url, str(self.spool))

    def store_toml(self) -> str:
        return f'[store]\nurl = "{self.url}"\n'

    def execute(self, sql: str, params: list[Any] | tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            cursor = conn.execute(sql.replace("%", "%%").replace("?", "%s"), params)  # type: ignore[arg-type]
            return cursor.fetchall() if cursor.description else []

    def tamper(self, store: Store, sha256: str, data: bytes) -> None:
        if self.execute("SELECT 1 FROM payloads WHERE sha256 = ?", [sha256]):
            self.execute("UPDATE payloads SET data = ? WHERE sha256 = ?", [data, sha256])
            return
        self.execute("DELETE FROM payload_chunks WHERE sha256 = ? AND seq > 0", [sha256])
        self.execute("UPDATE payload_chunks SET data = ? WHERE sha256 = ?", [data, sha256])


def reopen(spec: Spec, **options: Any) -> Store:
    """A new connection to the store of :meth:`Backend.spec` (in this process or another)."""
    name, where, spool = spec
    if name == "sqlite":
        from meshbridge.store import SQLiteStore

        return SQLiteStore(where, **options)
    from meshbridge.store.postgres import PostgresStore

    return PostgresStore(where, spool=Path(spool), **options)


def make_backend(name: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Backend:
    """The backend ``name`` for this test (see the module docstring)."""
    if name == "sqlite":
        return SQLiteBackend(tmp_path)
    url: str = request.getfixturevalue("postgres_url")
    backend = PostgresBackend(tmp_path, url)
    backend.empty()
    temp = tmp_path / "tmp"
    temp.mkdir(mode=0o700, exist_ok=True)
    monkeypatch.setenv("TMPDIR", str(temp))  # the spool of the processes the test starts
    monkeypatch.setattr(tempfile, "tempdir", str(temp))  # and of the stores it opens from a config
    return backend


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Backend]:
    opened = make_backend(request.param, request, tmp_path, monkeypatch)
    yield opened
    opened.close()


@pytest.fixture
def store(backend: Backend) -> Store:
    return backend.open()


@pytest.fixture
def backend_config(backend: Backend, meshbridge_config: Callable[..., Path]) -> Callable[..., Path]:
    """``meshbridge_config`` with ``[store]`` on the test's backend."""

    def make(*args: Any, **kwargs: Any) -> Path:
        path = meshbridge_config(*args, **kwargs)
        path.write_text(backend.config(path.read_text()))
        return path

    return make
