"""FROZEN test data: meshbridge's store migrations as they were written for sqlite-utils, up to m013
(meshbridge/store/schema.py at commit 0b22056, its import of ``clock`` made absolute). The tests build
stores with it at each step, as an older meshbridge left them, and upgrade them with today's runner.
Never edit: it stands for stores that exist."""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from meshbridge import clock

migrations = Migrations("meshbridge")


@migrations()
def m001_messages_and_events(db: Database) -> None:
    db["messages"].create(
        {
            "id": str,  # meshbridge's own id; also sent as mex-LocalID
            "direction": str,  # "out" | "in"
            "state": str,
            "route": str,
            "mailbox": str,  # our mailbox
            "peer": str,  # the other mailbox (recipient of out, sender of in)
            "workflow_id": str,
            "mesh_message_id": str,
            "message_type": str,  # DATA | REPORT
            "payload_type": str,
            "payload_sha256": str,
            "payload_size": int,
            "filename": str,
            "subject": str,
            "content_type": str,
            "linked_message_id": str,  # REPORT: the MESH id of the message it is about
            "chunks_done": int,
            "chunks_total": int,
            "attempts": int,
            "last_error": str,
            "destination": str,
            "itk_message_id": str,
            "inf_ack_code": str,
            "bus_ack_code": str,
            "tracked_at": str,
            "created_at": str,
            "updated_at": str,
        },
        pk="id",
        not_null={"direction", "state", "created_at", "updated_at"},
        defaults={"attempts": 0, "chunks_done": 0},
    )
    db.execute(
        "CREATE UNIQUE INDEX idx_messages_mesh_id ON messages(direction, mesh_message_id) "
        "WHERE mesh_message_id IS NOT NULL"
    )
    db["messages"].create_index(["state"])
    db["messages"].create_index(["created_at"])
    db["events"].create(
        {"seq": int, "message_id": str, "at": str, "kind": str, "state": str, "detail": str},
        pk="seq",
        not_null={"message_id", "at", "kind"},
        foreign_keys=[("message_id", "messages", "id")],
    )
    db["events"].create_index(["message_id"])
    # The timeline is evidence: events are append-only.
    db.execute(
        "CREATE TRIGGER events_no_update BEFORE UPDATE ON events "
        "BEGIN SELECT RAISE(ABORT, 'events are append-only'); END"
    )
    db.execute(
        "CREATE TRIGGER events_no_delete BEFORE DELETE ON events "
        "BEGIN SELECT RAISE(ABORT, 'events are append-only'); END"
    )
    db["expectations"].create(
        {"message_id": str, "kind": str, "due_at": str, "met_at": str, "outcome": str, "overdue_at": str},
        pk=("message_id", "kind"),
        foreign_keys=[("message_id", "messages", "id")],
    )
    db["expectations"].create_index(["due_at"])


@migrations()
def m002_findings(db: Database) -> None:
    """Validation findings (JSON list) of rejected and invalid messages."""
    db["messages"].add_column("findings", str)


@migrations()
def m003_itk(db: Database) -> None:
    """ITK3 correlation: responses point at the message they answer; ids compare case-insensitively."""
    db["messages"].add_column("answers", str)  # meshbridge id of the message this response answers
    db.execute("CREATE INDEX idx_messages_itk_id ON messages(direction, itk_message_id COLLATE NOCASE)")


@migrations()
def m004_ack_keys(db: Database) -> None:
    """Correlation keys of domain acknowledgements (``meshbridge_ack_protocols``)."""
    db["ack_keys"].create(
        {"protocol": str, "key": str, "message_id": str},
        pk=("protocol", "key"),
        foreign_keys=[("message_id", "messages", "id")],
    )


@migrations()
def m005_service(db: Database) -> None:
    """Send backoff, and the source file a message came from (never picked twice)."""
    db["messages"].add_column("next_attempt_at", str)
    db["messages"].add_column("source_file", str)
    db.execute("CREATE INDEX idx_messages_source ON messages(source_file, payload_sha256)")


@migrations()
def m006_inline_payloads(db: Database) -> None:
    """Small payloads live in the database (``[store] inline_max``); big ones stay files."""
    db["payloads"].create({"sha256": str, "size": int, "data": bytes}, pk="sha256", not_null={"size", "data"})
    # Store.sync() bumps this one row in a durable commit: a real write, so SQLite syncs the log
    db["syncs"].insert({"id": 1, "count": 0}, pk="id")


@migrations()
def m008_send_leases(db: Database) -> None:
    """Who holds a ``sending`` claim, and its heartbeat on the lease clock (``meshbridge.clock``).

    A claim made before this migration gets a heartbeat now: it lapses one lease from here.
    """
    db["messages"].add_column("lease_holder", str)
    db["messages"].add_column("lease_boot", str)
    db["messages"].add_column("lease_beat", float)
    db.execute(
        "UPDATE messages SET lease_holder = 'migrated', lease_boot = ?, lease_beat = ? WHERE state = 'sending'",
        [clock.boot(), clock.now()],
    )


@migrations()
def m009_local_id(db: Database) -> None:
    """The sender's own id of an inbound message (its ``mex-LocalID``), shown by ``show``."""
    db["messages"].add_column("local_id", str)


@migrations()
def m011_bad_bodies(db: Database) -> None:
    """Sightings of inbound bodies that could not be decoded: the same raw bytes twice, or too many
    tries, and they are stored ``invalid`` and acknowledged (a table, not a message row: nothing is
    stored or shown as a message until that decision)."""
    db["bad_bodies"].create(
        {"mesh_message_id": str, "raw_sha256": str, "mailbox": str, "seen": int, "reason": str, "last_seen": str},
        pk=("mesh_message_id", "raw_sha256"),
    )


@migrations()
def m012_expectation_verdicts(db: Database) -> None:
    """How an expectation was met: ``ack``, ``nack`` (a negative answer) or ``closed`` (another
    answer's nack ended it), and the answer's text, so that views show a nack as a nack. Earlier
    closed rows are recognised by their outcome. Open expectations get a partial index: overdue
    (``sqlite.OVERDUE``) is found through it."""
    db["expectations"].add_column("verdict", str)
    db["expectations"].add_column("text", str)
    db.execute("UPDATE expectations SET verdict = 'closed' WHERE met_at IS NOT NULL AND outcome LIKE 'closed by %'")
    db.execute("CREATE INDEX idx_expectations_open ON expectations(due_at) WHERE met_at IS NULL")


@migrations()
def m013_mesh_logins(db: Database) -> None:
    """Mailboxes whose login MESH refuses (``mesh-auth``): one row per mailbox while it lasts, so
    that the event is raised once per mailbox, across processes, until a call succeeds again."""
    db["mesh_logins"].create(
        {"mailbox": str, "since": str, "last_at": str, "refusals": int, "reason": str},
        pk="mailbox",
        not_null={"since", "last_at", "refusals"},
    )
