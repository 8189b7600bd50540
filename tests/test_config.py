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

CMD = 'destination = { command = ["epr-import", "{path}"] }'
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
    "a route without a direction": (
        GOOD.replace('direction = "outbound"\n', ""),
        "routes[0].direction: required key is missing",
    ),
    "a plugin's table that is not a table": (
        GOOD.replace("[store]", "[plugins]\ncsv = 3\n\n[store]"),
        "plugins.csv: expected a table, got int",
    ),
    "a MESH timeout of zero": (
        GOOD.replace('chunk_size = "20MB"', 'chunk_size = "20MB"\ntimeout = 0'),
        "mesh.timeout: expected a duration above zero",
    ),
    "an outbound route with an inbound key": (
        GOOD.replace('to = "X26ABC2"', 'to = "X26ABC2"\nmailbox = "X26ABC1"'),
        "routes[0].mailbox: unknown key (allowed: charset, content_type, control_chars, direction,",
    ),
    "an option the destination kind does not take": (
        GOOD.replace(CMD, 'destination = { command = ["epr-import", "{path}"], headers = {} }'),
        "routes[1].destination.headers: unknown option for a command destination (allowed: env, timeout)",
    ),
    "a folder takes no options": (
        GOOD.replace(CMD, 'destination = { folder = "in", timeout = "1m" }'),
        "routes[1].destination.timeout: unknown option for a folder destination (allowed: none)",
    ),
    "a command given a secret's variable": (
        GOOD.replace(CMD, 'destination = { command = ["epr-import"], env = ["MB_TEST_SHARED_KEY"] }'),
        "routes[1].destination.env: MB_TEST_SHARED_KEY holds a secret of this config; not passed on",
    ),
    "bad destination timeout": (
        GOOD.replace(CMD, 'destination = { http = "https://epr.local/hook", timeout = "soon" }'),
        "routes[1].destination.timeout: bad duration 'soon'",
    ),
    "a header value that is not printable ASCII": (
        GOOD.replace(CMD, 'destination = { http = "https://e/", headers = { X-Key = " Hidden-8d2f\\r\\nX: y" } }'),
        "routes[1].destination.headers.X-Key: the value must be printable ASCII, without spaces at either end",
    ),
    "not an http URL": (
        GOOD.replace(CMD, 'destination = { http = "ftp://epr.local/?token=Hidden-8d2f" }'),
        "routes[1].destination.http: expected an http:// or https:// URL with a host",
    ),
    "an http URL with a port that is not one": (  # accepted, then its query quoted in every delivery error
        GOOD.replace(CMD, 'destination = { http = "https://epr.local:99999/hook?token=Hidden-8d2f" }'),
        "routes[1].destination.http: not a valid URL (its host or port cannot be read)",
    ),
    "an http URL with an unclosed IPv6 bracket": (  # a traceback
        GOOD.replace(CMD, 'destination = { http = "https://[fe80::1/hook?token=Hidden-8d2f" }'),
        "routes[1].destination.http: not a valid URL (its host or port cannot be read)",
    ),
    "an http URL with a space in its host": (
        GOOD.replace(CMD, 'destination = { http = "https://epr local/hook?token=Hidden-8d2f" }'),
        "routes[1].destination.http: not a valid URL (spaces or control characters: percent-encode them)",
    ),
    "basic auth and an Authorization header": (
        GOOD.replace(
            CMD,
            'destination = { http = "https://epr.local/", headers = { Authorization = "Bearer x" }, '
            'auth = { username = "mb", password = "pw" } }',
        ),
        "routes[1].destination.auth: give auth or an Authorization header, not both",
    ),
}


# secrets are resolved when first needed: the config loads, reading commands work, and the
# commands that contact MESH or a destination refuse before any work (see test_lazy_secrets.py)
UNRESOLVABLE = {
    "unset secret": (
        GOOD.replace("MB_TEST_SHARED_KEY", "MB_TEST_NOT_SET"),
        "mesh.shared_key: environment variable MB_TEST_NOT_SET is not set",
    ),
    "unreadable secret file": (
        GOOD.replace("secrets/pw", "secrets/missing"),
        "mailboxes[0].password: cannot read secret file",
    ),
    "unset header secret": (
        GOOD.replace(CMD, 'destination = { http = "https://e/", headers = { Authorization = { env = "MB_NO" } } }'),
        "routes[1].destination.headers.Authorization: environment variable MB_NO is not set",
    ),
}


@pytest.mark.parametrize("case", UNRESOLVABLE)
def test_a_secret_that_cannot_be_resolved_is_named_when_needed(config_dir: Path, case: str) -> None:
    text, expected = UNRESOLVABLE[case]
    path = write(config_dir, text)
    config = load(path)
    with pytest.raises(ConfigError) as info:
        config.require()
    assert str(info.value).startswith(f"{path}: ") and expected in str(info.value)
    assert CliRunner().invoke(main, ["--config", str(path), "status"]).exit_code == 0
    result = CliRunner().invoke(main, ["--config", str(path), "poll"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and str(path) in lines[0]


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
    assert SECRET_KEY not in result.output and SECRET_PW not in result.output and "Hidden-8d2f" not in result.output


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


def test_url_with_credentials_is_refused_without_printing_them(config_dir: Path) -> None:
    for url in ("https://epr-user:Hunter2-Distinctive@epr.local/hook", "https://Hunter2-Distinctive@epr.local/"):
        path = write(config_dir, GOOD.replace(CMD, f'destination = {{ http = "{url}" }}'))
        with pytest.raises(ConfigError, match=r"routes\[1\]\.destination\.http: the URL carries credentials") as info:
            load(path)
        assert "Hunter2" not in str(info.value)
        result = CliRunner().invoke(main, ["--config", str(path), "status"])
        assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
        assert "the URL carries credentials" in result.output and "Hunter2" not in result.output


HTTP_WITH_SECRETS = GOOD.replace(
    CMD,
    'destination = { http = "https://epr.local/hook", timeout = "30s", '
    'headers = { X-Api-Key = { env = "MB_TEST_API_KEY" }, Accept = "text/plain" } }\n'
    "[[routes]]\n"
    'name = "results-in"\ndirection = "inbound"\nmailbox = "X26ABC1"\nworkflow_id = "RESULTS"\n'
    'destination = { http = "https://lab.local/in", auth = { username = "mb", password = { file = "secrets/lab" } } }',
)
API_KEY, LAB_PW = "key-Distinctive-0c4e", "lab-Distinctive-a3f1"


def test_destination_options_load_typed(config_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MB_TEST_API_KEY", API_KEY)
    (config_dir / "secrets" / "lab").write_text(LAB_PW)
    config = load(write(config_dir, HTTP_WITH_SECRETS))
    epr, lab = config.route("discharge-in"), config.route("results-in")
    assert epr.destination == {"http": "https://epr.local/hook"} and lab.destination == {"http": "https://lab.local/in"}
    assert epr.destination_options.timeout == 30
    assert lab.destination_options.timeout is None  # not set: [service] delivery_timeout
    assert {k: v.reveal() for k, v in epr.destination_options.headers.items()} == {
        "X-Api-Key": API_KEY,
        "Accept": "text/plain",
    }
    assert lab.destination_options.auth is not None and lab.destination_options.auth[0] == "mb"
    assert lab.destination_options.auth[1].reveal() == LAB_PW
    assert API_KEY not in repr(config) and LAB_PW not in repr(config)
    command = load(write(config_dir, GOOD.replace(CMD, CMD[:-2] + ', env = ["EPR_HOME"] }')))
    assert command.route("discharge-in").destination_options.env == ("EPR_HOME",)
    assert command.route("discharge-in").destination_options.timeout is None
    plugin = load(write(config_dir, GOOD.replace(CMD, 'destination = { s3 = { bucket = "b" }, timeout = "10m" }')))
    assert plugin.route("discharge-in").destination == {"s3": {"bucket": "b"}}
    assert plugin.route("discharge-in").destination_options.timeout == 600
    with pytest.raises(ConfigError, match=r"\.env: unknown option for a s3 destination \(allowed: timeout\)"):
        load(write(config_dir, GOOD.replace(CMD, 'destination = { s3 = "b", env = [] }')))


def test_every_secret_in_the_config_is_redacted_from_logs(config_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import logging

    from meshbridge.logs import JsonFormatter, Redactor

    monkeypatch.setenv("MB_TEST_API_KEY", API_KEY)
    (config_dir / "secrets" / "lab").write_text(LAB_PW)
    path = write(config_dir, HTTP_WITH_SECRETS)
    config = load(path)
    assert {s.reveal() for s in config.secrets()} == {SECRET_KEY, SECRET_PW, API_KEY, "text/plain", LAB_PW}
    result = CliRunner().invoke(main, ["--config", str(path), "status"])  # the command line sets redaction up
    assert result.exit_code == 0, result.output
    [redactor] = [f for h in logging.getLogger().handlers for f in h.filters if isinstance(f, Redactor)]
    assert set(redactor.secrets) == {"text/plain"}  # status resolves no secret: only the literal one is known
    result = CliRunner().invoke(main, ["--config", str(path), "retry", "no-such-id"])  # resolves every secret
    assert result.exit_code == 1 and "no message with id" in result.output
    [redactor] = [f for h in logging.getLogger().handlers for f in h.filters if isinstance(f, Redactor)]
    assert {SECRET_KEY, SECRET_PW, API_KEY, LAB_PW} <= set(redactor.secrets)
    try:
        raise RuntimeError(f"refused {LAB_PW}")
    except RuntimeError:
        import sys

        record = logging.LogRecord("t", logging.ERROR, __file__, 1, "sent %s", (API_KEY,), sys.exc_info())
    redactor.filter(record)
    for formatter in (logging.Formatter(), JsonFormatter()):
        text = formatter.format(record)
        assert "sent ********" in text and "refused ********" in text
        assert all(secret not in text for secret in (SECRET_KEY, SECRET_PW, API_KEY, LAB_PW))
