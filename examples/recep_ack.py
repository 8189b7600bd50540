"""A domain acknowledgement plugin: NHAIS EDIFACT RECEP on meshbridge's expectation machinery.

An outbound NHAIS interchange (FHSREG...) expects a RECEP from its recipient. The RECEP names the
interchange it answers in ``RFF+RIS:<interchange ref> <status>`` (``OK`` accepted, anything else
a problem), and comes from the original recipient to the original sender on the MESH workflow
``NHAIS_RECEP`` (the interchanges themselves travel on ``NHAIS_REG``). meshbridge applies a RECEP
only when MESH says it came from the mailbox the interchange was sent to, into the mailbox it was
sent from, on a workflow declared here; any other is kept as an ``orphan`` with the reason and
changes nothing. Register it like any plugin (an entry point in the ``meshbridge`` group, or
``pm.register`` in tests) and give the outbound route a deadline::

    [[routes]]
    name = "registrations-out"
    ...
    payload_type = "edifact"
    options = { recep_within = "1d" }

Then ``meshbridge status`` and ``messages --overdue`` show interchanges whose RECEP is late, and
``show ID`` has the RECEP on the interchange's timeline.
"""

from __future__ import annotations

import re

from meshbridge import AckMatch, AckProtocol, Payload, Route, hookimpl

_RIS = re.compile(rb"RFF\+RIS:([^ '+:]+) ([A-Z]{2})")


def _key(sender: str, recipient: str, interchange_ref: str) -> str:
    return f"{sender}>{recipient}:{interchange_ref}"


def expects(payload: Payload, route: Route) -> str | None:
    """An EDIFACT interchange that is not itself a RECEP expects one."""
    details = payload.result.details if payload.result else {}
    if payload.payload_type != "edifact" or details.get("application_ref") == "RECEP":
        return None
    return _key(details["sender"], details["recipient"], details["interchange_ref"])


def answers(payload: Payload) -> AckMatch | None:
    """A RECEP interchange answers the interchange named in RFF+RIS, sent the other way."""
    details = payload.result.details if payload.result else {}
    if payload.payload_type != "edifact" or details.get("application_ref") != "RECEP":
        return None
    found = _RIS.search(payload.data)
    if not found:
        return None
    ref, status = found.group(1).decode(), found.group(2).decode()
    return AckMatch(
        key=_key(details["recipient"], details["sender"], ref),
        positive=status == "OK",
        code=status,
        text=f"RECEP for interchange {ref}: {status}",
    )


RECEP = AckProtocol("recep", expects, answers, workflows=("NHAIS_RECEP",))


@hookimpl
def meshbridge_ack_protocols() -> list[AckProtocol]:
    return [RECEP]
