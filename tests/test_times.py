"""Times are unambiguous: ``show`` and ``messages`` print them with their zone (local, or ``--utc``),
and JSON carries ISO 8601 with an offset. The zone comes from ``TZ`` in the process's environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from conftest import PATIENT, WORKFLOW

from meshbridge import Bridge, load

ROUTES = f"""
[[routes]]
name = "toc-out"
direction = "outbound"
from = "X26ABC1"
to = "X26ABC2"
workflow_id = "{WORKFLOW}"
payload_type = "fhir"
itk = {{ inf_ack = true, bus_ack = true, event = "ITK006D", inf_ack_within = "0s", bus_ack_within = "2d" }}

[[routes]]
name = "toc-in"
direction = "inbound"
mailbox = "X26ABC2"
workflow_id = "{WORKFLOW}"
payload_type = "fhir"
itk = {{}}
destination = {{ folder = "in" }}
"""
NEW_YORK = "America/New_York"


@pytest.fixture
def exchanged(tmp_path: Path, meshbridge_config) -> dict:
    """An ITK message sent, answered 20013 (late) and polled back, on one store: the sent message's row."""
    config = meshbridge_config(ROUTES)
    bridge = Bridge(load(config))
    try:
        path = tmp_path / "payload.xml"
        path.write_bytes(PATIENT)
        sent = bridge.send(path, route="toc-out")
        bridge.poll()  # receive, answer 20013, deliver
        bridge.poll()  # correlate the 20013; sweep (the bus-ack is open)
        return {"config": config, "id": sent.id, "store": bridge.config.store.path}
    finally:
        bridge.close()


def cli(config: Path, *args: str, tz: str = NEW_YORK) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "meshbridge", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TZ": tz},
    )
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    return done.stdout


def in_zone(stored: str, zone: str, timespec: str = "seconds") -> str:
    return datetime.fromisoformat(stored).astimezone(ZoneInfo(zone)).isoformat(sep=" ", timespec=timespec)


def with_offset(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    assert moment.tzinfo is not None, f"{value!r} has no offset"
    return moment


def test_messages_prints_times_in_the_local_zone_or_utc(exchanged: dict) -> None:
    config, message_id = exchanged["config"], exchanged["id"]
    [row] = [m for m in json.loads(cli(config, "messages", "--json")) if m["id"] == message_id]
    local = cli(config, "messages")
    utc = cli(config, "messages", "--utc")
    mine = next(line for line in local.splitlines() if message_id in line)
    assert in_zone(row["created_at"], NEW_YORK) in mine
    assert mine.rstrip(" │").endswith(("-05:00", "-04:00"))  # New York's offset, winter or summer
    mine = next(line for line in utc.splitlines() if message_id in line)
    assert in_zone(row["created_at"], "UTC") in mine and mine.rstrip(" │").endswith("+00:00")
    # another zone, the same moment
    tokyo = next(line for line in cli(config, "messages", tz="Asia/Tokyo").splitlines() if message_id in line)
    assert in_zone(row["created_at"], "Asia/Tokyo") in tokyo and "+09:00" in tokyo


def test_show_prints_the_timeline_and_deadlines_with_their_zone(exchanged: dict) -> None:
    config, message_id = exchanged["config"], exchanged["id"]
    details = json.loads(cli(config, "show", message_id, "--json"))
    local = cli(config, "show", message_id)
    utc = cli(config, "show", message_id, "--utc")
    for event in details["events"]:
        assert in_zone(event["at"], NEW_YORK, "milliseconds") in local
        assert in_zone(event["at"], "UTC", "milliseconds") in utc
    expectations = {e["kind"]: e for e in details["expectations"]}
    inf, bus = expectations["inf-ack"], expectations["bus-ack"]
    assert f"by {in_zone(inf['due_at'], NEW_YORK)}: met 20013 at {in_zone(inf['met_at'], NEW_YORK)}" in local
    assert f"expects bus-ack by {in_zone(bus['due_at'], 'UTC')}: open" in utc
    assert "+00:00" not in local.split("expects", 1)[1]  # no UTC left in the local view


def test_json_times_are_iso_8601_with_an_offset(exchanged: dict) -> None:
    config, message_id = exchanged["config"], exchanged["id"]
    listing = json.loads(cli(config, "messages", "--json"))
    assert listing
    for item in listing:
        assert with_offset(item["created_at"]) <= with_offset(item["updated_at"])
    details = json.loads(cli(config, "show", message_id, "--json"))
    times = [details["created_at"], details["updated_at"], *(e["at"] for e in details["events"])]
    for e in details["expectations"]:
        times += [e[name] for name in ("due_at", "met_at", "overdue_at") if e[name]]
    assert len(times) > 8
    for value in times:
        assert with_offset(value).utcoffset() == timedelta(0)  # stored and carried as UTC
    # the same JSON whatever the local zone
    assert json.loads(cli(config, "show", message_id, "--json", tz="Asia/Tokyo")) == details


def test_every_time_the_store_writes_is_utc_with_an_offset(exchanged: dict) -> None:
    import sqlite3

    db = sqlite3.connect(exchanged["store"])
    try:
        columns = {
            "messages": ("created_at", "updated_at", "tracked_at", "next_attempt_at"),
            "events": ("at",),
            "expectations": ("due_at", "met_at", "overdue_at"),
        }
        seen = 0
        for table, names in columns.items():
            for name in names:
                for (value,) in db.execute(f"SELECT {name} FROM {table} WHERE {name} IS NOT NULL"):
                    assert value.endswith("+00:00") and with_offset(value).utcoffset() == timedelta(0), value
                    seen += 1
        assert seen > 10
    finally:
        db.close()


def test_a_stored_time_without_an_offset_is_read_as_utc(exchanged: dict) -> None:
    """meshbridge always wrote UTC with +00:00; a row without one (a hand-made import) is UTC too."""
    import sqlite3

    db = sqlite3.connect(exchanged["store"])
    with db:
        db.execute("UPDATE messages SET created_at = '2026-01-15T12:00:00.000000' WHERE id = ?", [exchanged["id"]])
    db.close()
    config, message_id = exchanged["config"], exchanged["id"]
    [row] = [m for m in json.loads(cli(config, "messages", "--json")) if m["id"] == message_id]
    assert row["created_at"] == "2026-01-15T12:00:00.000000+00:00"
    assert json.loads(cli(config, "show", message_id, "--json"))["created_at"] == row["created_at"]
    local = next(line for line in cli(config, "messages").splitlines() if message_id in line)
    assert "2026-01-15 07:00:00-05:00" in local
    assert "2026-01-15 12:00:00+00:00" in next(
        line for line in cli(config, "messages", "--utc").splitlines() if message_id in line
    )


def test_shown_and_iso() -> None:
    from meshbridge.cli.times import iso, shown, spoken

    stored = "2026-07-01T16:30:05.123456+00:00"
    assert shown(stored, utc=True) == "2026-07-01 16:30:05+00:00"
    assert shown(stored, utc=True, timespec="milliseconds") == "2026-07-01 16:30:05.123+00:00"
    assert shown("2026-07-01T16:30:05", utc=True) == "2026-07-01 16:30:05+00:00"
    assert shown("not a time", utc=True) == "not a time" and shown(None) == ""
    local = datetime.fromisoformat(shown(stored))
    assert local.tzinfo is not None and local == datetime(2026, 7, 1, 16, 30, 5, tzinfo=UTC)
    assert iso(stored) == stored and iso("2026-07-01T16:30:05") == "2026-07-01T16:30:05.000000+00:00"
    assert iso(None) is None
    assert [spoken(s) for s in (40, 720, 7500, 3 * 86400 + 4 * 3600)] == ["40s", "12m", "2h 05m", "3d 4h"]
