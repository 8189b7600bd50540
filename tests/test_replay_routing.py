"""``replay`` of an ``unrouted`` or ``invalid`` inbound message routes and validates it again against
the current config: a route added (or fixed) since delivers it. A message we nacked is replayed only
with ``--force``, which sends no new response. Real processes, a real sandbox, real stores."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from conftest import PATIENT

from meshbridge.testing import run_cli as cli

ITK_WORKFLOW = "TOC_FHIR_OP_ATTEN"
INBOUND = """
[[routes]]
name = "in"
direction = "inbound"
mailbox = "X26ABC2"
workflow_id = "TEST_WORKFLOW"
payload_type = "{ptype}"
destination = {{ folder = "delivered" }}
"""
ITK_SENDER = f"""
[[routes]]
name = "toc-out"
direction = "outbound"
from = "X26ABC1"
to = "X26ABC2"
workflow_id = "{ITK_WORKFLOW}"
payload_type = "fhir"
itk = {{ inf_ack = true, bus_ack = false, event = "ITK006D" }}
"""
ITK_RECEIVER = f"""
[[routes]]
name = "toc-in"
direction = "inbound"
mailbox = "X26ABC2"
workflow_id = "{ITK_WORKFLOW}"
payload_type = "{{ptype}}"
itk = {{{{}}}}
destination = {{{{ folder = "delivered" }}}}
"""


def rows(config: Path, store: str = "var/meshbridge.db", where: str = "1") -> list[dict]:
    db = sqlite3.connect(config.parent / store)
    db.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in db.execute(f"SELECT * FROM messages WHERE {where} ORDER BY created_at")]
    finally:
        db.close()


def kinds(config: Path, message_id: str) -> list[str]:
    shown = json.loads(cli(config, "show", message_id, "--json").stdout)
    return [e["kind"] for e in shown["events"]]


def delivered_files(tmp_path: Path) -> dict[str, bytes]:
    folder = tmp_path / "delivered"
    return {p.name: p.read_bytes() for p in folder.iterdir()} if folder.exists() else {}


def test_an_unrouted_message_is_delivered_once_its_route_is_added(tmp_path: Path, meshbridge_config, mesh_peer) -> None:
    config = meshbridge_config()  # no route at all
    mesh_id = mesh_peer("X26ABC1").send_message("X26ABC2", b"came before its route", workflow_id="TEST_WORKFLOW")
    polled = cli(config, "poll")
    assert polled.returncode == 0 and "unrouted: 1" in polled.stdout, polled.stderr
    [message] = rows(config)
    assert message["state"] == "unrouted" and message["mesh_message_id"] == mesh_id

    still = cli(config, "replay", message["id"])  # nothing changed yet: still unrouted, said so
    assert still.returncode == 1
    assert still.stderr.splitlines()[-1] == (
        f"meshbridge: {message['id']}: still unrouted: no inbound route with a destination takes "
        "workflow TEST_WORKFLOW on X26ABC2"
    )
    assert rows(config)[0]["state"] == "unrouted" and delivered_files(tmp_path) == {}

    config.write_text(config.read_text() + INBOUND.format(ptype="text"))  # the operator adds the route
    done = cli(config, "replay", mesh_id)  # by MESH message id
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{message['id']}: unrouted before, now delivered to ")
    [after] = rows(config)
    assert (after["state"], after["route"]) == ("delivered", "in")
    assert list(delivered_files(tmp_path).values()) == [b"came before its route"]
    assert kinds(config, message["id"])[-6:] == ["unrouted", "replay", "unrouted", "replay", "valid", "delivered"]

    again = cli(config, "replay", message["id"])  # a delivered one is delivered again, as before
    assert again.returncode == 0 and "delivered again to" in again.stdout


def test_an_invalid_message_is_delivered_once_its_route_takes_it(tmp_path: Path, meshbridge_config, mesh_peer) -> None:
    config = meshbridge_config(INBOUND.format(ptype="edifact"))  # the wrong payload type
    mesh_peer("X26ABC1").send_message("X26ABC2", b"plain text, not EDIFACT", workflow_id="TEST_WORKFLOW")
    assert cli(config, "poll").returncode == 0
    [message] = rows(config)
    assert message["state"] == "invalid" and json.loads(message["findings"])

    config.write_text(config.read_text().replace('payload_type = "edifact"', 'payload_type = "text"'))
    done = cli(config, "replay", message["id"])
    assert done.returncode == 0, done.stderr
    [after] = rows(config)
    assert (after["state"], after["payload_type"], after["findings"]) == ("delivered", "text", None)
    assert list(delivered_files(tmp_path).values()) == [b"plain text, not EDIFACT"]


def test_a_message_still_invalid_says_why_and_stays_invalid(tmp_path: Path, meshbridge_config, mesh_peer) -> None:
    config = meshbridge_config(INBOUND.format(ptype="edifact"))
    mesh_peer("X26ABC1").send_message("X26ABC2", b"plain text, not EDIFACT", workflow_id="TEST_WORKFLOW")
    cli(config, "poll")
    [message] = rows(config)
    done = cli(config, "replay", message["id"])
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.splitlines()[-1] == f"meshbridge: {message['id']}: invalid before, now invalid"
    assert any(line.startswith("error ") for line in done.stderr.splitlines())  # its findings
    [after] = rows(config)
    assert after["state"] == "invalid" and json.loads(after["findings"]) and delivered_files(tmp_path) == {}


def itk_pair(tmp_path: Path, meshbridge_config, receiver: str) -> tuple[Path, Path, str]:
    """An ITK sender (a.toml, X26ABC1) and a receiver (b.toml, X26ABC2); one message sent and collected."""
    a = meshbridge_config(ITK_SENDER, name="a.toml", store="a/mb.db", mailboxes=("X26ABC1",))
    b = meshbridge_config(receiver, name="b.toml", store="b/mb.db", mailboxes=("X26ABC2",))
    payload = tmp_path / "patient.xml"
    payload.write_bytes(PATIENT)
    sent = cli(a, "send", str(payload), "--route", "toc-out")
    assert sent.returncode == 0, sent.stderr
    assert cli(b, "poll").returncode == 0
    return a, b, sent.stdout.strip()


def test_an_itk_message_we_nacked_is_replayed_only_with_force_and_no_new_response(
    tmp_path: Path, meshbridge_config
) -> None:
    a, b, sent_id = itk_pair(tmp_path, meshbridge_config, ITK_RECEIVER.format(ptype="edifact"))
    [message] = rows(b, "b/mb.db", "direction = 'in'")
    assert (message["state"], message["inf_ack_code"]) == ("invalid", "20009")
    responses = rows(b, "b/mb.db", "direction = 'out'")
    assert len(responses) == 1  # the 20009 nack went back
    assert cli(a, "poll").returncode == 0
    assert rows(a, "a/mb.db", f"id = '{sent_id}'")[0]["state"] == "inf-nacked"
    sender_inbound = len(rows(a, "a/mb.db", "direction = 'in'"))

    b.write_text(b.read_text().replace('payload_type = "edifact"', 'payload_type = "fhir"'))  # fixed
    refused = cli(b, "replay", message["id"])
    assert refused.returncode == 1
    assert refused.stderr == (
        f"meshbridge: {message['id']} was answered with nack 20009 (the sender was told it was refused): "
        "give --force to replay it anyway; no new response is sent\n"
    )
    assert rows(b, "b/mb.db", "direction = 'in'")[0]["state"] == "invalid" and delivered_files(tmp_path) == {}

    forced = cli(b, "replay", message["id"], "--force")
    assert forced.returncode == 0, forced.stderr
    [after] = rows(b, "b/mb.db", "direction = 'in'")
    assert (after["state"], after["inf_ack_code"]) == ("delivered", "20009")  # what the sender was told is kept
    assert len(delivered_files(tmp_path)) == 1
    assert rows(b, "b/mb.db", "direction = 'out'") == responses  # no new response stored (nor sent)
    shown = json.loads(cli(b, "show", message["id"], "--json").stdout)
    assert not [e for e in shown["expectations"] if e["kind"] == "bus-ack-owed"]
    replayed = [e for e in shown["events"] if e["kind"] == "replay"]
    assert replayed and replayed[0]["detail"]["forced"] is True
    assert cli(a, "poll").returncode == 0  # nothing new reaches the sender
    assert len(rows(a, "a/mb.db", "direction = 'in'")) == sender_inbound
    assert rows(a, "a/mb.db", f"id = '{sent_id}'")[0]["state"] == "inf-nacked"


def test_an_unrouted_itk_message_is_answered_when_replayed(tmp_path: Path, meshbridge_config) -> None:
    """Nobody answered it (no route took it): replayed once its route exists, it gets its 20013."""
    a, b, sent_id = itk_pair(tmp_path, meshbridge_config, "")
    [message] = rows(b, "b/mb.db", "direction = 'in'")
    assert message["state"] == "unrouted" and rows(b, "b/mb.db", "direction = 'out'") == []

    b.write_text(b.read_text() + ITK_RECEIVER.format(ptype="fhir"))
    done = cli(b, "replay", message["id"])
    assert done.returncode == 0, done.stderr
    [after] = rows(b, "b/mb.db", "direction = 'in'")
    assert (after["state"], after["inf_ack_code"], after["route"]) == ("delivered", "20013", "toc-in")
    [response] = rows(b, "b/mb.db", "direction = 'out'")
    assert response["answers"] == message["id"] and response["state"] == "sent"
    assert cli(a, "poll").returncode == 0
    assert rows(a, "a/mb.db", f"id = '{sent_id}'")[0]["inf_ack_code"] == "20013"


def test_replay_refuses_what_it_cannot_replay(meshbridge_config, mesh_peer) -> None:
    from conftest import OUT_IN

    config = meshbridge_config(OUT_IN)
    payload = config.parent / "x.txt"
    payload.write_text("an outbound message")
    sent = cli(config, "send", str(payload), "--route", "out")
    done = cli(config, "replay", sent.stdout.strip())
    assert done.returncode == 1 and done.stderr == (
        f"meshbridge: {sent.stdout.strip()} is out and sent: only an inbound message that was delivered, "
        "or is unrouted or invalid, can be replayed\n"
    )
