"""Only the recipient can answer: ITK3 responses and domain acks from anyone else are orphans.

Over a real mesh-sandbox with three mailboxes: X26ABC1 is ours and sends to X26ABC2; X26ABC3 is a
third organisation that knows (or guesses) our MessageHeader.id or interchange reference. MESH
authenticates the sender (``mex-From``); what the response body says about its sender is the
peer's word, so the forgeries below claim to come from X26ABC2.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import pytest

from meshbridge import Bridge, Message, MessageSummary, Page, hookimpl, itk, load
from meshbridge.plugins import Plugins, make_plugin_manager

WORKFLOW = "TOC_FHIR_OP_ATTEN"
ACK = WORKFLOW + "_ACK"
PATIENT = b'<Patient xmlns="http://hl7.org/fhir"><id value="p1"/><gender value="unknown"/></Patient>'
EDIFACT = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "payloads" / "edifact"
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "recep_ack.py"


def itk_route(name: str, sender: str, workflow: str = WORKFLOW) -> str:
    return f"""
[[routes]]
name = "{name}"
direction = "outbound"
from = "{sender}"
to = "X26ABC2"
workflow_id = "{workflow}"
payload_type = "fhir"
itk = {{ inf_ack = true, bus_ack = true, event = "ITK006D", inf_ack_within = "1h", bus_ack_within = "2d" }}
"""


RECEP_ROUTE = """
[[routes]]
name = "registrations-out"
direction = "outbound"
from = "X26ABC1"
to = "X26ABC2"
workflow_id = "NHAIS_REG"
payload_type = "edifact"
options = { recep_within = "1d" }
"""


class Recorder:
    def __init__(self) -> None:
        self.events: list = []

    @hookimpl
    def meshbridge_on_event(self, event):
        self.events.append(event)


@pytest.fixture
def bridge(meshbridge_config):
    """``bridge(routes, mailboxes, protocol) -> (Bridge, Recorder)``, closed after the test."""
    opened: list[Bridge] = []

    def make(routes: str, mailboxes: tuple[str, ...] = ("X26ABC1",), protocol=None) -> tuple[Bridge, Recorder]:
        recorder = Recorder()
        pm = make_plugin_manager(load_entrypoints=False)
        pm.register(recorder, name="recorder")
        if protocol is not None:
            pm.register(protocol, name="protocol")
        n = len(opened)
        config = meshbridge_config(routes, name=f"mb{n}.toml", store=f"var{n}/mb.db", mailboxes=mailboxes)
        made = Bridge(load(config), Plugins(pm))
        opened.append(made)
        return made, recorder

    yield make
    for made in opened:
        made.close()


def send(bridge: Bridge, tmp_path: Path, route: str = "toc-out", data: bytes = PATIENT, name: str = "p.xml") -> Message:
    path = tmp_path / name
    path.write_bytes(data)
    return bridge.send(path, route=route)


def response(original_id: str, code: str, message_id: str | None = None) -> bytes:
    """An ITK008M whose body claims to come from X26ABC2, as the genuine one and a forgery both would."""
    wire, _ = itk.build_response(original_id=original_id, code=code, sender_mailbox="X26ABC2", message_id=message_id)
    return wire


def snapshot(bridge: Bridge, message_id: str) -> tuple:
    """Everything about a message: its row, its timeline and its expectations."""
    return bridge.store.get(message_id), bridge.store.events(message_id), bridge.store.expectations(message_id)


def answers(bridge: Bridge) -> dict[str, MessageSummary]:
    """Inbound rows by the MESH sender and order of arrival: {"X26ABC3#0": row, ...}."""
    seen: dict[str, MessageSummary] = {}
    for row in bridge.messages(direction="in", oldest_first=True, limit=None):
        peer = row.peer
        index = sum(1 for key in seen if key.startswith(peer))
        seen[f"{peer}#{index}"] = row
    return seen


def assert_orphans(bridge: Bridge, recorder: Recorder, reason: str, count: int) -> Page:
    orphans = bridge.messages(state="orphan")
    assert len(orphans) == count
    assert all(reason in (row.last_error or "") for row in orphans), [r.last_error for r in orphans]
    for row in orphans:
        [event] = [e for e in bridge.store.events(row.id) if e.kind == "orphan"]
        assert reason in event.detail["reason"]
        assert row.answers is None
    assert [e.kind for e in recorder.events] == ["orphan"] * count
    assert all(reason in e.summary and reason in e.detail["reason"] for e in recorder.events)
    return orphans


# -- ITK3 -----------------------------------------------------------------------------------


def test_forged_acks_from_a_third_mailbox_change_nothing(tmp_path: Path, bridge, mesh_peer) -> None:
    ours, recorder = bridge(itk_route("toc-out", "X26ABC1"))
    sent = send(ours, tmp_path)
    before = snapshot(ours, sent.id)
    forger = mesh_peer("X26ABC3")
    for code in ("20013", "30001"):
        forger.send_message("X26ABC1", response(sent.itk_message_id, code), workflow_id=ACK)

    report = ours.poll(track=False)
    assert report.correlated == [] and len(report.received) == 2
    reason = f"answers {sent.itk_message_id}, which was sent to X26ABC2, not to X26ABC3"
    assert_orphans(ours, recorder, reason, 2)
    assert snapshot(ours, sent.id) == before  # no state, ack column, expectation or event changed

    genuine = mesh_peer("X26ABC2")
    for code in ("20013", "30001"):
        genuine.send_message("X26ABC1", response(sent.itk_message_id, code), workflow_id=ACK)
    report = ours.poll(track=False)
    assert len(report.correlated) == 2
    message = ours.store.get(sent.id)
    assert (message.state, message.inf_ack_code, message.bus_ack_code) == ("complete", "20013", "30001")
    assert ours.store.open_expectations(sent.id) == []


def test_forged_nack_does_not_block_the_genuine_acks(tmp_path: Path, bridge, mesh_peer) -> None:
    ours, recorder = bridge(itk_route("toc-out", "X26ABC1"))
    sent = send(ours, tmp_path)
    before = snapshot(ours, sent.id)
    mesh_peer("X26ABC3").send_message("X26ABC1", response(sent.itk_message_id, "20009"), workflow_id=ACK)
    ours.poll(track=False)
    assert_orphans(ours, recorder, "which was sent to X26ABC2, not to X26ABC3", 1)
    assert snapshot(ours, sent.id) == before  # not nacked, expectations still open
    assert [e.kind for e in recorder.events] == ["orphan"]  # no "nack" event

    genuine = mesh_peer("X26ABC2")
    genuine.send_message("X26ABC1", response(sent.itk_message_id, "20013"), workflow_id=ACK)
    genuine.send_message("X26ABC1", response(sent.itk_message_id, "30001"), workflow_id=ACK)
    ours.poll(track=False)
    message = ours.store.get(sent.id)
    assert (message.state, message.inf_ack_code, message.bus_ack_code) == ("complete", "20013", "30001")
    assert "inf-nack" not in [e.kind for e in ours.store.events(sent.id)]


def test_a_forger_reusing_the_genuine_response_id_does_not_make_it_a_duplicate(
    tmp_path: Path, bridge, mesh_peer
) -> None:
    ours, recorder = bridge(itk_route("toc-out", "X26ABC1"))
    sent = send(ours, tmp_path)
    genuine_id = "9b2f4c1e-0000-4000-8000-000000000001"
    # the forger is first, with a nack under the MessageHeader.id the genuine 20013 will carry
    mesh_peer("X26ABC3").send_message(
        "X26ABC1", response(sent.itk_message_id, "20009", message_id=genuine_id), workflow_id=ACK
    )
    ours.poll(track=False)
    genuine = response(sent.itk_message_id, "20013", message_id=genuine_id)
    mesh_peer("X26ABC2").send_message("X26ABC1", genuine, workflow_id=ACK)
    mesh_peer("X26ABC2").send_message("X26ABC1", genuine, workflow_id=ACK)  # a MESH-level redelivery
    ours.poll(track=False)

    rows = answers(ours)
    assert rows["X26ABC3#0"].state == "orphan"
    assert (rows["X26ABC2#0"].state, rows["X26ABC2#0"].answers) == ("correlated", sent.id)
    assert rows["X26ABC2#1"].state == "duplicate"  # still idempotent per sender
    message = ours.store.get(sent.id)
    assert (message.state, message.inf_ack_code) == ("inf-acked", "20013")
    assert [e.kind for e in ours.store.events(sent.id)].count("inf-ack") == 1
    assert [e.kind for e in recorder.events] == ["orphan"]


def test_a_response_on_a_workflow_its_route_does_not_answer_on(tmp_path: Path, bridge, mesh_peer) -> None:
    inbound = f"""
[[routes]]
name = "letters-in"
direction = "inbound"
mailbox = "X26ABC1"
workflow_id = "TOC_FHIR_EC_DISCH"
payload_type = "fhir"
itk = {{}}
destination = {{ folder = "{tmp_path / "in"}" }}
"""
    routes = itk_route("toc-out", "X26ABC1") + itk_route("discharge-out", "X26ABC1", "TOC_FHIR_IP_DISCH") + inbound
    ours, recorder = bridge(routes)
    sent = send(ours, tmp_path)
    before = snapshot(ours, sent.id)
    recipient = mesh_peer("X26ABC2")
    # from the right sender, but on another route's ack workflow and on an inbound ITK route's workflow
    for workflow in ("TOC_FHIR_IP_DISCH_ACK", "TOC_FHIR_EC_DISCH"):
        recipient.send_message("X26ABC1", response(sent.itk_message_id, "20009"), workflow_id=workflow)
    ours.poll(track=False)

    orphans = assert_orphans(ours, recorder, f"but answers to it come on {ACK}", 2)
    assert sorted(row.workflow_id for row in orphans) == ["TOC_FHIR_EC_DISCH", "TOC_FHIR_IP_DISCH_ACK"]
    assert snapshot(ours, sent.id) == before
    assert not (tmp_path / "in").exists() or list((tmp_path / "in").iterdir()) == []  # nor delivered

    recipient.send_message("X26ABC1", response(sent.itk_message_id, "20013"), workflow_id=ACK)
    ours.poll(track=False)
    assert ours.store.get(sent.id).state == "inf-acked"


def test_a_response_arriving_on_another_of_our_mailboxes(tmp_path: Path, bridge, mesh_peer) -> None:
    routes = itk_route("toc-out", "X26ABC1") + itk_route("toc-out-3", "X26ABC3")  # both receive on ACK
    ours, recorder = bridge(routes, mailboxes=("X26ABC1", "X26ABC3"))
    sent = send(ours, tmp_path)
    before = snapshot(ours, sent.id)
    mesh_peer("X26ABC2").send_message("X26ABC3", response(sent.itk_message_id, "20013"), workflow_id=ACK)
    ours.poll(track=False)
    assert_orphans(ours, recorder, "which was sent from X26ABC1, but arrived on X26ABC3", 1)
    assert snapshot(ours, sent.id) == before


def test_a_forged_ack_of_our_business_response_changes_nothing(tmp_path: Path, bridge, mesh_peer) -> None:
    """Full Acknowledgement: our 30001 asks X26ABC1 for a 20013; only X26ABC1 may give it."""
    inbound = f"""
[[routes]]
name = "toc-in"
direction = "inbound"
mailbox = "X26ABC2"
workflow_id = "{WORKFLOW}"
payload_type = "fhir"
itk = {{}}
destination = {{ folder = "{tmp_path / "in"}" }}
"""
    sender, _ = bridge(itk_route("toc-out", "X26ABC1"))
    ours, recorder = bridge(inbound, mailboxes=("X26ABC2",))
    send(sender, tmp_path)
    ours.poll(track=False)
    [received] = ours.messages(direction="in")
    ours.ack(received.id, code="30001")
    [business] = [m for m in ours.messages(direction="out") if m.filename == "ITK-Response-30001.xml"]
    assert [e.kind for e in ours.store.expectations(business.id)] == ["inf-ack"]
    before = snapshot(ours, business.id)

    mesh_peer("X26ABC3").send_message("X26ABC2", response(business.itk_message_id, "20013"), workflow_id=ACK)
    ours.poll(track=False)
    assert_orphans(ours, recorder, "which was sent to X26ABC1, not to X26ABC3", 1)
    assert snapshot(ours, business.id) == before

    mesh_peer("X26ABC1").send_message("X26ABC2", response(business.itk_message_id, "20013"), workflow_id=ACK)
    ours.poll(track=False)
    assert ours.store.get(business.id).state == "complete"


# -- domain acknowledgements (the RECEP example) ----------------------------------------------


def recep_plugin():
    spec = importlib.util.spec_from_file_location("recep_ack", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def registration_and_recep() -> tuple[bytes, bytes]:
    if not EDIFACT.exists():
        pytest.skip(f"{EDIFACT} not present (the NHS example fixtures live outside the project)")
    return (EDIFACT / "nhais-registration.dat").read_bytes(), (EDIFACT / "nhais-registration_recep.dat").read_bytes()


def send_registration(ours: Bridge, tmp_path: Path, registration: bytes) -> Message:
    return send(ours, tmp_path, route="registrations-out", data=registration, name="registration.dat")


def test_recep_from_a_third_mailbox_is_an_orphan(tmp_path: Path, bridge, mesh_peer) -> None:
    registration, recep = registration_and_recep()
    ours, recorder = bridge(RECEP_ROUTE, protocol=recep_plugin())
    sent = send_registration(ours, tmp_path, registration)
    before = snapshot(ours, sent.id)
    rejection = recep.replace(b"00000003 OK", b"00000003 CA")
    mesh_peer("X26ABC3").send_message("X26ABC1", rejection, workflow_id="NHAIS_RECEP")
    ours.poll(track=False)
    assert_orphans(ours, recorder, "recep answers 'XX11>TES5:00000003', which was sent to X26ABC2, not to X26ABC3", 1)
    assert snapshot(ours, sent.id) == before  # expectation neither met nor closed

    mesh_peer("X26ABC2").send_message("X26ABC1", recep, workflow_id="NHAIS_RECEP")
    report = ours.poll(track=False)
    assert len(report.correlated) == 1
    [expectation] = ours.store.expectations(sent.id)
    assert expectation.met_at and expectation.outcome == "OK"


def test_recep_on_an_undeclared_workflow_is_an_orphan(tmp_path: Path, bridge, mesh_peer) -> None:
    registration, recep = registration_and_recep()
    ours, recorder = bridge(RECEP_ROUTE, protocol=recep_plugin())
    sent = send_registration(ours, tmp_path, registration)
    before = snapshot(ours, sent.id)
    mesh_peer("X26ABC2").send_message("X26ABC1", recep, workflow_id="NHAIS_REG")  # the recipient, wrong workflow
    ours.poll(track=False)
    assert_orphans(ours, recorder, "on workflow NHAIS_REG, but answers to it come on NHAIS_RECEP", 1)
    assert snapshot(ours, sent.id) == before


def test_recep_arriving_on_another_of_our_mailboxes_is_an_orphan(tmp_path: Path, bridge, mesh_peer) -> None:
    registration, recep = registration_and_recep()
    ours, recorder = bridge(RECEP_ROUTE, mailboxes=("X26ABC1", "X26ABC3"), protocol=recep_plugin())
    sent = send_registration(ours, tmp_path, registration)
    before = snapshot(ours, sent.id)
    mesh_peer("X26ABC2").send_message("X26ABC3", recep, workflow_id="NHAIS_RECEP")
    ours.poll(track=False)
    assert_orphans(ours, recorder, "which was sent from X26ABC1, but arrived on X26ABC3", 1)
    assert snapshot(ours, sent.id) == before


def test_an_ack_protocol_without_workflows_takes_the_original_workflow_or_its_ack(
    tmp_path: Path, bridge, mesh_peer
) -> None:
    registration, recep = registration_and_recep()
    plugin = recep_plugin()
    undeclared = dataclasses.replace(plugin.RECEP, workflows=None)

    class Protocol:
        @hookimpl
        def meshbridge_ack_protocols(self):
            return [undeclared]

    ours, recorder = bridge(RECEP_ROUTE, protocol=Protocol())
    sent = send_registration(ours, tmp_path, registration)
    recipient = mesh_peer("X26ABC2")
    recipient.send_message("X26ABC1", recep, workflow_id="NHAIS_RECEP")
    ours.poll(track=False)
    assert_orphans(ours, recorder, "but answers to it come on NHAIS_REG, NHAIS_REG_ACK", 1)
    recipient.send_message("X26ABC1", recep, workflow_id="NHAIS_REG_ACK")
    assert len(ours.poll(track=False).correlated) == 1
    assert ours.store.expectations(sent.id)[0].outcome == "OK"


# -- the recipient answers once -----------------------------------------------------------------


def test_after_a_nack_later_responses_from_the_recipient_change_nothing(tmp_path: Path, bridge, mesh_peer) -> None:
    """A negative code is final: a 20013 or 30001 (new MessageHeader.ids) after it neither moves the
    message nor rewrites its ack columns; they are orphans with the reason."""
    ours, recorder = bridge(itk_route("toc-out", "X26ABC1"))
    sent = send(ours, tmp_path)
    recipient = mesh_peer("X26ABC2")
    recipient.send_message("X26ABC1", response(sent.itk_message_id, "20009"), workflow_id=ACK)
    ours.poll(track=False)
    nacked = snapshot(ours, sent.id)
    assert (nacked[0].state, nacked[0].inf_ack_code) == ("inf-nacked", "20009")

    for code in ("20013", "30001"):
        recipient.send_message("X26ABC1", response(sent.itk_message_id, code), workflow_id=ACK)
    report = ours.poll(track=False)
    assert report.correlated == []
    assert snapshot(ours, sent.id) == nacked  # no state, ack column, expectation or event changed
    orphans = ours.messages(state="orphan")
    assert len(orphans) == 2
    assert all(f"answers {sent.itk_message_id}, which is already inf-nacked" in o.last_error for o in orphans)
    assert [e.kind for e in recorder.events] == ["nack", "orphan", "orphan"]


def test_a_second_different_infrastructure_response_changes_nothing(tmp_path: Path, bridge, mesh_peer) -> None:
    """One infrastructure response per message: a nack after the 20013 (another MessageHeader.id)
    does not undo it, and the business ack that follows still completes the message."""
    ours, recorder = bridge(itk_route("toc-out", "X26ABC1"))
    sent = send(ours, tmp_path)
    recipient = mesh_peer("X26ABC2")
    recipient.send_message("X26ABC1", response(sent.itk_message_id, "20013"), workflow_id=ACK)
    ours.poll(track=False)
    acked = snapshot(ours, sent.id)
    recipient.send_message("X26ABC1", response(sent.itk_message_id, "10001"), workflow_id=ACK)
    ours.poll(track=False)
    assert snapshot(ours, sent.id) == acked
    [orphan] = ours.messages(state="orphan")
    assert "which already has infrastructure response 20013: it is answered once" in orphan.last_error

    recipient.send_message("X26ABC1", response(sent.itk_message_id, "30001"), workflow_id=ACK)
    ours.poll(track=False)
    message = ours.store.get(sent.id)
    assert (message.state, message.inf_ack_code, message.bus_ack_code) == ("complete", "20013", "30001")
    assert [e.kind for e in recorder.events] == ["orphan"]


def test_a_recep_after_the_recep_changes_nothing(tmp_path: Path, bridge, mesh_peer) -> None:
    """A replayed RECEP, or a rejection after the acceptance, from the recipient itself: the
    original was answered once; no second event, no nack raised, nothing closed."""
    registration, recep = registration_and_recep()
    ours, recorder = bridge(RECEP_ROUTE, protocol=recep_plugin())
    sent = send_registration(ours, tmp_path, registration)
    recipient = mesh_peer("X26ABC2")
    recipient.send_message("X26ABC1", recep, workflow_id="NHAIS_RECEP")
    assert len(ours.poll(track=False).correlated) == 1
    answered = snapshot(ours, sent.id)

    recipient.send_message("X26ABC1", recep, workflow_id="NHAIS_RECEP")
    recipient.send_message("X26ABC1", recep.replace(b"00000003 OK", b"00000003 CA"), workflow_id="NHAIS_RECEP")
    report = ours.poll(track=False)
    assert report.correlated == []
    assert snapshot(ours, sent.id) == answered
    assert_orphans(ours, recorder, "recep answers 'XX11>TES5:00000003', which was already answered", 2)


def test_a_response_to_our_infrastructure_ack_changes_nothing(tmp_path: Path, bridge, mesh_peer) -> None:
    """Our 20013 asks for no acknowledgement: the peer it went to cannot nack it (nor 'complete' it)."""
    inbound = f"""
[[routes]]
name = "toc-in"
direction = "inbound"
mailbox = "X26ABC2"
workflow_id = "{WORKFLOW}"
payload_type = "fhir"
itk = {{}}
destination = {{ folder = "{tmp_path / "in"}" }}
"""
    sender, _ = bridge(itk_route("toc-out", "X26ABC1"))
    ours, recorder = bridge(inbound, mailboxes=("X26ABC2",))
    send(sender, tmp_path)
    ours.poll(track=False)
    [ack] = [m for m in ours.messages(direction="out") if m.filename == "ITK-Response-20013.xml"]
    before = snapshot(ours, ack.id)

    peer = mesh_peer("X26ABC1")
    for code in ("10001", "20013", "30001"):
        peer.send_message("X26ABC2", response(ack.itk_message_id, code), workflow_id=ACK)
    ours.poll(track=False)
    assert_orphans(ours, recorder, f"our response {ack.id}, which asked for no such acknowledgement", 3)
    assert snapshot(ours, ack.id) == before
