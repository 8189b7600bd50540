"""Collecting: paging past 500, REPORTs, unrouted workflows, nothing lost and nothing left in MESH."""

from __future__ import annotations

from pathlib import Path

from conftest import OUT_IN


def test_more_than_500_waiting_are_all_collected(meshbridge_config, make_bridge, mesh_peer, mesh_sandbox) -> None:
    peer = mesh_peer("X26ABC1")
    ids = {peer.send_message("X26ABC2", f"message {i}".encode(), workflow_id="TEST_WORKFLOW") for i in range(520)}
    first_page = mesh_peer("X26ABC2").list_messages()
    assert len(first_page) == 500  # MESH pages at 500: the rest are only reachable by paging

    bridge = make_bridge(meshbridge_config(OUT_IN))
    report = bridge.poll(track=False)
    assert report.problems == []
    assert len(report.received) == 520 and len(report.delivered) == 520
    assert {m.mesh_message_id for m in bridge.messages(direction="in", state="delivered", limit=None)} == ids
    assert len(list((bridge.config.file.parent / "delivered").iterdir())) == 520
    assert mesh_peer("X26ABC2").list_messages() == []


def test_report_marks_outbound_undeliverable(tmp_path: Path, meshbridge_config, make_bridge, mesh_sandbox) -> None:
    bridge = make_bridge(meshbridge_config(OUT_IN))
    payload = tmp_path / "letter.txt"
    payload.write_text("to a mailbox that never collects")
    sent = bridge.send(payload, route="out")
    mesh_sandbox.report("X26ABC1", sent.mesh_message_id, workflow_id="TEST_WORKFLOW", local_id=sent.id)

    report = bridge.poll(mailbox="X26ABC1")
    assert report.undeliverable == [sent.id]
    message = bridge.show(sent.id)
    assert message.state == "undeliverable"
    last = message.events[-1]
    assert last.state == "undeliverable"
    assert last.detail["mesh_code"] == "14"
    assert last.detail["mesh_description"] == "Message not collected by recipient after 5 days"
    # the REPORT itself is kept, linked, and acknowledged
    kept = bridge.messages(direction="in", state="report")
    assert len(kept) == 1 and kept[0].linked_message_id == sent.mesh_message_id
    # a later poll (tracking, a second REPORT) does not undo it
    bridge.poll()
    assert bridge.store.get(sent.id).state == "undeliverable"


def test_report_about_an_unknown_message_is_kept_as_orphan(meshbridge_config, make_bridge, mesh_sandbox) -> None:
    bridge = make_bridge(meshbridge_config(OUT_IN))
    mesh_sandbox.report("X26ABC1", "NOT-OURS-0001", workflow_id="TEST_WORKFLOW", code="12")
    report = bridge.poll(mailbox="X26ABC1")
    assert len(report.problems) == 1 and "NOT-OURS-0001" in report.problems[0]
    orphan = bridge.messages(state="orphan")
    assert len(orphan) == 1 and orphan[0].linked_message_id == "NOT-OURS-0001"


def test_unrouted_workflow_is_stored_acknowledged_and_reported(meshbridge_config, make_bridge, mesh_peer) -> None:
    mesh_id = mesh_peer("X26ABC1").send_message("X26ABC2", b"nobody routes this", workflow_id="SURPRISE_WF")
    bridge = make_bridge(meshbridge_config(OUT_IN))
    report = bridge.poll()
    message = bridge.store.find("in", mesh_id)
    assert message.state == "unrouted"
    assert report.unrouted == [message.id]
    assert bridge.store.payloads.read(message.payload_sha256) == b"nobody routes this"
    assert mesh_peer("X26ABC2").list_messages() == []  # not left to expire in MESH
    assert bridge.store.events(message.id)[-1].detail["reason"] == "no inbound route takes this workflow"


def test_failed_delivery_is_retried_on_the_next_poll(tmp_path: Path, meshbridge_config, make_bridge, mesh_peer) -> None:
    blocker = tmp_path / "delivered"
    blocker.write_text("a file where the destination folder should be")
    mesh_id = mesh_peer("X26ABC1").send_message("X26ABC2", b"keep me", workflow_id="TEST_WORKFLOW")
    bridge = make_bridge(meshbridge_config(OUT_IN + '\n[service]\ndelivery_backoff = "0s"\n'))  # retried at once
    report = bridge.poll()
    assert len(report.problems) == 1 and "cannot write to folder" in report.problems[0]
    message = bridge.store.find("in", mesh_id)
    assert message.state == "valid" and "cannot write to folder" in message.last_error
    blocker.unlink()
    report = bridge.poll()
    assert report.delivered == [message.id]
    assert (blocker / f"{mesh_id}_{mesh_id}.dat").read_bytes() == b"keep me"


def test_each_acknowledge_follows_a_sync_of_its_row(meshbridge_config, make_bridge, mesh_peer, monkeypatch) -> None:
    """Rows are recorded lazily and made durable one batch at a time, always before MESH is told."""
    peer = mesh_peer("X26ABC1")
    ids = [peer.send_message("X26ABC2", f"message {i}".encode(), workflow_id="TEST_WORKFLOW") for i in range(120)]
    bridge = make_bridge(meshbridge_config(OUT_IN))
    store, mesh = bridge.store, bridge.mailbox("X26ABC2")
    log: list[tuple[str, ...]] = []

    def spy(obj, name, record):
        real = getattr(obj, name)

        def wrapper(*args, **kwargs):
            result = real(*args, **kwargs)
            log.append(record(result, *args, **kwargs))
            return result

        monkeypatch.setattr(obj, name, wrapper)

    spy(store, "add", lambda row, *a, durable=True, **k: ("add", row.mesh_message_id or "", str(durable)))
    spy(store, "sync", lambda *a: ("sync",))
    spy(mesh, "acknowledge", lambda _, mesh_id: ("ack", mesh_id))

    report = bridge.poll(track=False)
    assert report.problems == [] and len(report.delivered) == 120
    durable_since: dict[str, bool] = {}
    for entry in log:
        if entry[0] == "add":
            durable_since[entry[1]] = entry[2] == "True"
        elif entry[0] == "sync":
            durable_since = dict.fromkeys(durable_since, True)
        else:
            assert durable_since[entry[1]], f"{entry[1]} acknowledged before its row was durable"
    assert sorted(e[1] for e in log if e[0] == "ack") == sorted(ids)
    before_last_ack = log[: max(i for i, e in enumerate(log) if e[0] == "ack")]
    assert before_last_ack.count(("sync",)) == 3  # batches of 50, 50 and 20: not one fsync per message
    assert mesh_peer("X26ABC2").list_messages() == []
