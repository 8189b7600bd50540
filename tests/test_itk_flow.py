"""ITK3 end to end over a real mesh-sandbox: two meshbridges (X26ABC1 sends, X26ABC2 receives).

All four response patterns, positive and negative; duplicates; out-of-order responses; overdue
expectations; orphans; the command line.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PATIENT, WORKFLOW

from meshbridge import Bridge, Message, MessageSummary, acks, hookimpl, itk, load
from meshbridge.plugins import Plugins, make_plugin_manager


def sender_routes(inf: bool = True, bus: bool = True, within: str = "1h") -> str:
    return f"""
[[routes]]
name = "toc-out"
direction = "outbound"
from = "X26ABC1"
to = "X26ABC2"
workflow_id = "{WORKFLOW}"
payload_type = "fhir"
itk = {{ inf_ack = {str(inf).lower()}, bus_ack = {str(bus).lower()}, event = "ITK006D", \
inf_ack_within = "{within}", bus_ack_within = "{within}" }}
"""


RECEIVER = f"""
[[routes]]
name = "toc-in"
direction = "inbound"
mailbox = "X26ABC2"
workflow_id = "{WORKFLOW}"
payload_type = "fhir"
itk = {{}}
destination = {{ folder = "in" }}
"""


class Recorder:
    def __init__(self) -> None:
        self.events: list = []

    @hookimpl
    def meshbridge_on_event(self, event):
        self.events.append(event)


@pytest.fixture
def pair(tmp_path: Path, meshbridge_config):
    """``pair(sender_routes) -> (sender, receiver, recorder)``: two bridges with their own stores and mailboxes."""
    opened: list[Bridge] = []

    def make(routes: str = sender_routes()) -> tuple[Bridge, Bridge, Recorder]:
        recorder = Recorder()
        pm = make_plugin_manager(load_entrypoints=False)
        pm.register(recorder, name="recorder")
        a = Bridge(load(meshbridge_config(routes, name="a.toml", store="a/mb.db", mailboxes=("X26ABC1",))), Plugins(pm))
        b = Bridge(load(meshbridge_config(RECEIVER, name="b.toml", store="b/mb.db", mailboxes=("X26ABC2",))))
        opened.extend((a, b))
        return a, b, recorder

    yield make
    for bridge in opened:
        bridge.close()


def send(bridge: Bridge, tmp_path: Path, data: bytes = PATIENT) -> Message:
    path = tmp_path / "payload.xml"
    path.write_bytes(data)
    return bridge.send(path, route="toc-out")


def inbound(bridge: Bridge) -> MessageSummary:
    [message] = [m for m in bridge.messages(direction="in") if m.route == "toc-in"]
    return message


def kinds(bridge: Bridge, message_id: str) -> list[str]:
    return [e.kind for e in bridge.store.events(message_id)]


def test_full_acknowledgement_positive(tmp_path: Path, pair) -> None:
    a, b, recorder = pair()
    sent = send(a, tmp_path)
    assert sent.itk_message_id and sent.content_type == "application/fhir+xml"
    assert {e.kind for e in a.store.expectations(sent.id)} == {"inf-ack", "bus-ack"}
    wire = a.store.payloads.read(sent.payload_sha256)
    assert [f for f in itk.check(wire) if f.severity == "error"] == []  # what we send conforms
    header = itk.parse(wire)
    assert (header.handling.inf_ack, header.handling.bus_ack, header.event_code) == (True, True, "ITK006D")
    assert header.handling.sender_reference == sent.id

    b.poll()  # receive, answer 20013, deliver
    received = inbound(b)
    assert received.state == "delivered" and received.inf_ack_code == "20013"
    assert itk.same_id(received.itk_message_id, sent.itk_message_id)
    assert (tmp_path / "in").is_dir() and len(list((tmp_path / "in").iterdir())) == 1

    a.poll()  # correlate the 20013
    message = a.store.get(sent.id)
    assert (message.state, message.inf_ack_code, message.bus_ack_code) == ("inf-acked", "20013", None)

    acked = b.ack(received.id, code="30001", text="Patient known here")
    assert (acked.state, acked.bus_ack_code) == ("bus-acked", "30001")
    a.poll()  # correlate the 30001; Full Acknowledgement: send 20013 for it
    message = a.store.get(sent.id)
    assert (message.state, message.bus_ack_code) == ("complete", "30001")
    assert a.store.open_expectations(sent.id) == []
    timeline = a.store.events(sent.id)
    bus = next(e for e in timeline if e.kind == "bus-ack")
    assert bus.detail["code"] == "30001" and bus.detail["text"] == "Patient known here"

    b.poll()  # the receiver's business response gets its infrastructure ack
    [response] = [m for m in b.messages(direction="out") if m.filename == "ITK-Response-30001.xml"]
    assert (response.state, response.inf_ack_code) == ("complete", "20013")
    assert recorder.events == []  # nothing went wrong


def test_technical_only(tmp_path: Path, pair) -> None:
    a, b, _ = pair(sender_routes(inf=True, bus=False))
    sent = send(a, tmp_path)
    b.poll()
    assert b.store.expectations(inbound(b).id) == []  # no business ack owed
    with pytest.raises(Exception, match="did not ask for a business ack"):
        b.ack(inbound(b).id)
    a.poll()
    assert a.store.get(sent.id).state == "complete"


def test_fire_and_forget_gets_no_response(tmp_path: Path, pair) -> None:
    a, b, _ = pair(sender_routes(inf=False, bus=False))
    sent = send(a, tmp_path)
    b.poll()
    assert inbound(b).state == "delivered" and inbound(b).inf_ack_code is None
    assert list(b.messages(direction="out")) == []
    report = a.poll()
    assert report.received == [] and a.store.get(sent.id).state == "sent"


def test_business_only(tmp_path: Path, pair) -> None:
    a, b, _ = pair(sender_routes(inf=False, bus=True))
    sent = send(a, tmp_path)
    b.poll()
    assert list(b.messages(direction="out")) == []  # no infrastructure ack asked for
    b.ack(inbound(b).id, code="30004")
    a.poll()
    assert (a.store.get(sent.id).state, a.store.get(sent.id).bus_ack_code) == ("complete", "30004")


def test_infrastructure_nack_is_final(tmp_path: Path, pair) -> None:
    a, b, recorder = pair()
    # a structurally bad FHIR payload (unknown element) that our own send would refuse: post it by hand
    bad = PATIENT.replace(b'<gender value="unknown"/>', b'<gender value="unknown"/><nhsNumber value="1"/>')
    definition = itk.MESSAGE_DEFINITION_BASE + "/ITK-OPL-MessageDefinition-4"
    wire, header_id = itk.build_message(
        bad,
        media_type="application/fhir+xml",
        event_code="ITK006D",
        event_display="ITK Outpatient Letter",
        handling=itk.Handling(bus_ack=True, inf_ack=True, message_definition=definition),
        sender_mailbox="X26ABC1",
    )
    sent = a.store.add(
        "out",
        "sent",
        route="toc-out",
        mailbox="X26ABC1",
        peer="X26ABC2",
        workflow_id=WORKFLOW,
        itk_message_id=header_id,
    )
    acks.expect(a.store, sent.id, a.config.route("toc-out").itk)
    a.mailbox("X26ABC1").send(lambda: io.BytesIO(wire), len(wire), to="X26ABC2", workflow_id=WORKFLOW)
    b.poll()
    refused = [m for m in b.messages(direction="in") if m.state == "invalid"]
    assert len(refused) == 1 and refused[0].inf_ack_code == "20009"
    assert any(f["code"] == "fhir.structure" for f in [f.as_dict() for f in refused[0].findings])
    with pytest.raises(Exception, match="only a valid message gets a business ack"):
        b.ack(refused[0].id)
    a.poll()
    message = a.store.get(sent.id)
    assert (message.state, message.inf_ack_code) == ("inf-nacked", "20009")
    assert a.store.open_expectations(sent.id) == []  # a nack is final: no business ack expected
    assert [e.kind for e in recorder.events] == ["nack"]


def test_business_nack(tmp_path: Path, pair) -> None:
    a, b, recorder = pair()
    sent = send(a, tmp_path)
    b.poll()
    nacked = b.ack(inbound(b).id, code="30002", nack=True, text="Patient not known here")
    assert nacked.state == "bus-nacked"
    a.poll()
    message = a.store.get(sent.id)
    assert (message.state, message.inf_ack_code, message.bus_ack_code) == ("bus-nacked", "20013", "30002")
    assert [m.id for m in a.messages(state="bus-nacked")] == [sent.id]
    assert recorder.events[-1].kind == "nack" and recorder.events[-1].detail["text"] == "Patient not known here"
    with pytest.raises(Exception, match="already answered with 30002"):
        b.ack(inbound(b).id)


def test_duplicate_message_gets_20007(tmp_path: Path, pair, mesh_peer) -> None:
    a, b, _ = pair()
    sent = send(a, tmp_path)
    wire = a.store.payloads.read(sent.payload_sha256)
    mesh_peer("X26ABC1").send_message("X26ABC2", wire, workflow_id=WORKFLOW)  # the same ITK message again
    b.poll()
    states = sorted(m.state for m in b.messages(direction="in"))
    assert states == ["delivered", "duplicate"]
    duplicate = next(m for m in b.messages(direction="in") if m.state == "duplicate")
    assert duplicate.inf_ack_code == "20007"
    assert len(list((tmp_path / "in").iterdir())) == 1  # delivered once
    a.poll()  # 20013 then 20007 for the same message: it was received, the duplicate is only noted
    message = a.store.get(sent.id)
    assert (message.state, message.inf_ack_code) == ("inf-acked", "20013")
    assert "duplicate-reported" in kinds(a, sent.id)


def test_the_same_response_twice_is_applied_once(tmp_path: Path, pair, mesh_peer) -> None:
    a, b, _ = pair()
    sent = send(a, tmp_path)
    b.poll()
    [response] = b.messages(direction="out")
    wire = b.store.payloads.read(response.payload_sha256)
    mesh_peer("X26ABC2").send_message("X26ABC1", wire, workflow_id=WORKFLOW + "_ACK")  # MESH-level redelivery
    a.poll()
    responses = a.messages(direction="in")
    assert sorted(m.state for m in responses) == ["correlated", "duplicate"]
    assert kinds(a, sent.id).count("inf-ack") == 1


def test_business_ack_before_infrastructure_ack(tmp_path: Path, pair, mesh_peer) -> None:
    a, _, _ = pair()
    sent = send(a, tmp_path)
    peer = mesh_peer("X26ABC2")
    for code in ("30001", "20013"):  # out of order
        wire, _ = itk.build_response(original_id=sent.itk_message_id.upper(), code=code, sender_mailbox="X26ABC2")
        peer.send_message("X26ABC1", wire, workflow_id=WORKFLOW + "_ACK")
    a.poll()
    message = a.store.get(sent.id)
    assert (message.state, message.inf_ack_code, message.bus_ack_code) == ("complete", "20013", "30001")
    timeline = kinds(a, sent.id)
    assert timeline.index("bus-ack") < timeline.index("inf-ack") and timeline[-1] == "complete"


def test_overdue_expectations(tmp_path: Path, pair, meshbridge_config) -> None:
    a, _, recorder = pair(sender_routes(within="0s"))
    sent = send(a, tmp_path)
    report = a.poll()
    assert sorted(report.overdue) == [sent.id, sent.id]
    assert a.store.get(sent.id).overdue is True
    assert [m.id for m in a.messages(overdue=True)] == [sent.id]
    assert sorted(e.detail["expected"] for e in recorder.events if e.kind == "overdue") == ["bus-ack", "inf-ack"]
    assert a.poll().overdue == []  # raised once
    status = a.status()  # two expectations overdue, on one message
    assert (status.overdue, status.overdue_messages) == (2, 1)


def test_orphan_responses(tmp_path: Path, pair, mesh_peer) -> None:
    a, _, recorder = pair()
    send(a, tmp_path)
    peer = mesh_peer("X26ABC2")
    for original in ("6f1c0000-0000-4000-8000-000000000000", itk.UNREADABLE):
        wire, _ = itk.build_response(original_id=original, code="10009", sender_mailbox="X26ABC2")
        peer.send_message("X26ABC1", wire, workflow_id=WORKFLOW + "_ACK")
    peer.send_message("X26ABC1", b"not even XML", workflow_id=WORKFLOW + "_ACK")
    a.poll()
    orphans = a.messages(state="orphan")
    assert len(orphans) == 3
    assert [e.kind for e in recorder.events] == ["orphan", "orphan", "orphan"]
    reasons = " ".join(e.summary for e in recorder.events)
    assert "which this store did not send" in reasons and "unreadable ITK response" in reasons


def test_unreadable_message_gets_10009(tmp_path: Path, pair, mesh_peer) -> None:
    _, b, _ = pair()
    mesh_peer("X26ABC1").send_message("X26ABC2", b"<not-itk/>", workflow_id=WORKFLOW)
    b.poll()
    [message] = b.messages(direction="in")
    assert (message.state, message.inf_ack_code) == ("invalid", "10009")
    [response] = b.messages(direction="out")
    header = itk.parse(b.store.payloads.read(response.payload_sha256))
    assert (header.response_identifier, header.itk_code) == (itk.UNREADABLE, "10009")
    assert response.peer == "X26ABC1" and response.workflow_id == WORKFLOW + "_ACK"


def test_command_line(tmp_path: Path, pair) -> None:
    a, b, _ = pair()
    sent = send(a, tmp_path)
    b.poll()
    received = inbound(b)

    def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "meshbridge", "--config", str(config), *args], capture_output=True, text=True
        )

    b_config, a_config = b.config.file, a.config.file
    usage = cli(b_config, "ack", received.id)
    assert usage.returncode == 2 and "--ok or --nack" in usage.stderr
    bad_code = cli(b_config, "ack", received.id, "--nack", "20013")
    assert bad_code.returncode == 2 and "'20013' is not an ITK3 business response code" in bad_code.stderr
    done = cli(b_config, "ack", received.id, "--nack", "30003", "--text", "Moved away")
    assert done.returncode == 0 and "bus-nacked (30003)" in done.stdout
    assert cli(a_config, "poll").returncode == 0
    [item] = json.loads(cli(a_config, "messages", "--json", "--state", "bus-nacked").stdout)
    assert (item["id"], item["inf_ack_code"], item["bus_ack_code"], item["overdue"]) == (
        sent.id,
        "20013",
        "30003",
        False,
    )
    assert itk.same_id(item["itk_message_id"], sent.itk_message_id)
    shown = cli(a_config, "show", sent.id)
    assert "inf-ack" in shown.stdout and "bus-nack" in shown.stdout and "Moved away" in shown.stdout
    assert "expects bus-ack" in shown.stdout and "met" in shown.stdout
    wire = tmp_path / "wire.xml"
    wire.write_bytes(a.store.payloads.read(sent.payload_sha256))
    assert cli(a_config, "validate", "--itk", "--type", "fhir", str(wire)).returncode == 0
    broken = tmp_path / "broken.xml"
    broken.write_bytes(wire.read_bytes().replace(b'url="InfAckRequested"', b'url="InfAckWanted"'))
    refused = cli(a_config, "validate", "--itk", str(broken))
    assert refused.returncode == 1 and "itk.10002" in refused.stdout


def test_a_third_mailbox_cannot_make_a_genuine_message_a_duplicate(tmp_path: Path, pair, mesh_peer) -> None:
    """20007 is per sender: a copy of a message id sent first by another mailbox blocks nothing."""
    a, b, _ = pair()
    wire = acks.wrap(PATIENT, itk.FHIR_XML, a.config.route("toc-out")).data
    mesh_peer("X26ABC3").send_message("X26ABC2", wire, workflow_id=WORKFLOW)  # the forger is first
    mesh_peer("X26ABC1").send_message("X26ABC2", wire, workflow_id=WORKFLOW)  # the genuine sender
    b.poll()
    by_peer = {m.peer: m for m in b.messages(direction="in") if m.route == "toc-in"}
    assert by_peer["X26ABC1"].state == "delivered"
    assert by_peer["X26ABC1"].inf_ack_code == "20013"
    assert len(list((tmp_path / "in").iterdir())) == 2  # each sender's message delivered once
