"""Attacks on the reads at scale (issue 13) from outside, on both backends: hostile cursors,
filters and lookup keys (text no database stores: a NUL, which PostgreSQL refuses, or a lone
surrogate, which is how Python hands over a command-line byte that is not UTF-8)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys

import pytest
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
    cases = [(["show", b"\xff"], 1, "no message with id"), (["messages", "--route", b"caf\xe9"], 2, "route: not text")]
    cases.append((["messages", "--after", forged("\ud800", "x")], 2, "not a page cursor"))
    for args, code, says in cases:
        argv = [sys.executable, "-m", "meshbridge", "--config", listed.config, *args]
        done = subprocess.run([os.fsencode(a) for a in argv], capture_output=True, timeout=120)
        stderr = done.stderr.decode()
        assert (done.returncode, done.stdout) == (code, b"") and says in stderr, stderr
        assert "Traceback" not in stderr and len(stderr.splitlines()) == 1, stderr
