"""`meshbridge ack`: --ok takes only a positive business code and --nack only a negative one, for
every business code of ``itk/codes.py``; anything else exits 2 with one line and sends nothing.

Two real meshbridges on the real mesh-sandbox: X26ABC1 sends ITK messages asking for a business
ack, X26ABC2 answers them with ``meshbridge ack`` in a subprocess.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import ITK_RECEIVER_ROUTE, ITK_SENDER_ROUTE, PATIENT

from meshbridge import Bridge, Message, MessageSummary, hookimpl, itk, load
from meshbridge.plugins import Plugins, make_plugin_manager
from meshbridge.sandbox import PASSWORD, free_port
from meshbridge.testing import run_cli as cli

BUSINESS = [c for _, c in sorted(itk.CODES.items()) if c.level == itk.BUSINESS]
NOT_BUSINESS = ["20013", "10001", "20009", "10006", "99999", "3000", "abc", "", "30002x"]


def flags(code: str, *, nack: bool) -> list[str]:
    return ["--nack", code] if nack else ["--ok", "--code", code]


@pytest.fixture
def pair(tmp_path: Path, meshbridge_config):
    opened: list[Bridge] = []

    def make() -> tuple[Bridge, Bridge]:
        a = Bridge(load(meshbridge_config(ITK_SENDER_ROUTE, name="a.toml", store="a/mb.db", mailboxes=("X26ABC1",))))
        b = Bridge(load(meshbridge_config(ITK_RECEIVER_ROUTE, name="b.toml", store="b/mb.db", mailboxes=("X26ABC2",))))
        opened.extend((a, b))
        return a, b

    yield make
    for bridge in opened:
        bridge.close()


def exchange(a: Bridge, b: Bridge, tmp_path: Path, count: int) -> list[tuple[Message, MessageSummary]]:
    """``count`` ITK messages from a to b, received and answered 20013: [(sent, received)]."""
    payload = tmp_path / "patient.xml"
    payload.write_bytes(PATIENT)
    sent = [a.send(payload, route="toc-out") for _ in range(count)]
    b.poll()
    received = {m.itk_message_id.lower(): m for m in b.messages(direction="in") if m.route == "toc-in"}
    pairs = [(s, received[(s.itk_message_id or "").lower()]) for s in sent]
    assert all(r.state == "delivered" and r.inf_ack_code == "20013" for _, r in pairs)
    return pairs


def untouched(b: Bridge, received: MessageSummary) -> None:
    """The message is as it was received and answered 20013: no business answer, no new event."""
    now = b.show(received.id)
    assert (now.state, now.bus_ack_code, now.updated_at) == ("delivered", None, received.updated_at)
    assert not [e for e in now.events if e.at > received.updated_at]


def test_every_business_code_is_accepted_only_with_its_own_flag(tmp_path: Path, pair, mesh_peer) -> None:
    a, b = pair()
    pairs = exchange(a, b, tmp_path, len(BUSINESS))
    responses_before = len(b.messages(direction="out"))
    for (_, received), rc in zip(pairs, BUSINESS, strict=True):
        wrong = cli(b.config.file, "ack", received.id, *flags(rc.code, nack=rc.positive is not False))
        kind = "positive" if rc.positive else "negative"
        assert wrong.returncode == 2, (rc.code, wrong.stdout, wrong.stderr)
        assert wrong.stdout == "" and wrong.stderr.count("\n") == 1 and "Traceback" not in wrong.stderr
        assert f"{rc.code} is a {kind} code" in wrong.stderr, wrong.stderr
        untouched(b, received)
        assert len(b.messages(direction="out")) == responses_before  # nothing stored, so nothing sent

        right = cli(b.config.file, "ack", received.id, *flags(rc.code, nack=rc.positive is False))
        state = "bus-acked" if rc.positive else "bus-nacked"
        assert right.returncode == 0, (rc.code, right.stderr)
        assert right.stdout.strip() == f"{received.id}: {state} ({rc.code}) sent to X26ABC1"
        responses_before += 1
    a.poll()
    # each original got exactly the answer of its own flag: a contradicting one sent first would
    # have been applied, and the right one kept as an orphan
    for (sent, _), rc in zip(pairs, BUSINESS, strict=True):
        message = a.store.get(sent.id)
        assert message.bus_ack_code == rc.code
        assert message.state == ("complete" if rc.positive else "bus-nacked"), (rc.code, message.state)
    assert list(a.messages(state="orphan")) == []


@pytest.mark.parametrize("nack", [False, True], ids=["ok", "nack"])
def test_a_code_that_is_not_a_business_code_exits_2_and_sends_nothing(
    tmp_path: Path, pair, mesh_peer, nack: bool
) -> None:
    a, b = pair()
    [(_, received)] = exchange(a, b, tmp_path, 1)
    in_sender_inbox = mesh_peer("X26ABC1").list_messages()
    for code in NOT_BUSINESS:
        done = cli(b.config.file, "ack", received.id, *flags(code, nack=nack))
        assert done.returncode == 2, (code, done.stdout, done.stderr)
        assert done.stdout == "" and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
        assert f"{code!r} is not an ITK3 business response code" in done.stderr, done.stderr
        untouched(b, received)
    contradictions = (
        ["--ok", "--nack", "30002"],
        ["--nack", "30002", "--code", "30002"],
        ["--nack", "30002", "--code", "30001"],
        ["--ok", "--nack", "30001"],
    )
    for args in contradictions:
        done = cli(b.config.file, "ack", received.id, *args)
        assert done.returncode == 2 and done.stderr.count("\n") == 1, (args, done.stderr)
        untouched(b, received)
    assert len(b.messages(direction="out")) == 1  # the 20013 poll sent, no business response
    assert mesh_peer("X26ABC1").list_messages() == in_sender_inbox  # and nothing more reached MESH


def test_the_api_refuses_a_code_of_the_other_kind(tmp_path: Path, pair) -> None:
    from meshbridge import InvalidRequest  # (here, so the command-line tests run where it is missing)

    a, b = pair()
    [(_, received)] = exchange(a, b, tmp_path, 1)
    for rc in BUSINESS:
        with pytest.raises(InvalidRequest, match=f"^{rc.code} is a"):
            b.ack(received.id, code=rc.code, nack=rc.positive is not False)
    for code in NOT_BUSINESS:
        with pytest.raises(InvalidRequest, match="is not an ITK3 business response code"):
            b.ack(received.id, code=code)
    with pytest.raises(InvalidRequest, match="a nack needs its code"):
        b.ack(received.id, nack=True)
    untouched(b, received)
    assert len(b.messages(direction="out")) == 1  # the 20013 only
    acked = b.ack(received.id)  # 30001 by default
    assert (acked.state, acked.bus_ack_code) == ("bus-acked", "30001")


class Heard:
    """A plugin that keeps every ``meshbridge_on_event`` it is told of."""

    def __init__(self) -> None:
        self.kinds: list[str] = []

    @hookimpl
    def meshbridge_on_event(self, event) -> None:
        self.kinds.append(event.kind)


def refusing(config: Path) -> Path:
    """The same config with a mailbox password MESH refuses."""
    refused = config.with_name(f"refused-{config.name}")
    refused.write_text(config.read_text().replace(f'password = "{PASSWORD}"', 'password = "Wr0ng-Pa55"'))
    return refused


def test_a_login_refused_to_a_business_ack_raises_mesh_auth_and_the_fixed_config_sends_it(tmp_path: Path, pair) -> None:
    """The first refusal of a mailbox met by the ack's response raises ``mesh-auth``, as one met by
    any other send does (it was counted but never raised: the later polls only counted again)."""
    a, b = pair()
    [(sent, received)] = exchange(a, b, tmp_path, 1)
    pm = make_plugin_manager(load_entrypoints=False)
    heard = Heard()
    pm.register(heard, name="heard")
    with Bridge(load(refusing(b.config.file)), Plugins(pm)) as refused:
        acked = refused.ack(received.id, code="30001")
        assert acked.state == "bus-acked"  # recorded: the response waits
        assert heard.kinds == ["mesh-auth"]
        assert refused.poll().login_refused == ["X26ABC2"]
        assert heard.kinds == ["mesh-auth"]  # once
    b.poll()  # the right password: the waiting response goes
    a.poll()
    assert a.store.get(sent.id).bus_ack_code == "30001"


@pytest.mark.parametrize(("trouble", "exit_code"), [("login refused", 4), ("unreachable", 3)])
def test_an_ack_whose_response_is_not_sent_says_so_and_exits_as_send_does(
    tmp_path: Path, pair, trouble: str, exit_code: int
) -> None:
    """The ack is recorded (it cannot be given again) and its response waits for `poll`: the line
    says so and the exit code is send's for the same trouble, never "sent to" and 0."""
    a, b = pair()
    [(sent, received)] = exchange(a, b, tmp_path, 1)
    if trouble == "unreachable":
        config = b.config.file.with_name("unreachable.toml")
        url = f'url = "{b.config.mesh.url}"'
        down = f'url = "http://127.0.0.1:{free_port()}"\nretry_backoff = "0s"'  # (due again at once)
        config.write_text(b.config.file.read_text().replace(url, down))
    else:
        config = refusing(b.config.file)
    done = cli(config, "ack", received.id, "--ok", "--text", "known here")
    assert done.returncode == exit_code, (done.stdout, done.stderr)
    assert "sent to" not in done.stdout + done.stderr and "Traceback" not in done.stderr
    [response] = [m for m in b.messages(direction="out") if m.answers == received.id and "30001" in m.filename]
    said = f"{received.id}: bus-acked (30001) recorded; its response {response.id} to X26ABC1 is not sent yet"
    assert said in done.stderr and "`meshbridge poll` sends it" in done.stderr
    assert response.state == "accepted" and b.store.get(received.id).state == "bus-acked"
    assert done.stderr.splitlines()[-1].startswith(f"meshbridge: {said}")  # the outcome, after the log lines

    b.poll()  # the working config sends it
    a.poll()
    assert a.store.get(sent.id).bus_ack_code == "30001"
