"""Reads that do not grow with the store (issue 13, point 3), on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import random
import re
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from store_backends import BACKENDS, Backend, PostgresBackend, SQLiteBackend

from meshbridge.kinds import BUS, BUS_OWED, INF
from meshbridge.models import Direction, Filters, State
from meshbridge.store import Store
from meshbridge.store import sqlite as sqlite_store
from meshbridge.store.queries import stored_time

# -- a store of 10,000 messages, filled through the backend's SQL (the triggers keep the counters) --

BASE = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
MAILBOXES = ("X26ABC1", "X26ABC2", "X26ABC3")
PEERS = ("A91001", "B92002", "C93003", "D94004", "E95005", "F96006")
# (direction, route, workflow, ITK?, weight): outbound ITK discharge summaries mostly, some plain routes
ROUTES = (
    ("out", "toc-out", "TOC_FHIR_EC_DISCH", True, 40),
    ("out", "rad-out", "RAD_FHIR_REPORT", True, 10),
    ("out", "lab-out", "PATH_MEDRPT_V3", False, 15),
    ("in", "toc-in", "TOC_FHIR_EC_DISCH", True, 20),
    ("in", "lab-in", "PATH_TEST_REQ", False, 13),
    ("in", None, "UNKNOWN_WF", False, 2),
)
# states by (direction, ITK?), with weights
STATES = {
    ("out", True): {
        "accepted": 2, "sending": 1, "sent": 10, "inf-acked": 8, "inf-nacked": 2, "bus-acked": 4,
        "bus-nacked": 2, "complete": 60, "failed": 2, "rejected": 2, "undeliverable": 1,
    },
    ("out", False): {"accepted": 2, "sending": 1, "sent": 10, "delivered": 80, "failed": 3, "rejected": 4},
    ("in", True): {
        "received": 1, "mesh-acked": 1, "valid": 5, "delivered": 10, "bus-acked": 70, "bus-nacked": 3,
        "invalid": 3, "duplicate": 1, "correlated": 6,
    },
    ("in", False): {"received": 1, "mesh-acked": 1, "valid": 5, "delivered": 85, "invalid": 4, "undelivered": 4},
    ("in", None): {"unrouted": 8, "orphan": 2},
}
# ITK outbound: each state's inf-ack and bus-ack expectations (None: open; else verdict)
EXPECTED_OUT = {
    "sent": (None, None),
    "inf-acked": ("ack", None),
    "inf-nacked": ("nack", "closed"),
    "bus-acked": ("ack", "ack"),
    "bus-nacked": ("ack", "nack"),
    "complete": ("ack", "ack"),
    "undeliverable": ("closed", "closed"),
}
OWED = {"valid": None, "delivered": None, "bus-acked": "ack", "bus-nacked": "nack"}  # ITK inbound: our bus ack


def weighted(rng: random.Random, weights: dict[Any, float]) -> Any:
    return rng.choices(list(weights), list(weights.values()))[0]


@dataclass
class Fill:
    """The rows of a synthetic store, as tuples in the column order of :data:`COLUMNS`."""

    messages: list[tuple[Any, ...]]
    events: list[tuple[Any, ...]]
    expectations: list[tuple[Any, ...]]


COLUMNS = {
    "messages": (
        "id", "direction", "state", "route", "mailbox", "peer", "workflow_id", "mesh_message_id", "message_type",
        "payload_type", "payload_sha256", "payload_size", "filename", "itk_message_id", "local_id", "source_file",
        "created_at", "updated_at",
    ),
    "events": ("message_id", "at", "kind", "state", "detail"),
    "expectations": ("message_id", "kind", "due_at", "met_at", "outcome", "verdict", "overdue_at"),
}


def synthetic(n: int, seed: int, now: datetime) -> Fill:
    """``n`` messages as a busy trust has them (see :data:`ROUTES`, :data:`STATES`): created a few
    seconds apart from :data:`BASE` (pairs share a moment, so keyset ties are broken by id); open
    expectations mostly due tomorrow, some past due (overdue), of which the sweep has flagged some."""
    rng = random.Random(seed)
    fill = Fill([], [], [])
    routes = {route[:4]: route[4] for route in ROUTES}
    tomorrow = stored_time(now + timedelta(days=1))
    for i in range(n):
        direction, route, workflow, itk = weighted(rng, routes)
        state = weighted(rng, STATES[(direction, itk if route else None)])
        created = BASE + timedelta(seconds=3 * (i // 2))
        at = stored_time(created)
        ident = f"{rng.getrandbits(128):032x}"
        sha = hashlib.sha256(f"payload {i}".encode()).hexdigest()
        sent = direction == "in" or state not in ("accepted", "sending", "rejected")
        mesh_id = f"{created:%Y%m%d%H%M%S}{i:06d}_{rng.getrandbits(24):06X}" if sent else None
        itk_id = str(uuid.UUID(int=rng.getrandbits(128))).upper() if itk else None
        local_id = f"LOCAL-{i:05d}" if direction == "in" and rng.random() < 0.5 else None
        source = f"/srv/meshbridge/out/{route}/msg-{i:05d}.xml@{sha}" if direction == "out" and i % 3 else None
        fill.messages.append(
            (
                ident, direction, state, route, rng.choice(MAILBOXES), rng.choice(PEERS), workflow, mesh_id,
                "DATA", "fhir" if itk else "hl7v2", sha, 2000 + i % 700, f"msg-{i:05d}.xml", itk_id, local_id,
                source, at, at,
            )
        )
        first = "accepted" if direction == "out" else "received"
        fill.events.append((ident, at, first, first, None))
        fill.events.append((ident, at, state, state, '{"synthetic": true}'))
        verdicts: dict[str, str | None] = {}
        if direction == "out" and itk and state in EXPECTED_OUT:
            verdicts = dict(zip((INF, BUS), EXPECTED_OUT[state], strict=True))
        elif direction == "in" and itk and state in OWED:
            verdicts = {BUS_OWED: OWED[state]}
        for kind, verdict in verdicts.items():
            fill.expectations.append(expectation(rng, ident, kind, verdict, created, tomorrow))
    return fill


def expectation(
    rng: random.Random, ident: str, kind: str, verdict: str | None, created: datetime, tomorrow: str
) -> tuple[Any, ...]:
    """One expectation: met (some after the sweep flagged them), or open and due tomorrow, or open
    and past due: flagged by the sweep (60 %) or not yet (an unswept overdue one)."""
    due = stored_time(created + timedelta(hours=1))
    if verdict is not None:
        flagged = stored_time(created + timedelta(hours=1, minutes=1)) if rng.random() < 0.1 else None
        met = stored_time(created + timedelta(minutes=rng.choice((5, 30, 90))))
        return (ident, kind, due, met, "ok" if verdict == "ack" else "refused", verdict, flagged)
    if kind == BUS_OWED and rng.random() < 0.2:
        return (ident, kind, None, None, None, None, None)  # owed, no deadline
    if rng.random() < 0.75:
        return (ident, kind, tomorrow, None, None, None, None)
    flagged = stored_time(created + timedelta(hours=1, minutes=1)) if rng.random() < 0.6 else None
    return (ident, kind, due, None, None, None, flagged)


def bulk(store: Store, fill: Fill) -> None:
    """Insert ``fill`` in one transaction through the store's own connection and SQL: every
    trigger runs as it does for the store's writes; then ANALYZE."""
    with store.immediate() as db:
        conn: Any = db.conn  # type: ignore[attr-defined]
        for table, columns in COLUMNS.items():
            sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
            if store.dialect.name == "postgresql":
                from meshbridge.store.pgconn import marked

                conn.cursor().executemany(marked(sql), getattr(fill, table))
            else:
                conn.executemany(sql, getattr(fill, table))
    with store.immediate() as db:
        db.execute("ANALYZE")


# -- the SQL a read runs, and what its plan reads -------------------------------------------------

BIG = ("messages", "events", "expectations")
KEYSET = ("created_at", "id")  # every listing's ORDER BY
Statement = tuple[str, list[Any]]  # SQL with ``?`` markers, and its parameters
NOT_ALIASES = {"AS", "SET", "WHERE", "JOIN", "ON", "ORDER", "GROUP", "LIMIT", "UNION", "VALUES"}


@contextmanager
def captured() -> Iterator[list[Statement]]:
    """Every statement the store runs in the block, as its code wrote it (both backends' sessions)."""
    from meshbridge.store import pgconn

    seen: list[Statement] = []
    with pytest.MonkeyPatch.context() as patch:
        for session in (sqlite_store.Session, pgconn.Session):
            for name in ("execute", "rows"):

                def spy(self: Any, sql: str, params: Sequence[Any] = (), _run: Any = getattr(session, name)) -> Any:
                    seen.append((sql, list(params)))
                    return _run(self, sql, params)

                patch.setattr(session, name, spy)
        yield seen


@dataclass(frozen=True)
class Index:
    columns: tuple[str, ...]
    partial: bool  # holds only the rows its WHERE selects
    primary: bool


def indexes(store: Store) -> dict[str, Index]:
    """The indexes of messages, events and expectations, as the database describes them."""
    found: dict[str, Index] = {}
    if store.dialect.name == "sqlite":
        conn: Any = store.conn  # type: ignore[attr-defined]
        for table in BIG:
            for _, name, _, origin, partial in conn.execute(f"PRAGMA index_list({table})"):
                columns = tuple(row[2] for row in conn.execute(f"PRAGMA index_info({name})"))
                found[name] = Index(columns, bool(partial), origin == "pk")
        return found
    rows = store.link.conn.execute(  # type: ignore[attr-defined]
        "SELECT c.relname, i.indpred IS NOT NULL, i.indisprimary, "
        "array(SELECT coalesce(a.attname, '') FROM unnest(i.indkey) WITH ORDINALITY AS k(attnum, n) "
        "LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum ORDER BY k.n) "
        "FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE i.indrelid::regclass::text = ANY(%s)",
        [list(BIG)],
    ).fetchall()
    return {name: Index(tuple(columns), partial, primary) for name, partial, primary, columns in rows}


@dataclass(frozen=True)
class Read:
    """One read of issue 13, as an operator's command makes it."""

    name: str
    run: Callable[[], object]
    filters: Filters | None = None  # a listing's: its rows must come in index order, never sorted


def equalities(filters: Filters) -> frozenset[str]:
    """The columns a listing's filters fix to one value."""
    names = ("state", "route", "direction", "mailbox", "peer", "workflow_id")
    return frozenset(name for name in names if getattr(filters, name) is not None)


def full_scans(store: Store, catalog: dict[str, Index], read: Read, sql: str, params: list[Any]) -> list[str]:
    """What in the plan of ``sql`` reads messages, events or expectations whole (module docstring)."""
    aliases = {table: table for table in BIG}
    for table, alias in re.findall(r"\b(messages|events|expectations)(?:\s+AS)?\s+([a-z_]\w*)", sql, re.I):
        if alias.upper() not in NOT_ALIASES:
            aliases[alias] = table
    access, sorted_ = (sqlite_plan if store.dialect.name == "sqlite" else postgresql_plan)(store, sql, params, aliases)
    fixed = equalities(read.filters) if read.filters else frozenset()
    own_index = any(set(i.columns[:-2]) == fixed and i.columns[-2:] == KEYSET for i in catalog.values())
    problems = []
    for table, index, bounded, whole in access:
        if table not in BIG:
            continue
        if index is None and whole:
            problems.append(f"full scan of {table}")
        elif whole:
            known = catalog[index]
            walk = bounded and read.filters is not None and known.columns == KEYSET
            flags = read.filters is not None and (read.filters.overdue or read.filters.nacked or read.filters.owed)
            if not (walk and (known.partial or (not flags and (not fixed or own_index)))):
                problems.append(f"whole index {index} of {table} walked")
    by_id = all(index and catalog[index].primary and not whole for table, index, _, whole in access if table == "messages")
    if sorted_ and read.filters is not None and not by_id:
        problems.append("messages sorted (not read in index order)")
    return [f"{read.name}: {problem}\n    {sql}" for problem in problems]


Access = tuple[str, str | None, bool, bool]  # table, index (None: the table), under a LIMIT, whole


def sqlite_plan(store: Store, sql: str, params: list[Any], aliases: dict[str, str]) -> tuple[list[Access], bool]:
    """SQLite: ``SCAN t`` reads table t whole, ``SCAN t USING INDEX i`` walks index i whole (the
    LIMIT stops it, if the index is in the ORDER BY's order), ``SEARCH`` reads a range of one;
    ``USE TEMP B-TREE FOR ORDER BY`` sorts the rows read."""
    lines = [row[3] for row in store.conn.execute("EXPLAIN QUERY PLAN " + sql, params)]  # type: ignore[attr-defined]
    sorts = any(re.search(r"TEMP B-TREE FOR .*ORDER BY", line) for line in lines)
    limited = re.search(r"\bLIMIT \d+\s*$", sql) is not None and not sorts
    access: list[Access] = []
    for line in lines:
        found = re.match(r"(SCAN|SEARCH) (\w+)(?: USING (?:COVERING )?INDEX (\w+))?", line)
        if found:
            verb, alias, index = found.groups()
            access.append((aliases.get(alias, alias), index, limited, verb == "SCAN"))
    return access, sorts


def postgresql_plan(store: Store, sql: str, params: list[Any], aliases: dict[str, str]) -> tuple[list[Access], bool]:
    """PostgreSQL: a ``Seq Scan`` reads a table whole, an index scan with no ``Index Cond`` walks
    its index whole (stopped by a ``Limit`` just above it); a ``Sort`` sorts the rows below it. The
    plan for the statement's values: the store's connection never uses a generic plan (checked)."""
    from meshbridge.store.pgconn import marked

    conn: Any = store.link.conn  # type: ignore[attr-defined]
    assert conn.execute("SHOW plan_cache_mode").fetchone()[0] == "force_custom_plan"
    tree = conn.execute(marked("EXPLAIN (FORMAT JSON) " + sql), params).fetchone()[0]
    access: list[Access] = []
    sorts = False

    def walk(node: dict[str, Any], limited: bool, relation: str | None) -> None:
        nonlocal sorts
        kind = node["Node Type"]
        sorts = sorts or kind in ("Sort", "Incremental Sort")
        relation = node.get("Relation Name", relation)  # a bitmap index scan's table is its parent's
        if "Index Name" in node or kind == "Seq Scan":
            whole = kind == "Seq Scan" or "Index Cond" not in node
            access.append((relation or "", node.get("Index Name"), limited, whole))
        for child in node.get("Plans", ()):
            walk(child, kind == "Limit" or (limited and kind == "Result"), relation)

    walk(tree[0]["Plan"], False, None)
    return access, sorts


# -- the store of 10,000 messages, once per module and backend --------------------------------------

N, SEED = 10_000, 13
SINCE = datetime(2025, 3, 1, 10, 0, 0, tzinfo=timezone(timedelta(hours=1)))  # = 09:00 UTC, a created_at
UNTIL = SINCE + timedelta(hours=2)
FILTERS: dict[str, Filters] = {
    "all": Filters(),
    "state": Filters(state=State.SENT),
    "route": Filters(route="toc-out"),
    "direction": Filters(direction=Direction.IN),
    "mailbox": Filters(mailbox="X26ABC2"),
    "peer": Filters(peer="C93003"),
    "workflow": Filters(workflow_id="PATH_TEST_REQ"),
    "overdue": Filters(overdue=True),
    "nacked": Filters(nacked=True),
    "owed": Filters(owed=True),
    "since": Filters(since=SINCE),
    "until": Filters(until=UNTIL),
    "since-until": Filters(since=SINCE, until=UNTIL),
    "state+route": Filters(state=State.INF_ACKED, route="toc-out"),
    "direction+since-until": Filters(direction=Direction.OUT, since=SINCE, until=UNTIL),
}


@dataclass
class Big:
    """The store of :data:`N` messages, its indexes, and when it was built."""

    store: Store
    built: datetime
    catalog: dict[str, Index]

    def unsweep(self) -> None:
        """Undo what sweeps did since the store was built (its own flags are older): the triggers
        put the counters back; the sweeps' ``overdue`` events stay (the timeline is append-only)."""
        with self.store.immediate() as db:
            db.execute("UPDATE expectations SET overdue_at = NULL WHERE overdue_at > ?", [stored_time(self.built)])


@pytest.fixture(scope="module", params=BACKENDS)
def big(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Big]:
    """:data:`N` messages on each backend (PostgreSQL: a database of its own, as ``backend`` empties the
    module's for each test), built once for the module."""
    with ExitStack() as stack:
        folder = tmp_path_factory.mktemp(f"big-{request.param}")
        backend: Backend
        if request.param == "sqlite":
            backend = SQLiteBackend(folder)
        else:
            server = request.getfixturevalue("postgres_server")
            backend = PostgresBackend(folder, server.url_of(stack.enter_context(server.database())))
        stack.callback(backend.close)
        store = backend.open()
        built = datetime.now(UTC)
        bulk(store, synthetic(N, SEED, built))
        yield Big(store, built, indexes(store))


def everything(store: Store) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every message and every expectation, as stored."""
    with store.immediate(durable=False) as db:
        return db.rows("SELECT * FROM messages"), db.rows("SELECT * FROM expectations")


def sample(store: Store) -> dict[str, Any]:
    """An inbound ITK message with a local id, and an outbound one from a source file."""
    messages, _ = everything(store)
    inbound = next(m for m in messages if m["local_id"] and m["itk_message_id"] and m["mesh_message_id"])
    outbound = next(m for m in messages if m["source_file"] and m["mesh_message_id"])
    return {"in": inbound, "out": outbound}


def reads(big: Big) -> list[Read]:
    """Every read of issue 13: counts, the idle sweep, a first page and one after a cursor of each
    filter both ways, a message with its timeline, and each kind of lookup."""
    store, picked = big.store, sample(big.store)
    inbound, outbound = picked["in"], picked["out"]
    found: list[Read] = [Read("counts", store.counts), Read("sweep", store.sweep_overdue)]
    for name, filters in FILTERS.items():
        for newest in (True, False):

            def pages(filters: Filters = filters, newest: bool = newest) -> None:
                first = store.page(filters, limit=10, newest=newest)
                assert first.next, f"{filters}: fewer than 10 messages"
                store.page(filters, after=first.next, newest=newest)

            order = "newest" if newest else "oldest"
            found.append(Read(f"page {name} {order} first", lambda f=filters, n=newest: store.page(f, newest=n), filters))
            found.append(Read(f"page {name} {order} after", pages, filters))
    return [
        *found,
        Read("message", lambda: store.message(outbound["id"])),
        Read("message by MESH id", lambda: store.message(outbound["mesh_message_id"].lower())),
        Read("get by MESH id", lambda: store.get(inbound["mesh_message_id"].lower())),
        *(
            Read(f"lookup {what}", lambda key=key: store.lookup(key))
            for what, key in (
                ("id", inbound["id"]),
                ("MESH id", inbound["mesh_message_id"].lower()),
                ("local id", inbound["local_id"]),
                ("ITK id", inbound["itk_message_id"].lower()),
                ("source path", outbound["source_file"].split("@")[0]),
                ("source path@sha", outbound["source_file"]),
            )
        ),
    ]


def test_every_read_walks_an_index(big: Big) -> None:
    """No read of issue 13 reads messages, events or expectations whole, on either backend."""
    problems, statements = [], 0
    try:
        for read in reads(big):
            with captured() as seen:
                read.run()
            assert seen, read.name
            statements += len(seen)
            for sql, params in seen:
                problems += full_scans(big.store, big.catalog, read, sql, params)
    finally:
        big.unsweep()
    assert statements > 100
    assert not problems, "\n".join(problems)
