"""Secrets are resolved when something needs them: the reading commands (status, messages, show,
export, validate --route) work with MESH's secrets unset or unreadable; run, poll and send resolve
every one they need before any work and exit 2 naming the missing one, never its value.
Real processes, a real sandbox and store; the config's secrets point to env vars and files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import OUT_IN

from meshbridge.sandbox import PASSWORD

KEY_ENV = "MB_LAZY_TEST_SHARED_KEY"


def cli(config: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k != KEY_ENV}
    return subprocess.run(
        [sys.executable, "-m", "meshbridge", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**base, **(env or {})},
    )


@pytest.fixture
def stored(tmp_path: Path, meshbridge_config, mesh_sandbox) -> tuple[Path, str, str]:
    """A message sent and collected with literal secrets; then the config's secrets become
    references: the shared key an env var, each password a file under secrets/ (not written)."""
    config = meshbridge_config(OUT_IN)
    payload = tmp_path / "note.txt"
    payload.write_text("kept while the secrets are away")
    sent = cli(config, "send", str(payload), "--route", "out")
    assert sent.returncode == 0, sent.stderr
    assert cli(config, "poll").returncode == 0
    text = config.read_text()
    text = text.replace(f'shared_key = "{mesh_sandbox.shared_key}"', f'shared_key = {{ env = "{KEY_ENV}" }}')
    for mailbox in ("X26ABC1", "X26ABC2", "X26ABC3"):
        text = text.replace(
            f'id = "{mailbox}"\npassword = "{PASSWORD}"',
            f'id = "{mailbox}"\npassword = {{ file = "secrets/{mailbox}" }}',
        )
    assert f'"{PASSWORD}"' not in text and mesh_sandbox.shared_key not in text
    config.write_text(text)
    (tmp_path / "secrets").mkdir()
    return config, sent.stdout.strip(), mesh_sandbox.shared_key


def one_line(done: subprocess.CompletedProcess[str], expected: str, *secrets: str) -> None:
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stderr.splitlines() == [done.stderr.strip()] and expected in done.stderr, done.stderr
    assert not any(secret in done.stdout + done.stderr for secret in secrets)


def test_reading_commands_need_no_mesh_secret(tmp_path: Path, stored) -> None:
    config, sent_id, _ = stored
    status = cli(config, "status", "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["counts"] == {"in": {"delivered": 1}, "out": {"sent": 1}}
    listed = cli(config, "messages", "--json")
    assert listed.returncode == 0 and len(json.loads(listed.stdout)) == 2
    shown = cli(config, "show", sent_id)
    assert shown.returncode == 0 and sent_id in shown.stdout
    exported = cli(config, "export", sent_id)
    assert exported.returncode == 0 and exported.stdout == "kept while the secrets are away"
    checked = cli(config, "validate", "--route", "in", str(tmp_path / "note.txt"))
    assert checked.returncode == 0 and "valid" in checked.stdout, checked.stderr


def test_mesh_certificate_files_are_read_only_when_mesh_is(tmp_path: Path, stored) -> None:
    config, _, key = stored
    for mailbox in ("X26ABC1", "X26ABC2", "X26ABC3"):
        (tmp_path / "secrets" / mailbox).write_text(PASSWORD)
    config.write_text(
        config.read_text().replace("[mesh]\n", '[mesh]\nclient_cert = "certs/c.pem"\nclient_key = "certs/c.key"\n')
    )
    assert cli(config, "status").returncode == 0
    one_line(
        cli(config, "poll", env={KEY_ENV: key}), f"mesh.client_cert: file {tmp_path / 'certs' / 'c.pem'} does not exist"
    )


def test_run_poll_and_send_resolve_every_secret_first(tmp_path: Path, stored) -> None:
    config, _, key = stored
    payload = tmp_path / "next.txt"
    payload.write_text("must not be stored while a secret is missing")
    unset = f"{config}: mesh.shared_key: environment variable {KEY_ENV} is not set"
    for command in (("poll",), ("run", "--once"), ("send", str(payload), "--route", "out")):
        one_line(cli(config, *command), unset)
    assert len(json.loads(cli(config, "messages", "--json").stdout)) == 2  # nothing stored, nothing done

    no_file = f"mailboxes[0].password: cannot read secret file {tmp_path / 'secrets' / 'X26ABC1'}"
    for command in (("poll",), ("run", "--once"), ("send", str(payload), "--route", "out")):
        one_line(cli(config, *command, env={KEY_ENV: key}), no_file, key)

    # send needs only its own mailbox's password; poll and run need every mailbox's
    (tmp_path / "secrets" / "X26ABC1").write_text(PASSWORD + "\n")
    sent = cli(config, "send", str(payload), "--route", "out", env={KEY_ENV: key})
    assert sent.returncode == 0, sent.stderr
    one_line(cli(config, "poll", env={KEY_ENV: key}), "mailboxes[1].password: cannot read secret file", key)

    for mailbox in ("X26ABC2", "X26ABC3"):
        (tmp_path / "secrets" / mailbox).write_text(PASSWORD)
    polled = cli(config, "poll", env={KEY_ENV: key})  # every secret there: the references were right
    assert polled.returncode == 0 and "delivered: 1" in polled.stdout, polled.stderr
    assert key not in polled.stdout + polled.stderr
