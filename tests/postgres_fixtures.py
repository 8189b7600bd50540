"""PostgreSQL for the tests: a database made for a test (or a test module) and dropped after.

The server is the one at ``MESHBRIDGE_TEST_POSTGRES`` (a libpq conninfo; by default
127.0.0.1:5432 as ``postgres``, trust auth, connecting to the database ``test``). Each database is
``meshbridge_<unix time>_<random>``; databases of that name that a killed run left more than a day
ago are dropped when the first one is made. No server: the test skips, which under ``CI=true``
fails (tests/conftest.py).

Fixtures (tests/conftest.py makes them visible to every test):

- ``postgres_server``: the :class:`PostgresServer` (session-wide), to make more databases;
- ``postgres_url``: ``postgresql://…`` of a new database for the test *module* (a store's
  ``[store] url``; :func:`fresh` gives one per test);
- ``postgres``: a psycopg connection to a new database for the *test*.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import pytest

POSTGRES = os.environ.get("MESHBRIDGE_TEST_POSTGRES", "host=127.0.0.1 port=5432 user=postgres dbname=test")
DAY = 86400


class PostgresServer:
    """The test server: makes databases and drops them."""

    def __init__(self, conninfo: str = POSTGRES) -> None:
        self.conninfo = conninfo
        self._swept = False

    def admin(self) -> Any:
        """An autocommit connection to the server's maintenance database (skips when there is none)."""
        psycopg = pytest.importorskip("psycopg", reason="psycopg (v3) is not installed (pip install -e '.[dev]')")
        try:
            return psycopg.connect(self.conninfo, autocommit=True, connect_timeout=5)
        except psycopg.OperationalError as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            pytest.skip(f"no PostgreSQL server at {self.conninfo!r} (set MESHBRIDGE_TEST_POSTGRES): {reason}")

    @contextmanager
    def database(self) -> Iterator[str]:
        """A new, empty database for the block; yields its name, drops it (forcibly) after."""
        with self.admin() as admin:
            if not self._swept:
                self._sweep(admin)
            name = f"meshbridge_{int(time.time())}_{uuid.uuid4().hex[:12]}"
            admin.execute(f'CREATE DATABASE "{name}"')
            try:
                yield name
            finally:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _sweep(self, admin: Any) -> None:
        """Drop the ``meshbridge_*`` databases killed runs left more than a day ago."""
        self._swept = True
        for (name,) in admin.execute("SELECT datname FROM pg_database WHERE datname LIKE 'meshbridge\\_%'").fetchall():
            made = re.fullmatch(r"meshbridge_(\d+)_[0-9a-f]+", name)
            if made and time.time() - int(made.group(1)) > DAY:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def conninfo_of(self, name: str) -> str:
        """The conninfo of database ``name`` on this server."""
        from psycopg.conninfo import make_conninfo

        return make_conninfo(self.conninfo, dbname=name)

    def url_of(self, name: str) -> str:
        """The ``postgresql://user@host:port/name`` URL of database ``name`` (no password: trust auth)."""
        from psycopg.conninfo import conninfo_to_dict

        parts = conninfo_to_dict(self.conninfo)
        user = quote(str(parts.get("user") or "postgres"), safe="")
        host = str(parts.get("host") or "127.0.0.1")
        port = str(parts.get("port") or "5432")
        return f"postgresql://{user}@{host}:{port}/{name}"


@pytest.fixture(scope="session")
def postgres_server() -> PostgresServer:
    return PostgresServer()


@pytest.fixture(scope="module")
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """The URL of a new database for this test module, dropped after its last test."""
    with postgres_server.database() as name:
        yield postgres_server.url_of(name)


@contextmanager
def fresh(server: PostgresServer) -> Iterator[str]:
    """The URL of a new database for a block (one test's own), dropped after."""
    with server.database() as name:
        yield server.url_of(name)


@pytest.fixture
def postgres(postgres_server: PostgresServer) -> Iterator[Any]:
    """A connection to a new database for this test, dropped afterwards."""
    import psycopg

    with postgres_server.database() as name, psycopg.connect(postgres_server.conninfo_of(name)) as conn:
        yield conn
