"""Overdue has one definition (an expectation past its deadline and not met), and every view uses it.

Two meshbridges on a real mesh-sandbox (X26ABC1 sends ITK, X26ABC2 receives); the views are read
from real ``meshbridge`` processes. Deadlines of ``0s`` pass at once: nothing sleeps.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PATIENT, WORKFLOW

from meshbridge import Bridge, Message, itk, load


def sender(inf_within: str = "1h", bus_within: str = "1h") -> str:
    return f"""
[[routes]]
name = "toc-out"
direction = "outbound"
from = "X26ABC1"
to = "X26ABC2"
workflow_id = "{WORKFLOW}"
payload_type = "fhir"
itk = {{ inf_ack = true, bus_ack = true, event = "ITK006D", inf_ack_within = "{inf_within}", \
bus_ack_within = "{bus_within}" }}
"""


def receiver(itk_table: str = "{}") -> str:
    return f"""
[[routes]]
name = "toc-in"
direction = "inbound"
mailbox = "X26ABC2"
workflow_id = "{WORKFLOW}"
payload_type = "fhir"
itk = {itk_table}
destination = {{ folder = "in" }}
"""


@pytest.fixture
def pair(meshbridge_config):
    """``pair(sender routes, receiver routes) -> (a, b)``: the two bridges, each with its own store."""
    opened: list[Bridge] = []

    def make(a_routes: str = sender(), b_routes: str = receiver()) -> tuple[Bridge, Bridge]:
        a = Bridge(load(meshbridge_config(a_routes, name="a.toml", store="a/mb.db", mailboxes=("X26ABC1",))))
        b = Bridge(load(meshbridge_config(b_routes, name="b.toml", store="b/mb.db", mailboxes=("X26ABC2",))))
        opened.extend((a, b))
        return a, b

    yield make
    for bridge in opened:
        bridge.close()


def cli(bridge: Bridge, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "meshbridge", "--config", str(bridge.config.file), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done


def send(bridge: Bridge, tmp_path: Path) -> Message:
    path = tmp_path / "payload.xml"
    path.write_bytes(PATIENT)
    return bridge.send(path, route="toc-out")


def expectation_lines(text: str) -> dict[str, str]:
    return {line.split()[1]: line for line in text.splitlines() if line.startswith("expects ")}


def test_an_expectation_is_overdue_in_every_view_as_soon_as_its_deadline_passes(tmp_path: Path, pair) -> None:
    a, _ = pair(sender(inf_within="0s", bus_within="0s"))
    sent = send(a, tmp_path)  # no poll, so no sweep has run: nothing recorded the moment yet

    assert "overdue" not in [e.kind for e in a.store.events(sent.id)]
    shown = cli(a, "show", sent.id)
    assert shown.returncode == 0, shown.stderr
    lines = expectation_lines(shown.stdout)
    assert lines["inf-ack"].endswith(": OVERDUE") and lines["bus-ack"].endswith(": OVERDUE"), shown.stdout

    details = json.loads(cli(a, "show", sent.id, "--json").stdout)
    assert [(e["kind"], e["overdue"], e["overdue_at"]) for e in details["expectations"]] == [
        ("bus-ack", True, None),
        ("inf-ack", True, None),
    ]
    assert details["overdue"] is True

    status = json.loads(cli(a, "status", "--json").stdout)
    assert (status["overdue"], status["overdue_messages"]) == (2, 1)  # expectations, and the messages they are on
    text = cli(a, "status").stdout
    assert "overdue expectations: 2 (on 1 message;" in text

    listed = json.loads(cli(a, "messages", "--overdue", "--json").stdout)
    assert [m["id"] for m in listed] == [sent.id] and listed[0]["overdue"] is True

    a.sweep()  # the sweep records the moment once (timeline, notification); the views do not change
    assert [e.kind for e in a.store.events(sent.id)].count("overdue") == 2
    assert json.loads(cli(a, "status", "--json").stdout)["overdue"] == 2


def test_a_message_within_its_deadlines_is_not_overdue(tmp_path: Path, pair) -> None:
    a, _ = pair(sender(inf_within="1h", bus_within="2d"))
    sent = send(a, tmp_path)
    lines = expectation_lines(cli(a, "show", sent.id).stdout)
    assert lines["inf-ack"].endswith(": open") and lines["bus-ack"].endswith(": open")
    assert json.loads(cli(a, "status", "--json").stdout)["overdue"] == 0
    assert json.loads(cli(a, "messages", "--overdue", "--json").stdout) == []
    assert "overdue expectations: 0 (on 0 messages;" in cli(a, "status").stdout


def test_a_nack_is_shown_as_a_nack_and_a_late_ack_as_late(tmp_path: Path, pair) -> None:
    a, b = pair(sender(inf_within="0s", bus_within="1h"))  # the 20013 can only come late
    sent = send(a, tmp_path)
    b.poll()  # 20013 back to a
    [received] = b.messages(direction="in")
    b.ack(received.id, code="30003", nack=True, text="Moved away")
    a.poll()  # both responses correlated

    shown = cli(a, "show", sent.id)
    lines = expectation_lines(shown.stdout)
    assert "met 20013 at " in lines["inf-ack"] and lines["inf-ack"].endswith(", LATE"), shown.stdout
    assert "NACKED 30003 (Moved away) at " in lines["bus-ack"] and "LATE" not in lines["bus-ack"], shown.stdout

    details = {e["kind"]: e for e in json.loads(cli(a, "show", sent.id, "--json").stdout)["expectations"]}
    assert (details["inf-ack"]["verdict"], details["inf-ack"]["late"], details["inf-ack"]["overdue"]) == (
        "ack",
        True,
        False,
    )
    bus = details["bus-ack"]
    assert (bus["verdict"], bus["outcome"], bus["text"], bus["late"]) == ("nack", "30003", "Moved away", False)
    # met, even late, is not overdue
    assert json.loads(cli(a, "status", "--json").stdout)["overdue"] == 0


def test_an_infrastructure_nack_closes_the_business_expectation(tmp_path: Path, pair, mesh_peer) -> None:
    a, _ = pair()
    sent = send(a, tmp_path)
    wire, _ = itk.build_response(
        original_id=sent.itk_message_id, code="20009", sender_mailbox="X26ABC2", text="Payload invalid"
    )
    mesh_peer("X26ABC2").send_message("X26ABC1", wire, workflow_id=WORKFLOW + "_ACK")
    a.poll()
    lines = expectation_lines(cli(a, "show", sent.id).stdout)
    assert "NACKED 20009 (Payload invalid) at " in lines["inf-ack"]
    assert ": closed by 20009 at " in lines["bus-ack"]
    details = json.loads(cli(a, "show", sent.id, "--json").stdout)
    verdicts = {e["kind"]: e["verdict"] for e in details["expectations"]}
    assert verdicts == {"inf-ack": "nack", "bus-ack": "closed"}


def test_a_nack_met_before_verdicts_were_stored_is_still_shown_as_a_nack(tmp_path: Path, pair) -> None:
    a, b = pair()
    sent = send(a, tmp_path)
    b.poll()
    [received] = b.messages(direction="in")
    b.ack(received.id, code="30003", nack=True)
    a.poll()
    with a.store.immediate() as db:  # as an older meshbridge left it: outcome only
        db.execute("UPDATE expectations SET verdict = NULL, text = NULL WHERE message_id = ?", [sent.id])
    lines = expectation_lines(cli(a, "show", sent.id).stdout)
    assert "NACKED 30003 at " in lines["bus-ack"] and "met 20013 at " in lines["inf-ack"]


def test_our_own_business_ack_is_owed_listed_with_its_age_and_overdue_after_bus_ack_within(
    tmp_path: Path, pair
) -> None:
    a, b = pair(sender(), receiver('{ bus_ack_within = "0s" }'))
    send(a, tmp_path)
    b.poll()  # received, answered 20013, delivered: our business ack is owed, and already late
    [received] = b.messages(direction="in")

    owed = json.loads(cli(b, "messages", "--owed", "--json").stdout)
    assert [m["id"] for m in owed] == [received.id]
    assert owed[0]["overdue"] is True and owed[0]["age_seconds"] >= 0
    table = cli(b, "messages", "--owed")
    assert table.returncode == 0 and received.id in table.stdout and "age" in table.stdout

    status = json.loads(cli(b, "status", "--json").stdout)
    assert (status["owed"], status["overdue"], status["overdue_messages"]) == (1, 1, 1)
    assert "business acks we owe: 1" in cli(b, "status").stdout
    line = expectation_lines(cli(b, "show", received.id).stdout)["bus-ack-owed"]
    assert line.startswith("expects bus-ack-owed (our business ack) by ") and line.endswith(": OVERDUE")
    assert [m["id"] for m in json.loads(cli(b, "messages", "--overdue", "--json").stdout)] == [received.id]
    assert "overdue" in [e.kind for e in b.store.events(received.id)]  # poll's sweep recorded it

    b.ack(received.id, code="30001")
    assert json.loads(cli(b, "messages", "--owed", "--json").stdout) == []
    status = json.loads(cli(b, "status", "--json").stdout)
    assert (status["owed"], status["overdue"]) == (0, 0)
    line = expectation_lines(cli(b, "show", received.id).stdout)["bus-ack-owed"]
    assert "sent 30001 at " in line and line.endswith(", LATE")


def test_an_owed_business_ack_without_a_deadline_is_listed_but_never_overdue(tmp_path: Path, pair) -> None:
    a, b = pair()
    send(a, tmp_path)
    b.poll()
    [received] = b.messages(direction="in")
    owed = json.loads(cli(b, "messages", "--owed", "--json").stdout)
    assert [(m["id"], m["overdue"]) for m in owed] == [(received.id, False)]
    status = json.loads(cli(b, "status", "--json").stdout)
    assert (status["owed"], status["overdue"]) == (1, 0)
    line = expectation_lines(cli(b, "show", received.id).stdout)["bus-ack-owed"]
    assert line.endswith("(no deadline): open")
    b.ack(received.id, code="30003", nack=True, text="Not known here")
    line = expectation_lines(cli(b, "show", received.id).stdout)["bus-ack-owed"]
    assert "(no deadline): sent nack 30003 (Not known here) at " in line and "LATE" not in line
    assert json.loads(cli(b, "messages", "--owed", "--json").stdout) == []


def test_poll_counts_orphans_and_duplicates_as_such(tmp_path: Path, pair, mesh_peer) -> None:
    a, b = pair()
    sent = send(a, tmp_path)
    b.poll()
    [response] = b.messages(direction="out")
    to_a = mesh_peer("X26ABC2")
    wire = b.store.payloads.read(response.payload_sha256)
    to_a.send_message("X26ABC1", wire, workflow_id=WORKFLOW + "_ACK")  # b sent the 20013; this is a copy
    stray, _ = itk.build_response(
        original_id="6f1c0000-0000-4000-8000-000000000000", code="20013", sender_mailbox="X26ABC2"
    )
    to_a.send_message("X26ABC1", stray, workflow_id=WORKFLOW + "_ACK")  # answers nothing we sent
    polled = cli(a, "poll")
    assert polled.returncode == 0, polled.stderr
    lines = polled.stdout.splitlines()
    for line in ("received: 3", "correlated: 1", "orphan: 1", "duplicate: 1"):
        assert line in lines, polled.stdout
    assert a.store.get(sent.id).inf_ack_code == "20013"

    # an ITK message received twice (same MessageHeader.id, same sender) is a duplicate, not invalid
    original = a.store.payloads.read(sent.payload_sha256)
    mesh_peer("X26ABC1").send_message("X26ABC2", original, workflow_id=WORKFLOW)
    report = json.loads(cli(b, "poll", "--json").stdout)
    assert (len(report["duplicate"]), report["invalid"], report["orphan"]) == (1, [], [])
    assert b.store.get(report["duplicate"][0]).state == "duplicate"
