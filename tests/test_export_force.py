"""``export -o FILE --force`` replaces a regular file only: a FIFO, a symbolic link (``/dev/stdout``
is one) or a device (``/dev/null``) at FILE is refused with exit 2 and left as it is. It was
replaced by the payload's file: run as root, ``-o /dev/null --force`` put a regular file there.

Real ``meshbridge`` processes; the payload is one ``send`` refused (quarantined, no MESH call).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from meshbridge.testing import run_cli as cli

CONFIG = """[store]
path = "var/meshbridge.db"

[mesh]
url = "http://127.0.0.1:9"
shared_key = "TestKey"

[[mailboxes]]
id = "X26ABC1"
password = "password"

[[routes]]
name = "out"
direction = "outbound"
from = "X26ABC1"
to = "X26ABC2"
workflow_id = "TEST_WORKFLOW"
payload_type = "xml"
"""


def test_force_replaces_only_a_regular_file(tmp_path: Path) -> None:
    config = tmp_path / "meshbridge.toml"
    config.write_text(CONFIG)
    payload = tmp_path / "broken.xml"
    payload.write_bytes(b"<a><b></a>")
    sent = cli(config, "send", str(payload), "--route", "out")
    assert sent.returncode == 1, sent.stderr  # refused by validation, kept as rejected
    message_id = sent.stdout.strip()

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    target = tmp_path / "target.txt"
    target.write_text("keep me\n")
    link = tmp_path / "link"
    link.symlink_to(target)
    for path in (fifo, link):
        before = os.lstat(path)
        done = cli(config, "export", message_id, "-o", str(path), "--force")
        assert done.returncode == 2, (path, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1, done.stderr
        assert "not a regular file" in done.stderr, done.stderr
        after = os.lstat(path)
        assert (stat.S_IFMT(after.st_mode), after.st_ino) == (stat.S_IFMT(before.st_mode), before.st_ino)
    assert target.read_text() == "keep me\n"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temp file left

    replaced = cli(config, "export", message_id, "-o", str(target), "--force")
    assert replaced.returncode == 0, replaced.stderr
    assert target.read_bytes() == b"<a><b></a>"
