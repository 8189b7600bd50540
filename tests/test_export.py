"""``meshbridge export``: any stored payload, inbound or outbound, inline or a file, checked against
its sha256; written whole or not at all. Real processes on a real sandbox and store."""

from __future__ import annotations

import os
import pty
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import OUT_IN, PATIENT

from meshbridge import itk

SMALL = b"a small payload, kept in the database\n"
LARGE = bytes(range(256)) * 400  # 102400 bytes: over inline_max (64 KiB), kept as a file
ITK_OUT = """
[[routes]]
name = "itk-out"
direction = "outbound"
from = "X26ABC1"
to = "X26ABC3"
workflow_id = "TOC_FHIR_OP_ATTEN"
payload_type = "fhir"
itk = { inf_ack = true, bus_ack = false, event = "ITK006D" }
"""


def cli(config: Path, *args: str, **options) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "meshbridge", "--config", str(config), *args],
        **({"capture_output": True} if not options else {}),
        timeout=120,
        **options,
    )


def store_of(config: Path) -> sqlite3.Connection:
    return sqlite3.connect(config.parent / "var" / "meshbridge.db")


@pytest.fixture
def exchanged(tmp_path: Path, meshbridge_config) -> tuple[Path, dict[str, dict]]:
    """A small and a large payload sent from X26ABC1 and collected by X26ABC2 (one store): four messages."""
    config = meshbridge_config(OUT_IN)
    messages: dict[str, dict] = {}
    for name, data in (("small", SMALL), ("large", LARGE)):
        path = tmp_path / f"{name}.bin"
        path.write_bytes(data)
        sent = cli(config, "send", str(path), "--route", "out")
        assert sent.returncode == 0, sent.stderr
        messages[f"out-{name}"] = {"id": sent.stdout.decode().strip(), "data": data}
    assert cli(config, "poll").returncode == 0
    with store_of(config) as db:
        for name in ("small", "large"):
            out = messages[f"out-{name}"]
            [(mesh_id,)] = db.execute("SELECT mesh_message_id FROM messages WHERE id = ?", [out["id"]])
            [(in_id,)] = db.execute("SELECT id FROM messages WHERE direction = 'in' AND mesh_message_id = ?", [mesh_id])
            out["mesh_id"] = mesh_id
            messages[f"in-{name}"] = {"id": in_id, "data": out["data"], "mesh_id": mesh_id}
    return config, messages


def test_every_kind_of_payload_is_exported_as_stored(tmp_path: Path, exchanged) -> None:
    config, messages = exchanged
    payloads = config.parent / "var" / "payloads"
    files = [p for p in payloads.rglob("*") if p.is_file() and p.parent.name != "tmp"]
    assert len(files) == 1 and files[0].read_bytes() == LARGE  # the large one is a file, the small one inline
    for name, message in messages.items():
        target = tmp_path / f"exported-{name}"
        done = cli(config, "export", message["id"], "-o", str(target))
        assert done.returncode == 0, done.stderr
        assert target.read_bytes() == message["data"], name
        assert done.stdout.decode() == f"{message['id']}: {len(message['data'])} bytes written to {target}\n"
        assert target.stat().st_mode & 0o777 == 0o600
        piped = cli(config, "export", message["id"])  # stdout is a pipe here
        assert piped.returncode == 0 and piped.stdout == message["data"] and piped.stderr == b""
    # by MESH message id: an inbound one (the outbound one shares it; the meshbridge id is unambiguous)
    by_mesh = cli(config, "export", messages["in-large"]["mesh_id"])
    assert by_mesh.returncode == 0 and by_mesh.stdout == LARGE
    assert sorted(os.listdir(tmp_path)) == sorted(  # no temp file left beside the outputs
        ["delivered", "large.bin", "small.bin", "meshbridge.toml", "var", *(f"exported-{n}" for n in messages)]
    )


def test_an_outbound_itk_message_is_exported_as_the_wrapped_bundle(tmp_path: Path, meshbridge_config) -> None:
    config = meshbridge_config(ITK_OUT)
    payload = tmp_path / "patient.xml"
    payload.write_bytes(PATIENT)
    sent = cli(config, "send", str(payload), "--route", "itk-out")
    assert sent.returncode == 0, sent.stderr
    exported = cli(config, "export", sent.stdout.decode().strip())
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout != PATIENT
    header = itk.parse(exported.stdout)  # the ITK3 Bundle MESH carried
    assert header.event_code == "ITK006D" and b'<id value="p1"/>' in exported.stdout
    helped = cli(config, "export", "--help")
    assert b"ITK3 Bundle" in helped.stdout


def test_an_existing_file_is_replaced_only_with_force(tmp_path: Path, exchanged) -> None:
    config, messages = exchanged
    target = tmp_path / "kept.bin"
    target.write_bytes(b"the operator's own file")
    done = cli(config, "export", messages["in-small"]["id"], "-o", str(target))
    assert done.returncode == 2 and done.stderr.decode() == f"meshbridge: {target} exists: give --force to replace it\n"
    assert target.read_bytes() == b"the operator's own file"
    done = cli(config, "export", messages["in-small"]["id"], "-o", str(target), "--force")
    assert done.returncode == 0 and target.read_bytes() == SMALL


def test_a_terminal_is_refused_as_stdout(exchanged) -> None:
    config, messages = exchanged
    main, terminal = pty.openpty()
    try:
        done = cli(config, "export", messages["in-small"]["id"], stdout=terminal, stderr=subprocess.PIPE)
    finally:
        os.close(terminal)
        os.close(main)
    assert done.returncode == 2
    assert done.stderr.decode().startswith("meshbridge: a payload is bytes, not for a terminal: give -o FILE")


def gone(tmp_path: Path, target: Path) -> None:
    assert not target.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(f".{target.name}.")]  # no temp file either


@pytest.mark.parametrize("damage", ["file changed", "file missing", "inline row changed", "removed by retention"])
def test_a_damaged_or_missing_payload_is_one_line_and_leaves_no_file(tmp_path: Path, exchanged, damage: str) -> None:
    config, messages = exchanged
    message = messages["in-small" if "inline" in damage or "retention" in damage else "in-large"]
    with store_of(config) as db:
        [(sha,)] = db.execute("SELECT payload_sha256 FROM messages WHERE id = ?", [message["id"]])
        file = config.parent / "var" / "payloads" / sha[:2] / sha
        if damage == "file changed":
            file.write_bytes(b"y" * len(LARGE))  # the same size: only the sha256 tells
            expected = f"payload file {file} is corrupt: sha256 is "
        elif damage == "file missing":
            file.unlink()
            expected = f"payload {sha} is missing (no row, no file {file})"
        elif damage == "inline row changed":
            db.execute("UPDATE payloads SET data = ? WHERE sha256 = ?", [b"z" * len(SMALL), sha])
            expected = f"payload {sha} is corrupt: sha256 is "
        else:
            db.execute("UPDATE messages SET payload_sha256 = NULL WHERE id = ?", [message["id"]])
            expected = f"{message['id']}: its payload was removed by retention"
    target = tmp_path / "out.bin"
    done = cli(config, "export", message["id"], "-o", str(target))
    assert done.returncode == 1
    [line] = done.stderr.decode().splitlines()
    assert line.startswith(f"meshbridge: {expected}"), line
    gone(tmp_path, target)
    piped = cli(config, "export", message["id"])
    assert piped.returncode == 1 and piped.stdout == b""  # checked before the first byte is written
    assert piped.stderr.decode().splitlines() == [line]


def test_an_unknown_id_is_one_line(tmp_path: Path, exchanged) -> None:
    config, _ = exchanged
    target = tmp_path / "out.bin"
    done = cli(config, "export", "no-such-id", "-o", str(target))
    assert done.returncode == 1 and done.stderr.decode() == "meshbridge: no message with id 'no-such-id'\n"
    gone(tmp_path, target)
