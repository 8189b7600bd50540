"""The ITK3 part of ``meshbridge demo``: two organisations, each its own meshbridge, answer each other.

A hospital trust (X26ABC1) sends three discharge summaries to a GP practice (X26ABC2), each asking
for an infrastructure and a business ack. The practice's meshbridge answers 20013 to each on
receipt; the practice then gives a business ack (30001) to the first and a nack (30002, with its
text) to the second with ``meshbridge ack``, and never answers the third, whose short deadline
passes: the trust's meshbridge raises it as overdue. The trust's ``status`` and the nacked
message's timeline (``show``) end it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from . import kinds
from .bridge import Bridge
from .config import load
from .itk import codes, same_id
from .models import Direction, Message, State
from .plugins import Plugins
from .sandbox import Sandbox, config_text

TRUST, PRACTICE = "X26ABC1", "X26ABC2"
WORKFLOW = "TOC_FHIR_IP_DISCH"
DEADLINE = 3  # seconds the third summary's business ack is given: it goes overdue while the demo waits
POSITIVE, NEGATIVE = "30001", "30002"  # "Patient known here", "Patient not known here"
NACK_TEXT = "Patient not known here: no record matches this NHS number"

Command = Callable[..., None]  # command(config_file, *arguments): run a meshbridge command and print its output

OUTBOUND = """
[[routes]]
name = "{name}"
direction = "outbound"
from = "{trust}"
to = "{practice}"
workflow_id = "{workflow}"
payload_type = "fhir"
itk = {{ inf_ack = true, bus_ack = true, event = "ITK006D", inf_ack_within = "1h", bus_ack_within = "{within}" }}
"""

INBOUND = f"""
[[routes]]
name = "discharge-in"
direction = "inbound"
mailbox = "{PRACTICE}"
workflow_id = "{WORKFLOW}"
payload_type = "fhir"
itk = {{}}
destination = {{ folder = "in/discharge" }}
"""


def run_itk(
    workspace: Path, sandbox: Sandbox, plugins: Plugins, *, echo: Callable[[str], None], command: Command
) -> bool:
    """The exchange; True when every ack, the nack and the overdue expectation arrived as they should."""
    trust_file, practice_file = _write_configs(workspace, sandbox)
    summary = workspace / "out" / "discharge-summary.xml"
    summary.write_bytes(plugins.payload_types()["fhir"].example or b"")
    echo("")
    echo(f"ITK3: trust {TRUST} sends 3 discharge summaries to GP practice {PRACTICE}, each asking for both acks")
    with Bridge(load(trust_file), plugins) as trust, Bridge(load(practice_file), plugins) as practice:
        sent: list[Message] = []
        for route in ("discharge", "discharge", "discharge-urgent"):
            message = trust.send(summary, route=route)
            sent.append(message)
            expects = f"inf-ack within 1h, bus-ack within {'1h' if route == 'discharge' else f'{DEADLINE}s'}"
            echo(f"  trust sent {message.id} on {route}: {message.state}; expects {expects}")

        practice.poll()
        inbound = list(practice.messages(direction=Direction.IN, route="discharge-in", oldest_first=True))
        for m in inbound:
            echo(f"  practice received {m.id}: {m.state}, infrastructure ack {m.inf_ack_code} sent")
        received = [m.id for s in sent for m in inbound if same_id(m.itk_message_id or "", s.itk_message_id or "")]
        if len(received) != len(sent):
            echo(f"  practice received {len(inbound)} of the {len(sent)}")
            return False

        command(practice_file, "ack", received[0], "--ok", "--text", "Patient known here")
        command(practice_file, "ack", received[1], "--nack", NEGATIVE, "--text", NACK_TEXT)

        trust.poll()  # acks and nack correlated; the trust answers each business response with a 20013 (ITK3)
        _wait_past(trust, sent[2].id, echo)
        report = trust.poll()
        for problem in report.problems:
            echo(f"  problem: {problem}")
        for message_id in report.overdue:
            late = [e.kind for e in trust.show(message_id).expectations if e.overdue_at and not e.met_at]
            echo(f"  trust: {message_id} is OVERDUE: no {', '.join(late)} from {PRACTICE} within {DEADLINE}s")
        ok = _check(trust, [m.id for m in sent], report.overdue, echo)

        command(trust_file, "status")
        command(trust_file, "show", sent[1].id)
    return ok


def _wait_past(bridge: Bridge, message_id: str, echo: Callable[[str], None]) -> None:
    """Sleep until the message's business-ack deadline has passed."""
    [due] = (e.due_at for e in bridge.show(message_id).expectations if e.kind == kinds.BUS and e.due_at)
    left = (due - datetime.now(due.tzinfo)).total_seconds()
    if left > 0:
        echo(f"  waiting {left:.1f}s for {message_id}'s business-ack deadline to pass...")
        time.sleep(left + 0.1)


def _check(trust: Bridge, sent: list[str], overdue: list[str], echo: Callable[[str], None]) -> bool:
    """Print what the trust now knows of each summary; True when it is what the practice did."""
    acked, nacked, late = (trust.show(i) for i in sent)
    for m in (acked, nacked, late):
        bus = codes.lookup(m.bus_ack_code)
        answer = (
            f"business {'nack' if bus.negative else 'ack'} {bus.code} ({bus.display})" if bus else "no business ack"
        )
        echo(f"  trust: {m.id} is {m.state}: infrastructure ack {m.inf_ack_code}, {answer}")
    return (
        (acked.inf_ack_code, acked.bus_ack_code) == (codes.SUCCESS, POSITIVE)
        and (nacked.state, nacked.inf_ack_code, nacked.bus_ack_code) == (State.BUS_NACKED, codes.SUCCESS, NEGATIVE)
        and late.inf_ack_code == codes.SUCCESS
        and late.bus_ack_code is None
        and late.id in overdue
    )


def _write_configs(workspace: Path, sandbox: Sandbox) -> tuple[Path, Path]:
    routes = "".join(
        OUTBOUND.format(name=name, trust=TRUST, practice=PRACTICE, workflow=WORKFLOW, within=within)
        for name, within in (("discharge", "1h"), ("discharge-urgent", f"{DEADLINE}s"))
    )
    trust = workspace / "trust.toml"
    trust.write_text(config_text(sandbox, routes, store="trust/meshbridge.db", mailboxes=(TRUST,)))
    practice = workspace / "practice.toml"
    practice.write_text(config_text(sandbox, INBOUND, store="practice/meshbridge.db", mailboxes=(PRACTICE,)))
    return trust, practice
