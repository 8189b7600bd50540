"""`meshbridge ack`: --ok takes only a positive business code and --nack only a negative one, for
every business code of ``itk/codes.py``; anything else exits 2 with one line and sends nothing.

Two real meshbridges on the real mesh-sandbox: X26ABC1 sends ITK messages asking for a business
ack, X26ABC2 answers them with ``meshbridge ack`` in a subprocess.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from meshbridge import Bridge, Message, MessageSummary, itk, load

PATIENT = b"""<Patient xmlns="http://hl7.org/fhir"><id value="p1"/><gender value="unknown"/>
<birthDate value="1970-01-01"/></Patient>"""
WORKFLOW = "TOC_FHIR_OP_ATTEN"
SENDER_ROUTE = f"""
[[routes]]
name = "toc-out"
direction = "outbound"
from = "X26ABC1"
to = "X26ABC2"
workflow_id = "{WORKFLOW}"
payload_type = "fhir"
itk = {{ inf_ack = true, bus_ack = true, event = "ITK006D", inf_ack_within = "1h", bus_ack_within = "1h" }}
"""
RECEIVER_ROUTE = f"""
[[routes]]
name = "toc-in"
direction = "inbound"
mailbox = "X26ABC2"
workflow_id = "{WORKFLOW}"
payload_type = "fhir"
itk = {{}}
destination = {{ folder = "in" }}
"""
BUSINESS = [c for _, c in sorted(itk.CODES.items()) if c.level == itk.BUSINESS]
NOT_BUSINESS = ["20013", "10001", "20009", "10006", "99999", "3000", "abc", "", "30002x"]


def flags(code: str, *, nack: bool) -> list[str]:
    return ["--nack", code] if nack else ["--ok", "--code", code]


@pytest.fixture
def pair(tmp_path: Path, meshbridge_config):
    opened: list[Bridge] = []

    def make() -> tuple[Bridge, Bridge]:
        a = Bridge(load(meshbridge_config(SENDER_ROUTE, name="a.toml", store="a/mb.db", mailboxes=("X26ABC1",))))
        b = Bridge(load(meshbridge_config(RECEIVER_ROUTE, name="b.toml", store="b/mb.db", mailboxes=("X26ABC2",))))
        opened.extend((a, b))
        return a, b

    yield make
    for bridge in opened:
        bridge.close()


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "meshbridge", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def exchange(a: Bridge, b: Bridge, tmp_path: Path, count: int) -> list[tuple[Message, MessageSummary]]:
    """``count`` ITK messages from a to b, received and answered 20013: [(sent, received)]."""
    payload = tmp_path / "patient.xml"
    payload.write_bytes(PATIENT)
    sent = [a.send(payload, route="toc-out") for _ in range(count)]
    b.poll()
    received = {m.itk_message_id.lower(): m for m in b.messages(direction="in") if m.route == "toc-in"}
    pairs = [(s, received[(s.itk_message_id or "").lower()]) for s in sent]
    assert all(r.state == "delivered" and r.inf_ack_code == "20013" for _, r in pairs)
    return pairs


def untouched(b: Bridge, received: MessageSummary) -> None:
    """The message is as it was received and answered 20013: no business answer, no new event."""
    now = b.show(received.id)
    assert (now.state, now.bus_ack_code, now.updated_at) == ("delivered", None, received.updated_at)
    assert not [e for e in now.events if e.at > received.updated_at]


def test_every_business_code_is_accepted_only_with_its_own_flag(tmp_path: Path, pair, mesh_peer) -> None:
    a, b = pair()
    pairs = exchange(a, b, tmp_path, len(BUSINESS))
    responses_before = len(b.messages(direction="out"))
    for (_, received), rc in zip(pairs, BUSINESS, strict=True):
        wrong = cli(b.config.file, "ack", received.id, *flags(rc.code, nack=rc.positive is not False))
        kind = "positive" if rc.positive else "negative"
        assert wrong.returncode == 2, (rc.code, wrong.stdout, wrong.stderr)
        assert wrong.stdout == "" and wrong.stderr.count("\n") == 1 and "Traceback" not in wrong.stderr
        assert f"{rc.code} is a {kind} code" in wrong.stderr, wrong.stderr
        untouched(b, received)
        assert len(b.messages(direction="out")) == responses_before  # nothing stored, so nothing sent

        right = cli(b.config.file, "ack", received.id, *flags(rc.code, nack=rc.positive is False))
        state = "bus-acked" if rc.positive else "bus-nacked"
        assert right.returncode == 0, (rc.code, right.stderr)
        assert right.stdout.strip() == f"{received.id}: {state} ({rc.code}) sent to X26ABC1"
        responses_before += 1
    a.poll()
    # each original got exactly the answer of its own flag: a contradicting one sent first would
    # have been applied, and the right one kept as an orphan
    for (sent, _), rc in zip(pairs, BUSINESS, strict=True):
        message = a.store.get(sent.id)
        assert message["bus_ack_code"] == rc.code
        assert message["state"] == ("complete" if rc.positive else "bus-nacked"), (rc.code, message["state"])
    assert list(a.messages(state="orphan")) == []


@pytest.mark.parametrize("nack", [False, True], ids=["ok", "nack"])
def test_a_code_that_is_not_a_business_code_exits_2_and_sends_nothing(
    tmp_path: Path, pair, mesh_peer, nack: bool
) -> None:
    a, b = pair()
    [(_, received)] = exchange(a, b, tmp_path, 1)
    in_sender_inbox = mesh_peer("X26ABC1").list_messages()
    for code in NOT_BUSINESS:
        done = cli(b.config.file, "ack", received.id, *flags(code, nack=nack))
        assert done.returncode == 2, (code, done.stdout, done.stderr)
        assert done.stdout == "" and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
        assert f"{code!r} is not an ITK3 business response code" in done.stderr, done.stderr
        untouched(b, received)
    contradictions = (
        ["--ok", "--nack", "30002"],
        ["--nack", "30002", "--code", "30002"],
        ["--nack", "30002", "--code", "30001"],
        ["--ok", "--nack", "30001"],
    )
    for args in contradictions:
        done = cli(b.config.file, "ack", received.id, *args)
        assert done.returncode == 2 and done.stderr.count("\n") == 1, (args, done.stderr)
        untouched(b, received)
    assert len(b.messages(direction="out")) == 1  # the 20013 poll sent, no business response
    assert mesh_peer("X26ABC1").list_messages() == in_sender_inbox  # and nothing more reached MESH


def test_the_api_refuses_a_code_of_the_other_kind(tmp_path: Path, pair) -> None:
    from meshbridge import InvalidRequest  # (here, so the command-line tests run where it is missing)

    a, b = pair()
    [(_, received)] = exchange(a, b, tmp_path, 1)
    for rc in BUSINESS:
        with pytest.raises(InvalidRequest, match=f"^{rc.code} is a"):
            b.ack(received.id, code=rc.code, nack=rc.positive is not False)
    for code in NOT_BUSINESS:
        with pytest.raises(InvalidRequest, match="is not an ITK3 business response code"):
            b.ack(received.id, code=code)
    with pytest.raises(InvalidRequest, match="a nack needs its code"):
        b.ack(received.id, nack=True)
    untouched(b, received)
    assert len(b.messages(direction="out")) == 1  # the 20013 only
    acked = b.ack(received.id)  # 30001 by default
    assert (acked.state, acked.bus_ack_code) == ("bus-acked", "30001")
