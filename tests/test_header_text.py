"""Text MESH carries in HTTP headers (the file name, the route's subject) that HTTP cannot: a
character beyond Latin-1, such as the curly apostrophe (U+2019) of a file name or an en dash
in a subject, goes to MESH as ``%XX`` (its UTF-8 bytes), as a name that is not UTF-8 already does.
It was a UnicodeEncodeError traceback, with the message left claimed (``sending``) for good.

Real ``meshbridge send`` and ``poll`` processes on the real mesh-sandbox.
"""

from __future__ import annotations

from pathlib import Path

from meshbridge import Bridge, load
from meshbridge.testing import run_cli as cli

ROUTES = """
[[routes]]
name = "letters"
direction = "outbound"
from = "X26ABC1"
to = "X26ABC2"
workflow_id = "LETTERS"
payload_type = "text"
subject = "Discharge \u2013 summary"

[[routes]]
name = "letters-in"
direction = "inbound"
mailbox = "X26ABC2"
workflow_id = "LETTERS"
payload_type = "text"
destination = { folder = "in" }
"""


def test_a_name_and_subject_beyond_latin1_are_sent_escaped(tmp_path: Path, meshbridge_config) -> None:
    config = meshbridge_config(ROUTES)
    letter = tmp_path / "Patient\u2019s letter \u202e.txt"
    letter.write_text("Dear Dr Smith\n")
    done = cli(config, "send", str(letter), "--route", "letters")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    message_id = done.stdout.strip()
    assert cli(config, "poll").returncode == 0
    with Bridge(load(config)) as bridge:
        sent = bridge.store.get(message_id)
        assert sent.state in ("sent", "delivered")
        assert sent.filename == letter.name  # the store keeps the name as it is
        [received] = bridge.messages(direction="in")
        assert received.filename == "Patient%E2%80%99s letter %E2%80%AE.txt"
        assert received.subject == "Discharge %E2%80%93 summary"
        assert received.state == "delivered"
