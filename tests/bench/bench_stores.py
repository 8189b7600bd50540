"""The store backends a benchmark runs meshbridge on: a SQLite file (the config's ``[store] path``)
or a new PostgreSQL database (``[store] url``), made for one run and dropped after it.

The PostgreSQL server is ``MESHBRIDGE_BENCH_POSTGRES`` (a libpq conninfo naming a database to
connect to for CREATE/DROP DATABASE; default 127.0.0.1:5432 as ``postgres``, database ``test``).
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

BACKENDS = ("sqlite", "postgresql")
POSTGRES = os.environ.get("MESHBRIDGE_BENCH_POSTGRES", "host=127.0.0.1 port=5432 user=postgres dbname=test")
STORE_TABLE = re.compile(r'\[store\]\npath = "[^"]*"\n')


def backends(choice: str) -> list[str]:
    """``--backend``: one of :data:`BACKENDS`, or ``both``."""
    return list(BACKENDS) if choice == "both" else [choice]


@contextmanager
def store_on(backend: str, config_text: str) -> Iterator[str]:
    """``config_text`` (a ``meshbridge.toml`` with ``[store] path``) with its store on ``backend``:
    unchanged for SQLite; for PostgreSQL a new database, dropped (forcibly) when the block ends."""
    if backend == "sqlite":
        yield config_text
        return
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    name = f"meshbridge_{int(time.time())}_{uuid.uuid4().hex[:12]}"  # swept by the tests' fixtures after a day
    with psycopg.connect(POSTGRES, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            parts = conninfo_to_dict(POSTGRES)
            url = f"postgresql://{parts.get('user') or 'postgres'}@{parts.get('host') or '127.0.0.1'}:"
            url += f"{parts.get('port') or 5432}/{name}"
            assert STORE_TABLE.search(config_text)
            yield STORE_TABLE.sub(lambda _: f'[store]\nurl = "{url}"\n', config_text, count=1)
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
