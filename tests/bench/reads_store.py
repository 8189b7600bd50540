"""A synthetic store for bench_reads.py: ``n`` messages bulk-loaded into a meshbridge store (SQLite or
PostgreSQL), with their events and expectations, every counter and index kept true by the store's
own triggers (schema ``m015``), then checked against a ``GROUP BY``.

The distribution (a trust sending and receiving 10,000 messages a day, so a bigger store is an older
one: 10^5 messages span 10 days, 10^6 100 days, 10^7 1,000 days; ``random.Random(13)``):

- **direction**: 60 % outbound, 40 % inbound.
- **routes, mailboxes, workflows** (share of their direction): outbound ``discharge`` 40 % (ITK,
  X26ABC1, TOC_FHIR_IP_DISCH), ``referral`` 25 % (ITK, X26ABC1, RR_FHIR_REFERRAL), ``results`` 15 %
  (ITK, X26ABC2, PATH_FHIR_RESULT), ``letters`` 20 % (no ITK, X26ABC3, CORRESPONDENCE_LETTER);
  inbound ``discharge-in`` 30 % (ITK, X26ABC2), ``results-in`` 20 % (ITK, X26ABC3), ITK responses
  to ours 40 % (no route, ``correlated``), others 10 % (no route: ``unrouted``, ``orphan``; or
  ``results-in``: ``invalid``). ITK share: 80 % of outbound, 90 % of inbound.
- **peers**: 300 mailboxes X26P0000-X26P0299, skewed (peer ``int(300 * r**2)``: the first ones busiest).
- **states**, outbound ITK older than two hours: ``complete`` 93 %, ``bus-nacked`` 2 %, ``inf-nacked``
  1 %, ``inf-acked`` with its business ack **overdue and swept** 1 % (if over a day and an hour old,
  else ``complete``), ``failed`` 1 %, ``rejected`` 2 %; in the last two hours (in flight): ``sent``
  30 %, ``inf-acked`` 70 %, answers due a day after sending (none falls due while the bench runs).
  Exactly :data:`UNSWEPT` outbound ITK messages (about a day old) are ``inf-acked`` with a business
  ack that fell due in the minute before the build ended, **overdue and not yet swept** (what the
  next sweep finds: bounded by the rate, not the store's size). Outbound letters:
  ``delivered`` 96 %, ``undeliverable`` 1 %, ``failed`` 1 %, ``rejected`` 2 % (in flight: ``sent``).
  Inbound ITK: ``bus-acked`` 94 %, ``bus-nacked`` 2 %, ``delivered`` still **owing** our business
  ack 1 %, ``invalid`` 2 %, ``duplicate`` 1 % (in flight: half ``delivered`` and owed, half ``bus-acked``).
- **shares of all messages** (at 10^6): ``complete`` 45 %, ``bus-acked`` 19 %, ``correlated`` 16 %,
  ``delivered`` 12 %; **nacked** (``inf-nacked``, ``bus-nacked``) 1.8 %; **overdue** 0.47 % (swept)
  plus the :data:`UNSWEPT`; **owed** 0.2 %; the busiest peer 5.8 %, X26P0100 (the peer read's) 0.3 %.
- **rows**: 2 events per message (its first state and its last; a real timeline has 3 to 8); 1.13
  expectations per message: ``inf-ack`` and ``bus-ack`` per outbound ITK message that reached MESH,
  ``bus-ack-owed`` per inbound ITK message delivered. Payloads are not stored (the bench measures rows), except the
  one of the message ``show`` reads; a message older than 30 days and finished has had its payload
  removed by retention (no ``payload_sha256``), the rest name one. Half the outbound messages came
  from a source folder (``source_file``); inbound ones carry the sender's local id.

The load: ``executemany`` INSERTs (SQLite) or ``COPY`` (PostgreSQL) into messages, events and
expectations, :data:`BATCH` messages per transaction, the triggers firing as for any write.
"""

from __future__ import annotations

import json
import multiprocessing
import queue
import random
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from meshbridge import Reader
from meshbridge.models import FINISHED
from meshbridge.store import connect

RATE = 10_000  # messages a day
IN_FLIGHT = timedelta(hours=2)  # the newest messages: answers still due
DUE = timedelta(days=1)  # ITK answers are due a day after sending
RETENTION = timedelta(days=30)  # [service] retention's default: older finished messages have no payload
UNSWEPT = 100  # overdue expectations the sweep has not seen yet
BATCH = 50_000  # messages per transaction
PEERS = 300
SEED = 13

MESSAGE_COLUMNS = [
    "id",
    "direction",
    "state",
    "route",
    "mailbox",
    "peer",
    "workflow_id",
    "mesh_message_id",
    "message_type",
    "payload_type",
    "payload_sha256",
    "payload_size",
    "filename",
    "content_type",
    "chunks_done",
    "chunks_total",
    "attempts",
    "itk_message_id",
    "inf_ack_code",
    "bus_ack_code",
    "tracked_at",
    "created_at",
    "updated_at",
    "destination",
    "source_file",
    "lease_holder",
    "lease_boot",
    "lease_beat",
    "local_id",
    "answers",
    "findings",
]
EVENT_COLUMNS = ("message_id", "at", "kind", "state", "detail")
EXPECTATION_COLUMNS = ("message_id", "kind", "due_at", "met_at", "outcome", "overdue_at", "verdict", "text")

# (route, ITK, mailbox, workflow, share of its direction); route None: no route
OUTBOUND = (
    ("discharge", True, "X26ABC1", "TOC_FHIR_IP_DISCH", 0.40),
    ("referral", True, "X26ABC1", "RR_FHIR_REFERRAL", 0.25),
    ("results", True, "X26ABC2", "PATH_FHIR_RESULT", 0.15),
    ("letters", False, "X26ABC3", "CORRESPONDENCE_LETTER", 0.20),
)
INBOUND = (
    ("discharge-in", True, "X26ABC2", "TOC_FHIR_IP_DISCH", 0.30),
    ("results-in", True, "X26ABC3", "PATH_FHIR_RESULT", 0.20),
    (None, True, "X26ABC1", "TOC_FHIR_IP_DISCH", 0.40),  # ITK responses to our messages
    (None, False, "X26ABC1", "UNKNOWN_WORKFLOW", 0.10),  # others
)
OUT_ITK_STATES = (
    ("complete", 0.93),
    ("bus-nacked", 0.02),
    ("inf-nacked", 0.01),
    ("overdue", 0.01),
    ("failed", 0.01),
    ("rejected", 0.02),
)
LETTER_STATES = (("delivered", 0.96), ("undeliverable", 0.01), ("failed", 0.01), ("rejected", 0.02))
IN_ITK_STATES = (("bus-acked", 0.94), ("bus-nacked", 0.02), ("owed", 0.01), ("invalid", 0.02), ("duplicate", 0.01))
IN_OTHER_STATES = (("unrouted", 0.5), ("orphan", 0.3), ("invalid", 0.2))
NACK_TEXT = "Patient not known here: no record matches this NHS number"


@dataclass
class Probe:
    """The keys the reads look up, picked from the middle of the store (all JSON-able)."""

    message_id: str = ""
    mesh_id: str = ""
    itk_id: str = ""
    source_path: str = ""
    local_id: str = ""
    peer: str = "X26P0100"
    since: str = ""  # ISO 8601: the date range read's
    until: str = ""
    payload_sha256: str = ""  # the shown message's payload, the one stored
    page_500: str = ""  # the cursor after 499 pages of the unfiltered listing (bench_reads follows them)

    def as_json(self) -> dict[str, str]:
        return asdict(self)


@dataclass
class Batch:
    messages: list[tuple[Any, ...]] = field(default_factory=list)
    events: list[tuple[Any, ...]] = field(default_factory=list)
    expectations: list[tuple[Any, ...]] = field(default_factory=list)


def stamp(moment: datetime) -> str:
    """As the store writes times (``queries.now``)."""
    return moment.isoformat(timespec="microseconds")


def pick(rng: random.Random, choices: tuple[tuple[Any, ...], ...]) -> tuple[Any, ...]:
    """One of ``choices`` by its last field's weight (the weights sum to 1)."""
    r = rng.random()
    for choice in choices:
        r -= choice[-1]
        if r < 0:
            return choice
    return choices[-1]


class Generator:
    """The rows of a store of ``n`` messages ending at ``end``, oldest first, in batches."""

    def __init__(self, n: int, end: datetime, probe_sha: str) -> None:
        self.n, self.end, self.probe_sha = n, end, probe_sha
        self.rng = random.Random(SEED)
        self.step = timedelta(days=1) / RATE
        self.unswept = 0
        span = self.step * n
        until = end - min(timedelta(days=7), span / 2)  # a day a week ago (in a smaller store: its middle tenth)
        self.probe = Probe(since=stamp(until - min(timedelta(days=1), span / 10)), until=stamp(until))

    def hexes(self, bits: int = 128) -> str:
        return f"{self.rng.getrandbits(bits):0{bits // 4}x}"

    def uuid(self) -> str:
        h = self.hexes()
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"

    def batches(self) -> Iterator[Batch]:
        batch = Batch()
        for i in range(self.n):
            self.message(i, batch)
            if len(batch.messages) >= BATCH:
                yield batch
                batch = Batch()
        if batch.messages:
            yield batch

    def produced(self) -> Iterator[Batch]:
        """:meth:`batches`, made in a child process while the caller loads the ones before (on two
        cores the load need not wait for Python to make rows); the probe comes back at the end."""
        context = multiprocessing.get_context("fork")
        made: multiprocessing.Queue[Batch | tuple[Probe, int]] = context.Queue(maxsize=2)
        child = context.Process(target=self._produce, args=(made,), daemon=True)
        child.start()
        try:
            while True:
                try:
                    item = made.get(timeout=1)
                except queue.Empty:
                    if not child.is_alive():
                        raise RuntimeError(f"the row generator exited {child.exitcode}") from None
                    continue
                if isinstance(item, Batch):
                    yield item
                else:
                    self.probe, self.unswept = item
                    return
        finally:
            child.join(timeout=5)
            if child.is_alive():
                child.terminate()

    def _produce(self, made: multiprocessing.Queue[Batch | tuple[Probe, int]]) -> None:
        for batch in self.batches():
            made.put(batch)
        made.put((self.probe, self.unswept))

    def message(self, i: int, batch: Batch) -> None:
        rng = self.rng
        created = self.end - self.step * (self.n - i)
        age = self.end - created
        outbound = rng.random() < 0.6
        route, itk, mailbox, workflow, _ = pick(rng, OUTBOUND if outbound else INBOUND)
        ident, mesh_id, sha = self.hexes(), self.hexes().upper(), self.hexes(256)
        row: dict[str, Any] = dict.fromkeys(MESSAGE_COLUMNS)  # every column, in order
        row |= {
            "id": ident,
            "direction": "out" if outbound else "in",
            "route": route,
            "mailbox": mailbox,
            "peer": f"X26P{int(PEERS * rng.random() ** 2):04d}",
            "workflow_id": workflow,
            "mesh_message_id": mesh_id,
            "payload_type": "fhir" if itk else "binary",
            "payload_size": rng.randrange(2_000, 40_000),
            "filename": f"{route or 'message'}-{i:08d}.{'xml' if itk else 'pdf'}",
            "content_type": "application/fhir+xml" if itk else "application/pdf",
            "itk_message_id": self.uuid() if itk else None,
            "created_at": stamp(created),
        }
        if outbound:
            state, expected = self.outbound(i, row, itk, age, created)
            if rng.random() < 0.5:
                row["source_file"] = f"/srv/meshbridge/out/{route}/{row['filename']}@{self.hexes(256)}"
        else:
            state, expected = self.inbound(row, itk, route, age, created)
            row |= {"message_type": "DATA", "chunks_total": 1, "local_id": self.hexes()}
        row["state"] = state
        finished = state in FINISHED and all(e[2] for e in expected)  # retention keeps what is still awaited
        row["payload_sha256"] = None if finished and age > RETENTION else sha
        updated = created + timedelta(seconds=rng.uniform(0.1, 3600) if age > IN_FLIGHT else 0.1)
        row["updated_at"] = stamp(updated)
        if i >= self.n // 2 and not (self.probe.message_id and self.probe.local_id):
            self.keep_probe(row)
        batch.messages.append(tuple(row.values()))
        first = f'"sha256": "{sha}", "size": {row["payload_size"]}}}'  # JSON, keys sorted, as the store writes
        first = f'{{"chunks": 1, "from": "{row["peer"]}", {first}' if not outbound else f"{{{first}"
        code = row["bus_ack_code"]
        last = f'{{"mesh_message_id": "{mesh_id}"}}' if state == "sent" else f'{{"code": {json.dumps(code)}}}'
        kind = "accepted" if outbound else "received"
        batch.events.append((ident, row["created_at"], kind, kind, first))
        batch.events.append((ident, row["updated_at"], state, state, last))
        batch.expectations.extend((ident, *e) for e in expected)

    def keep_probe(self, row: dict[str, Any]) -> None:
        """The shown message (outbound ITK, from a source folder, its payload stored), and an inbound local id."""
        p = self.probe
        if not p.message_id and row["direction"] == "out" and row.get("source_file") and row["itk_message_id"]:
            row["payload_sha256"] = p.payload_sha256 = self.probe_sha
            p.message_id, p.mesh_id, p.itk_id = row["id"], row["mesh_message_id"].lower(), row["itk_message_id"]
            p.source_path = row["source_file"].split("@")[0]
        if not p.local_id and row["direction"] == "in" and row.get("local_id"):
            p.local_id = row["local_id"]

    def outbound(
        self, i: int, row: dict[str, Any], itk: bool, age: timedelta, created: datetime
    ) -> tuple[str, list[tuple[Any, ...]]]:
        """An outbound message's state and expectations (kind, due, met, outcome, overdue_at, verdict, text)."""
        rng = self.rng
        in_flight = age <= IN_FLIGHT
        if not itk:
            state = "sent" if in_flight else pick(rng, LETTER_STATES)[0]
            self.sent(row, state)
            return state, []
        state = ("inf-acked" if rng.random() < 0.7 else "sent") if in_flight else pick(rng, OUT_ITK_STATES)[0]
        due = stamp(created + DUE)
        if state == "complete" and self.unswept < UNSWEPT and age > DUE and self.n - i <= RATE + 4 * UNSWEPT:
            self.unswept += 1  # its business ack fell due in the minute before the end: the next sweep's
            state, due = "unswept", stamp(self.end - timedelta(seconds=self.unswept * 0.5))
        if state == "overdue" and age <= DUE + timedelta(hours=1):  # answered: nothing falls due while measured
            state = "complete"
        self.sent(row, state)
        met = stamp(created + timedelta(seconds=rng.uniform(1, 600)))
        inf = ("inf-ack", due, met, "20013", None, "ack", None)
        if state in ("failed", "rejected"):
            return state, []
        if state == "sent":
            return state, [self.open("inf-ack", due), self.open("bus-ack", due)]
        row["inf_ack_code"] = "20013"
        if state in ("inf-acked", "unswept"):
            return "inf-acked", [inf, self.open("bus-ack", due)]
        if state == "overdue":  # swept half a minute after its deadline, still open
            swept = stamp(created + DUE + timedelta(seconds=30))
            return "inf-acked", [inf, ("bus-ack", due, None, None, swept, None, None)]
        if state == "inf-nacked":
            row["inf_ack_code"] = "20001"
            nack = ("inf-ack", due, met, "20001", None, "nack", NACK_TEXT)
            return state, [nack, ("bus-ack", due, met, "closed by inf-ack 20001", None, "closed", None)]
        row["bus_ack_code"] = "30002" if state == "bus-nacked" else "30001"
        bus_met = stamp(created + timedelta(seconds=rng.uniform(600, 7200)))
        verdict, text = ("nack", NACK_TEXT) if state == "bus-nacked" else ("ack", "Patient known here")
        return state, [inf, ("bus-ack", due, bus_met, row["bus_ack_code"], None, verdict, text)]

    def open(self, kind: str, due: str | None) -> tuple[Any, ...]:
        return (kind, due, None, None, None, None, None)

    def sent(self, row: dict[str, Any], state: str) -> None:
        """The columns a send sets (none for a message never sent)."""
        if state in ("failed", "rejected"):
            row["mesh_message_id"] = None
            row["attempts"] = 3 if state == "failed" else 0
            return
        row |= {"attempts": 1, "tracked_at": row["created_at"], "lease_holder": self.hexes(), "lease_boot": self.uuid()}
        row["lease_beat"] = self.rng.uniform(1, 1e6)

    def inbound(
        self, row: dict[str, Any], itk: bool, route: str | None, age: timedelta, created: datetime
    ) -> tuple[str, list[tuple[Any, ...]]]:
        rng = self.rng
        if itk and route is None:  # a response to one of ours
            row["answers"] = self.hexes()
            return "correlated", []
        if not itk:
            return pick(rng, IN_OTHER_STATES)[0], []
        state = (
            ("delivered" if rng.random() < 0.5 else "bus-acked") if age <= IN_FLIGHT else pick(rng, IN_ITK_STATES)[0]
        )
        if state in ("invalid", "duplicate"):
            return state, []
        row["destination"] = f"/srv/meshbridge/in/{route}/{row['mesh_message_id']}_{row['filename']}"
        row["lease_holder"], row["lease_boot"] = self.hexes(), self.uuid()
        if state in ("delivered", "owed"):
            return "delivered", [self.open("bus-ack-owed", None)]
        met = stamp(created + timedelta(seconds=rng.uniform(60, 3600)))
        code, verdict, text = ("30002", "nack", NACK_TEXT) if state == "bus-nacked" else ("30001", "ack", None)
        row["inf_ack_code"], row["bus_ack_code"] = "20013", code
        return state, [("bus-ack-owed", None, met, code, None, verdict, text)]


# -- building -------------------------------------------------------------------------------------

PROBE_PAYLOAD = b'<Bundle xmlns="http://hl7.org/fhir"><id value="bench-reads"/></Bundle>\n'


@dataclass
class Built:
    """A store built: its size in messages, the seconds the load took, its probe keys."""

    n: int
    seconds: float
    probe: Probe
    unswept: int


def build(config: Path, n: int) -> Built:
    """Fill the (new, empty) store of ``config`` with ``n`` messages; check its counters (raises if false)."""
    from meshbridge.config import load

    settings = load(config).store
    store = connect(settings)  # builds the schema
    try:
        sha, _ = store.payloads.write([PROBE_PAYLOAD])
    finally:
        store.close()
    generator = Generator(n, datetime.now(UTC), sha)
    started = time.perf_counter()
    if settings.url:
        load_postgresql(settings.url, generator)
    else:
        assert settings.path is not None
        load_sqlite(settings.path, generator)
    seconds = time.perf_counter() - started
    check_counters(config)
    return Built(n, seconds, generator.probe, generator.unswept)


def insert_sql(table: str, columns: tuple[str, ...] | list[str]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


def load_sqlite(path: Path, generator: Generator) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA cache_size = -1048576")  # a 1 GiB page cache for the load
        conn.execute("PRAGMA foreign_keys = ON")  # as the store has it
        for batch in generator.produced():
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(insert_sql("messages", MESSAGE_COLUMNS), batch.messages)
            conn.executemany(insert_sql("events", EVENT_COLUMNS), batch.events)
            conn.executemany(insert_sql("expectations", EXPECTATION_COLUMNS), batch.expectations)
            conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def load_postgresql(url: str, generator: Generator) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        for batch in generator.produced():
            with conn.transaction():
                for table, columns, rows in (
                    ("messages", MESSAGE_COLUMNS, batch.messages),
                    ("events", EVENT_COLUMNS, batch.events),
                    ("expectations", EXPECTATION_COLUMNS, batch.expectations),
                ):
                    with conn.cursor().copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                        for row in rows:
                            copy.write_row(row)
        conn.execute("VACUUM ANALYZE")  # what autovacuum does after a bulk load


def query(config: Path, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` (``?`` markers) on the store of ``config``, on a connection of its own."""
    from meshbridge.config import load

    settings = load(config).store
    if settings.url:
        import psycopg

        with psycopg.connect(settings.url, autocommit=True) as server:
            return server.execute(sql.replace("?", "%s"), params or []).fetchall()
    conn = sqlite3.connect(f"file:{settings.path}?mode=ro", uri=True)
    try:
        return conn.execute(sql, params or []).fetchall()
    finally:
        conn.close()


def check_counters(config: Path) -> None:
    """The store's counters (``Store.counts()``) and the flags on messages equal a ``GROUP BY`` of the rows."""
    from meshbridge.store.queries import OVERDUE, now

    with Reader.from_file(config) as reader:
        counts = reader.store.counts()
    at = now()
    joined = "FROM expectations e JOIN messages m ON m.id = e.message_id"
    found = {
        "messages": {
            (d, r, s): n
            for d, r, s, n in query(
                config, "SELECT direction, route, state, count(*) FROM messages GROUP BY direction, route, state"
            )
        },
        "open": {
            (d, k): n
            for d, k, n in query(
                config,
                f"SELECT m.direction, e.kind, count(*) {joined} WHERE e.met_at IS NULL GROUP BY m.direction, e.kind",
            )
        },
        "overdue": {
            (d, k): n
            for d, k, n in query(
                config,
                f"SELECT m.direction, e.kind, count(*) {joined} WHERE {OVERDUE} GROUP BY m.direction, e.kind",
                [at],
            )
        },
    }
    ((overdue_messages,),) = query(
        config, f"SELECT count(DISTINCT e.message_id) FROM expectations e WHERE {OVERDUE}", [at]
    )
    ((owes, owed),) = query(
        config,
        "SELECT (SELECT count(*) FROM messages WHERE owes > 0), (SELECT count(*) FROM expectations "
        "WHERE kind = 'bus-ack-owed' AND met_at IS NULL)",
    )
    ((flagged, swept),) = query(
        config,
        "SELECT (SELECT coalesce(sum(overdue_open), 0) FROM messages), (SELECT count(*) FROM expectations "
        "WHERE met_at IS NULL AND overdue_at IS NOT NULL)",
    )
    kept = {"messages": dict(counts.messages), "open": dict(counts.open), "overdue": dict(counts.overdue)}
    wrong = [name for name in found if found[name] != kept[name]]
    if overdue_messages != counts.overdue_messages:
        wrong.append(f"overdue_messages {counts.overdue_messages} != {overdue_messages}")
    if owes != owed or flagged != swept:
        wrong.append(f"owes {owes} != {owed} or overdue_open {flagged} != {swept}")
    if wrong:
        raise AssertionError(f"counters false: {wrong}")


def size_on_disk(config: Path) -> int:
    """The store's bytes: SQLite's file, write-ahead log and shared memory; PostgreSQL's pg_database_size."""
    from meshbridge.config import load

    settings = load(config).store
    if settings.url:
        return int(query(config, "SELECT pg_database_size(current_database())")[0][0])
    assert settings.path is not None
    files = [Path(f"{settings.path}{suffix}") for suffix in ("", "-wal", "-shm")]
    return sum(f.stat().st_size for f in files if f.exists())
