r"""A small store with expectations of every fate, and the check that its counters are true.

:func:`workload` writes through the store's API only (the same on every schema since m012), so
meshbridge before m015 made ``tests/data/store_archive_m014.tar.gz`` with it (:func:`make_archive`)::

    git archive 5575c1c | tar -x -C /tmp/m014
    cd tests && PYTHONPATH=/tmp/m014 python -c \
        "import store_workload as w; w.make_archive('data/store_archive_m014.tar.gz')"

:func:`assert_derived_true` compares the counters (``counts``) and each message's ``overdue_open``
and ``owes`` (schema m015: triggers keep them) with what the rows say, through SQL of its own.
"""

from __future__ import annotations

import decimal
from collections.abc import Callable
from pathlib import Path
from typing import Any

PAST, FUTURE = "2000-01-01T00:00:00.000000+00:00", "2999-01-01T00:00:00.000000+00:00"
OWED = "bus-ack-owed"

# each message of the workload: its (overdue_open, owes) once the workload ran
FLAGS = {
    "swept": (2, 0),  # both expectations overdue, seen by the sweep, open
    "late": (0, 0),  # overdue and swept, then met; its other expectation is not due
    "in-time": (0, 0),
    "closed": (0, 0),  # overdue and swept, then closed by a nack
    "owed": (0, 1),  # we owe its business ack
    "paid": (0, 0),  # we owed it, and sent it
    "unswept": (0, 0),  # overdue, not seen by the sweep yet: counts() adds it as it reads
}


def workload(store: Any) -> None:
    """The messages of :data:`FLAGS` (ids their names) on routes ``r1``, ``r2``, ``in`` and none,
    in several states, with their expectations."""
    swept = store.add("out", "accepted", id="swept", route="r1")
    store.transition(swept.id, "sending", kind="sending")
    store.transition(swept.id, "sent", kind="sent")
    store.expect("swept", "inf-ack", PAST)
    store.expect("swept", "bus-ack", PAST)
    store.add("out", "sent", id="late", route="r1")
    store.expect("late", "inf-ack", PAST)
    store.expect("late", "bus-ack", FUTURE)
    store.add("out", "sent", id="in-time", route="r2")
    store.expect("in-time", "inf-ack", FUTURE)
    store.meet("in-time", "inf-ack", "20013")
    store.add("out", "sent", id="closed")
    store.expect("closed", "bus-ack", PAST)
    for name in ("owed", "paid"):
        store.add("in", "delivered", id=name, route="in")
        store.expect(name, OWED, None)
    store.meet("paid", OWED, "sent")
    assert len(store.sweep_overdue()) == 4  # swept's two, late's inf-ack, closed's bus-ack
    store.meet("late", "inf-ack", "20013")
    store.close_expectations("closed", "closed by nack")
    store.transition("closed", "bus-nacked", kind="bus-nack")
    store.add("out", "sent", id="unswept", route="r2")
    store.expect("unswept", "inf-ack", PAST)


def make_archive(path: str) -> None:
    """Write :func:`workload`'s store, exported, to ``path`` (see the module docstring)."""
    import tempfile

    from meshbridge.store import SQLiteStore
    from meshbridge.store.moving import export_store

    with tempfile.TemporaryDirectory() as folder:
        store = SQLiteStore(Path(folder) / "mb.db")
        workload(store)
        with open(path, "wb") as out:
            export_store(store, out, "gz")
        store.close()


Run = Callable[[str], list[Any]]  # SQL (no parameters) on the store's database: its rows
_SWEPT_OPEN = "e.met_at IS NULL AND e.overdue_at IS NOT NULL"


def _plain(rows: list[Any]) -> list[tuple[Any, ...]]:
    return sorted(tuple(int(v) if isinstance(v, decimal.Decimal) else v for v in row) for row in rows)


def counters(run: Run) -> list[tuple[Any, ...]]:
    """What ``counts`` holds, every connection's slot summed, none that count nothing."""
    return _plain(
        run(
            "SELECT counter, direction, route, term, sum(n) FROM counts "
            "GROUP BY counter, direction, route, term HAVING sum(n) <> 0"
        )
    )


def assert_derived_true(run: Run) -> None:
    """The counters equal a GROUP BY of the rows; each message's flags, what its expectations say."""
    grouped = run(
        "SELECT 'messages', direction, coalesce(route, ''), state, count(*) FROM messages "
        "GROUP BY direction, coalesce(route, ''), state "
        "UNION ALL SELECT 'open', m.direction, '', e.kind, count(*) FROM expectations e "
        "JOIN messages m ON m.id = e.message_id WHERE e.met_at IS NULL GROUP BY m.direction, e.kind "
        "UNION ALL SELECT 'overdue', m.direction, '', e.kind, count(*) FROM expectations e "
        f"JOIN messages m ON m.id = e.message_id WHERE {_SWEPT_OPEN} GROUP BY m.direction, e.kind "
        "UNION ALL SELECT 'overdue_messages', m.direction, coalesce(m.route, ''), '', count(*) FROM messages m "
        f"WHERE EXISTS (SELECT 1 FROM expectations e WHERE e.message_id = m.id AND {_SWEPT_OPEN}) "
        "GROUP BY m.direction, coalesce(m.route, '')"
    )
    counted, want = counters(run), _plain(grouped)
    assert counted == want, f"counts {counted}, but the rows say {want}"
    flags = run("SELECT id, overdue_open, owes FROM messages")
    expected = run(
        f"SELECT m.id, (SELECT count(*) FROM expectations e WHERE e.message_id = m.id AND {_SWEPT_OPEN}), "
        f"(SELECT count(*) FROM expectations e WHERE e.message_id = m.id AND e.met_at IS NULL AND e.kind = '{OWED}') "
        "FROM messages m"
    )
    assert _plain(flags) == _plain(expected), f"(id, overdue_open, owes): {_plain(flags)}, but {_plain(expected)}"


def flags(run: Run) -> dict[str, tuple[int, int]]:
    """Each message's ``(overdue_open, owes)`` by id."""
    rows = run("SELECT id, overdue_open, owes FROM messages")
    return {ident: (int(overdue), int(owes)) for ident, overdue, owes in rows}
