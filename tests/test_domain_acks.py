"""Domain acknowledgements: the RECEP example plugin on the expectation machinery, over a real sandbox."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from meshbridge import Bridge, hookimpl, load
from meshbridge.plugins import Plugins, make_plugin_manager

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "payloads" / "edifact"
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "recep_ack.py"

ROUTES = """
[[routes]]
name = "registrations-out"
direction = "outbound"
from = "X26ABC1"
to = "X26ABC2"
workflow_id = "NHAIS_REG"
payload_type = "edifact"
options = { recep_within = "%s" }
"""


def recep_plugin():
    spec = importlib.util.spec_from_file_location("recep_ack", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Recorder:
    def __init__(self) -> None:
        self.events: list = []

    @hookimpl
    def meshbridge_on_event(self, event):
        self.events.append(event)


def bridge_with_recep(config: Path) -> tuple[Bridge, Recorder]:
    recorder = Recorder()
    pm = make_plugin_manager(load_entrypoints=False)
    pm.register(recep_plugin(), name="recep")
    pm.register(recorder, name="recorder")
    return Bridge(load(config), Plugins(pm)), recorder


def pair() -> tuple[bytes, bytes]:
    if not FIXTURES.exists():
        pytest.skip(f"{FIXTURES} not present (the NHS example fixtures live outside the project)")
    return (FIXTURES / "nhais-registration.dat").read_bytes(), (FIXTURES / "nhais-registration_recep.dat").read_bytes()


def test_recep_meets_the_expectation(tmp_path: Path, meshbridge_config, mesh_peer) -> None:
    registration, recep = pair()
    bridge, recorder = bridge_with_recep(meshbridge_config(ROUTES % "1d", mailboxes=("X26ABC1",)))
    with bridge:
        path = tmp_path / "registration.dat"
        path.write_bytes(registration)
        sent = bridge.send(path, route="registrations-out")
        [expectation] = bridge.store.expectations(sent.id)
        assert expectation.kind == "recep" and expectation.due_at and expectation.met_at is None

        mesh_peer("X26ABC2").send_message("X26ABC1", recep, workflow_id="NHAIS_RECEP")
        report = bridge.poll(track=False)
        assert report.problems == [] and len(report.correlated) == 1
        [expectation] = bridge.store.expectations(sent.id)
        assert expectation.met_at and expectation.outcome == "OK"
        timeline = bridge.store.events(sent.id)
        assert timeline[-1].kind == "recep" and timeline[-1].detail["text"] == "RECEP for interchange 00000003: OK"
        [ack] = bridge.messages(direction="in")
        assert ack.state == "correlated" and ack.answers == sent.id
        assert recorder.events == []


def test_missing_recep_goes_overdue_and_a_stray_one_is_an_orphan(tmp_path: Path, meshbridge_config, mesh_peer) -> None:
    registration, recep = pair()
    bridge, recorder = bridge_with_recep(meshbridge_config(ROUTES % "0s", mailboxes=("X26ABC1",)))
    with bridge:
        path = tmp_path / "registration.dat"
        path.write_bytes(registration.replace(b"00000003'", b"00000004'"))  # another interchange ref
        sent = bridge.send(path, route="registrations-out")
        mesh_peer("X26ABC2").send_message("X26ABC1", recep, workflow_id="NHAIS_RECEP")  # answers 00000003
        report = bridge.poll(track=False)
        assert report.overdue == [sent.id]
        assert [m.state for m in bridge.messages(direction="in")] == ["orphan"]
        assert sorted(e.kind for e in recorder.events) == ["orphan", "overdue"]
        assert bridge.status().overdue == 1
