"""One store, used by several processes at once: the service (a connection per worker) while an
operator runs ``status``, ``ack`` or ``messages`` beside it. Nothing any of them commits is lost.

SQLite's locks are POSIX locks, held per process: closing *any* file descriptor on the store file
drops every lock the process holds on it. A process that has lost its locks looks, to the next
process that closes its own connection, as if it were not there: that one checkpoints and deletes
the write-ahead log under it, and what the first process commits next is written to a deleted
file, then lost (or read back as "database disk image is malformed").
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from meshbridge.errors import UnknownMessage
from meshbridge.store import SQLiteStore

CONFIG = """[store]
path = "var/meshbridge.db"

[mesh]
url = "http://127.0.0.1:9"
shared_key = { env = "MESHBRIDGE_TEST_UNSET_KEY" }

[[mailboxes]]
id = "X26ABC1"
password = { env = "MESHBRIDGE_TEST_UNSET_PASSWORD" }
"""


def another_process_adds_a_message(path: Path) -> str:
    """Another meshbridge process records something (as ``ack`` does while the service runs); its id."""
    code = (
        "import sys; from meshbridge.store import SQLiteStore; s = SQLiteStore(sys.argv[1]); "
        "print(s.add('in', 'received', mailbox='X26ABC1', peer='X26ABC3').id); s.close()"
    )
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def known(store: SQLiteStore, message_id: str) -> bool:
    try:
        store.get(message_id)
    except UnknownMessage:
        return False
    return True


def status(config: Path) -> None:
    """The operator's ``meshbridge status``, run while the store is open here."""
    done = subprocess.run(
        [sys.executable, "-m", "meshbridge", "--config", str(config), "status", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


def test_a_second_connection_in_a_process_keeps_its_commits_while_other_processes_come_and_go(
    tmp_path: Path,
) -> None:
    config = tmp_path / "meshbridge.toml"
    config.write_text(CONFIG)
    path = tmp_path / "var" / "meshbridge.db"
    first = SQLiteStore(path)  # as the service: the command's own bridge, then one per worker
    second = SQLiteStore(path)
    try:
        ids = []
        for n in range(3):
            ids.append(another_process_adds_a_message(path))
            message = second.add("in", "received", mailbox="X26ABC1", peer="X26ABC2", mesh_message_id=f"MESH-{n}")
            ids.append(message.id)
            status(config)
            assert known(first, message.id), f"commit {n} of the second connection is lost"
            assert known(first, ids[-2]), f"commit {n} of the other process is lost"
    finally:
        first.close()
        second.close()
    reopened = SQLiteStore(path)
    try:
        for message_id in ids:
            assert known(reopened, message_id)
    finally:
        reopened.close()
