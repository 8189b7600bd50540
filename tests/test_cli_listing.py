"""``messages``, ``status`` and ``show`` over a real store (each backend), through the real command line:
every filter, newest first, pages followed by their printed cursor, bad input as one usage line,
ids whole in a narrow terminal, counts by route, ``show`` by any key, and a listing held a page
at a time whatever its length."""

from __future__ import annotations

import json
import os
import pty
import re
import shlex
import struct
import subprocess
import sys
import tracemalloc
from collections.abc import Callable
from contextlib import redirect_stdout
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from conftest import OUT_IN

from meshbridge.cli import main
from meshbridge.cli.reading import PAGE
from meshbridge.kinds import BUS, BUS_OWED, INF
from meshbridge.store import Store

BASE = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)  # message i was created i hours later
STATES = ["sent", "delivered", "inf-nacked", "bus-nacked", "failed", "delivered"]
PAST, FUTURE = "2000-01-01T00:00:00.000000+00:00", "2999-01-01T00:00:00.000000+00:00"


@dataclass(frozen=True)
class Listed:
    """The store of a test: its config, and each message's fields by its index (created in order)."""

    config: Path
    rows: list[dict[str, Any]]
    store: Store

    def ids(self, keep: Callable[[int, dict[str, Any]], bool] = lambda i, row: True) -> list[str]:
        """The ids of the messages ``keep`` takes, newest first."""
        return [row["id"] for i, row in reversed(list(enumerate(self.rows))) if keep(i, row)]


def fields(i: int) -> dict[str, Any]:
    out = i % 2 == 0
    at = (BASE + timedelta(hours=i)).isoformat(timespec="microseconds")
    return {
        "direction": "out" if out else "in",
        "state": STATES[i % 6],
        "route": ["r1", "r2", None][i % 3],
        "mailbox": ["X26ABC1", "X26ABC2"][(i // 6) % 2],
        "peer": ["P1", "P2"][(i // 2) % 2],
        "workflow_id": ["WF_A", "WF_B"][(i // 3) % 2],
        "mesh_message_id": f"20260301120000{i:06d}_D5990{i:02d}",
        "itk_message_id": f"A1B2C3D4-0000-4000-8000-{i:012d}",
        "local_id": "SHARED" if i in (5, 9) else f"LOCAL-{i}",
        "source_file": f"/srv/outbox/letter{i}.txt@{i:064d}" if out else None,
        "created_at": at,
        "updated_at": at,
    }


def fill(store: Store, n: int) -> list[dict[str, Any]]:
    """``n`` messages through the store's own write path (its counters kept), created an hour apart."""
    rows = []
    for i in range(n):
        row = fields(i)
        message = store.add(row.pop("direction"), row.pop("state"), durable=False, **row)
        rows.append({**fields(i), "id": message.id})
    store.sync()
    return rows


# overdue: 1 (our business ack, late), 4 (swept by the sweep), 10 (past, not swept yet); owed: 1 and 7
OVERDUE, OWED = {1, 4, 10}, {1, 7}


@pytest.fixture
def listed(backend: Any, backend_config: Callable[..., Path]) -> Listed:
    config = backend_config(OUT_IN)
    store = backend.open()
    rows = fill(store, 12)
    store.expect(rows[1]["id"], BUS_OWED, PAST)
    store.expect(rows[4]["id"], INF, PAST)
    store.expect(rows[7]["id"], BUS_OWED, FUTURE)
    assert {o.message_id for o in store.sweep_overdue()} == {rows[1]["id"], rows[4]["id"]}
    store.expect(rows[10]["id"], BUS, PAST)  # after the sweep: overdue all the same
    store.update(rows[8]["id"], local_id=rows[2]["id"])  # as our own mailbox receives what we send: our id
    rows[8]["local_id"] = rows[2]["id"]
    return Listed(config, rows, store)


def run(config: Path, *args: str) -> Result:
    """``meshbridge --config CONFIG ARGS`` in this process (click's runner); stdout and stderr apart."""
    return CliRunner().invoke(main, ["--config", str(config), *args])


def listing(config: Path, *args: str) -> list[dict[str, Any]]:
    done = run(config, "messages", "--json", *args)
    assert done.exit_code == 0, done.output
    items: list[dict[str, Any]] = json.loads(done.stdout)
    assert done.stdout == json.dumps(items, indent=2) + "\n"  # written a page at a time, the same text
    return items


FILTERS: list[tuple[list[str], Callable[[int, dict[str, Any]], bool]]] = [
    ([], lambda i, r: True),
    (["--state", "delivered"], lambda i, r: r["state"] == "delivered"),
    (["--direction", "in"], lambda i, r: r["direction"] == "in"),
    (["--route", "r1"], lambda i, r: r["route"] == "r1"),
    (["--mailbox", "X26ABC2"], lambda i, r: r["mailbox"] == "X26ABC2"),
    (["--peer", "P2"], lambda i, r: r["peer"] == "P2"),
    (["--workflow", "WF_B"], lambda i, r: r["workflow_id"] == "WF_B"),
    (["--overdue"], lambda i, r: i in OVERDUE),
    (["--nacked"], lambda i, r: r["state"] in ("inf-nacked", "bus-nacked")),
    (["--owed"], lambda i, r: i in OWED),
    (["--since", "2026-03-01T17:00:00Z"], lambda i, r: i >= 5),
    (["--until", "2026-03-01T17:00:00+00:00"], lambda i, r: i < 5),
    (["--state", "delivered", "--route", "r2"], lambda i, r: r["state"] == "delivered" and r["route"] == "r2"),
    (
        ["--direction", "out", "--since", "2026-03-01T14:00Z", "--until", "2026-03-01T20:00Z"],
        lambda i, r: r["direction"] == "out" and 2 <= i < 8,
    ),
]


@pytest.mark.parametrize(("args", "keep"), FILTERS, ids=[" ".join(a) or "all" for a, _ in FILTERS])
def test_each_filter_lists_what_it_names_newest_first_or_oldest(listed: Listed, args: list[str], keep: Any) -> None:
    expected = listed.ids(keep)
    assert expected, "every filter names some messages here"
    assert [m["id"] for m in listing(listed.config, *args)] == expected
    assert [m["id"] for m in listing(listed.config, *args, "--oldest-first")] == expected[::-1]
    table = run(listed.config, "messages", *args)
    assert table.exit_code == 0 and table.stderr == ""
    rows = table.stdout.splitlines()[2:]  # under the header and its rule
    assert [row.split()[0] for row in rows] == expected


def test_owed_items_carry_their_age(listed: Listed) -> None:
    [late, owed] = listing(listed.config, "--owed")
    assert (late["id"], owed["id"]) == (listed.rows[7]["id"], listed.rows[1]["id"])
    assert owed["age_seconds"] > late["age_seconds"] > 0 and owed["overdue"] is True and late["overdue"] is False
    assert "age" in run(listed.config, "messages", "--owed").stdout.splitlines()[0].split()


@pytest.mark.parametrize("extra", [[], ["--oldest-first"], ["--direction", "in"], ["--json"]])
def test_following_the_printed_cursor_lists_the_rest_exactly_once(listed: Listed, extra: list[str]) -> None:
    args = ["messages", "--limit", "2", *extra]
    seen: list[str] = []
    for _ in range(20):
        done = CliRunner().invoke(main, ["--config", str(listed.config), *args])
        assert done.exit_code == 0, done.output
        if "--json" in extra:
            page = [m["id"] for m in json.loads(done.stdout)]
        else:
            page = [row.split()[0] for row in done.stdout.splitlines()[2:]]
        assert 0 < len(page) <= 2
        seen += page
        if not done.stderr:
            break
        [hint] = done.stderr.splitlines()
        assert hint.startswith("more: meshbridge --config ")
        words = shlex.split(hint.removeprefix("more: "))
        assert words[:3] == ["meshbridge", "--config", str(listed.config)]
        assert words[-2] == "--after" and set(extra) <= set(words)
        args = words[3:]
    expected = listed.ids(lambda i, r: "--direction" not in extra or r["direction"] == "in")
    assert seen == (expected[::-1] if "--oldest-first" in extra else expected)


def test_a_limit_that_takes_the_rest_prints_no_cursor(listed: Listed) -> None:
    done = run(listed.config, "messages", "--json", "--limit", "12")
    assert done.exit_code == 0 and done.stderr == "" and len(json.loads(done.stdout)) == 12
    done = run(listed.config, "messages", "--json", "--limit", "11")
    assert "--after" in done.stderr and len(json.loads(done.stdout)) == 11


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--state", "nope"], "Invalid value for '--state': 'nope' is not one of 'accepted', "),
        (["--since", "yesterday"], "Invalid value for '--since': bad time 'yesterday': give a date (2026-11-28), "),
        (["--until", "2026-02-30"], "Invalid value for '--until': bad time '2026-02-30'"),
        (["--limit", "0"], "Invalid value for '--limit': 0 is not in the range x>=1"),
        (["--direction", "sideways"], "Invalid value for '--direction': 'sideways' is not one of 'in', 'out'"),
    ],
)
def test_bad_options_are_usage_errors_that_say_what_is_wanted(listed: Listed, args: list[str], says: str) -> None:
    done = run(listed.config, "messages", *args)
    assert done.exit_code == 2 and done.stdout == "" and says in done.stderr, done.stderr
    if args[0] == "--state":
        for state in ("bus-nacked", "delivered", "inf-acked", "sent", "unrouted"):
            assert f"'{state}'" in done.stderr


def test_a_bad_cursor_is_one_line_exit_2(listed: Listed) -> None:
    for args in (["--after", "garbage"], ["--json", "--after", "eyJhIjogMX0"]):  # the second: JSON, not a cursor
        done = run(listed.config, "messages", *args)
        assert done.exit_code == 2 and done.stdout == ""
        assert done.stderr == f"meshbridge: not a page cursor: {args[-1]!r}\n"


def test_since_and_until_without_an_offset_are_local_times(listed: Listed) -> None:
    """In Tokyo (+09:00) 21:30 on 1 March is 12:30 UTC; a date alone is its local midnight."""

    def ids(*args: str) -> list[str]:
        done = subprocess.run(
            [sys.executable, "-m", "meshbridge", "--config", str(listed.config), "messages", "--json", *args],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "TZ": "Asia/Tokyo"},
        )
        assert done.returncode == 0, done.stderr
        return [m["id"] for m in json.loads(done.stdout)]

    assert ids("--since", "2026-03-01 21:30") == listed.ids(lambda i, r: i >= 1)
    assert ids("--since", "2026-03-01T21:30Z") == listed.ids(lambda i, r: i >= 10)  # Z: UTC
    assert ids("--until", "2026-03-02") == listed.ids(lambda i, r: i < 3)  # 2026-03-01T15:00Z
    assert ids("--since", "2026-03-02", "--until", "2026-03-02T05:00") == listed.ids(lambda i, r: 3 <= i < 8)


def on_a_terminal(columns: int, *args: str) -> str:
    """What a command prints on a terminal ``columns`` wide (a pseudo-terminal), colour codes removed."""
    import fcntl
    import termios

    main_fd, child_fd = pty.openpty()
    fcntl.ioctl(child_fd, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = {**os.environ, "COLUMNS": str(columns), "TERM": "xterm"}
    process = subprocess.Popen([sys.executable, "-m", "meshbridge", *args], stdout=child_fd, stderr=child_fd, env=env)
    os.close(child_fd)
    out = b""
    while True:
        try:
            chunk = os.read(main_fd, 65536)
        except OSError:  # the child side closed
            break
        if not chunk:
            break
        out += chunk
    os.close(main_fd)
    assert process.wait(timeout=120) == 0, out
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.decode())


@pytest.mark.parametrize("columns", [60, 100])
def test_ids_are_never_cut_short_on_a_narrow_terminal(listed: Listed, columns: int) -> None:
    shown = on_a_terminal(columns, "--config", str(listed.config), "messages")
    for row in listed.rows:
        assert shown.count(row["id"]) == 1 and shown.count(row["mesh_message_id"]) == 1, shown
    assert "…" not in shown


def test_status_counts_by_route_too(listed: Listed) -> None:
    done = run(listed.config, "status", "--json")
    assert done.exit_code == 0, done.output
    by_route = json.loads(done.stdout)["by_route"]
    expected: dict[tuple[Any, str, str], int] = {}
    for row in listed.rows:
        key = (row["route"], row["direction"], row["state"])
        expected[key] = expected.get(key, 0) + 1
    assert {(r["route"], r["direction"], r["state"]): r["messages"] for r in by_route} == expected
    assert len(by_route) == len(expected)
    text = run(listed.config, "status").stdout
    routes = text.split("┃ route ", 1)[1].split("overdue expectations")[0]
    cells = {tuple(c.strip() for c in line.strip("│ ").split("│")) for line in routes.splitlines() if "│" in line}
    assert cells == {(route or "-", d, s, str(n)) for (route, d, s), n in expected.items()}
    assert "overdue expectations: 3 (on 3 messages" in text and "business acks we owe: 2" in text


def test_show_finds_a_message_by_any_of_its_keys(listed: Listed) -> None:
    row = listed.rows[4]
    for key in (
        row["id"],
        row["mesh_message_id"].lower(),
        row["itk_message_id"].lower(),
        row["local_id"],
        row["source_file"].split("@")[0],
        row["source_file"],
    ):
        done = run(listed.config, "show", key, "--json")
        assert done.exit_code == 0, (key, done.output)
        assert json.loads(done.stdout)["id"] == row["id"]
    text = run(listed.config, "show", row["mesh_message_id"].lower())
    assert text.exit_code == 0 and text.stdout.startswith(row["id"])
    # a meshbridge id names its own message, also when it is another's local id
    two, eight = listed.rows[2]["id"], listed.rows[8]["id"]
    own = run(listed.config, "show", two, "--json")
    assert own.exit_code == 0 and json.loads(own.stdout)["id"] == two
    assert json.loads(run(listed.config, "show", eight, "--json").stdout)["local_id"] == two


def test_show_a_key_naming_several_messages_lists_them(listed: Listed) -> None:
    five, nine = listed.rows[5]["id"], listed.rows[9]["id"]
    for args in (["SHARED"], ["SHARED", "--json"]):
        done = run(listed.config, "show", *args)
        assert done.exit_code == 2 and done.stdout == ""
        [line] = done.stderr.splitlines()
        assert line.startswith(f"meshbridge: 'SHARED' names 2 messages: {nine} (in, ")
        assert f", {five} (in, " in line and line.endswith("show one by its meshbridge id")
    unknown = run(listed.config, "show", "no-such-key")
    assert unknown.exit_code == 1 and unknown.stderr == "meshbridge: no message with id 'no-such-key'\n"


def listed_to_a_file(config: Path, path: Path, *args: str) -> int:
    """Run ``messages ARGS`` in this process, its output going to a file (not held anywhere); the
    peak of what Python allocated meanwhile (tracemalloc), in bytes."""
    with path.open("w") as out, redirect_stdout(out):
        tracemalloc.reset_peak()
        main.main(["--config", str(config), "messages", *args], standalone_mode=False)
        return tracemalloc.get_traced_memory()[1]


def test_a_long_listing_is_held_a_page_at_a_time(
    backend: Any, backend_config: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    n = 6 * PAGE + 7
    config = backend_config(OUT_IN)
    store = backend.open()
    ids = [row["id"] for row in fill(store, n)][::-1]
    asked: list[int | None] = []
    page = type(store).page

    def counted(self: Store, *args: Any, **kwargs: Any) -> Any:
        asked.append(kwargs.get("limit"))
        return page(self, *args, **kwargs)

    monkeypatch.setattr(type(store), "page", counted)
    tracemalloc.start()
    try:
        listed_to_a_file(config, tmp_path / "warm.json", "--json", "--limit", "1")  # imports, plugins, caches
        base = listed_to_a_file(config, tmp_path / "one.json", "--json", "--limit", "1")  # what any listing costs
        one_page = listed_to_a_file(config, tmp_path / "page.json", "--json", "--limit", str(PAGE)) - base
        asked.clear()
        everything = listed_to_a_file(config, tmp_path / "all.json", "--json") - base
    finally:
        tracemalloc.stop()
    assert asked == [PAGE] * 7  # a page at a time, never the whole listing in one read
    assert [m["id"] for m in json.loads((tmp_path / "all.json").read_text())] == ids
    size, page_size = (tmp_path / "all.json").stat().st_size, (tmp_path / "page.json").stat().st_size
    assert size > 6 * page_size
    assert everything < 1.5 * one_page, (everything, one_page, size)  # flat: seven pages cost what one does
    table = run(config, "messages")
    lines = table.stdout.splitlines()
    assert sum(line.split()[:2] == ["id", "dir"] for line in lines) == 1  # the header once, for seven pages
    assert [line.split()[0] for line in lines[2:]] == ids
