"""Reads that do not grow with the store (issue 13, point 3), on SQLite and PostgreSQL.

A store of 10,000 messages is built once per backend (:func:`synthetic`, :func:`bulk`: the backend's
own INSERTs in one transaction, so the m015 triggers keep the counters and flags as for the store's
writes; then ANALYZE). Each read of issue 13 runs as the store runs it; the statements it sends are
captured on their way to the database (not copied here) and EXPLAINed with their values. None may
read messages, events or expectations whole. Precisely, a plan fails when it has:

- a table read whole: SQLite ``SCAN t`` with no index, PostgreSQL ``Seq Scan``;
- an index walked whole: SQLite ``SCAN t USING [COVERING] INDEX i``, PostgreSQL an index scan with
  no ``Index Cond``, unless it is a listing's walk that its LIMIT stops: i is ``(created_at, id)``
  (the ORDER BY's), the statement ends in LIMIT and sorts nothing (PostgreSQL: the scan is under its
  ``Limit``), and i holds only rows the listing may want: a partial index (overdue, nacked, owed), or
  any when nothing is fixed (the unfiltered page walking idx_messages_created stops after limit + 1
  rows), or when the columns fixed have their own ``(columns, created_at, id)`` index (PostgreSQL
  walks i filtered when its statistics say the value is common, about limit / frequency rows, and
  takes that index for a rare one; the store's reads are never prepared, so never get a plan made
  for no values);
- a listing's rows sorted: SQLite ``USE TEMP B-TREE FOR ORDER BY``, PostgreSQL ``Sort``, unless
  messages is read only through its primary key: the overdue messages the sweep has not flagged yet,
  fetched by id (those due since the last sweep, a minute's worth). Lookups (a message, its timeline,
  a key) may sort the few rows one key names.

``SEARCH`` (SQLite) and an ``Index Cond`` (PostgreSQL) read one range of an index: here a key's, a
filter's, or a page's from its cursor. The triggers' statements (by primary key) are not in EXPLAIN.

Also proven: pages followed by cursor to the 500th equal a brute-force ORDER BY, with no OFFSET run;
each filter's pages equal a brute-force filter (overdue as OVERDUE defines it, before and after the
sweep); lookups by every key; the counters equal a GROUP BY after seeded random writes through the
store's API (PostgreSQL: also from two connections, each counting in its own rows, folded now and then).
"""

from __future__ import annotations

import hashlib
import random
import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from functools import cache, partial
from typing import Any

import pytest
from store_backends import BACKENDS, Backend, PostgresBackend, SQLiteBackend
from store_workload import assert_derived_true

from meshbridge import Filters
from meshbridge.kinds import BUS, BUS_OWED, INF
from meshbridge.models import Direction, State
from meshbridge.store import Store
from meshbridge.store import sqlite as sqlite_store
from meshbridge.store.queries import OVERDUE, now, stored_time
from meshbridge.store.records import Counts

# -- a store of 10,000 messages, filled through the backend's SQL (the triggers keep the counters) --

BASE = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
MAILBOXES = ("X26ABC1", "X26ABC2", "X26ABC3")
PEERS = ("A91001", "B92002", "C93003", "D94004", "E95005", "F96006")
# (direction, route, workflow, ITK?): weight. Mostly outbound ITK discharge summaries; some unrouted
ROUTES = {
    ("out", "toc-out", "TOC_FHIR_EC_DISCH", True): 40,
    ("out", "rad-out", "RAD_FHIR_REPORT", True): 10,
    ("out", "lab-out", "PATH_MEDRPT_V3", False): 15,
    ("in", "toc-in", "TOC_FHIR_EC_DISCH", True): 20,
    ("in", "lab-in", "PATH_TEST_REQ", False): 13,
    ("in", None, "UNKNOWN_WF", False): 2,
}
# (direction, ITK? None: unrouted): "state weight, ..."
STATES = {
    ("out", True): "accepted 2, sending 1, sent 10, inf-acked 8, inf-nacked 2, bus-acked 4, bus-nacked 2, "
    "complete 60, failed 2, rejected 2, undeliverable 1",
    ("out", False): "accepted 2, sending 1, sent 10, delivered 80, failed 3, rejected 4",
    ("in", True): "received 1, mesh-acked 1, valid 5, delivered 10, bus-acked 70, bus-nacked 3, invalid 3, "
    "duplicate 1, correlated 6",
    ("in", False): "received 1, mesh-acked 1, valid 5, delivered 85, invalid 4, undelivered 4",
    ("in", None): "unrouted 8, orphan 2",
}
# ITK outbound: each state's inf-ack and bus-ack expectations (None: open; else the verdict)
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
COLUMNS = {
    "messages": "id direction state route mailbox peer workflow_id mesh_message_id message_type payload_type "
    "payload_sha256 payload_size filename itk_message_id local_id source_file created_at updated_at",
    "events": "message_id at kind state detail",
    "expectations": "message_id kind due_at met_at outcome verdict overdue_at",
}


@cache
def states(direction: str, itk: bool | None) -> dict[str, int]:
    return {state: int(weight) for state, weight in (pair.split() for pair in STATES[(direction, itk)].split(","))}


def weighted(rng: random.Random, weights: dict[Any, int]) -> Any:
    return rng.choices(list(weights), list(weights.values()))[0]


@dataclass
class Fill:
    """The rows of a synthetic store, as tuples in the column order of :data:`COLUMNS`."""

    messages: list[tuple[Any, ...]]
    events: list[tuple[Any, ...]]
    expectations: list[tuple[Any, ...]]


def synthetic(n: int, seed: int, now: datetime) -> Fill:
    """``n`` messages as a busy trust has them (:data:`ROUTES`, :data:`STATES`, :func:`expectation`),
    created a few seconds apart from :data:`BASE` (pairs share a moment: keyset ties are broken by id)."""
    rng = random.Random(seed)
    fill = Fill([], [], [])
    tomorrow = stored_time(now + timedelta(days=1))
    for i in range(n):
        direction, route, workflow, itk = weighted(rng, ROUTES)
        state = weighted(rng, states(direction, itk if route else None))
        created = BASE + timedelta(seconds=3 * (i // 2))
        at = stored_time(created)
        ident = f"{rng.getrandbits(128):032x}"
        sha = hashlib.sha256(f"payload {i}".encode()).hexdigest()
        sent = direction == "in" or state not in ("accepted", "sending", "rejected")
        row = {"id": ident, "direction": direction, "state": state, "route": route, "workflow_id": workflow}
        row |= {"mailbox": rng.choice(MAILBOXES), "peer": rng.choice(PEERS), "message_type": "DATA"}
        row |= {"payload_type": "fhir" if itk else "hl7v2", "payload_sha256": sha, "payload_size": 2000 + i % 700}
        row |= {"filename": f"msg-{i:05d}.xml", "created_at": at, "updated_at": at}
        row["mesh_message_id"] = f"{created:%Y%m%d%H%M%S}{i:06d}_{rng.getrandbits(24):06X}" if sent else None
        row["itk_message_id"] = str(uuid.UUID(int=rng.getrandbits(128))).upper() if itk else None
        row["local_id"] = f"LOCAL-{i:05d}" if direction == "in" and rng.random() < 0.5 else None
        source = f"/srv/meshbridge/out/{route}/msg-{i:05d}.xml@{sha}"  # a folder source's path@sha256
        row["source_file"] = source if direction == "out" and i % 3 else None
        fill.messages.append(tuple(row[column] for column in COLUMNS["messages"].split()))
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
    """Insert ``fill`` in one transaction on the store's own connection: every trigger runs as it
    does for the store's writes. Then ANALYZE, as a store in use has its statistics."""
    with store.immediate() as db:
        conn: Any = db.conn  # type: ignore[attr-defined]
        for table, columns in COLUMNS.items():
            names = columns.split()
            sql = f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
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

    def spying(run: Callable[..., Any]) -> Callable[..., Any]:
        def spy(session: Any, sql: str, params: Any = (), **options: Any) -> Any:
            seen.append((sql, list(params)))
            return run(session, sql, params, **options)

        return spy

    with pytest.MonkeyPatch.context() as patch:
        for session in (sqlite_store.Session, pgconn.Session):
            for name in ("execute", "rows"):
                patch.setattr(session, name, spying(getattr(session, name)))
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
    if store.dialect.name == "sqlite":
        access, sorted_ = sqlite_plan(store, sql, params)
    else:
        access, sorted_ = postgresql_plan(store, sql, params, generic=read.filters is None)
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
    messages = [(index, whole) for table, index, _, whole in access if table == "messages"]
    by_id = all(index and catalog[index].primary and not whole for index, whole in messages)
    if sorted_ and read.filters is not None and not by_id:
        problems.append("messages sorted (not read in index order)")
    return [f"{read.name}: {problem}\n    {sql}" for problem in problems]


Access = tuple[str, str | None, bool, bool]  # table, index (None: the table), under a LIMIT, whole


def sqlite_plan(store: Store, sql: str, params: list[Any]) -> tuple[list[Access], bool]:
    """SQLite: ``SCAN t`` reads table t whole, ``SCAN t USING INDEX i`` walks index i whole (the
    LIMIT stops it, if the index is in the ORDER BY's order), ``SEARCH`` reads a range of one;
    ``USE TEMP B-TREE FOR ORDER BY`` sorts the rows read. (A plan names a table by its alias.)"""
    aliases = {table: table for table in BIG}
    for table, alias in re.findall(r"\b(messages|events|expectations)(?:\s+AS)?\s+([a-z_]\w*)", sql, re.I):
        if alias.upper() not in NOT_ALIASES:
            aliases[alias] = table
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


def postgresql_plan(store: Store, sql: str, params: list[Any], generic: bool) -> tuple[list[Access], bool]:
    """PostgreSQL: a ``Seq Scan`` reads a table whole, an index scan with no ``Index Cond`` walks
    its index whole (stopped by a ``Limit`` just above it); a ``Sort`` sorts the rows below it. The
    plan for the statement's values, and with ``generic`` also the one PostgreSQL may cache for a
    prepared statement (psycopg prepares what runs often; a listing never is: :func:`prepared`)."""
    from psycopg import sql as pgsql

    from meshbridge.store.pgconn import marked

    conn: Any = store.link.conn  # type: ignore[attr-defined]
    trees = [conn.execute(marked("EXPLAIN (FORMAT JSON) " + sql), params, prepare=False).fetchone()[0]]
    if generic:
        numbers = iter(range(1, len(params) + 1))
        conn.execute("PREPARE reads_at_scale AS " + re.sub(r"\?", lambda _: f"${next(numbers)}", sql))
        try:
            conn.execute("SET plan_cache_mode = force_generic_plan")
            execute = pgsql.SQL("EXPLAIN (FORMAT JSON) EXECUTE reads_at_scale")
            if params:
                execute += pgsql.SQL("({})").format(pgsql.SQL(", ").join(pgsql.Literal(value) for value in params))
            trees.append(conn.execute(execute, prepare=False).fetchone()[0])
        finally:
            conn.execute("RESET plan_cache_mode")
            conn.execute("DEALLOCATE reads_at_scale")
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

    for tree in trees:
        walk(tree[0]["Plan"], False, None)
    return access, sorts


# -- the store of 10,000 messages, once per module and backend --------------------------------------

N, SEED = 10_000, 13
PLUS_ONE = timezone(timedelta(hours=1))  # times in another zone than the store's UTC; each is a created_at
EARLY, LATE = datetime(2025, 3, 1, 9, 40, tzinfo=PLUS_ONE), datetime(2025, 3, 1, 12, 30, tzinfo=PLUS_ONE)
SINCE, UNTIL = datetime(2025, 3, 1, 11, 0, tzinfo=PLUS_ONE), datetime(2025, 3, 1, 11, 45, tzinfo=PLUS_ONE)
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
    "since": Filters(since=LATE),
    "until": Filters(until=EARLY),
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
    sweeps = (store.sweep_overdue, store.sweep_overdue)  # the second finds nothing due: idle
    found = [Read("counts", store.counts), Read("sweep, then idle", lambda: [sweep() for sweep in sweeps])]
    for name, filters in FILTERS.items():
        for newest in (True, False):

            def pages(filters: Filters = filters, newest: bool = newest) -> None:
                first = store.page(filters, limit=10, newest=newest)
                assert first.next, f"{filters}: fewer than 10 messages"
                store.page(filters, after=first.next, newest=newest)

            order = "newest" if newest else "oldest"
            first = partial(store.page, filters, newest=newest)
            found.append(Read(f"page {name} {order} first", first, filters))
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
                ("file name", inbound["filename"]),
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


# -- what the reads return, against brute force over every row -------------------------------------


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text)


def is_overdue(expectation: dict[str, Any], now: datetime) -> bool:
    """Overdue as issue 13 defines it once: past its deadline and not met."""
    return expectation["met_at"] is None and expectation["due_at"] is not None and moment(expectation["due_at"]) < now


class Rows:
    """Every message and expectation of a store, read now, to filter by brute force."""

    def __init__(self, store: Store) -> None:
        self.messages, self.expectations = everything(store)
        self.now = datetime.now(UTC)
        for m in self.messages:
            m["moment"] = moment(m["created_at"])
        self.messages.sort(key=lambda m: (m["moment"], m["id"]), reverse=True)  # newest first
        self.overdue = {e["message_id"] for e in self.expectations if is_overdue(e, self.now)}
        self.owed = {e["message_id"] for e in self.expectations if e["kind"] == BUS_OWED and e["met_at"] is None}

    def unswept(self) -> list[dict[str, Any]]:
        return [e for e in self.expectations if is_overdue(e, self.now) and e["overdue_at"] is None]

    def select(self, filters: Filters) -> list[str]:
        """The ids ``filters`` selects, newest first, by looking at every row."""
        fixed = [(name, getattr(filters, name)) for name in equalities(filters)]
        nacked = (State.INF_NACKED, State.BUS_NACKED) if filters.nacked else None

        def wanted(m: dict[str, Any]) -> bool:
            return (
                all(m[name] == value for name, value in fixed)
                and (not filters.overdue or m["id"] in self.overdue)
                and (nacked is None or m["state"] in nacked)
                and (not filters.owed or m["id"] in self.owed)
                and (filters.since is None or m["moment"] >= filters.since)
                and (filters.until is None or m["moment"] < filters.until)
            )

        return [m["id"] for m in self.messages if wanted(m)]


def walk(store: Store, filters: Filters, *, limit: int, pages: int = 10**6, newest: bool = True) -> list[Any]:
    """The items of the first ``pages`` pages of a listing (all: to its end), following cursors."""
    items: list[Any] = []
    after = None
    for _ in range(pages):
        page = store.page(filters, limit=limit, after=after, newest=newest)
        items += page.items
        if page.next is None:
            break
        assert len(page) == limit
        after = page.next
    return items


def same_pages(store: Store, rows: Rows) -> None:
    """Each filter's pages hold exactly what brute force selects, each message once: all of them
    newest first, the first 400 oldest first; and each message's ``overdue`` is as defined. (Every
    message, unfiltered: :func:`to_the_500th_page`.)"""
    for name, filters in FILTERS.items():
        if filters == Filters():
            continue
        expected = rows.select(filters)
        assert expected, name  # the store has some of each
        newest = walk(store, filters, limit=500)
        assert [m.id for m in newest] == expected, name
        assert [m.id for m in walk(store, filters, limit=200, pages=2, newest=False)] == expected[::-1][:400], name
        assert {m.id for m in newest if m.overdue} == rows.overdue & set(expected), name


def prepared(store: Store) -> list[str]:
    """PostgreSQL: the statements prepared on the store's connection (psycopg prepares one that runs
    often; after a few runs the server may give it a generic plan, made for no values)."""
    if store.dialect.name == "sqlite":
        return []
    conn: Any = store.link.conn  # type: ignore[attr-defined]
    return [row[0] for row in conn.execute("SELECT statement FROM pg_prepared_statements", prepare=False)]


def to_the_500th_page(store: Store, rows: Rows) -> None:
    """Ten at a time, newest first, to the 500th page: exactly the brute-force order, each message
    once; no OFFSET in any statement run, and none of them prepared (each planned for its values)."""
    expected = rows.select(Filters())
    before = prepared(store)
    pages: list[list[str]] = []
    after = None
    with captured() as seen:
        for _ in range(500):
            page = store.page(limit=10, after=after)
            pages.append([m.id for m in page])
            after = page.next
    assert [i for page in pages for i in page] == expected[:5000] and after
    assert len(seen) >= len(pages) and not [sql for sql, _ in seen if re.search(r"\bOFFSET\b", sql, re.I)]
    assert prepared(store) == before
    listed = walk(store, Filters(), limit=2000)  # to the last page
    assert [m.id for m in listed] == expected and {m.id for m in listed if m.overdue} == rows.overdue


def lookups(store: Store) -> None:
    """By id, MESH id and ITK id in another case, local id, file name, source file (path, or path@sha256);
    an unknown key finds nothing."""
    picked = sample(store)
    inbound, outbound = picked["in"], picked["out"]
    for key, message in (
        (inbound["id"], inbound),
        (inbound["mesh_message_id"].lower(), inbound),
        (inbound["itk_message_id"].lower(), inbound),
        (inbound["local_id"], inbound),
        (inbound["filename"], inbound),
        (outbound["source_file"].split("@")[0], outbound),
        (outbound["source_file"], outbound),
        (outbound["mesh_message_id"].lower(), outbound),
    ):
        assert [m.id for m in store.lookup(key)] == [message["id"]], key
    assert store.get(inbound["mesh_message_id"].lower()).id == inbound["id"]
    assert store.message(outbound["mesh_message_id"].lower()).id == outbound["id"]
    assert store.lookup("no-such-message") == []


def test_reads_return_what_brute_force_finds(big: Big) -> None:
    """Pages to the 500th; every filter, overdue too (some overdue expectations not swept yet, then
    after the sweep); the counters; lookups by every key: each against brute force over every row."""
    store = big.store
    rows = Rows(store)
    unswept = rows.unswept()
    assert unswept and len(rows.overdue) > len({e["message_id"] for e in unswept})  # swept ones too
    to_the_500th_page(store, rows)
    lookups(store)
    try:
        same_pages(store, rows)
        assert store.counts() == grouped(store)
        assert len(store.sweep_overdue()) == len(unswept)
        after = Rows(store)
        assert not after.unswept() and after.overdue == rows.overdue
        assert [m.id for m in walk(store, Filters(overdue=True), limit=50)] == after.select(Filters(overdue=True))
        assert store.counts() == grouped(store)
    finally:
        big.unsweep()


# -- the counters after a random workload of the store's writes -----------------------------------


def grouped(store: Store) -> Counts:
    """What the counters must say: a GROUP BY over the rows (overdue: :data:`OVERDUE`, as of now)."""
    at = now()
    with store.immediate(durable=False) as db:
        messages = db.rows("SELECT direction, route, state, count(*) AS n FROM messages GROUP BY 1, 2, 3")
        by_kind = {
            which: db.rows(
                "SELECT m.direction, e.kind, count(*) AS n FROM expectations e JOIN messages m ON m.id = e.message_id "
                f"WHERE {where} GROUP BY m.direction, e.kind",
                params,
            )
            for which, where, params in (("open", "e.met_at IS NULL", []), ("overdue", OVERDUE, [at]))
        }
        late = db.rows(f"SELECT count(DISTINCT e.message_id) AS n FROM expectations e WHERE {OVERDUE}", [at])
    return Counts(
        {(r["direction"], r["route"], r["state"]): r["n"] for r in messages},
        {(r["direction"], r["kind"]): r["n"] for r in by_kind["open"]},
        {(r["direction"], r["kind"]): r["n"] for r in by_kind["overdue"]},
        late[0]["n"],
    )


PAST = "2020-01-01T00:00:00.000000+00:00"
KINDS = (INF, BUS, BUS_OWED, "hl7v2-ack")
ROUTE_NAMES = ("toc-out", "lab-out", "toc-in", None)
OPERATIONS = {"add": 5, "transition": 6, "expect": 6, "meet": 4, "close": 1, "sweep": 1, "route": 1, "fold": 1}


def step(store: Store, rng: random.Random, ids: list[str], done: Counter[str]) -> None:
    """One write of the store's API, picked at random; ``done`` counts those that did something
    (a transition, meet, close or sweep may find nothing to do)."""
    op = weighted(rng, OPERATIONS)
    ident = rng.choice(ids) if ids else ""
    if op == "add" or not ids:
        direction = rng.choice(("out", "in"))
        state = rng.choice(list(states(direction, True)))
        fields: dict[str, Any] = {"route": rng.choice(ROUTE_NAMES), "mailbox": rng.choice(MAILBOXES)}
        fields["peer"] = rng.choice(PEERS)
        ids.append(store.add(direction, state, **fields).id)
        changed: object = True
    elif op == "transition":
        message = store.get(ident)
        target = rng.choice(list(states(message.direction.value, True)))
        changed = store.transition(ident, target, from_states=rng.choice((None, [message.state], ["orphan"])))
    elif op == "expect":
        due = rng.choice((PAST, stored_time(datetime.now(UTC) + timedelta(days=1)), None))
        store.expect(ident, rng.choice(KINDS), due)
        changed = True  # (or the expectation was there already)
    elif op == "meet":
        changed = store.meet(ident, rng.choice(KINDS), "ok", positive=rng.random() < 0.8)
    elif op == "close":
        changed = store.close_expectations(ident, "closed by a nack")
    elif op == "sweep":
        changed = store.sweep_overdue()
    elif op == "route":
        store.update(ident, route=rng.choice(ROUTE_NAMES))
        changed = True
    else:
        before = store.counts()
        changed = store.fold_counts()
        assert store.counts() == before  # folding never changes what the counters say
    if changed:
        done[op] += 1


@pytest.mark.parametrize("connections", [1, 2])
def test_counters_equal_group_by_after_random_writes(backend: Backend, connections: int) -> None:
    """400 writes through the store's API, seeded; with two connections they interleave
    (PostgreSQL: each adds to its own counter rows, folded now and then). Every 40 writes, and at
    the end, :meth:`Store.counts` from each connection equals the GROUP BY, and so do the counters'
    rows and each message's flags (tests/store_workload.py)."""
    stores = [backend.open() for _ in range(connections)]
    rng, ids, done = random.Random(1300 + connections), list[str](), Counter[str]()
    slots: set[int] = set()
    for number in range(400):
        step(rng.choice(stores), rng, ids, done)
        if number % 40 == 39:
            slots |= {row[0] for row in backend.execute("SELECT DISTINCT slot FROM counts")}
            for store in stores:
                assert store.counts() == grouped(store), number
            assert_derived_true(backend.execute)  # the counters' rows, and each message's flags
    assert set(done) == set(OPERATIONS), done
    if backend.name == "sqlite":
        assert slots == {0}  # one writer at a time: one row per counter
    else:
        assert len(slots - {0}) == connections  # each connection counted in rows of its own
