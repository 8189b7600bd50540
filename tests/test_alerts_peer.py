"""Alerts carrying what a hostile peer controls (a summary, a nack's text, a workflow id) to a real
local HTTP receiver and a real SMTP server (aiosmtpd): bounded in size, never a live link or
mention in Teams or Slack, and bounded in number however many a peer causes (docs/alerts.md).
"""

from __future__ import annotations

import json
from typing import Any

from test_alerts import HEADER_SECRET, SMTP_PASSWORD, Mailroom, Receiver, alerts_table, mailroom, receiver

from meshbridge import Bridge, EventKind, load

SUMMARY_MOST, FIELD_MOST = 1000, 500  # meshbridge.alerts' bounds, as docs/alerts.md gives them

__all__ = ["mailroom", "receiver"]  # the fixtures, used by name


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
