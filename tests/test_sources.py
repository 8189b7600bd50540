"""Folder sources against a hostile outbox: what the scan saw is what is read, and only regular files.

A file is listed, then hashed, then stored: whoever can write to the outbox can swap it in between
for a symbolic link (to ``/etc/shadow``) or a FIFO. The swaps here are made by the ``send`` the scan
calls for an earlier file, or just before the real :meth:`Bridge.send` reads the file: the exact
moments a concurrent writer could pick.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import OUT_IN

from meshbridge.sources import ScanReport, scan

SECRET = b"root:$6$Distinctive-Shadow-Hash:19000:0:99999:7:::\n"


def outbox_route(folder: Path) -> str:
    return OUT_IN.replace('payload_type = "binary"', f'payload_type = "binary"\nsource = {{ folder = "{folder}" }}', 1)


def swap(path: Path, kind: str, secret: Path) -> None:
    """Replace ``path`` at once (a rename) by a symbolic link to ``secret`` or by a FIFO."""
    tmp = path.with_name(".swap")
    if kind == "symlink":
        tmp.symlink_to(secret)
    else:
        os.mkfifo(tmp)
    os.replace(tmp, path)


def scan_within(folder: Path, bridge, send: Callable, seconds: float = 60) -> ScanReport:
    """Scan in a thread; it must come back (a FIFO opened for reading would block it for ever)."""
    outcome: list[ScanReport] = []
    thread = threading.Thread(target=lambda: outcome.append(scan(folder, "out", bridge.store, send, 0)), daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():  # unblock the reader so the test process can end
        with open(folder / "b.txt", "wb"):
            pass
    assert not thread.is_alive(), f"the scan did not come back within {seconds:g}s"
    return outcome[0]


def nothing_of(secret: bytes, bridge, tmp_path: Path) -> None:
    for message in bridge.store.messages():
        assert secret not in bridge.store.payloads.read(message.payload_sha256)
    stored = b"".join(p.read_bytes() for p in (tmp_path / "var").rglob("*") if p.is_file())
    assert b"Distinctive-Shadow" not in stored


@pytest.mark.parametrize("kind", ["symlink", "fifo"])
@pytest.mark.parametrize("when", ["before-hashing", "before-storing"])
def test_a_source_file_swapped_after_the_scan_saw_it_is_not_taken(
    kind: str, when: str, tmp_path: Path, meshbridge_config, make_bridge
) -> None:
    secret = tmp_path / "shadow"
    secret.write_bytes(SECRET)
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    first, second = outbox / "a.txt", outbox / "b.txt"
    first.write_bytes(b"the first letter")
    second.write_bytes(b"the second letter")
    os.utime(first, (time.time() - 60, time.time() - 60))  # taken first
    bridge = make_bridge(meshbridge_config(outbox_route(outbox)))

    def send(path: Path, **fields: object):
        if (path == first) is (when == "before-hashing"):  # b.txt swapped before its turn, or as it is sent
            swap(second, kind, secret)
        return bridge.send(path, **fields)

    report = scan_within(outbox, bridge, send)
    taken = bridge.store.messages()
    assert len(taken) == 1 and bridge.store.payloads.read(taken[0].payload_sha256) == b"the first letter"
    nothing_of(SECRET, bridge, tmp_path)
    what = "a symbolic link" if kind == "symlink" else "a FIFO"
    assert len(report.problems) == 1 and f"b.txt is not a regular file ({what})" in report.problems[0]
    assert secret.read_bytes() == SECRET and (outbox / "b.txt").is_symlink() is (kind == "symlink")
    again = scan_within(outbox, bridge, bridge.send)  # later scans skip it quietly
    assert again.problems == [] and len(bridge.store.messages()) == 1


@pytest.mark.parametrize("planted", [".meshbridge", ".meshbridge/sent"])
def test_a_taken_file_is_never_moved_through_a_planted_link(
    planted: str, tmp_path: Path, meshbridge_config, make_bridge
) -> None:
    """Whoever can write to the outbox points ``.meshbridge/sent`` at a folder whose files are run
    (``/etc/profile.d``): meshbridge would move their ``*.sh`` there itself."""
    outbox, run_dir = tmp_path / "outbox", tmp_path / "profile.d"
    outbox.mkdir()
    run_dir.mkdir()
    (run_dir / "sent").mkdir()
    link = outbox / planted
    link.parent.mkdir(exist_ok=True)
    link.symlink_to(run_dir if planted == ".meshbridge" else run_dir / "sent")
    (outbox / "x.sh").write_bytes(b"echo owned\n")
    os.utime(outbox / "x.sh", (time.time() - 60, time.time() - 60))
    bridge = make_bridge(meshbridge_config(outbox_route(outbox)))
    for _ in range(2):  # sent once; on the next scan, found in the store and again not moved
        report = scan_within(outbox, bridge, bridge.send)
        assert len(report.problems) == 1 and "is not a folder (a symbolic link?)" in report.problems[0]
        assert len(bridge.store.messages()) == 1
    assert list(run_dir.rglob("*.sh")) == [] and (outbox / "x.sh").exists()


def test_a_source_file_with_the_longest_name_moves_aside(tmp_path: Path, meshbridge_config, make_bridge) -> None:
    """``<id>_<name>`` was longer than a file name may be: sent, then left in the outbox with a
    problem on every pass."""
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    name = "é" * 100 + "x" * 51 + ".xml"  # 255 bytes
    (outbox / name).write_bytes(b"long named")
    os.utime(outbox / name, (time.time() - 60, time.time() - 60))
    bridge = make_bridge(meshbridge_config(outbox_route(outbox)))
    report = scan_within(outbox, bridge, bridge.send)
    (message,) = bridge.store.messages()
    assert report.problems == [] and report.stored == [message.id]
    (aside,) = (outbox / ".meshbridge" / "sent").iterdir()
    assert aside.read_bytes() == b"long named" and aside.name.startswith(f"{message.id}_éé")
    assert not (outbox / name).exists()


def test_a_file_another_process_takes_mid_scan_is_no_problem(
    tmp_path: Path, meshbridge_config, make_bridge, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two services on one outbox: a file the other one moved aside between this one's listing and
    its stat, or between its stat and its open, is skipped quietly (it was a traceback, then a
    warning, on every such pass)."""
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    for name in ("a.bin", "b.bin", "c.bin"):
        (outbox / name).write_bytes(name.encode())
        os.utime(outbox / name, (time.time() - 60, time.time() - 60))
    bridge = make_bridge(meshbridge_config(outbox_route(outbox)))
    listed = os.scandir

    def listing_then_taken(folder: Path) -> list[os.DirEntry[str]]:  # the other process moves a.bin away
        entries = list(listed(folder))
        (outbox / "a.bin").rename(tmp_path / "taken-a.bin")
        return entries

    real_send = bridge.send

    def send_after_b_is_taken(path: Path, **kw: object):  # ... and b.bin after this one's stat
        if Path(path).name == "b.bin":
            Path(path).rename(tmp_path / "taken-b.bin")
        return real_send(path, **kw)

    monkeypatch.setattr("meshbridge.sources.os.scandir", listing_then_taken)
    report = scan(outbox, "out", bridge.store, send_after_b_is_taken, 0)
    (message,) = bridge.store.messages()
    assert report.problems == [] and report.rejected == [] and report.stored == [message.id]
    assert message.filename == "c.bin" and bridge.store.payloads.read(message.payload_sha256) == b"c.bin"
    assert (tmp_path / "taken-a.bin").read_bytes() == b"a.bin" and (tmp_path / "taken-b.bin").read_bytes() == b"b.bin"
