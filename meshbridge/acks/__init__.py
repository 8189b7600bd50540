"""ITK3 reliable messaging over the store: wrap, answer, correlate, expect.

Sending side: an outbound payload on an ITK route is wrapped as an ITK3 message that asks for
the route's acks; each requested ack becomes an *expectation* with a deadline. Responses
(ITK008M) are correlated on ``response.identifier`` = the original ``MessageHeader.id``
(case-insensitively), only when they come from the original's recipient to the mailbox it left
from on its route's ack workflow (``responders``), idempotently on their own ``MessageHeader.id``
per sender; a negative code is final; a business response may arrive before the infrastructure
one; anything that matches nothing or comes from anyone else is kept as an ``orphan``.
Receiving side: an inbound ITK message gets 20013 or the right nack when it asks for an
infrastructure ack, and the end application's business ack (``Bridge.ack``) goes back
to the sender on the route's ack workflow.
"""

from ..kinds import BUS, BUS_OWED, INF
from ..models import FINAL
from .asking import Wrapped, expect, wrap
from .correlation import ack_workflows, answer_workflows, correlate
from .rules import (
    EVENTS,
    GENERIC_DEFINITION,
    RESPONSE_CAP,
    Verdict,
    business_code,
    due,
    findings_json,
    itk_cap,
    judge,
    ods,
)
from .service import Acknowledgements

__all__ = [
    "BUS",
    "BUS_OWED",
    "EVENTS",
    "FINAL",
    "GENERIC_DEFINITION",
    "INF",
    "RESPONSE_CAP",
    "Acknowledgements",
    "Verdict",
    "Wrapped",
    "ack_workflows",
    "answer_workflows",
    "business_code",
    "correlate",
    "due",
    "expect",
    "findings_json",
    "itk_cap",
    "judge",
    "ods",
    "wrap",
]
