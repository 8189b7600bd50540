"""Attacks on the reads at scale (issue 13) from outside, on both backends: hostile cursors,
filters and lookup keys (text no database stores: a NUL, which PostgreSQL refuses, or a lone
surrogate, which is how Python hands over a command-line byte that is not UTF-8)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from store_backends import Backend, make_backend
from store_workload import FUTURE, assert_derived_true
from test_cli_listing import Listed, listed

from meshbridge import Filters
from meshbridge.errors import InvalidRequest, UnknownMessage
from meshbridge.store import Store

__all__ = ["listed"]  # (test_cli_listing's fixture, used here by name)
NOT_TEXT = ["a\x00b", "\udcff", "caf\udce9.txt", "\ud800"]  # a NUL; lone surrogates (argv's undecodable byte, JSON's)


def forged(*position: object) -> str:
    """A cursor a client made: base64 of any JSON."""
    return base64.urlsafe_b64encode(json.dumps(list(position)).encode()).decode().rstrip("=")


@pytest.mark.parametrize("bad", NOT_TEXT)
def test_a_forged_cursor_holding_what_no_store_holds_is_not_a_cursor(store: Store, bad: str) -> None:
    store.add("out", "accepted", id="m1")
    for after in (forged(bad, "m1"), forged("2026-01-01T00:00:00.000000+00:00", bad)):
        with pytest.raises(InvalidRequest, match="not a page cursor"):
            store.page(after=after)
        with pytest.raises(InvalidRequest, match="not a page cursor"):
            store.page(Filters(overdue=True), after=after)


@pytest.mark.parametrize("limit", [0, -1, True, 2.5, "5"])
def test_a_page_limit_that_is_not_a_count_is_an_invalid_request(store: Store, limit: object) -> None:
    """(A limit of 0 listed every message, -1 all but the last: a client's number, taken as it came.)"""
    store.add("out", "accepted", id="m1")
    store.add("out", "accepted", id="m2")
    with pytest.raises(InvalidRequest, match=f"a page's limit must be a whole number of at least 1, not {limit!r}"):
        store.page(limit=limit)  # type: ignore[arg-type]
    assert [m.id for m in store.page(limit=None, newest=False)] == ["m1", "m2"]  # None: all, as documented


@pytest.mark.parametrize("bad", NOT_TEXT)
def test_a_filter_holding_what_no_store_holds_is_an_invalid_request(bad: str) -> None:
    for field in ("route", "mailbox", "peer", "workflow_id"):
        with pytest.raises(InvalidRequest, match=f"{field}: not text"):
            Filters(**{field: bad})


@pytest.mark.parametrize("bad", NOT_TEXT)
def test_a_key_holding_what_no_store_holds_names_no_message(store: Store, bad: str) -> None:
    store.add("out", "accepted", id="m1", source_file="/srv/out/a.txt@1:2@" + "0" * 64)
    assert store.lookup(bad) == [] and store.lookup(f"/srv/out/a.txt{bad}") == []
    with pytest.raises(UnknownMessage):
        store.get(bad)
    assert [m.id for m in store.lookup("/srv/out/a.txt")] == ["m1"]  # (the store answers the others)


def test_the_command_line_given_bytes_that_are_not_utf8_says_one_line(listed: Listed) -> None:
    """Bytes on the command line, not text: ``show``, a filter, a cursor forged with ``\\ud800``."""
    cases = [(["show", b"\xff"], 2, "is not UTF-8 text"), (["messages", "--route", b"caf\xe9"], 2, "is not UTF-8 text")]
    cases.append((["messages", "--after", forged("\ud800", "x")], 2, "not a page cursor"))
    for args, code, says in cases:
        argv = [sys.executable, "-m", "meshbridge", "--config", listed.config, *args]
        done = subprocess.run([os.fsencode(a) for a in argv], capture_output=True, timeout=120)
        stderr = done.stderr.decode()
        assert (done.returncode, done.stdout) == (code, b"") and says in stderr, stderr
        assert "Traceback" not in stderr and says in stderr.strip().splitlines()[-1], (
            stderr
        )  # (click's usage lines above)


@pytest.fixture
def pg(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Backend]:
    """The PostgreSQL backend alone: where several connections write at once."""
    opened = make_backend("postgresql", request, tmp_path, monkeypatch)
    yield opened
    opened.close()


def test_a_nack_closing_a_message_while_the_sweep_flags_it_waits_no_deadlock(pg: Backend) -> None:
    """Message b's bus-ack (due last) and inf-ack (due first) are both overdue, unswept: the sweep
    takes them in deadline order, a nack's close in kind order. Each pauses between the two (on a
    row held here, as any writer could hold it): each must then wait for the other in turn, never
    each for the other (PostgreSQL would abort one: "deadlock detected")."""
    store = pg.open()
    for ident in ("b", "x"):
        store.add("out", "sent", id=ident)
    store.expect("b", "inf-ack", "2000-01-01T00:00:00.000000+00:00")
    store.expect("x", "inf-ack", "2000-01-02T00:00:00.000000+00:00")  # the sweep's pause
    store.expect("b", "d-held", FUTURE)  # the close's pause (between bus-ack and inf-ack)
    store.expect("b", "bus-ack", "2000-01-03T00:00:00.000000+00:00")
    holder = psycopg.connect(pg.url, autocommit=False)
    holder.execute("SELECT 1 FROM expectations WHERE kind = 'd-held' OR message_id = 'x' FOR UPDATE")
    done: dict[str, object] = {}

    def run(name: str, call: Callable[[], object]) -> threading.Thread:
        def target() -> None:
            try:
                done[name] = call()
            except BaseException as exc:  # (reported by the assert below)
                done[name] = exc

        thread = threading.Thread(target=target)
        thread.start()
        return thread

    closer, sweeper = pg.open(), pg.open()
    threads = [run("close", lambda: closer.close_expectations("b", "closed by nack"))]
    waiting(pg, 1)
    threads.append(run("sweep", lambda: sorted((o.message_id, o.kind) for o in sweeper.sweep_overdue())))
    waiting(pg, 2)
    holder.close()
    for thread in threads:
        thread.join(60)
    swept = [("b", "bus-ack"), ("b", "inf-ack"), ("x", "inf-ack")]  # (or the close first: x's alone)
    assert done in ({"close": 1, "sweep": swept}, {"close": 3, "sweep": swept[2:]}), done
    assert_derived_true(pg.execute)


def waiting(pg: Backend, n: int) -> None:
    """Until ``n`` of the database's connections wait for a lock (another transaction's row)."""
    sql = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
    while pg.execute(sql)[0][0] < n:
        time.sleep(0.01)
