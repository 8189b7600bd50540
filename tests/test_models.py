"""The typed results of the public API: messages, pages with a keyset cursor, timelines,
expectations, status; ``meshbridge.validate``; the command line reading through them only."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from pathlib import Path

import pytest

import meshbridge
from meshbridge import (
    Direction,
    Event,
    Expectation,
    Filters,
    InvalidRequest,
    Message,
    MessageSummary,
    Page,
    PayloadError,
    Reader,
    State,
    Status,
    TimelineKind,
    load,
)
from meshbridge.store import Store

README = Path(__file__).parents[1] / "README.md"
CLI = Path(meshbridge.__file__).parent / "cli"


# ``store``: tests/store_backends.py (each test runs on SQLite and on PostgreSQL)


def fill(store: Store, n: int) -> list[str]:
    """``n`` messages, alternately outbound (accepted) and inbound (received), oldest first."""
    ids = []
    for i in range(n):
        out = i % 2 == 0
        row = store.add(
            "out" if out else "in",
            "accepted" if out else "received",
            mailbox="X26ABC1",
            peer="X26ABC2",
            workflow_id="WF",
            filename=f"f{i}.txt",
        )
        ids.append(row.id)
    return ids


def test_pages_follow_their_cursor_once_over_every_message_in_order(store: Store) -> None:
    ids = fill(store, 7)
    seen, after, pages = [], None, 0
    while True:
        page = store.page(limit=3, after=after, newest=False)
        assert isinstance(page, Page) and all(isinstance(m, MessageSummary) for m in page)
        assert len(page) <= 3
        seen += [m.id for m in page]
        pages += 1
        if page.next is None:
            break
        after = page.next
    assert seen == ids and pages == 3
    newest = [m.id for m in store.page(newest=True)]
    assert newest == ids[::-1]
    first = store.page(limit=4, newest=True)
    assert first.next is not None
    second = store.page(limit=4, newest=True, after=first.next)
    assert [m.id for m in (*first, *second)] == ids[::-1] and second.next is None
    inbound = store.page(Filters(direction=Direction.IN), limit=2, newest=False)
    rest = store.page(Filters(direction=Direction.IN), limit=2, after=inbound.next, newest=False)
    assert [m.id for m in (*inbound, *rest)] == ids[1::2]
    assert all(m.direction == Direction.IN and m.state == State.RECEIVED for m in (*inbound, *rest))
    assert store.page(limit=len(ids)).next is None  # exactly full: no empty page after it


def test_a_cursor_not_made_by_a_page_is_refused(store: Store) -> None:
    fill(store, 2)
    for bad in ("nonsense!", "bm90IGpzb24", "WzFd"):  # not base64, not JSON, not a [time, id] pair
        with pytest.raises(InvalidRequest, match="not a page cursor"):
            store.page(after=bad)


def test_a_message_is_typed_with_its_timeline_and_expectations(store: Store) -> None:
    [message_id] = fill(store, 1)
    store.transition(message_id, "sending", kind="sending")
    store.expect(message_id, "inf-ack", "2000-01-01T00:00:00.000000+00:00")  # long overdue
    store.expect(message_id, "bus-ack", None)
    message = store.message(message_id)
    assert isinstance(message, Message) and dataclasses.is_dataclass(message)
    with pytest.raises(dataclasses.FrozenInstanceError):
        message.state = State.SENT  # type: ignore[misc]
    assert message.state is State.SENDING and message.state == "sending" and message.direction is Direction.OUT
    assert isinstance(message.created_at, datetime) and message.created_at.utcoffset() is not None
    assert [(e.kind, e.state) for e in message.events] == [("accepted", "accepted"), ("sending", "sending")]
    assert all(isinstance(e, Event) and isinstance(e.kind, TimelineKind) for e in message.events)
    assert message.overdue
    inf, bus = sorted(message.expectations, key=lambda e: e.kind, reverse=True)
    assert isinstance(inf, Expectation) and (inf.kind, inf.overdue, inf.verdict) == ("inf-ack", True, None)
    assert (bus.kind, bus.due_at, bus.overdue) == ("bus-ack", None, False)
    with pytest.raises(TypeError):
        message["id"]  # type: ignore[index]  # attributes only


def test_json_keeps_the_documented_field_names(store: Store) -> None:
    """``messages --json`` and ``show --json`` are made from the typed objects, with README's names."""
    [message_id] = fill(store, 1)
    store.event(message_id, "retry", {"why": "test"})
    message = store.message(message_id)
    listed = message.as_json()
    documented = README.read_text().split("`messages --json` items carry", 1)[1].split("(with `--owed`", 1)[0]
    names = [name.strip("`, \n") for name in documented.split("`")[1::2]]
    assert sorted(store.get(message_id).as_json()) == sorted(names)
    assert set(listed) == {*names, "events", "expectations"}
    assert [sorted(e) for e in listed["events"]] == [["at", "detail", "kind", "seq", "state"]] * 2
    assert json.loads(json.dumps(listed))["events"][1]["detail"] == {"why": "test"}


def test_status_is_typed(store: Store) -> None:
    fill(store, 3)
    status = meshbridge.reader.status(store)
    assert isinstance(status, Status)
    assert status.counts == {"in": {"received": 1}, "out": {"accepted": 2}}
    assert status.as_json() == {
        "counts": {"in": {"received": 1}, "out": {"accepted": 2}},
        "overdue": 0,
        "overdue_messages": 0,
        "owed": 0,
        "by_route": [
            {"route": None, "direction": "in", "state": "received", "messages": 1},
            {"route": None, "direction": "out", "state": "accepted", "messages": 2},
        ],
    }


def test_a_reader_shows_and_lists_like_a_bridge(meshbridge_config) -> None:
    config = load(meshbridge_config(""))
    with meshbridge.Bridge(config) as bridge:
        ids = fill(bridge.store, 3)
        by_bridge = (bridge.messages(limit=2, oldest_first=True), bridge.show(ids[1]), bridge.status())
    with Reader(config) as reader:
        assert (reader.messages(limit=2, oldest_first=True), reader.show(ids[1]), reader.status()) == by_bridge
        assert [m.id for m in reader.messages(after=by_bridge[0].next, oldest_first=True)] == ids[2:]
        assert [m.id for m in reader.messages()] == ids[::-1]  # newest first unless asked
        assert reader.payload_problem(by_bridge[1]) is None  # (no payload stored)


def test_validate_is_a_public_function(tmp_path: Path, meshbridge_config) -> None:
    assert meshbridge.validate(b"plain words\n").payload_type == "text"
    bad = tmp_path / "bad.xml"
    bad.write_bytes(b"<a><b></a>")
    result = meshbridge.validate(bad, type="xml")
    assert not result.valid and result.payload_type == "xml" and result.errors
    with pytest.raises(PayloadError, match=r"cannot read .*missing\.xml"):
        meshbridge.validate(tmp_path / "missing.xml")
    config = meshbridge_config(
        '[[routes]]\nname = "out"\ndirection = "outbound"\nfrom = "X26ABC1"\nto = "X26ABC2"\n'
        'workflow_id = "WF"\npayload_type = "xml"\n'
    )
    assert meshbridge.validate(b"<a/>", route="out", config=config).payload_type == "xml"  # the route's type


def test_the_command_line_never_reaches_into_a_store() -> None:
    """The command line is a skin: no module of it opens, names or reaches into a store; it asks
    the Bridge, a Reader or a public function (``export``, ``store migrate`` included)."""
    modules = sorted(CLI.glob("*.py"))
    assert len(modules) > 10
    for module in modules:
        text = module.read_text()
        for reach in ("bridge.store", ".store.", "Store(", "from ..store", "import store"):
            assert reach not in text, f"{module.name}: {reach}"


def test_export_streams_a_checked_payload_through_the_public_api(meshbridge_config) -> None:
    import io

    config = load(meshbridge_config(""))
    with meshbridge.Bridge(config) as bridge:
        data = b"0123456789" * 200_000  # past inline_max: a payload file
        sha, size = bridge.store.payloads.write([data])
        [removed] = fill(bridge.store, 1)
        kept = bridge.store.add("in", "received", mailbox="X26ABC1", payload_sha256=sha, mesh_message_id="M1").id
        out = io.BytesIO()
        exported = bridge.export("M1", out)  # by MESH message id
        assert exported == meshbridge.Exported(kept, sha, size) and out.getvalue() == data
        with pytest.raises(meshbridge.Refused, match=f"^{removed}: its payload was removed by retention$"):
            bridge.export(removed, io.BytesIO())
        with pytest.raises(meshbridge.UnknownMessage):
            bridge.export("nope", io.BytesIO())
        path = bridge.store.payloads.path(sha)
        path.chmod(0o600)
        path.write_bytes(data[:-1] + b"!")
        for first, written in ((True, b""), (False, data[:-1] + b"!")):
            out = io.BytesIO()
            with pytest.raises(meshbridge.StoreError, match=f"payload file {path} is corrupt"):
                bridge.export(kept, out, check_first=first)
            assert out.getvalue() == written  # checked first: not a byte written
