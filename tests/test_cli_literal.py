"""Text from a peer is data, never markup: every command prints it literally (issue 9, point 9).

A hostile peer on the real sandbox sends rich markup, emoji codes and terminal control sequences in
its workflow id, subject, file name and local id, in a payload that yields findings, and in the text
of its business response; each command runs in its own process, as a user would run it.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from conftest import OUT_IN

from meshbridge.testing import run_cli as cli

BAD_WORKFLOW = "WF[/x]"
# the sandbox (like MESH) refuses C0 controls such as ESC in its headers, but passes C1 ones: CSI \x9b is ESC [
C1_WORKFLOW = "WF[/x]\x9b2J"
C1_WORKFLOW_SHOWN = "WF[/x]\\x9b2J"
LINK = "[link=http://evil.example]click[/link]"
BOLD = "[bold red]x"
FILENAME = "[bold]scan[/bold] :warning:.txt"
LOCAL_ID = "[/]L1 \x9b2J\x9b31m"
LOCAL_ID_SHOWN = "[/]L1 \\x9b2J\\x9b31m"
CONTROL = ("\x1b", "\x9b", "\x07", "\r")

FHIR_IN = """
[[routes]]
name = "fhir-in"
direction = "inbound"
mailbox = "X26ABC2"
workflow_id = "FHIR_WF"
payload_type = "fhir"
destination = { folder = "fhir" }
"""


def clean(done: subprocess.CompletedProcess[str]) -> str:
    """The command's stdout, once it is known to have exited 0 with no traceback and no control characters."""
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    for char in CONTROL:
        assert char not in done.stdout and char not in done.stderr, (char, done.stdout)
    return done.stdout


def test_peer_headers_print_literally(meshbridge_config, mesh_peer) -> None:
    config = meshbridge_config(OUT_IN)
    peer = mesh_peer("X26ABC1")
    unrouted = peer.send_message("X26ABC2", b"on a workflow nobody routes", workflow_id=BAD_WORKFLOW, subject=BOLD)
    c1 = peer.send_message("X26ABC2", b"and on another", workflow_id=C1_WORKFLOW)
    routed = peer.send_message(
        "X26ABC2", b"hello", workflow_id="TEST_WORKFLOW", subject=LINK, filename=FILENAME, local_id=LOCAL_ID
    )

    done = cli(config, "poll")
    polled = clean(done)
    assert f"on workflow {BAD_WORKFLOW} (kept in the store)" in polled
    assert f"on workflow {C1_WORKFLOW_SHOWN} (kept in the store)" in polled
    assert f"on workflow {C1_WORKFLOW_SHOWN} (no inbound route" in done.stderr  # the warning in the log
    assert "received: 3" in polled and "unrouted: 2" in polled

    status = clean(cli(config, "status"))
    assert "unrouted" in status and "delivered" in status

    listing = clean(cli(config, "messages"))
    assert f" {BAD_WORKFLOW} " in listing and f" {C1_WORKFLOW_SHOWN} " in listing
    assert unrouted in listing and routed in listing and c1 in listing

    shown = clean(cli(config, "show", unrouted))
    assert f"X26ABC2 ← X26ABC1  {BAD_WORKFLOW}  unrouted" in shown
    assert f"subject: {BOLD}\n" in shown

    shown = clean(cli(config, "show", routed))
    assert f"file: {FILENAME}\n" in shown
    assert f"subject: {LINK}\n" in shown
    assert f"local id: {LOCAL_ID_SHOWN}\n" in shown

    as_json = json.loads(cli(config, "show", routed, "--json").stdout)
    assert (as_json["subject"], as_json["local_id"], as_json["filename"]) == (LINK, LOCAL_ID, FILENAME)


def test_findings_print_literally(meshbridge_config, mesh_peer) -> None:
    config = meshbridge_config(FHIR_IN)
    body = b'{"resourceType": "[/x][bold]Patient"}'
    mesh_id = mesh_peer("X26ABC1").send_message("X26ABC2", body, workflow_id="FHIR_WF")
    assert "invalid: 1" in clean(cli(config, "poll"))
    shown = clean(cli(config, "show", mesh_id))
    assert "'[/x][bold]Patient'" in shown  # in the finding line and in the invalid event's detail
    assert shown.count("[/x][bold]Patient") >= 2


def test_local_control_characters_are_shown_as_escapes(tmp_path: Path, meshbridge_config) -> None:
    """A local file name may hold ESC: shown escaped by ``validate``; MESH refuses controls in a
    header, so ``send`` stores and sends it with each as ``%XX`` (as a name that is not UTF-8)."""
    config = meshbridge_config(OUT_IN)
    payload = tmp_path / "scan\x1b[2J\x1b]8;;evil.example\x07.txt"
    payload.write_text("a letter")
    valid = cli(config, "validate", str(payload))
    assert valid.returncode == 0 and "\x1b" not in valid.stdout
    assert "scan\\x1b[2J\\x1b]8;;evil.example\\x07.txt: text valid" in valid.stdout

    sent = cli(config, "send", str(payload), "--route", "out")
    assert sent.returncode == 0, sent.stderr
    assert "\x1b" not in sent.stdout + sent.stderr and "Traceback" not in sent.stderr
    [message] = json.loads(cli(config, "messages", "--json").stdout)
    assert message["filename"] == "scan%1B[2J%1B]8;;evil.example%07.txt" and message["state"] == "sent"
    shown = clean(cli(config, "show", message["id"]))
    assert "file: scan%1B[2J%1B]8;;evil.example%07.txt\n" in shown
    assert "\x1b" not in clean(cli(config, "messages"))
    unknown = cli(config, "show", "no\x1b[2Jsuch")
    assert unknown.returncode == 1 and unknown.stderr.count("\n") == 1 and "no\\x1b[2Jsuch" in unknown.stderr
    assert "\x1b" not in unknown.stdout + unknown.stderr and "Traceback" not in unknown.stderr


def test_an_ack_text_prints_literally(tmp_path: Path, meshbridge_config) -> None:
    from test_itk_flow import PATIENT, RECEIVER, sender_routes

    a_config = meshbridge_config(sender_routes(), name="a.toml", store="a/mb.db", mailboxes=("X26ABC1",))
    b_config = meshbridge_config(RECEIVER, name="b.toml", store="b/mb.db", mailboxes=("X26ABC2",))
    payload = tmp_path / "patient.xml"
    payload.write_bytes(PATIENT)
    sent_id = clean(cli(a_config, "send", str(payload), "--route", "toc-out")).strip()
    clean(cli(b_config, "poll"))
    [received] = json.loads(cli(b_config, "messages", "--json", "--direction", "in").stdout)

    text = f"{LINK} {BAD_WORKFLOW} :warning:"
    acked = clean(cli(b_config, "ack", received["id"], "--nack", "30003", "--text", text))
    assert "bus-nacked (30003) sent to X26ABC1" in acked
    clean(cli(a_config, "poll"))
    shown = clean(cli(a_config, "show", sent_id))
    assert f"text={text} " in shown and "bus-nack" in shown


def test_visible_escapes_what_would_act_on_a_terminal() -> None:
    from meshbridge.printable import visible

    assert visible("WF[/x] :warning: café\u00a0ok") == "WF[/x] :warning: café\u00a0ok"  # printable stays
    assert visible("a\x1b[2Jb\x9b1m\x7f\u202eevil\r\n\t") == "a\\x1b[2Jb\\x9b1m\\x7f\\u202eevil\\r\\n\\t"
