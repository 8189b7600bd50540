"""What an ITK3 message says about itself: the handling specification and the header facts.

Values are kept exactly as written in the message (case, whitespace inside, the old MessageDefinition
URL ...); compare correlation ids with :func:`same_id`, never with ``==``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .codes import INFRASTRUCTURE


@dataclass(frozen=True, kw_only=True)
class Handling:
    """The six handling-specification keys of ``Extension-ITK-MessageHandling-2``.

    Build one to send (all keys are then required; the defaults are the spec's "unused" values).
    :func:`meshbridge.itk.parse.parse` returns one per received message, and there a key that is
    absent or unreadable is ``None``: ``inf_ack=None`` means the receiver could not tell whether an
    infrastructure response was wanted (the spec says: respond wherever possible).

    :param bus_ack: ``BusAckRequested``: a business response (3xxxx) is wanted.
    :param inf_ack: ``InfAckRequested``: an infrastructure response (1xxxx/2xxxx) is wanted.
    :param recipient_type: ``RecipientType`` code, ``"FA"`` (For Action) or ``"FI"`` (For Information).
    :param message_definition: ``MessageDefinition`` reference URL.
    :param sender_reference: ``SenderReference``, echoed back in responses; ``"None"`` when unused.
    :param local_extension: ``LocalExtension`` (its value as text); ``"None"`` when unused.
    """

    bus_ack: bool | None
    inf_ack: bool | None
    recipient_type: str | None = "FA"
    message_definition: str | None
    sender_reference: str | None = "None"
    local_extension: str | None = "None"

    @property
    def readable(self) -> bool:
        """Both acknowledgement flags could be read."""
        return self.bus_ack is not None and self.inf_ack is not None


@dataclass(frozen=True, kw_only=True)
class ItkHeader:
    """The facts a correlation store needs from one ITK3 message or response.

    :param message_id: ``MessageHeader.id``: the id responses point at (correlation key).
    :param bundle_id: outer ``Bundle.id``.
    :param bundle_identifier: outer ``Bundle.identifier.value``.
    :param event_code: ``MessageHeader.event.code`` (``ITK008M`` for every response).
    :param event_display: ``MessageHeader.event.display``.
    :param handling: the handling specification, ``None`` when the extension is missing.
    :param source_endpoint: ``MessageHeader.source.endpoint``: the sender's MESH mailbox.
    :param timestamp: ``MessageHeader.timestamp`` as written.
    :param is_response: the event is ``ITK008M``.
    :param response_identifier: ``response.identifier``: the answered ``MessageHeader.id`` or
        ``UNREADABLE-IN-ORIGINAL-MESSAGE``.
    :param response_code: ``response.code`` as written (``ok``/``fatal-error``); a cross-check only.
    :param itk_code: the ITK response code from the OperationOutcome (first ITK-ResponseCodes-1 coding).
    :param itk_display: its display as written.
    :param itk_text: ``issue.details.text``, else ``issue.diagnostics``.
    :param level: ``"infrastructure"`` or ``"business"``, from the code table (``None`` if the code is unknown).
    :param positive: from the code table, never from ``response.code`` (``None`` if unknown).
    :param format: ``"xml"`` or ``"json"``.
    :param payload_kind: what ``MessageHeader.focus`` points at: ``"Bundle:document"``,
        ``"Binary:application/pdf"``, ``"DiagnosticReport"`` ...; ``None`` when there is no focus.
    """

    message_id: str
    bundle_id: str | None = None
    bundle_identifier: str | None = None
    event_code: str | None = None
    event_display: str | None = None
    handling: Handling | None = None
    source_endpoint: str | None = None
    timestamp: str | None = None
    is_response: bool = False
    response_identifier: str | None = None
    response_code: str | None = None
    itk_code: str | None = None
    itk_display: str | None = None
    itk_text: str | None = None
    level: str | None = None
    positive: bool | None = None
    format: str = "xml"
    payload_kind: str | None = None

    @property
    def is_infrastructure(self) -> bool:
        return self.level == INFRASTRUCTURE

    @property
    def is_nack(self) -> bool:
        """A negative response: fatal and terminal, no further response follows it."""
        return self.is_response and self.positive is False


def same_id(a: str | None, b: str | None) -> bool:
    """Do two ITK ids (MessageHeader.id, response.identifier ...) name the same message?

    UUIDs are compared case-insensitively and without surrounding whitespace; ``None`` or blank
    never matches anything.
    """
    if not a or not b:
        return False
    a, b = a.strip(), b.strip()
    return bool(a) and a.casefold() == b.casefold()
