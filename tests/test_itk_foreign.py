"""meshbridge against a *foreign* ITK3 peer: plain mesh-client plus NHS example XML (ids edited to chain).

Proves meshbridge reads messages it did not write and that what it writes is read by plain lxml.
The NHS examples are read from ../shared/fixtures (outside the project).
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from lxml import etree

from meshbridge import Bridge, load

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
NS = {"f": "http://hl7.org/fhir"}


def fixture(relative: str) -> bytes:
    path = FIXTURES / relative
    if not path.exists():
        pytest.skip(f"{path} not present (the NHS example fixtures live outside the project)")
    return path.read_bytes()


def header_values(data: bytes) -> dict[str, str | None]:
    """Read the correlation fields with plain lxml: what any ITK3 system would do."""
    root = etree.fromstring(data, etree.XMLParser(resolve_entities=False, no_network=True))

    def first(path: str) -> str | None:
        found = root.xpath(path, namespaces=NS)
        return found[0] if found else None

    header = "f:entry[1]/f:resource/f:MessageHeader"
    return {
        "id": first(f"{header}/f:id/@value"),
        "response_identifier": first(f"{header}/f:response/f:identifier/@value"),
        "code": first("//f:OperationOutcome/f:issue/f:details/f:coding/f:code/@value"),
        "inf_ack": first(f"{header}/f:extension/f:extension[@url='InfAckRequested']/f:valueBoolean/@value"),
    }


def chain(example: bytes, answers: str) -> tuple[bytes, str]:
    """An official response example re-addressed: its own new MessageHeader.id, answering ``answers``."""
    root = etree.fromstring(example)
    new_id = str(uuid.uuid4())
    header = root.xpath("f:entry[1]/f:resource/f:MessageHeader", namespaces=NS)[0]
    old_id = header.xpath("f:id/@value", namespaces=NS)[0]
    header.xpath("f:id", namespaces=NS)[0].set("value", new_id)
    header.xpath("f:response/f:identifier", namespaces=NS)[0].set("value", answers)
    for full_url in root.xpath("f:entry/f:fullUrl", namespaces=NS):
        full_url.set("value", full_url.get("value").replace(old_id, new_id))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8"), new_id


def collect(peer, mailbox: str) -> list[bytes]:
    """Everything waiting for the foreign peer, downloaded and acknowledged."""
    client = peer(mailbox)
    messages = []
    for message_id in client.iterate_message_ids():
        message = client.retrieve_message(message_id)
        messages.append(message.read())
        message.acknowledge()
    return messages


RECEIVER = """
[[routes]]
name = "emergency-supply-in"
direction = "inbound"
mailbox = "X26ABC2"
workflow_id = "DIGMED_EMG_MED"
payload_type = "fhir"
itk = {}
destination = { folder = "in" }
"""

SENDER = """
[[routes]]
name = "discharge-out"
direction = "outbound"
from = "X26ABC1"
to = "X26ABC2"
workflow_id = "TOC_FHIR_IP_DISCH"
payload_type = "fhir"
itk = { inf_ack = true, bus_ack = true, event = "ITK003D", inf_ack_within = "1h", bus_ack_within = "2d" }
"""

PATIENT = b'<Patient xmlns="http://hl7.org/fhir"><id value="p1"/><gender value="female"/></Patient>'


def test_foreign_sender_meshbridge_receiver(tmp_path: Path, meshbridge_config, mesh_peer) -> None:
    original = fixture("payloads/itk3/ITK010D_ITK_EmergencySupply.xml")
    original_id = header_values(original)["id"]
    mesh_peer("X26ABC1").send_message("X26ABC2", original, workflow_id="DIGMED_EMG_MED")

    with Bridge(load(meshbridge_config(RECEIVER, mailboxes=("X26ABC2",)))) as bridge:
        report = bridge.poll()
        assert report.problems == [] and len(report.delivered) == 1
        [received] = bridge.messages(direction="in")
        assert received.state == "delivered" and received.itk_message_id == original_id
        assert (tmp_path / "in" / Path(received.destination).name).read_bytes() == original  # bytes untouched

        [inf] = collect(mesh_peer, "X26ABC1")
        assert header_values(inf) == {
            "id": header_values(inf)["id"],
            "response_identifier": original_id,
            "code": "20013",
            "inf_ack": "false",
        }

        bridge.ack(received.id, code="30001", text="Patient known here")
        [bus] = collect(mesh_peer, "X26ABC1")
        bus_values = header_values(bus)
        assert (bus_values["response_identifier"], bus_values["code"], bus_values["inf_ack"]) == (
            original_id,
            "30001",
            "true",
        )

        # the foreign peer acknowledges the business response with the official 20013 example, re-addressed
        ack, _ = chain(fixture("itk3/ITK-Response-20013-Example-1.xml"), bus_values["id"])
        mesh_peer("X26ABC1").send_message("X26ABC2", ack, workflow_id="DIGMED_EMG_MED_ACK")
        bridge.poll()
        [response] = [m for m in bridge.messages(direction="out") if m.filename == "ITK-Response-30001.xml"]
        assert (response.state, response.inf_ack_code) == ("complete", "20013")


def test_meshbridge_sender_foreign_receiver(tmp_path: Path, meshbridge_config, mesh_peer) -> None:
    inf_example = fixture("itk3/ITK-Response-20013-Example-1.xml")
    bus_example = fixture("itk3/ITK-Response-30001-Example-1.xml")
    nack_example = fixture("itk3/ITK-Response-20007-Example-1.xml")
    payload = tmp_path / "patient.xml"
    payload.write_bytes(PATIENT)
    with Bridge(load(meshbridge_config(SENDER, mailboxes=("X26ABC1",)))) as bridge:
        first = bridge.send(payload, route="discharge-out")
        second = bridge.send(payload, route="discharge-out")
        received = collect(mesh_peer, "X26ABC2")
        ids = [header_values(data)["id"] for data in received]
        assert ids == [first.itk_message_id, second.itk_message_id]  # plain lxml reads what we wrote

        peer = mesh_peer("X26ABC2")
        inf, _ = chain(inf_example, ids[0].upper())  # correlation ignores case
        bus, bus_id = chain(bus_example, ids[0])  # InfAckRequested=true: Full Acknowledgement
        nack, _ = chain(nack_example, ids[1])
        for data in (inf, bus, nack):
            peer.send_message("X26ABC1", data, workflow_id="TOC_FHIR_IP_DISCH_ACK")

        report = bridge.poll()
        assert report.problems == [] and len(report.correlated) == 3
        one, two = bridge.store.get(first.id), bridge.store.get(second.id)
        assert (one.state, one.inf_ack_code, one.bus_ack_code) == ("complete", "20013", "30001")
        assert (two.state, two.inf_ack_code) == ("inf-nacked", "20007")
        assert bridge.store.open_expectations(second.id) == []

        [full_ack] = collect(mesh_peer, "X26ABC2")
        values = header_values(full_ack)
        assert (values["response_identifier"], values["code"], values["inf_ack"]) == (bus_id, "20013", "false")
