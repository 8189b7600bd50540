"""meshbridge.toml: typed loading, secrets, and one-line errors with exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from meshbridge import Bridge, ConfigError, Secret, load
from meshbridge.cli import main

GOOD = """
[store]
path = "var/mb.db"

[mesh]
url = "https://msg.intspineservices.nhs.uk"
shared_key = { env = "MB_TEST_SHARED_KEY" }
chunk_size = "20MB"

[[mailboxes]]
id = "X26ABC1"
password = { file = "secrets/pw" }
poll_interval = "5m"

[[routes]]
name = "discharge-out"
direction = "outbound"
from = "X26ABC1"
to = "X26ABC2"
workflow_id = "TOC_FHIR_IP_DISCH"
payload_type = "fhir"
fhir_version = "STU3"
itk = { inf_ack = true, bus_ack = true, inf_ack_within = "1h", bus_ack_within = "2d" }
source = { folder = "var/out" }

[[routes]]
name = "discharge-in"
direction = "inbound"
mailbox = "X26ABC1"
workflow_id = "TOC_FHIR_IP_DISCH"
destination = { command = ["epr-import", "{path}"] }
"""

SECRET_KEY = "sk-Very-Distinctive-9f3b"
SECRET_PW = "pw-Also-Distinctive-77aa"


@pytest.fixture
def config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MB_TEST_SHARED_KEY", SECRET_KEY)
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "pw").write_text(SECRET_PW + "\n")
    return tmp_path


def write(config_dir: Path, text: str) -> Path:
    path = config_dir / "meshbridge.toml"
    path.write_text(text)
    return path


def test_good_config_loads_typed(config_dir: Path) -> None:
    config = load(write(config_dir, GOOD))
    assert config.store.path == config_dir / "var" / "mb.db"
    assert config.mesh.chunk_size == 20_000_000
    assert config.mesh.shared_key.reveal() == SECRET_KEY
    assert config.mailboxes["X26ABC1"].password.reveal() == SECRET_PW  # file secret, newline stripped
    assert config.mailboxes["X26ABC1"].poll_interval == 300
    out = config.route("discharge-out")
    assert (out.mailbox, out.to, out.workflow_id) == ("X26ABC1", "X26ABC2", "TOC_FHIR_IP_DISCH")
    assert out.itk is not None and out.itk.bus_ack_within == 2 * 86400
    assert out.itk.ack_workflow == "TOC_FHIR_IP_DISCH_ACK"
    assert out.source == {"folder": config_dir / "var" / "out"}
    assert config.inbound_route("X26ABC1", "TOC_FHIR_IP_DISCH").name == "discharge-in"
    assert config.inbound_route("X26ABC1", "OTHER") is None


def test_secrets_do_not_show_in_repr(config_dir: Path) -> None:
    config = load(write(config_dir, GOOD))
    text = repr(config) + str(config.mesh) + repr(config.mailboxes)
    assert SECRET_KEY not in text and SECRET_PW not in text
    assert "Secret('********')" in text
    assert Secret("a") == Secret("a")


BAD_CASES = {
    "unknown key": (
        GOOD.replace('chunk_size = "20MB"', 'chunk_size = "20MB"\nchunk_sise = 1'),
        "mesh.chunk_sise: unknown key",
    ),
    "route names a missing mailbox": (
        GOOD.replace('from = "X26ABC1"', 'from = "X26ABC9"'),
        "routes[0].from: mailbox 'X26ABC9' is not in [[mailboxes]]",
    ),
    "bad duration": (
        GOOD.replace('inf_ack_within = "1h"', 'inf_ack_within = "1 hour"'),
        "routes[0].itk.inf_ack_within: bad duration '1 hour'",
    ),
    "unset secret": (
        GOOD.replace("MB_TEST_SHARED_KEY", "MB_TEST_NOT_SET"),
        "mesh.shared_key: environment variable MB_TEST_NOT_SET is not set",
    ),
    "unreadable secret file": (
        GOOD.replace("secrets/pw", "secrets/missing"),
        "mailboxes[0].password: cannot read secret file",
    ),
    "poll under the MESH guidance": (
        GOOD.replace('poll_interval = "5m"', 'poll_interval = "30s"'),
        "mailboxes[0].poll_interval: 30s is under the MESH guidance",
    ),
    "bad mailbox id": (GOOD.replace('id = "X26ABC1"', 'id = "x26 abc1"'), "mailboxes[0].id: 'x26 abc1' is not"),
    "bad size": (GOOD.replace('"20MB"', '"20 parsecs"'), "mesh.chunk_size: bad size"),
    "chunk over the MESH limit": (GOOD.replace('"20MB"', '"200MB"'), "mesh.chunk_size: 200000000 bytes is over"),
    "bad direction": (GOOD.replace('"outbound"', '"sideways"'), "routes[0].direction: expected 'outbound'"),
    "missing key": (
        GOOD.replace('workflow_id = "TOC_FHIR_IP_DISCH"\npayload_type', "payload_type"),
        "routes[0].workflow_id: required key is missing",
    ),
    "bad send lease": (
        GOOD.replace('chunk_size = "20MB"', 'chunk_size = "20MB"\nsend_lease = "soon"'),
        "mesh.send_lease: bad duration 'soon'",
    ),
    "bad inline size": (
        GOOD.replace('path = "var/mb.db"', 'path = "var/mb.db"\ninline_max = "tiny"'),
        "store.inline_max: bad size 'tiny'",
    ),
    "inline size too big": (
        GOOD.replace('path = "var/mb.db"', 'path = "var/mb.db"\ninline_max = "2MiB"'),
        "store.inline_max: 2097152 bytes is over 1 MiB",
    ),
    "not TOML": ("[store\npath=", "not valid TOML"),
}


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_config_names_file_key_and_problem(config_dir: Path, case: str) -> None:
    text, expected = BAD_CASES[case]
    path = write(config_dir, text)
    with pytest.raises(ConfigError) as info:
        load(path)
    assert str(info.value).startswith(f"{path}: ")
    assert expected in str(info.value)
    # the command line: exit 2, one line, no traceback, no secret
    result = CliRunner().invoke(main, ["--config", str(path), "status"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and str(path) in lines[0]
    assert "Traceback" not in result.output
    assert SECRET_KEY not in result.output and SECRET_PW not in result.output


def test_sandbox_allows_fast_polling(config_dir: Path) -> None:
    text = GOOD.replace('poll_interval = "5m"', 'poll_interval = "10s"').replace(
        'chunk_size = "20MB"', 'chunk_size = "20MB"\nsandbox = true'
    )
    assert load(write(config_dir, text)).mailboxes["X26ABC1"].poll_interval == 10


def test_send_lease_defaults_to_15_minutes_and_reaches_the_retry_policy(config_dir: Path) -> None:
    from meshbridge.pipeline import SEND_LEASE, RetryPolicy

    assert load(write(config_dir, GOOD)).mesh.send_lease == SEND_LEASE == RetryPolicy().lease == 900
    text = GOOD.replace('chunk_size = "20MB"', 'chunk_size = "20MB"\nsend_lease = "2m"')
    with Bridge(load(write(config_dir, text))) as bridge:
        assert bridge.config.mesh.send_lease == bridge.retry_policy.lease == 120


def test_inline_max_reaches_the_store(config_dir: Path) -> None:
    assert load(write(config_dir, GOOD)).store.inline_max == 64 * 1024
    for value, expected in (('"1KiB"', 1024), ("0", 0)):
        text = GOOD.replace('path = "var/mb.db"', f'path = "var/mb.db"\ninline_max = {value}')
        with Bridge(load(write(config_dir, text))) as bridge:
            assert bridge.store.payloads.inline_max == expected
            sha, _ = bridge.store.payloads.write([b"x" * 1000])
            assert bridge.store.payloads.path(sha).exists() is (expected == 0)


def test_unreadable_config_file_in_a_real_process(tmp_path: Path) -> None:
    folder = tmp_path / "a-folder.toml"
    folder.mkdir()
    for path, problem in ((folder, "cannot read config file: Is a directory"), (tmp_path / "nope.toml", "not found")):
        done = subprocess.run(
            [sys.executable, "-m", "meshbridge", "--config", str(path), "messages"], capture_output=True, text=True
        )
        assert done.returncode == 2
        assert done.stderr.strip() == f"meshbridge: {path}: {problem}" or problem in done.stderr
        assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_default_path_from_environment(config_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(config_dir, GOOD)
    monkeypatch.setenv("MESHBRIDGE_CONFIG", str(path))
    assert load().file == path.resolve()


def test_shipped_example_config_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESH_SHARED_KEY", "TestKey")
    config = load(Path(__file__).parent.parent / "examples" / "meshbridge.toml")
    assert [r.name for r in config.routes] == ["notes-out", "notes-in"]
