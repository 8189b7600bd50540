"""The sending side of ITK3: wrap an outbound payload as an ITK3 message that asks for the
route's acknowledgements, and record each one asked for as an expectation with its deadline."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from .. import itk
from ..config import ItkOptions, Route
from ..kinds import BUS, INF
from ..store import Store
from .rules import EVENTS, GENERIC_DEFINITION, due, ods


@dataclass(frozen=True)
class Wrapped:
    data: bytes
    message_id: str  # meshbridge id, also SenderReference
    itk_message_id: str  # MessageHeader.id
    content_type: str


def wrap(payload: bytes, media_type: str | None, route: Route) -> Wrapped:
    """Wrap a validated payload as an ITK3 message asking for the route's acks."""
    options = route.itk
    assert options is not None
    display, definition = EVENTS.get(options.event, (options.event, None))
    definition_url = options.message_definition or f"{itk.MESSAGE_DEFINITION_BASE}/{definition or GENERIC_DEFINITION}"
    message_id = uuid.uuid4().hex
    handling = itk.Handling(
        bus_ack=options.bus_ack,
        inf_ack=options.inf_ack,
        recipient_type=options.recipient_type,
        message_definition=definition_url,
        sender_reference=message_id,
        local_extension=options.local_extension,
    )
    media = media_type or "application/octet-stream"
    data, header_id = itk.build_message(
        payload,
        media_type=media,
        event_code=options.event,
        event_display=display,
        handling=handling,
        sender_mailbox=route.mailbox,
        sender_ods=ods(options, route.mailbox),
    )
    json_payload = media.split(";")[0].strip().lower() in (itk.FHIR_JSON, "application/json+fhir")
    content_type = itk.FHIR_JSON if json_payload else itk.FHIR_XML
    return Wrapped(data, message_id, header_id, content_type)


def expect(store: Store, message_id: str, options: ItkOptions) -> None:
    """Record what must come back for an outbound ITK message, and by when."""
    if options.inf_ack:
        store.expect(message_id, INF, due(options.inf_ack_within))
    if options.bus_ack:
        store.expect(message_id, BUS, due(options.bus_ack_within))
