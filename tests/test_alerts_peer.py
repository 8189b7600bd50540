"""Alerts carrying what a hostile peer controls (a summary, a nack's text, a workflow id) to a real
local HTTP receiver and a real SMTP server (aiosmtpd): bounded in size, never a live link or
mention in Teams or Slack, and bounded in number however many a peer causes (docs/alerts.md).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from alert_fixtures import Receiver
from conftest import OUT_IN
from test_alerts import HEADER_SECRET, SMTP_PASSWORD, Mailroom, alerts_table, mailroom

from meshbridge import Bridge, EventKind, load
from meshbridge.models import TimelineKind

SUMMARY_MOST, FIELD_MOST = 1000, 500  # meshbridge.alerts' bounds, as docs/alerts.md gives them

__all__ = ["mailroom"]  # the fixture, used by name (receiver: conftest)


def hooked(monkeypatch: Any, receiver: Receiver) -> None:
    monkeypatch.setenv("TEST_ALERT_HOOK", receiver.url)
    monkeypatch.setenv("TEST_ALERT_HEADER", HEADER_SECRET)
    monkeypatch.setenv("TEST_ALERT_SMTP", SMTP_PASSWORD)


def test_a_huge_peer_summary_and_detail_are_cut_to_a_bound_and_marked(
    meshbridge_config: Any, receiver: Receiver, mailroom: Mailroom, monkeypatch: Any
) -> None:
    hooked(monkeypatch, receiver)
    path = meshbridge_config(alerts_table(receiver, mailroom))
    text = "Business Error " * 20_000  # 300 kB of a peer's nack text
    with Bridge(load(path)) as bridge:
        bridge.dispatch_after = False
        bridge.notify(
            EventKind.NACK,
            None,
            f"X got 30002 {text}",
            text=text,
            findings=[{"line": i, "why": "bad"} for i in range(5000)],
            deep={"a": {"b": {"c": {"d": {"e": text}}}}},
        )
        done = bridge.dispatch()
    assert len(done.sent) == 3  # plugins, webhook, email
    [(_, got, _)] = receiver.got
    assert len(json.dumps(got)) < 40_000  # Teams' limit is 28 KB of card; this is well under
    assert got["summary"].endswith("more characters cut; all of it: meshbridge show]")
    assert len(got["summary"]) < SUMMARY_MOST + 100 and len(got["text"]) < SUMMARY_MOST + 200
    assert len(got["detail"]["text"]) < FIELD_MOST + 100 and "cut" in got["detail"]["text"]
    assert len(got["detail"]["findings"]) == 21 and got["detail"]["findings"][-1].startswith("… 4980 more items")
    assert len(json.dumps(got["detail"]["deep"])) < FIELD_MOST + 200
    [mail] = mailroom.mails
    assert len(mail.as_bytes()) < 60_000


HOSTILE = (
    "<https://evil.example/login|click here> <!channel> <!here> <@U123> [click](https://evil.example) "
    "![x](http://evil.example/x.png) *urgent* _now_ ~gone~ `code` www.evil.example evil.example mailto:a@evil.example"
)


def test_peer_text_is_no_live_link_or_mention_in_teams_or_slack(
    meshbridge_config: Any, receiver: Receiver, mailroom: Mailroom, monkeypatch: Any
) -> None:
    hooked(monkeypatch, receiver)
    path = meshbridge_config(alerts_table(receiver, mailroom))
    with Bridge(load(path)) as bridge:
        bridge.dispatch_after = False
        bridge.notify(EventKind.NACK, None, f"3f0c got 30002 Business Error: {HOSTILE}", text=HOSTILE)
        bridge.dispatch()
    [(_, got, _)] = receiver.got
    text = got["text"]
    assert text.startswith("meshbridge nack: 3f0c got 30002 Business Error: ")  # meshbridge's own words
    assert "<" not in text and ">" not in text  # Slack: no <url|label>, <!channel>, <@user>; Teams: no <at>
    assert "://" not in text and "mailto:" not in text  # no URL a client links
    assert "evil.example" not in text and "evil[.]example" in text  # no bare domain either
    peer = text.replace("[.]", "").replace("[:]", "")  # meshbridge's own brackets: never followed by (
    for mark in "[]*_~`":  # markdown (Teams), mrkdwn (Slack): escaped (at a word's edge)
        assert all(peer[i - 1] == "\\" for i, c in enumerate(peer) if c == mark), mark
    assert got["summary"].endswith(HOSTILE) and got["detail"]["text"] == HOSTILE  # the fields are data


def test_a_flood_of_alerts_is_bounded_per_notifier_and_the_rest_sent_as_one_digest(
    meshbridge_config: Any, receiver: Receiver, mailroom: Mailroom, monkeypatch: Any, tmp_path: Path
) -> None:
    hooked(monkeypatch, receiver)
    path = meshbridge_config(OUT_IN + alerts_table(receiver, mailroom))
    payload = tmp_path / "p.txt"
    payload.write_bytes(b"x")
    with Bridge(load(path)) as bridge:
        bridge.dispatch_after = False
        messages = [bridge.send(payload, route="out").id for _ in range(3)]
        for i in range(600):  # more than a pass routes at once (500): a hostile peer's orphans and unrouted messages
            bridge.notify(EventKind.ORPHAN if i % 3 else EventKind.UNROUTED, None, f"orphan {i} from X26ABC9")
        for message in messages:  # the last ones, about messages: their timelines say where they went
            bridge.notify(EventKind.NACK, message, f"{message} got 30002")
        done = bridge.dispatch()
        assert len(receiver.got) == 11 and len(mailroom.mails) == 11  # burst: 10 each, then one digest each
        assert len(done.sent) == 3 * 603 and not done.retried  # every alert delivered: alone or in a digest
        [(key, got, _)] = receiver.got[-1:]
        assert got["summary"].startswith("and 593 more alerts for teams: 394 orphan, 196 unrouted, 3 nack")
        assert got["detail"]["kinds"] == {"orphan": 394, "unrouted": 196, "nack": 3}
        assert got["detail"]["messages"] == messages
        assert mailroom.mails[-1]["Subject"].startswith("[meshbridge] orphan: and 593 more alerts for oncall")
        for message in messages:
            sent = [e.detail for e in bridge.store.events(message) if e.kind == TimelineKind.ALERT_SENT]
            assert {e["notifier"] for e in sent} == {"webhook:teams", "email:oncall"}
            assert {e["digest"] for e in sent if e["notifier"] == "webhook:teams"} == {key}
        assert bridge.store.outbox.pending() == 0
        assert bridge.dispatch().sent == [] and len(receiver.got) == 11  # nothing sent twice


@pytest.fixture
def throttling() -> Iterator[tuple[str, list[str]]]:
    """A webhook receiver answering ``429 Too Many Requests`` with ``Retry-After: 3600``."""
    got: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            got.append(self.headers["Idempotency-Key"])
            self.send_response(429)
            self.send_header("Retry-After", "3600")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", got
    server.shutdown()
    server.server_close()


def test_a_429_retry_after_is_honoured_as_the_backoff(meshbridge_config: Any, throttling: Any, caplog: Any) -> None:
    url, got = throttling
    path = meshbridge_config(f'[alerts]\nbackoff = "0s"\n\n[[alerts.webhooks]]\nname = "slack"\nurl = "{url}"\n')
    with Bridge(load(path)) as bridge:
        bridge.dispatch_after = False
        bridge.notify(EventKind.ORPHAN, None, "an orphan")
        first = bridge.dispatch()
        second = bridge.dispatch()  # backoff 0 s would try at once; Slack asked for an hour
        assert len(first.retried) == 1 and second.retried == [] and second.sent == []
        assert len(got) == 1 and bridge.store.outbox.pending() == 1
    assert "answered HTTP 429, retry after 3600 s" in caplog.text


def test_a_digest_that_fails_leaves_each_alert_in_it_due_again(
    meshbridge_config: Any, receiver: Receiver, mailroom: Mailroom, monkeypatch: Any
) -> None:
    hooked(monkeypatch, receiver)
    receiver.fail = [200] * 10 + [503]  # the digest is refused
    path = meshbridge_config(alerts_table(receiver, mailroom, 'attempts = 2\nbackoff_max = "0s"'))
    with Bridge(load(path)) as bridge:
        bridge.dispatch_after = False
        for i in range(40):
            bridge.notify(EventKind.ORPHAN, None, f"orphan {i}")
        first = bridge.dispatch()
        assert len([t for _, t in first.retried if t == "webhook:teams"]) == 30  # each of the digest's
        second = bridge.dispatch()  # the 30 again: 10 alone, 20 in a digest, taken
        assert not second.retried and not second.given_up and bridge.store.outbox.pending() == 0
    keys = [key for key, got, _ in receiver.got if "digest" not in got["detail"]]
    digests = [got["detail"]["digest"] for _, got, _ in receiver.got if "digest" in got["detail"]]
    assert len(set(keys)) == 20 and digests == [30, 20]  # 40 alerts: 20 alone, 20 only in the digest that went
