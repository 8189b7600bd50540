"""Nothing is logged twice: a step whose ``meshbridge_on_event`` notification shares its kind
(here ``duplicate``) is its one step line, not a step line plus a WARNING ``duplicate: …``.

Two meshbridges on the real mesh-sandbox; the receiver's ``poll`` is a real process logging JSON.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import PATIENT, WORKFLOW

from meshbridge import Bridge, load

SENDER = f"""
[[routes]]
name = "toc-out"
direction = "outbound"
from = "X26ABC1"
to = "X26ABC2"
workflow_id = "{WORKFLOW}"
payload_type = "fhir"
itk = {{ inf_ack = true, bus_ack = false, event = "ITK006D", inf_ack_within = "1h" }}
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


def test_a_duplicate_itk_message_is_logged_once(tmp_path: Path, meshbridge_config, mesh_peer) -> None:
    a_file = meshbridge_config(SENDER, name="a.toml", store="a/mb.db", mailboxes=("X26ABC1",))
    b_file = meshbridge_config(RECEIVER, name="b.toml", store="b/mb.db", mailboxes=("X26ABC2",))
    payload = tmp_path / "patient.xml"
    payload.write_bytes(PATIENT)
    with Bridge(load(a_file)) as a, Bridge(load(b_file)) as b:
        sent = a.send(payload, route="toc-out")
        b.poll()
        wire = a.store.payloads.read(sent.payload_sha256)
    mesh_peer("X26ABC1").send_message("X26ABC2", wire, workflow_id=WORKFLOW)  # the same ITK message again

    logged = ["--log-level", "INFO", "--log-format", "json"]
    done = subprocess.run(
        [sys.executable, "-m", "meshbridge", "--config", str(b_file), *logged, "poll", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    [duplicate_id] = json.loads(done.stdout)["duplicate"]
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    about = [line for line in lines if duplicate_id in line["message"] or line["message_id"] == duplicate_id]
    said = [line for line in about if "duplicate" in line["message"]]
    assert len(said) == 1, [line["message"] for line in said]
    [line] = said
    assert (line["step"], line["code"], line["level"]) == ("duplicate", "20007", "info")
