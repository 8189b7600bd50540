"""`meshbridge ack --text`: a text XML cannot carry (ESC, other C0 controls) is refused with one
line, exit 2, and nothing is sent (it was a traceback); a line break, which XML carries, goes to
the sender as typed.

Two real meshbridges on the real mesh-sandbox: X26ABC1 sends an ITK message asking for a business
ack, X26ABC2 answers it with ``meshbridge ack`` in a subprocess.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import ITK_RECEIVER_ROUTE, ITK_SENDER_ROUTE, PATIENT

from meshbridge import Bridge, InvalidRequest, load
from meshbridge.testing import run_cli as cli


@pytest.fixture
def pair(tmp_path: Path, meshbridge_config):
    a = Bridge(load(meshbridge_config(ITK_SENDER_ROUTE, name="a.toml", store="a/mb.db", mailboxes=("X26ABC1",))))
    b = Bridge(load(meshbridge_config(ITK_RECEIVER_ROUTE, name="b.toml", store="b/mb.db", mailboxes=("X26ABC2",))))
    yield a, b
    a.close()
    b.close()


def received_one(a: Bridge, b: Bridge, tmp_path: Path) -> tuple[dict, dict]:
    payload = tmp_path / "patient.xml"
    payload.write_bytes(PATIENT)
    sent = a.send(payload, route="toc-out")
    b.poll()
    [received] = [m for m in b.messages(direction="in") if m.route == "toc-in"]
    assert received.state == "delivered"
    return sent, received


@pytest.mark.parametrize("bad", ["\x1b[31mred", "bell\x07", "\ufffe"], ids=["esc", "bel", "fffe"])
def test_a_text_xml_cannot_carry_is_one_line_and_sends_nothing(tmp_path: Path, pair, mesh_peer, bad: str) -> None:
    a, b = pair
    sent, received = received_one(a, b, tmp_path)
    in_sender_inbox = mesh_peer("X26ABC1").list_messages()
    done = cli(b.config.file, "ack", received.id, "--nack", "30002", "--text", f"not known {bad}")
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert "XML cannot carry" in done.stderr and "\x1b" not in done.stderr, done.stderr
    now = b.store.get(received.id)
    assert (now.state, now.bus_ack_code) == ("delivered", None)
    assert len(b.messages(direction="out")) == 1  # the 20013 poll sent, no business response
    assert mesh_peer("X26ABC1").list_messages() == in_sender_inbox
    for text in (bad, "a\x00b"):  # (a NUL cannot be a command-line argument)
        with pytest.raises(InvalidRequest, match="XML cannot carry"):
            b.ack(received.id, code="30002", nack=True, text=text)

    text = "not known\nhere: no record matches"  # a line break is text XML carries
    done = cli(b.config.file, "ack", received.id, "--nack", "30002", "--text", text)
    assert done.returncode == 0, done.stderr
    a.poll()
    [nack] = [e for e in a.store.events(sent.id) if e.kind == "bus-nack"]
    assert nack.detail["text"] == text
