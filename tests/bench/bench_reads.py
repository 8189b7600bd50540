"""Reads at scale: counts, pages, filters, one message, lookups and the idle sweep on stores of
100,000 and 1,000,000 messages, on SQLite and PostgreSQL (docs/store.md, "Reads at scale").

Run from the project root with the dev venv active::

    python tests/bench/bench_reads.py [--sizes 100000 1000000] [--huge] [--backend both|sqlite|postgresql]

Quick check: ``--sizes 30000 60000 --reps 5``. ``--huge`` adds 10,000,000 messages when the disk has
room for it (checked first, and said). Each store is built by reads_store.py (its docstring gives the
distribution of states, routes, peers, overdue, nacked and owed messages) and its counters checked
against a ``GROUP BY`` ("counters true"); then the stores of a backend are measured together, the
sizes' calls alternating (a busy machine slows each alike), and removed (a PostgreSQL database is
made and dropped per store, see bench_stores.py; ``--keep`` keeps the SQLite ones and says where).

Per read: the median of ``--reps`` (20) warm calls in this process (``Reader``, after one call not
timed; the lowest such median of ``--rounds`` (5), as a shared machine spoils a round now and then),
the cold first call (a fresh process: open the store, then the one call, timed alone), the
growth ratio between sizes (warm medians, larger / smaller: PASS when <= 1.5), and whether the
largest store meets the read's goal (counts <= 50 ms, a page <= 50 ms, one message with its
timeline <= 5 ms, the idle sweep <= 5 ms). Page 500 is reached by following 499 cursors, and then
timed alone. Per command (:data:`COMMANDS`, run as ``python -m meshbridge``): its whole wall time,
the median of 3. Per store: the build's time per million messages and the size per message (SQLite
file, log and shared memory; PostgreSQL ``pg_database_size``).

The machine may be shared: read medians and ratios, not single times. "Cold" is a fresh process,
not a cold disk: the operating system's cache (and PostgreSQL's buffers) are warm from the build.
The exit status is non-zero only if a check fails (a counter false, a read finding nothing it
should, a command failing), not for a ratio or a goal. Not part of the pytest run.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from meshbridge import Filters, Reader

sys.path.insert(0, str(Path(__file__).parent))
from bench_stores import BACKENDS, backends, store_on
from reads_store import Probe, build, size_on_disk

ROOT = Path(__file__).resolve().parents[2]
RATIO = 1.5  # warm median at 10 x the messages / at the smaller size
GOALS = {"counts": 0.050, "page": 0.050, "message": 0.005, "sweep": 0.005}  # seconds, warm median
HUGE = 10_000_000
# Commands timed whole (``meshbridge --config C …``); ``{mesh_id}`` etc. are the probe's keys (reads_store.Probe)
COMMANDS = (
    "status",
    "messages --overdue --json --limit 50",
    "messages --json --limit 50",
    "show {mesh_id}",
)
CONFIG = """[store]
path = "meshbridge.db"

[mesh]
url = "https://127.0.0.1:9"
shared_key = "BenchKey"
sandbox = true

[[mailboxes]]
id = "X26ABC1"
password = "unused"
"""


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text)


@dataclass(frozen=True)
class Read:
    """One read: its name, its goal (a key of :data:`GOALS`, or None) and the call."""

    name: str
    goal: str | None
    call: Callable[[Reader, Probe], Any]
    check: Callable[[Any, Probe], bool] = lambda found, probe: bool(found)


def page(**narrowed: Any) -> Callable[[Reader, Probe], Any]:
    """The first page of a filter (keyword values that are callables get the probe)."""
    return lambda r, p: r.messages(Filters(**{k: v(p) if callable(v) else v for k, v in narrowed.items()}))


READS = (
    Read("counts (status)", "counts", lambda r, p: r.status(), lambda s, p: sum(s.counts["out"].values()) > 0),
    Read("first page", "page", lambda r, p: r.messages(), lambda pg, p: len(pg) == 50),
    Read("page 500 (by cursors)", "page", lambda r, p: r.messages(after=p.page_500), lambda pg, p: len(pg) == 50),
    Read("state=failed", "page", page(state="failed")),
    Read("route=results", "page", page(route="results")),
    Read("direction=in", "page", page(direction="in")),
    Read("mailbox=X26ABC3", "page", page(mailbox="X26ABC3")),
    Read("peer", "page", page(peer=lambda p: p.peer)),
    Read("workflow=PATH_FHIR_RESULT", "page", page(workflow_id="PATH_FHIR_RESULT")),
    Read("overdue", "page", page(overdue=True), lambda pg, p: len(pg) == 50 and all(m.overdue for m in pg)),
    Read("nacked", "page", page(nacked=True)),
    Read("owed", "page", page(owed=True)),
    Read("date range (a day)", "page", page(since=lambda p: moment(p.since), until=lambda p: moment(p.until))),
    Read("state+route", "page", page(state="bus-nacked", route="discharge")),
    Read(
        "direction+date range",
        "page",
        page(direction="out", since=lambda p: moment(p.since), until=lambda p: moment(p.until)),
    ),
    Read(
        "message(id) + timeline",
        "message",
        lambda r, p: r.show(p.message_id),
        lambda m, p: m.id == p.message_id and len(m.events) == 2 and len(m.expectations) == 2,
    ),
    *(
        Read(f"lookup {label}", None, lambda r, p, key=key: r.lookup(getattr(p, key)), check)  # type: ignore[misc]
        for label, key, check in (
            ("MESH id (lower case)", "mesh_id", lambda found, p: [m.id for m in found] == [p.message_id]),
            ("local id", "local_id", lambda found, p: len(found) == 1),
            ("ITK id", "itk_id", lambda found, p: [m.id for m in found] == [p.message_id]),
            ("source path", "source_path", lambda found, p: [m.id for m in found] == [p.message_id]),
        )
    ),
)
SWEEP = Read("idle sweep", "sweep", lambda r, p: r.store.sweep_overdue(), lambda swept, p: swept == [])
BY_NAME = {read.name: read for read in (*READS, SWEEP)}


@dataclass
class Measured:
    """What one store gave: per read (warm median, cold first call), per command (median wall time)."""

    n: int
    build_seconds: float
    bytes_per_message: float
    warm: dict[str, float] = field(default_factory=dict)
    cold: dict[str, float | None] = field(default_factory=dict)
    commands: dict[str, float] = field(default_factory=dict)


@dataclass
class Results:
    measured: dict[str, list[Measured]] = field(default_factory=dict)  # by backend, in size order
    failures: list[str] = field(default_factory=list)


def load() -> str:
    """The load average (1, 5, 15 minutes): how shared the machine was."""
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    value = seconds * 1000
    return f"{value:.3f} ms" if value < 1 else f"{value:.1f} ms" if value < 100 else f"{value:,.0f} ms"


def timed(call: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    found = call()
    return time.perf_counter() - started, found


# -- the stores of one backend ---------------------------------------------------------------------


@dataclass
class Store:
    """A store built and open: its config, probe keys, reader and what was measured on it."""

    config: Path
    probe: Probe
    reader: Reader
    measured: Measured


def measure(args: argparse.Namespace, backend: str, sizes: list[int], workdir: Path, results: Results) -> None:
    """Build a store of each size on ``backend``, then measure every read and command on all of them,
    the sizes' calls alternating (a busy machine slows each alike), then remove them."""
    measured = results.measured.setdefault(backend, [])
    with ExitStack() as stack:
        stores = []
        for n in sizes:
            folder = workdir / f"{backend}-{n}"
            folder.mkdir()
            config = folder / "meshbridge.toml"
            config.write_text(stack.enter_context(store_on(backend, CONFIG)))
            if not args.keep:
                stack.callback(shutil.rmtree, folder, ignore_errors=True)
            print(f"\n== {backend}, {n:,} messages ({folder})")
            built = build(config, n)
            size = size_on_disk(config)
            print(
                f"   built in {built.seconds:.1f} s ({built.seconds * 1e6 / n:.0f} s per million), counters true;"
                f" {size / n:,.0f} bytes per message ({size / 2**20:,.0f} MiB); {built.unswept} overdue not yet swept"
            )
            reader = stack.enter_context(Reader.from_file(config))
            built.probe.page_500, seconds = follow(reader, 499)
            print(f"   followed 499 cursors in {seconds:.2f} s (page 500 is timed alone below)")
            stores.append(Store(config, built.probe, reader, Measured(n, built.seconds, size / n)))
            measured.append(stores[-1].measured)
        print(f"\n   measuring {backend}: warm reads, cold reads, commands, then the sweep (load {load()})")
        for read in READS:
            warm(read, stores, args, results)
            cold(read, stores, results)
        commands(stores, results)
        for store in stores:
            seconds, swept = timed(store.reader.store.sweep_overdue)
            print(
                f"   {store.measured.n:,}: the sweep after the build (not idle) found {len(swept)} expectations"
                f" newly overdue, {ms(seconds)}"
            )
        warm(SWEEP, stores, args, results)
        cold(SWEEP, stores, results)
        if args.keep:
            print(
                f"   kept: {', '.join(str(s.config) for s in stores)}"
                + ("" if backend == "sqlite" else " (not the databases)")
            )


def follow(reader: Reader, pages: int) -> tuple[str, float]:
    """The cursor after ``pages`` pages of the unfiltered listing, newest first, and the time it took."""
    started = time.perf_counter()
    after: str | None = None
    for _ in range(pages):
        after = reader.messages(after=after).next
        assert after is not None, "the store has fewer pages than that"
    return after or "", time.perf_counter() - started


def warm(read: Read, stores: list[Store], args: argparse.Namespace, results: Results) -> None:
    """The median of ``--reps`` calls of ``read`` on each store, after one not timed, the stores in
    turn; the lowest of ``--rounds`` such medians (a burst of another process's work spoils a round)."""
    for store in stores:
        read.call(store.reader, store.probe)  # warms this process's caches
    for _ in range(args.rounds):
        times: dict[int, list[float]] = {id(store): [] for store in stores}
        for _ in range(args.reps):
            for store in stores:
                seconds, found = timed(lambda store=store: read.call(store.reader, store.probe))  # type: ignore[misc]
                times[id(store)].append(seconds)
                if not read.check(found, store.probe):
                    results.failures.append(f"{read.name} on {store.measured.n:,}: unexpected result {found!r:.200}")
        for store in stores:
            median = statistics.median(times[id(store)])
            store.measured.warm[read.name] = min(median, store.measured.warm.get(read.name, median))


def child_env() -> dict[str, str]:
    """This environment, with the project root first on the path (children run this checkout's meshbridge)."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


def cold(read: Read, stores: list[Store], results: Results) -> None:
    """The read's first call in a fresh process on each store (see :func:`cold_child`)."""
    for store in stores:
        command = [sys.executable, __file__, "--cold", read.name, "--config", str(store.config)]
        command += ["--probe", json.dumps(store.probe.as_json())]
        done = subprocess.run(command, capture_output=True, text=True, check=False, env=child_env())
        answer = json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else {}
        if not answer.get("ok"):
            results.failures.append(f"cold {read.name} on {store.measured.n:,}: {done.stderr.strip()[-500:]}")
        store.measured.cold[read.name] = answer.get("seconds")


def cold_child(name: str, config: Path, probe: Probe) -> None:
    """In a fresh process: open the store, then time one call of the read ``name``; print JSON."""
    read = BY_NAME[name]
    with Reader.from_file(config) as reader:
        seconds, found = timed(lambda: read.call(reader, probe))
    print(json.dumps({"seconds": seconds, "ok": read.check(found, probe)}))


def commands(stores: list[Store], results: Results) -> None:
    """Each of :data:`COMMANDS` three times on each store (the stores in turn), its whole wall time, the median."""
    for template in COMMANDS:
        times: dict[int, list[float]] = {id(store): [] for store in stores}
        for _ in range(3):
            for store in stores:
                args = template.format(**store.probe.as_json()).split()
                command = [sys.executable, "-m", "meshbridge", "--config", str(store.config), *args]
                seconds, done = timed(
                    lambda command=command, cwd=store.config.parent: subprocess.run(  # type: ignore[misc]
                        command, capture_output=True, check=False, env=child_env(), cwd=cwd
                    )
                )
                if done.returncode != 0:
                    results.failures.append(
                        f"meshbridge {template} on {store.measured.n:,}: {done.stderr.decode()[-300:]}"
                    )
                times[id(store)].append(seconds)
        for store in stores:
            store.measured.commands[template] = statistics.median(times[id(store)])


# -- report ---------------------------------------------------------------------------------------


def ratios(values: list[float | None]) -> list[float | None]:
    """Each value over the one before (None where either is missing)."""
    return [b / a if a and b else None for a, b in itertools.pairwise(values)]


def report(backend: str, stores: list[Measured]) -> list[str]:
    """The tables of one backend; returns its summary lines."""
    sizes = [m.n for m in stores]
    names = [read.name for read in (*READS, SWEEP)]
    head = f"   {'read':<28}" + "".join(f"{f'{n:,} warm':>17}{'cold':>11}" for n in sizes)
    head += "".join(f"{f'x{b // a}':>8}" for a, b in itertools.pairwise(sizes)) + "  ratio  goal"
    print(f"\n== {backend}: reads (warm: median of the calls in one process, best round; cold: the first in a new one)")
    print(head)
    passed = failed = 0
    goals_missed: list[str] = []
    for name in names:
        warm = [m.warm.get(name) for m in stores]
        grown = ratios(warm)
        ok = all(r is not None and r <= RATIO for r in grown)
        passed, failed = passed + ok, failed + (not ok)
        goal = BY_NAME[name].goal
        met = ""
        if goal and warm[-1] is not None:
            met = f"<= {ms(GOALS[goal])}: {'met' if warm[-1] <= GOALS[goal] else 'NOT met'}"
            if warm[-1] > GOALS[goal]:
                goals_missed.append(name)
        line = f"   {name:<28}" + "".join(f"{ms(m.warm.get(name)):>17}{ms(m.cold.get(name)):>11}" for m in stores)
        line += "".join(f"{r:8.2f}" if r else f"{'-':>8}" for r in grown)
        print(line + f"  {'PASS' if ok else 'FAIL':<5}  {met}")
    print(f"\n== {backend}: whole commands (wall time, median of 3)")
    print(f"   {'meshbridge …':<42}" + "".join(f"{n:>14,}" for n in sizes) + "   ratio")
    for template in COMMANDS:
        times = [m.commands.get(template) for m in stores]
        grown = ratios(times)
        print(
            f"   {template:<42}"
            + "".join(f"{ms(t):>14}" for t in times)
            + "".join(f"{r:8.2f}" if r else f"{'-':>8}" for r in grown)
        )
    print(f"\n== {backend}: stores")
    for m in stores:
        print(
            f"   {m.n:>12,} messages: built at {m.build_seconds * 1e6 / m.n:,.0f} s per million, "
            f"{m.bytes_per_message:,.0f} bytes per message"
        )
    summary = [
        f"{backend}: growth ratio <= {RATIO}: {passed} PASS, {failed} FAIL; goals "
        + ("all met" if not goals_missed else f"NOT met by {', '.join(goals_missed)}")
        + f"; {stores[-1].bytes_per_message:,.0f} bytes per message at {stores[-1].n:,}"
    ]
    return summary


# -- main -----------------------------------------------------------------------------------------


def sizes_to_run(args: argparse.Namespace, workdir: Path) -> list[int]:
    """``--sizes``, and with ``--huge`` 10^7 if the disk has room for it (said either way)."""
    sizes = sorted(set(args.sizes))
    if args.huge:
        need = HUGE * args.bytes_per_message * 1.5  # the store, and room for its log and the checks
        free = shutil.disk_usage(workdir).free
        fits = free >= need
        print(
            f"--huge: {free / 2**30:,.0f} GiB free under {workdir}, a 10,000,000-message store needs about "
            f"{need / 2**30:,.0f} GiB at {args.bytes_per_message:,} bytes per message: "
            + ("adding it" if fits else "NOT adding it")
            + " (PostgreSQL's disk is the server's: check it too)"
        )
        if fits:
            sizes.append(HUGE)
    return sizes


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000], help="messages per store")
    parser.add_argument("--huge", action="store_true", help="also 10,000,000 messages, if the disk has room")
    parser.add_argument(
        "--bytes-per-message", type=int, default=4000, help="what --huge assumes a message takes (default 4000)"
    )
    parser.add_argument("--backend", choices=(*BACKENDS, "both"), default="both", help="default both, in turn")
    parser.add_argument("--reps", type=int, default=20, help="warm calls per read and round (default 20)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of --reps calls: the best median (default 5)")
    parser.add_argument("--workdir", type=Path, default=None, help="parent of the temp dir (default: system temp)")
    parser.add_argument("--keep", action="store_true", help="keep the SQLite stores (and say where)")
    parser.add_argument("--cold", help=argparse.SUPPRESS)
    parser.add_argument("--config", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--probe", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if min(args.sizes) < 25_050:
        parser.error("--sizes: at least 25050 messages (page 500 holds the 24,951st to the 25,000th)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.cold:
        cold_child(args.cold, args.config, Probe(**json.loads(args.probe)))
        return 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind, so the finally blocks clean up
    logging.getLogger("meshbridge").setLevel(logging.ERROR)  # not the sweep's lines, one per overdue expectation
    started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="meshbridge-bench-reads-", dir=args.workdir))
    print(f"meshbridge reads bench: {os.cpu_count()} cores, load average {load()}; work dir {workdir}")
    results = Results()
    summary: list[str] = []
    try:
        sizes = sizes_to_run(args, workdir)
        for backend in backends(args.backend):
            measure(args, backend, sizes, workdir, results)
            summary += report(backend, results.measured[backend])
    except BaseException as exc:  # also Ctrl-C and SIGTERM: say so in the summary, then clean up
        results.failures.append(f"{type(exc).__name__}: {exc}")
        raise
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        print("\n==== summary ====")
        print(
            f"meshbridge reads bench, {time.strftime('%Y-%m-%d')}: {os.cpu_count()} cores, {platform.system()} "
            f"{platform.machine()}, Python {platform.python_version()}"
        )
        print("\n".join(summary + [f"FAILED: {failure}" for failure in dict.fromkeys(results.failures)]))
        print(f"bench wall time {time.perf_counter() - started:.0f} s; load average at the end {load()}")
        print("=================")
    return 1 if results.failures else 0


if __name__ == "__main__":
    sys.exit(main())
