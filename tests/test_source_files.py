"""Source files as the file system has them: names that are bytes, empty files, files still written.

- A name that is not UTF-8 (``caf\\xe9.txt`` from a Latin-1 system) is stored and sent with each such
  byte as ``%XX``; it used to stop its folder for good (a traceback each pass, ``run --once`` exit 0).
- An empty file is stored ``rejected`` with its reason and moved to ``rejected/`` once settled; it
  used to be warned about on every scan for ever. ``meshbridge send`` of one is stored the same way.
- A file that changes after it was stored (its writer paused longer than the settle time) is
  stat'ed again before it is sent: the stored copy is discarded unsent and the file waits again.
  The change is made by a plugin's hook that runs after the store and before the re-stat (an ack
  protocol's ``expects``), the moment a writer resuming its work could pick.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import OUT_IN

from meshbridge.sources import scan

ODD = b"caf\xe9.txt"  # Latin-1 for café.txt: not UTF-8


def outbox_route(folder: Path, payload_type: str = "binary") -> str:
    outbound = f'payload_type = "{payload_type}"\nsource = {{ folder = "{folder}" }}'
    return OUT_IN.replace('payload_type = "binary"', outbound, 1)


def settled(path: Path | bytes, data: bytes, age: float = 60) -> None:
    with open(path, "wb") as f:
        f.write(data)
    os.utime(path, (time.time() - age, time.time() - age))


def cli(config: Path, *args: str | bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "meshbridge", "--config", str(config), *args], capture_output=True, timeout=180
    )


# --- names that are not UTF-8 ------------------------------------------------------------------------


def test_a_source_file_whose_name_is_not_utf8_is_sent_under_an_escaped_name(
    tmp_path: Path, meshbridge_config, make_bridge
) -> None:
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    odd = os.path.join(os.fsencode(outbox), ODD)
    settled(odd, b"latin-1 named", age=120)  # the oldest: taken first
    settled(outbox / "plain.txt", b"plainly named")
    bridge = make_bridge(meshbridge_config(outbox_route(outbox)))
    report = scan(outbox, "out", bridge.store, bridge.send, 0)
    assert report.problems == [] and len(report.stored) == 2
    sent = {m.filename: m for m in bridge.store.messages(direction="out")}
    assert set(sent) == {"caf%E9.txt", "plain.txt"} and {m.state for m in sent.values()} == {"sent"}
    assert bridge.store.payloads.read(sent["caf%E9.txt"].payload_sha256) == b"latin-1 named"
    assert not os.path.exists(odd)  # moved aside, under its own bytes
    aside = os.listdir(os.path.join(os.fsencode(outbox), b".meshbridge", b"sent"))
    assert f"{sent['caf%E9.txt'].id}_".encode() + ODD in aside
    assert bridge.poll().problems == []  # the recipient gets it under the escaped name
    assert (tmp_path / "delivered").is_dir()
    [received] = [m for m in bridge.store.messages(direction="in") if m.filename == "caf%E9.txt"]
    assert received.state == "delivered"


def test_run_once_takes_every_file_of_a_folder_with_a_name_that_is_not_utf8(tmp_path: Path, meshbridge_config) -> None:
    """The file used to raise out of the scan each pass, so the newer files behind it waited for
    ever while ``run --once`` exited 0."""
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    settled(os.path.join(os.fsencode(outbox), ODD), b"latin-1 named", age=120)
    settled(outbox / "plain.txt", b"plainly named")
    config = meshbridge_config(outbox_route(outbox))
    done = cli(config, "run", "--once")
    assert done.returncode == 0 and b"Traceback" not in done.stderr, done.stderr.decode(errors="replace")
    assert [p for p in os.listdir(os.fsencode(outbox)) if p != b".meshbridge"] == []
    delivered = sorted(p.read_bytes() for p in (tmp_path / "delivered").iterdir())
    assert delivered == [b"latin-1 named", b"plainly named"]


def test_meshbridge_send_of_a_file_whose_name_is_not_utf8_sends_it_under_an_escaped_name(
    tmp_path: Path, meshbridge_config
) -> None:
    config = meshbridge_config(OUT_IN)
    odd = os.path.join(os.fsencode(tmp_path), ODD)
    settled(odd, b"latin-1 named")
    done = cli(config, "send", "--route", "out", odd)
    assert done.returncode == 0 and done.stderr == b"", done.stderr
    message_id = done.stdout.decode().strip()
    shown = json.loads(cli(config, "show", message_id, "--json").stdout)
    assert shown["filename"] == "caf%E9.txt" and shown["state"] == "sent"


@pytest.mark.parametrize(
    ("name", "escaped"), [("new\nline.txt", "new%0Aline.txt"), ("tab\there.txt", "tab%09here.txt")]
)
def test_a_name_with_a_control_character_is_sent_under_an_escaped_name(
    tmp_path: Path, meshbridge_config, make_bridge, name: str, escaped: str
) -> None:
    """MESH refuses C0 controls in its headers: a line break made `send` say MESH was unreachable
    (exit 3) and retry for ever-failing attempts, a tab made MESH refuse the message (exit 1)."""
    config = meshbridge_config(outbox_route(tmp_path / "outbox"))
    settled(tmp_path / name, b"oddly named")
    done = cli(config, "send", "--route", "out", str(tmp_path / name))
    assert done.returncode == 0 and done.stderr == b"", done.stderr
    shown = json.loads(cli(config, "show", done.stdout.decode().strip(), "--json").stdout)
    assert (shown["filename"], shown["state"]) == (escaped, "sent")

    outbox = tmp_path / "outbox"  # and from a source folder, beside a plain file
    outbox.mkdir()
    settled(outbox / name, b"in the outbox")
    settled(outbox / "plain.txt", b"plainly named")
    bridge = make_bridge(config)
    report = scan(outbox, "out", bridge.store, bridge.send, 0)
    assert report.problems == [] and len(report.stored) == 2
    stored = {bridge.store.get(i).filename: bridge.store.get(i).state for i in report.stored}
    assert stored == {escaped: "sent", "plain.txt": "sent"}
    assert bridge.poll().problems == []
    assert {m.filename for m in bridge.store.messages(direction="in")} >= {escaped, "plain.txt"}


# --- empty files -------------------------------------------------------------------------------------


def test_an_empty_source_file_is_rejected_with_its_reason_once_settled(
    tmp_path: Path, meshbridge_config, make_bridge
) -> None:
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    settled(outbox / "empty.txt", b"")
    (outbox / "fresh.txt").write_bytes(b"")  # just made: not settled yet
    settled(outbox / "letter.txt", b"a letter")
    bridge = make_bridge(meshbridge_config(outbox_route(outbox)))
    report = scan(outbox, "out", bridge.store, bridge.send, 2)
    assert report.problems == [] and len(report.stored) == 1 and len(report.rejected) == 1
    rejected = bridge.store.get(report.rejected[0])
    assert (rejected.state, rejected.filename, rejected.payload_size) == ("rejected", "empty.txt", 0)
    assert [f.as_dict() for f in rejected.findings] == [
        {"message": "the payload is empty (MESH refuses empty messages)", "severity": "error", "code": "payload.empty"}
    ]
    assert rejected.mesh_message_id is None and bridge.store.get(report.stored[0]).state == "sent"
    assert [p.name for p in (outbox / ".meshbridge" / "rejected").iterdir()] == [f"{rejected.id}_empty.txt"]
    assert sorted(p.name for p in outbox.iterdir()) == [".meshbridge", "fresh.txt"]
    again = scan(outbox, "out", bridge.store, bridge.send, 2)  # nothing more to say about it
    assert again.problems == [] and again.stored == [] and again.rejected == []
    assert len(bridge.store.messages()) == 2


def test_meshbridge_send_of_an_empty_file_stores_it_rejected_and_prints_its_id(
    tmp_path: Path, meshbridge_config
) -> None:
    config = meshbridge_config(OUT_IN)
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    done = cli(config, "send", "--route", "out", str(empty))
    assert done.returncode == 1 and b"Traceback" not in done.stderr
    message_id = done.stdout.decode().strip()
    assert b"the payload is empty (MESH refuses empty messages)" in done.stderr
    assert f"quarantined as {message_id} (state rejected)".encode() in done.stderr
    [stored] = json.loads(cli(config, "messages", "--json").stdout)
    assert (stored["id"], stored["state"], stored["payload_size"]) == (message_id, "rejected", 0)


# --- files still written -----------------------------------------------------------------------------


def test_a_source_file_written_to_after_the_folder_was_listed_waits_to_settle_again(
    tmp_path: Path, meshbridge_config, make_bridge
) -> None:
    """Its writer went on after a pause longer than the settle time: the file was listed as
    complete, then sent as whatever it held when it was read. The writer here resumes while the
    scan sends the file before it."""
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    first, second = outbox / "a.txt", outbox / "b.txt"
    settled(first, b"the first letter", age=120)
    settled(second, b"the second letter, first half")
    bridge = make_bridge(meshbridge_config(outbox_route(outbox)))

    def send(path: Path, **fields: object):
        if path == first:
            with open(second, "ab") as f:
                f.write(b", second half")
        return bridge.send(path, **fields)

    report = scan(outbox, "out", bridge.store, send, 2)
    assert report.problems == [] and len(report.stored) == 1  # a.txt; b.txt waits, quietly
    assert [m.filename for m in bridge.store.messages()] == ["a.txt"]
    assert second.exists()
    os.utime(second, (time.time() - 60, time.time() - 60))  # settled now
    again = scan(outbox, "out", bridge.store, bridge.send, 2)
    assert again.problems == [] and len(again.stored) == 1
    sent = bridge.store.get(again.stored[0])
    assert bridge.store.payloads.read(sent.payload_sha256) == b"the second letter, first half, second half"


# --- files that change once stored -------------------------------------------------------------------


class Meddler:
    """A writer that resumes after the store: an ack protocol whose ``expects`` (called once the
    message is stored, before it is sent) changes the file, once."""

    def __init__(self, path: Path, change: str) -> None:
        self.path, self.change, self.done = path, change, False

    def protocols(self):
        from meshbridge import AckProtocol

        return [AckProtocol("meddle", expects=self.expects, answers=lambda payload: None)]

    def expects(self, payload, route) -> None:
        if self.done:
            return None
        self.done = True
        before = os.stat(self.path)
        if self.change == "appended":
            with open(self.path, "ab") as f:
                f.write(b" and its second half")
        elif self.change == "rewritten":  # same size, new time
            self.path.write_bytes(b"THE FIRST HALF")
            os.utime(self.path, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))
        else:  # another file renamed over it, with the same size and time
            other = self.path.with_name(".other")
            other.write_bytes(b"the other half")
            os.utime(other, ns=(before.st_atime_ns, before.st_mtime_ns))
            os.replace(other, self.path)
        return None


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ("appended", "its size went from 14 to 34 bytes"),
        ("rewritten", "it was modified"),
        ("replaced", "it was replaced by another file"),
    ],
)
def test_a_source_file_changed_after_it_was_stored_is_discarded_unsent_and_waits(
    change: str, said: str, tmp_path: Path, meshbridge_config, mesh_peer
) -> None:
    from meshbridge import Bridge, load
    from meshbridge.hookspecs import hookimpl
    from meshbridge.plugins import Plugins, make_plugin_manager

    outbox = tmp_path / "outbox"
    outbox.mkdir()
    letter = outbox / "letter.txt"
    settled(letter, b"the first half")
    meddler = Meddler(letter, change)

    class Plugin:
        @hookimpl
        def meshbridge_ack_protocols(self):
            return meddler.protocols()

    manager = make_plugin_manager(load_entrypoints=False)
    manager.register(Plugin(), name="meddler")
    config = load(meshbridge_config(outbox_route(outbox, "text")))
    with Bridge(config, Plugins(manager)) as bridge:
        report = scan(outbox, "out", bridge.store, bridge.send, 0)
        [discarded] = bridge.store.messages(direction="out")
        assert report.problems == [
            f"source {letter}: the source file changed after it was stored ({said}): "
            f"discarded unsent as {discarded.id}; it waits to settle again"
        ]
        assert report.stored == [] and discarded.state == "discarded" and discarded.mesh_message_id is None
        assert discarded.source_file is None and bridge.store.open_expectations(discarded.id) == []
        assert [e.kind for e in bridge.store.events(discarded.id)] == ["accepted", "sending", "discarded"]
        assert mesh_peer("X26ABC2").list_messages() == []  # nothing reached MESH
        assert [p.name for p in outbox.iterdir()] == ["letter.txt"]  # not moved aside: it waits
        now = letter.read_bytes()
        assert now != b"the first half"

        again = scan(outbox, "out", bridge.store, bridge.send, 0)  # settled now: taken as it is
        assert again.problems == [] and len(again.stored) == 1
        sent = bridge.store.get(again.stored[0])
        assert sent.state == "sent" and bridge.store.payloads.read(sent.payload_sha256) == now
        assert bridge.poll().problems == []
    assert [p.read_bytes() for p in (tmp_path / "delivered").iterdir()] == [now]  # only the whole file
