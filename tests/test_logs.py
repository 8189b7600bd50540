"""Logs an operator can use (issue 10, point 6): at INFO one line per message step, JSON lines with
the message's fields, each job's lines naming it, nothing logged twice, a peer's text on one line.

Real processes (``python -m meshbridge``) against the real sandbox, as an operator runs them.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from conftest import OUT_IN, TRACK_NOW
from test_itk_flow import PATIENT, RECEIVER, sender_routes

from meshbridge.sandbox import PASSWORD

# README, Logs: every JSON line has these (null when they do not apply)
FIELDS = ("job", "step", "message_id", "route", "mailbox", "peer", "mesh_message_id", "state", "code")
CONTROL = ("\x1b", "\x9b", "\x07", "\r")


def cli(config: Path, *args: str, fmt: str = "json", level: str = "INFO") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "meshbridge", "--config", str(config), "--log-level", level, "--log-format", fmt, *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
    )


def json_lines(done: subprocess.CompletedProcess[str], *, only_json: bool = True) -> list[dict[str, Any]]:
    """Every stderr line as JSON (all of them must be, unless ``only_json`` is False), each with every field,
    and no line twice."""
    lines = done.stderr.splitlines()
    if not only_json:
        lines = [line for line in lines if line.startswith("{")]
    entries = [json.loads(line) for line in lines]
    for entry in entries:
        assert set(entry) >= {"time", "level", "logger", "message", *FIELDS}, entry
    said = Counter((e["logger"], e["level"], e["message"]) for e in entries)
    assert [line for line, n in said.items() if n > 1] == [], done.stderr
    assert PASSWORD not in done.stderr
    return entries


def steps(entries: list[dict[str, Any]], message_id: str) -> list[str]:
    return [e["step"] for e in entries if e["message_id"] == message_id and e["step"]]


def only(entries: list[dict[str, Any]], message_id: str, step: str) -> dict[str, Any]:
    [entry] = [e for e in entries if e["message_id"] == message_id and e["step"] == step]
    return entry


def messages(config: Path) -> list[dict[str, Any]]:
    return json.loads(cli(config, "messages", "--json").stdout)


def test_send_and_poll_log_one_json_line_per_step(tmp_path: Path, meshbridge_config) -> None:
    config = meshbridge_config(OUT_IN, mesh=TRACK_NOW)
    payload = tmp_path / "note.txt"
    payload.write_text("one line per step")

    sent = cli(config, "send", str(payload), "--route", "out")
    assert sent.returncode == 0, sent.stderr
    out_id = sent.stdout.strip()
    logged = json_lines(sent)
    assert steps(logged, out_id) == ["stored", "sent"]
    mesh_id = only(logged, out_id, "sent")["mesh_message_id"]
    assert only(logged, out_id, "stored") == {
        **only(logged, out_id, "stored"),
        "level": "info",
        "logger": "meshbridge.steps",
        "route": "out",
        "mailbox": "X26ABC1",
        "peer": "X26ABC2",
        "mesh_message_id": None,
        "state": "accepted",
        "code": None,
        "job": None,
    }
    assert mesh_id and only(logged, out_id, "sent")["state"] == "sent"

    polled = cli(config, "poll")
    assert polled.returncode == 0 and "received: 1" in polled.stdout, polled.stderr
    logged = json_lines(polled)
    [in_id] = [m["id"] for m in messages(config) if m["direction"] == "in"]
    assert steps(logged, in_id) == ["received", "delivered"]
    assert steps(logged, out_id) == ["delivered"]  # MESH tracking: the recipient collected it
    received, delivered = only(logged, in_id, "received"), only(logged, in_id, "delivered")
    assert (received["mailbox"], received["peer"], received["mesh_message_id"]) == ("X26ABC2", "X26ABC1", mesh_id)
    assert (received["state"], received["route"]) == ("received", None)  # routed later
    assert (delivered["route"], delivered["state"], delivered["mesh_message_id"]) == ("in", "delivered", mesh_id)
    assert only(logged, out_id, "delivered")["peer"] == "X26ABC2"
    assert all(e["level"] == "info" for e in logged if e["step"])
    # every step line is about a message, and each one is here once
    assert Counter((e["message_id"], e["step"]) for e in logged if e["step"]) == Counter(
        {(in_id, "received"): 1, (in_id, "delivered"): 1, (out_id, "delivered"): 1}
    )


def test_acks_nacks_and_overdue_are_steps_with_their_code(tmp_path: Path, meshbridge_config) -> None:
    sender = meshbridge_config(sender_routes(within="1s"), name="a.toml", store="a/mb.db", mailboxes=("X26ABC1",))
    receiver = meshbridge_config(RECEIVER, name="b.toml", store="b/mb.db", mailboxes=("X26ABC2",))
    payload = tmp_path / "patient.xml"
    payload.write_bytes(PATIENT)
    nacked_id = cli(sender, "send", str(payload), "--route", "toc-out").stdout.strip()
    late_id = cli(sender, "send", str(payload), "--route", "toc-out").stdout.strip()

    polled = cli(receiver, "poll")
    assert polled.returncode == 0, polled.stderr
    logged = json_lines(polled)
    sent = {m["mesh_message_id"]: m["id"] for m in messages(sender)}
    inbound = {sent[m["mesh_message_id"]]: m["id"] for m in messages(receiver) if m["direction"] == "in"}
    assert len(inbound) == 2
    for in_id in inbound.values():
        assert steps(logged, in_id) == ["received", "delivered"]
    responses = [m["id"] for m in messages(receiver) if m["direction"] == "out"]
    assert len(responses) == 2 and all(steps(logged, r) == ["stored", "sent"] for r in responses)

    [nacked_in] = [i for i in inbound.values() if i != inbound[late_id]]
    answered = cli(receiver, "ack", nacked_in, "--nack", "30002", "--text", "not known\nhere")
    assert answered.returncode == 0, answered.stderr
    nack = only(json_lines(answered, only_json=False), nacked_in, "nacked")
    assert (nack["level"], nack["code"], nack["state"], nack["route"]) == ("warning", "30002", "bus-nacked", "toc-in")
    assert nack["message"].endswith("not known\nhere")  # exactly as typed: JSON escapes it

    time.sleep(1.5)  # past the 1 s deadlines: the late message's business ack is overdue
    polled = cli(sender, "poll")
    assert polled.returncode == 0, polled.stderr
    logged = json_lines(polled)
    assert steps(logged, nacked_id) == ["acked", "nacked"]
    assert steps(logged, late_id) == ["acked", "overdue"]
    assert [only(logged, i, "acked")["code"] for i in (nacked_id, late_id)] == ["20013", "20013"]
    nack = only(logged, nacked_id, "nacked")
    assert (nack["level"], nack["code"], nack["peer"], nack["route"]) == ("warning", "30002", "X26ABC2", "toc-out")
    overdue = only(logged, late_id, "overdue")
    assert overdue["level"] == "warning" and "bus-ack was due by" in overdue["message"]
    assert (overdue["route"], overdue["mailbox"], overdue["code"]) == ("toc-out", "X26ABC1", None)
    assert not [e for e in logged if e["step"] is None and e["level"] == "warning"], polled.stderr  # said once


def test_each_job_names_itself_in_json_and_text(tmp_path: Path, meshbridge_config) -> None:
    routes = OUT_IN.replace('payload_type = "binary"\n', 'payload_type = "binary"\nsource = { folder = "outbox" }\n', 1)
    config = meshbridge_config(routes, mesh=TRACK_NOW)
    (tmp_path / "outbox").mkdir()
    (tmp_path / "outbox" / "first.txt").write_text("taken by the send job")
    time.sleep(2.5)  # older than source_settle (2 s): complete

    once = cli(config, "run", "--once")
    assert once.returncode == 0, once.stderr
    logged = json_lines(once)
    [out_id] = [m["id"] for m in messages(config) if m["direction"] == "out"]
    [in_id] = [m["id"] for m in messages(config) if m["direction"] == "in"]
    jobs = {(e["message_id"], e["step"]): e["job"] for e in logged if e["step"]}
    assert jobs == {
        (out_id, "stored"): "send",
        (out_id, "sent"): "send",
        (in_id, "received"): "poll:X26ABC2",
        (in_id, "delivered"): "deliver:in",
        (out_id, "delivered"): "track",
    }

    (tmp_path / "outbox" / "second.txt").write_text("and in text")
    time.sleep(2.5)
    once = cli(config, "run", "--once", fmt="text")
    assert once.returncode == 0, once.stderr
    second = next(m for m in messages(config) if m["filename"] == "second.txt" and m["direction"] == "out")
    lines = once.stderr.splitlines()
    assert any(f" INFO meshbridge.steps [send]: stored {second['id']}: " in line for line in lines), once.stderr
    assert any(" [poll:X26ABC2]: received " in line and "peer=X26ABC1" in line for line in lines), once.stderr
    assert any(" [deliver:in]: delivered " in line and "route=in" in line for line in lines), once.stderr
    assert sum(second["id"] in line for line in lines) == 3  # stored, sent, delivered (tracking)


def test_failures_are_logged_once(tmp_path: Path, meshbridge_config, mesh_peer) -> None:
    inbound = OUT_IN.replace('destination = { folder = "delivered" }', 'destination = { command = ["false"] }')
    config = meshbridge_config(inbound + "\n[service]\ndelivery_attempts = 1\n")
    payload = tmp_path / "p.txt"
    payload.write_text("x")

    refused = cli(config, "send", str(payload), "--from", "X26ABC1", "--to", "NOSUCHBOX", "--workflow", "WF")
    assert refused.returncode == 1
    logged = json_lines(refused, only_json=False)
    [failed_id] = [m["id"] for m in messages(config)]
    assert steps(logged, failed_id) == ["stored", "failed"]
    failed = only(logged, failed_id, "failed")
    # send says how it went in its own one line: its step is logged, at INFO, not a second warning
    assert failed["level"] == "info" and "Unregistered" in failed["message"] and failed["state"] == "failed"
    assert refused.stderr.count("meshbridge: MESH refused it") == 1
    assert [e for e in logged if failed_id in e["message"]] == [only(logged, failed_id, "stored"), failed]

    mesh_id = mesh_peer("X26ABC1").send_message("X26ABC2", b"the command refuses this", workflow_id="TEST_WORKFLOW")
    once = cli(config, "run", "--once")
    assert once.returncode == 0, once.stderr
    logged = json_lines(once)
    in_id = next(m["id"] for m in messages(config) if m["mesh_message_id"] == mesh_id)
    assert steps(logged, in_id) == ["received", "undelivered"]
    undelivered = only(logged, in_id, "undelivered")
    assert (undelivered["level"], undelivered["job"], undelivered["state"]) == ("warning", "deliver:in", "undelivered")
    assert [e for e in logged if in_id in e["message"] and e["step"] != "received"] == [undelivered]

    # poll, as a person runs it (text, WARNING): the step's line is the only line about it, no "problem:" again
    mesh_id = mesh_peer("X26ABC1").send_message("X26ABC2", b"and this", workflow_id="TEST_WORKFLOW")
    polled = cli(config, "poll", fmt="text", level="WARNING")
    assert polled.returncode == 0 and "undelivered: 1" in polled.stdout, polled.stderr
    in_id = next(m["id"] for m in messages(config) if m["mesh_message_id"] == mesh_id)
    [line] = polled.stderr.splitlines()
    assert f" WARNING meshbridge.steps: undelivered {in_id}: command false exited 1" in line, line


def test_peer_text_stays_on_its_line(meshbridge_config, mesh_peer) -> None:
    config = meshbridge_config(OUT_IN)
    workflow = "WF\x9b2J[/x]"  # the sandbox refuses C0 controls in headers, but passes C1 ones (CSI)
    unrouted = mesh_peer("X26ABC1").send_message("X26ABC2", b"on a workflow nobody routes", workflow_id=workflow)
    polled = cli(config, "poll", fmt="text")
    assert polled.returncode == 0, polled.stderr
    [in_id] = [m["id"] for m in messages(config) if m["mesh_message_id"] == unrouted]
    for char in CONTROL:
        assert char not in polled.stderr
    [line] = [line for line in polled.stderr.splitlines() if in_id in line and "unrouted" in line]
    assert f" WARNING meshbridge.steps: unrouted {in_id}: from X26ABC1 on workflow WF\\x9b2J[/x] (" in line
    assert f"mesh_message_id={unrouted} state=unrouted" in line
    assert sum(in_id in line for line in polled.stderr.splitlines()) == 2  # received, unrouted


def test_secrets_are_redacted_from_fields_too() -> None:
    from meshbridge.logs import JsonFormatter, Redactor, TextFormatter

    record = logging.LogRecord("meshbridge.steps", logging.WARNING, __file__, 1, "failed %s", ("tok-Secret1",), None)
    record.peer, record.code = "tok-Secret1@X26ABC1", None
    Redactor(["tok-Secret1"]).filter(record)
    shown = JsonFormatter().format(record) + TextFormatter().format(record)
    assert "tok-Secret1" not in shown and shown.count("********") == 4


def test_a_late_job_is_warned_as_missed_naming_it(caplog) -> None:
    from meshbridge.service import Worker

    ran: list[str] = []

    def slow() -> None:
        ran.append("slow")
        time.sleep(0.5)

    jobs = [("slow", slow, 3600.0), ("tick", lambda: ran.append("tick"), 0.05)]
    worker = Worker("send", None, jobs, threading.Event())  # type: ignore[arg-type]  # run_due needs no bridge
    with caplog.at_level(logging.INFO, logger="meshbridge"):
        worker.run_due()  # both due at the start: none late
        assert ran == ["slow", "tick"] and not caplog.records
        worker.wake("slow")  # due at once (not late); tick, due 0.05 s after its run, waits for slow's 0.5 s
        worker.run_due()
    assert ran == ["slow", "tick", "slow", "tick"]
    [missed] = [r for r in caplog.records if "missed" in r.getMessage()]
    assert missed.levelno == logging.WARNING and missed.job == "tick"  # type: ignore[attr-defined]
    assert "worker send was busy with slow" in missed.getMessage(), missed.getMessage()


def test_a_url_secret_is_redacted_by_its_path_too() -> None:
    """A webhook URL's path is its secret (Slack, Teams): a line naming the path without the
    scheme and host (urllib3's request lines) hides it as well."""
    from meshbridge.logs import Redactor, url_path

    hook = "https://hooks.example.com/services/T0/B0/s3cret?code=k3y"
    record = logging.LogRecord("urllib3", logging.DEBUG, __file__, 1, '"POST %s HTTP/1.1" 200', (url_path(hook),), None)
    Redactor([hook]).filter(record)
    assert record.getMessage() == '"POST ******** HTTP/1.1" 200'
    assert [url_path(s) for s in ("plain-secret", "https://example.com", "https://example.com/")] == [None] * 3
