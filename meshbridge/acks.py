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

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from . import itk, pipeline, responders
from .config import Config, ItkOptions, Route
from .errors import AckRefused, InvalidRequest, TransportError
from .events import EventKind, Notify
from .faults import checkpoint
from .itk.parse import HEAD as ITK_HEAD
from .kinds import BUS, BUS_OWED, INF
from .mesh import MeshMailbox
from .models import FINAL
from .payloads.base import Finding, ValidationResult
from .plugins import Plugins
from .store import Row, Store
from .validation import DEFAULT_CAP, route_options

log = logging.getLogger("meshbridge")

# event code -> (display, MessageDefinition name), reference itk3.md §2.3 and §2.5
EVENTS = {
    "ITK003D": ("ITK eDischarge", "ITK-eDischarge-MessageDefinition-4"),
    "ITK004D": ("ITK Mental Health eDischarge", "ITK-MH-eDischarge-MessageDefinition-4"),
    "ITK005D": ("ITK Emergency Care eDischarge", "ITK-EC-eDischarge-MessageDefinition-4"),
    "ITK006D": ("ITK Outpatient Letter", "ITK-OPL-MessageDefinition-4"),
    "ITK007C": ("ITK GP Connect Send Document", "ITK-GPConnectSendDocument-MessageDefinition-1"),
    "ITK009D": ("ITK Digital Medicine Immunization Document", "ITK-DM-Immunization-MessageDefinition-1"),
    "ITK010D": ("ITK Digital Medicine Emergency Supply Document", "ITK-DM-EmergencySupply-MessageDefinition-1"),
    "ITK011M": ("ITK Events Management Service", None),
    "ITK012M": ("ITK National Pathology", None),
    "ITK013D": ("ITK Digital Medicine Minor Illness Document", None),
    "ITK014M": ("ITK Update Record", None),
}
GENERIC_DEFINITION = "ITK-SendPayload-MessageDefinition-1"
RESPONSE_CAP = 1_000_000  # bytes: an ITK008M response is a few KB; a bigger one is an orphan, never read


def due(within: float | None) -> str | None:
    if within is None:
        return None
    return (datetime.now(UTC) + timedelta(seconds=within)).isoformat(timespec="microseconds")


def itk_cap(route: Route) -> int:
    """The most an inbound ITK message on ``route`` may be to be read (parsed) at all: the route's
    validation cap (option ``max_size``, default ``DEFAULT_CAP``); a bigger one is nacked 20015."""
    return int(route_options(route).get("max_size") or DEFAULT_CAP)


def ods(options: ItkOptions, mailbox: str) -> str:
    """The sending organisation's ODS code: configured, else the mailbox id's ODS prefix."""
    return options.ods_code or mailbox[:3]


# -- sending side ---------------------------------------------------------------------------


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


def ack_workflows(config: Config, mailbox: str) -> set[str]:
    """Workflows on which ``mailbox`` receives ITK responses (no route needed for them)."""
    return {r.itk.ack_workflow for r in config.routes if r.itk and r.mailbox == mailbox}


def answer_workflows(config: Config, original: Row) -> set[str]:
    """Workflows on which answers to ``original`` may arrive: its route's ack workflow.

    A message whose route is gone from the config (or had none) takes the ack workflows of the
    mailbox it was sent from, and its own workflow.
    """
    for route in config.routes:
        if route.name == original["route"] and route.itk:
            return {route.itk.ack_workflow}
    return ack_workflows(config, original["mailbox"]) | {original["workflow_id"]}


def correlate(config: Config, store: Store, response: Row, header: itk.ItkHeader, notify: Notify) -> Row | None:
    """Apply an ITK response to the message it answers. Returns that message, or None (orphan/duplicate).

    Checked in this order, so that a response nobody may send changes nothing and blocks nothing:
    the code and the answered message, then who sent it, where and on which workflow
    (``responders.misfit``), then whether that sender's response was seen before, and last whether
    the message still takes a response of that level (not final, not answered at that level yet,
    and, for one of our own responses, only the infrastructure ack it asked for).
    """
    store.update(response["id"], itk_message_id=header.message_id)
    detail = {
        "code": header.itk_code,
        "display": header.itk_display,
        "text": header.itk_text,
        "level": header.level,
        "response": response["id"],
    }
    code = itk.lookup(header.itk_code)
    targets = (
        [] if header.response_identifier == itk.UNREADABLE else store.find_itk("out", header.response_identifier or "")
    )
    if code is None or not targets:
        reason = (
            f"unknown ITK response code {header.itk_code!r}"
            if code is None
            else f"answers {header.response_identifier!r}, which this store did not send"
        )
        _orphan_response(store, response, header, reason, detail, notify)
        return None
    target = targets[0]
    reason = responders.misfit(response, target, answer_workflows(config, target), header.response_identifier or "")
    if reason:
        _orphan_response(store, response, header, reason, {**detail, "claims": target["id"]}, notify)
        return None
    if _seen_before(store, response, header):
        store.transition(response["id"], "duplicate", detail={"itk_message_id": header.message_id})
        return None
    positive = code.positive is not False
    if code.code in ("20007", "20008") and target["inf_ack_code"] == itk.SUCCESS:
        # a re-send after a lost ack: the receiver already has it (reference itk3.md §6.2)
        store.update(target["id"], kind="duplicate-reported", detail=detail)
        store.transition(response["id"], "correlated", detail={**detail, "answers": target["id"]}, answers=target["id"])
        return store.get(target["id"])
    if code.level == itk.INFRASTRUCTURE:
        kind, column, expectation = ("inf-ack" if positive else "inf-nack"), "inf_ack_code", INF
        state = "inf-acked" if positive else "inf-nacked"
        advance_from = ("accepted", "sending", "sent", "delivered")
    else:
        kind, column, expectation = ("bus-ack" if positive else "bus-nack"), "bus_ack_code", BUS
        state = "bus-acked" if positive else "bus-nacked"
        advance_from = ("accepted", "sending", "sent", "delivered", "inf-acked")
    reason = _answered(target, column, header.response_identifier or "") or _unasked(
        store, target, code.level, header.response_identifier or ""
    )
    if reason:
        _orphan_response(store, response, header, reason, {**detail, "claims": target["id"]}, notify)
        return None
    store.meet(target["id"], expectation, code.code, positive=positive, text=header.itk_text)
    store.update(target["id"], kind=kind, detail=detail, **{column: code.code})
    if not positive:
        store.close_expectations(target["id"], f"closed by {code.code}")
        store.transition(target["id"], state, from_states=tuple(s for s in _ALL if s not in FINAL), detail=detail)
        notify(EventKind.NACK, target["id"], f"{target['id']} got {code.code} {code.display}", **detail)
    else:
        store.transition(target["id"], state, from_states=advance_from, detail=detail)
        if not store.open_expectations(target["id"]):
            store.transition(target["id"], "complete", from_states=("inf-acked", "bus-acked"))
    store.transition(response["id"], "correlated", detail={**detail, "answers": target["id"]}, answers=target["id"])
    return store.get(target["id"])


def _answered(target: Row, column: str, answers: str) -> str | None:
    """Why ``target`` takes no more responses of this level, or None: a final state, or an answer
    of this level already applied (a later, different one from the same recipient changes nothing)."""
    if target["state"] in FINAL:
        return f"answers {answers}, which is already {target['state']}: a final state is not changed"
    if target[column]:
        level = "infrastructure" if column == "inf_ack_code" else "business"
        return f"answers {answers}, which already has {level} response {target[column]}: it is answered once"
    return None


def _unasked(store: Store, target: Row, level: str, answers: str) -> str | None:
    """Why a response may not answer ``target``, one of our own responses, or None: a response is
    answered only by the infrastructure ack it asked for (Full Acknowledgement), never otherwise."""
    if target["answers"] is None:  # an ITK message of ours, not a response
        return None
    if level == itk.INFRASTRUCTURE and any(e["kind"] == INF for e in store.expectations(target["id"])):
        return None
    return f"answers {answers}, our response {target['id']}, which asked for no such acknowledgement"


def _seen_before(store: Store, response: Row, header: itk.ItkHeader) -> bool:
    """Was this response (its MessageHeader.id, from this sender) already applied?

    Only responses that were applied count: an orphan reusing a genuine response's id (a forger
    quick off the mark) must not make the genuine one a duplicate.
    """
    return any(
        m["id"] != response["id"]
        and m["state"] in ("correlated", "duplicate")
        and responders.same_mailbox(m["peer"], response["peer"])
        for m in store.find_itk("in", header.message_id)
    )


def _orphan_response(
    store: Store, response: Row, header: itk.ItkHeader, reason: str, detail: dict[str, Any], notify: Notify
) -> None:
    """Keep a response that may not be applied, with its reason; the message it names is left alone."""
    store.transition(response["id"], "orphan", detail={**detail, "reason": reason}, last_error=reason)
    notify(
        EventKind.ORPHAN,
        response["id"],
        f"ITK response {header.message_id} from {response['peer']}: {reason}",
        **detail,
        reason=reason,
    )


_ALL = ("accepted", "sending", "sent", "delivered", "inf-acked", "bus-acked")


# -- receiving side -------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """What to answer an inbound ITK message with: 20013, or a nack code and why."""

    code: str
    findings: tuple[Finding, ...] = ()

    @property
    def positive(self) -> bool:
        return self.code == itk.SUCCESS


def judge(header: itk.ItkHeader, result: ValidationResult, conformance: list[Finding], duplicate: bool) -> Verdict:
    """The infrastructure response an inbound ITK message deserves (reference itk3.md §4, §9.1)."""
    errors = [f for f in conformance if f.severity == "error"]
    if duplicate:
        return Verdict("20007", (Finding(f"message {header.message_id} was already received", code="itk.20007"),))
    handling = header.handling
    if handling is None:
        return Verdict("10001", (*errors, Finding("no ITK handling specification", code="itk.10001")))
    if handling.inf_ack is None:
        return Verdict("10002", tuple(errors))
    if handling.bus_ack is None:
        return Verdict("10003", tuple(errors))
    for finding in errors:  # conformance codes look like itk.10004
        number = (finding.code or "").rpartition(".")[2]
        if itk.lookup(number) is not None and number.startswith("1"):
            return Verdict(number, tuple(errors))
    if errors:
        return Verdict("20006", tuple(errors))
    if not result.valid:
        return Verdict("20009", tuple(result.findings))
    return Verdict(itk.SUCCESS)


def findings_json(findings: tuple[Finding, ...] | list[Finding]) -> str:
    return json.dumps([f.as_dict() for f in findings])


class Acknowledgements:
    """The ITK steps of a poll and of ``Bridge.ack``, wired to one store and its MESH mailboxes."""

    def __init__(
        self,
        config: Config,
        store: Store,
        plugins: Plugins,
        mailbox: Callable[[str], MeshMailbox],
        notify: Notify,
    ) -> None:
        self.config, self.store, self.plugins, self.mailbox, self.notify = config, store, plugins, mailbox, notify

    # -- responses we receive --------------------------------------------------------------

    def receive_response(self, message: Row) -> Row | None:
        """An inbound message on an ack workflow (or an ITK008M anywhere): correlate it.

        One over ``RESPONSE_CAP`` is never read: an orphan with the reason.
        """
        if message["payload_size"] > RESPONSE_CAP:
            size = message["payload_size"]
            self._orphan(message, f"ITK response of {size} bytes is over the {RESPONSE_CAP}-byte cap: not read")
            return None
        try:
            header = itk.parse(self.store.payloads.read(message["payload_sha256"]))
        except itk.ItkUnreadable as exc:
            self._orphan(message, f"unreadable ITK response: {exc}")
            return None
        if not header.is_response:
            self._orphan(message, f"not an ITK response (event {header.event_code}) on an ack workflow")
            return None
        full_ack = header.level == itk.BUSINESS and header.handling is not None and header.handling.inf_ack
        if full_ack:  # our 20013 will be new data: on a full store disk, wait (DiskFull) before applying it
            self.store.space.room_for(0)
        target = correlate(self.config, self.store, message, header, self.notify)
        if target is not None and full_ack:
            # Full Acknowledgement: the business response asks us for an infrastructure ack
            self.respond(
                route=None,
                mailbox=message["mailbox"],
                to=message["peer"],
                workflow=message["workflow_id"],
                original_id=header.message_id,
                code=itk.SUCCESS,
                answers=message["id"],
                ods_code=self._ods(target.get("route"), message["mailbox"]),
                sender_reference=header.handling.sender_reference,
            )
        return target

    def _orphan(self, message: Row, reason: str) -> None:
        self.store.transition(
            message["id"], "orphan", from_states=("mesh-acked",), detail={"reason": reason}, last_error=reason
        )
        self.notify(EventKind.ORPHAN, message["id"], f"{message['id']} from {message['peer']}: {reason}", reason=reason)

    # -- messages we receive ---------------------------------------------------------------

    def receive_message(self, route: Route, message: Row, respond: bool = True) -> str:
        """Answer an inbound ITK message (20013 or a nack) and return its new state.

        One over the route's cap is never read, and one this process has not the memory to read
        either: both are ``invalid`` and answered 20015 (the messages behind it go on). The answer
        is new data: on a full store disk nothing is recorded (:class:`DiskFull`; the next pass answers).

        ``respond=False`` (``replay --force`` of a message we nacked): judged and recorded the same
        way, but no response is sent, its recorded ``inf_ack_code`` (what the sender was told) is
        kept, and no business ack is owed (the sender had a final nack).
        """
        self.store.space.room_for(0)
        cap = itk_cap(route)
        if message["payload_size"] > cap:
            self._too_large(route, message, f"over the {cap}-byte cap (route option max_size)", respond)
            return "invalid"
        try:
            return self._answer(route, message, respond)
        except MemoryError:
            self._too_large(route, message, "more than this process has the memory to read", respond)
            return "invalid"

    def _answer(self, route: Route, message: Row, respond: bool = True) -> str:
        options = route.itk
        assert options is not None
        data = self.store.payloads.read(message["payload_sha256"])
        try:
            header = itk.parse(data)
        except itk.ItkUnreadable as exc:
            finding = Finding(f"unreadable ITK message: {exc}", code="itk.10009")
            self._refuse(route, message, "invalid", "10009", (finding,), itk.UNREADABLE, True, respond=respond)
            return "invalid"
        if header.is_response:
            self.receive_response(message)
            return "correlated"
        self.store.update(message["id"], itk_message_id=header.message_id)
        # a duplicate comes from the same sender: another mailbox reusing the id must not block the genuine one
        duplicate = any(
            m["id"] != message["id"] and (m["peer"] or "").upper() == (message["peer"] or "").upper()
            for m in self.store.find_itk("in", header.message_id)
        )
        result = pipeline.check_stored(self.store, self.plugins, message, route.payload_type, route)
        verdict = judge(header, result, itk.check(data), duplicate)
        handling = header.handling
        wants_inf = handling is None or handling.inf_ack is not False
        if not verdict.positive:
            state = "duplicate" if verdict.code == "20007" else "invalid"
            reference = handling.sender_reference if handling else None
            self._refuse(
                route, message, state, verdict.code, verdict.findings, header.message_id, wants_inf, reference, respond
            )
            return state
        answered = {"inf_ack_code": itk.SUCCESS if wants_inf else None} if respond else {}
        self.store.transition(
            message["id"],
            "valid",
            from_states=("mesh-acked",),
            route=route.name,
            payload_type=result.payload_type,
            detail={"payload_type": result.payload_type, "itk_message_id": header.message_id},
            **answered,
        )
        if respond and handling is not None and handling.bus_ack:  # ours: overdue after bus_ack_within
            self.store.expect(message["id"], BUS_OWED, due(options.bus_ack_within))
        if respond and wants_inf:
            self.respond(
                route=route,
                mailbox=message["mailbox"],
                to=message["peer"],
                workflow=options.ack_workflow,
                original_id=header.message_id,
                code=itk.SUCCESS,
                answers=message["id"],
                ods_code=ods(options, message["mailbox"]),
                sender_reference=handling.sender_reference if handling else None,
            )
        return "valid"

    def answer_undecodable(self, route: Route, message: Row) -> None:
        """An ``invalid`` message whose body could not be decoded, on an ITK route: answer 10009
        with ``UNREADABLE-IN-ORIGINAL-MESSAGE`` (TKW-x: an unreadable data file always gets one)."""
        assert route.itk is not None
        self.store.update(message["id"], route=route.name, inf_ack_code="10009")
        self.respond(
            route=route,
            mailbox=message["mailbox"],
            to=message["peer"],
            workflow=route.itk.ack_workflow,
            original_id=itk.UNREADABLE,
            code="10009",
            text="the message body could not be decoded",
            answers=message["id"],
            ods_code=ods(route.itk, message["mailbox"]),
        )

    def _too_large(self, route: Route, message: Row, why: str, respond: bool = True) -> None:
        """Refuse a message over the cap with 20015 "Message too large", reading only its head:
        the answer names its MessageHeader.id if that is in the first bytes, else UNREADABLE."""
        with self.store.payloads.open(message["payload_sha256"]) as payload:
            found = itk.header_in_head(payload.read(ITK_HEAD))
        original, handling = found if found else (itk.UNREADABLE, None)
        if found:
            self.store.update(message["id"], itk_message_id=original)
        size = message["payload_size"]
        finding = Finding(
            f"ITK message is {size} bytes, {why}: not read",
            code=f"itk.{itk.TOO_LARGE}",
        )
        wants_inf = handling is None or handling.inf_ack is not False
        reference = handling.sender_reference if handling else None
        self._refuse(route, message, "invalid", itk.TOO_LARGE, (finding,), original, wants_inf, reference, respond)

    def _refuse(
        self,
        route: Route,
        message: Row,
        state: str,
        code: str,
        findings: tuple[Finding, ...],
        original: str,
        answer: bool,
        sender_reference: str | None = None,
        respond: bool = True,
    ) -> None:
        options = route.itk
        assert options is not None
        answered = {"inf_ack_code": code if answer else None} if respond else {}
        self.store.transition(
            message["id"],
            state,
            from_states=("mesh-acked",),
            route=route.name,
            findings=findings_json(findings),
            detail={"code": code, "findings": [f.as_dict() for f in findings], **({} if respond else {"sent": False})},
            **answered,
        )
        if answer and respond:
            text = "; ".join(str(f) for f in findings[:3]) or None
            self.respond(
                route=route,
                mailbox=message["mailbox"],
                to=message["peer"],
                workflow=options.ack_workflow,
                original_id=original,
                code=code,
                text=text,
                answers=message["id"],
                ods_code=ods(options, message["mailbox"]),
                sender_reference=sender_reference,
            )
        self.notify(
            EventKind.DUPLICATE if state == "duplicate" else EventKind.INVALID,
            message["id"],
            f"{message['id']} on {route.name} refused with {code}",
            findings=[f.as_dict() for f in findings],
        )

    # -- the end application's business ack -------------------------------------------------

    def business_ack(self, message_id: str, code: str | None, text: str | None, *, nack: bool = False) -> Row:
        rc = business_code(code, nack=nack)
        code = rc.code
        message = self.store.get(message_id)
        route = self.config.route(message["route"]) if message["route"] else None
        if message["direction"] != "in" or not message["itk_message_id"] or route is None or route.itk is None:
            raise AckRefused(f"{message['id']} is not an inbound ITK message")
        if message["bus_ack_code"]:
            raise AckRefused(f"{message['id']} was already answered with {message['bus_ack_code']}")
        if message["state"] not in ("valid", "delivered"):
            raise AckRefused(f"{message['id']} is {message['state']}: only a valid message gets a business ack")
        if not any(e["kind"] == BUS_OWED for e in self.store.expectations(message["id"])):
            raise AckRefused(f"{message['id']}: the sender did not ask for a business ack (BusAckRequested=false)")
        positive = not rc.negative
        if message["payload_size"] > itk_cap(route):  # read only the head of what is too big to read
            with self.store.payloads.open(message["payload_sha256"]) as payload:
                found = itk.header_in_head(payload.read(ITK_HEAD))
            handling = found[1] if found else None
        else:
            handling = itk.parse(self.store.payloads.read(message["payload_sha256"])).handling
        self.respond(
            route=route,
            mailbox=message["mailbox"],
            to=message["peer"],
            workflow=route.itk.ack_workflow,
            original_id=message["itk_message_id"],
            code=code,
            text=text,
            answers=message["id"],
            inf_ack_requested=route.itk.full_ack,
            ods_code=ods(route.itk, message["mailbox"]),
            expect_within=route.itk.inf_ack_within,
            sender_reference=handling.sender_reference if handling else None,
        )
        self.store.meet(message["id"], BUS_OWED, code, positive=positive, text=text)
        self.store.transition(
            message["id"],
            "bus-acked" if positive else "bus-nacked",
            from_states=("valid", "delivered"),
            bus_ack_code=code,
            detail={"code": code, "display": rc.display, "text": text},
        )
        return self.store.get(message["id"])

    # -- sending a response ----------------------------------------------------------------

    def respond(
        self,
        *,
        route: Route | None,
        mailbox: str,
        to: str,
        workflow: str,
        original_id: str,
        code: str,
        answers: str,
        ods_code: str,
        text: str | None = None,
        inf_ack_requested: bool = False,
        expect_within: float | None = None,
        sender_reference: str | None = None,
    ) -> Row:
        """Store an ITK008M response and send it; a MESH outage leaves it ``accepted`` for the next poll.

        ``sender_reference`` is the answered message's SenderReference, echoed back as GP Connect requires.
        """
        data, header_id = itk.build_response(
            original_id=original_id,
            code=code,
            sender_mailbox=mailbox,
            text=text,
            inf_ack_requested=inf_ack_requested,
            sender_ods=ods_code,
            sender_reference=sender_reference or "None",
        )
        row = pipeline.accept(
            self.store,
            io.BytesIO(data),
            route=route.name if route else None,
            mailbox=mailbox,
            to=to,
            workflow_id=workflow,
            payload_type="fhir",
            filename=f"ITK-Response-{code}.xml",
            content_type=itk.FHIR_XML,
            extra={"itk_message_id": header_id, "answers": answers},
            claim=True,
        )
        if inf_ack_requested:
            self.store.expect(row["id"], INF, due(expect_within))
        self.store.event(answers, "responded", {"code": code, "response": row["id"], "to": to, "workflow": workflow})
        checkpoint("respond:stored")
        try:
            pipeline.transmit(self.store, self.mailbox(mailbox), row, claimed=True)
        except TransportError as exc:
            log.warning("response %s not sent yet: %s", row["id"], exc)
        return self.store.get(row["id"])

    def _ods(self, route_name: str | None, mailbox: str) -> str:
        for route in self.config.routes:
            if route.name == route_name and route.itk:
                return ods(route.itk, mailbox)
        return mailbox[:3]


def business_code(code: str | None, *, nack: bool) -> itk.ResponseCode:
    """The ITK3 business code of an ack (positive, default 30001) or of a nack (negative, no default),
    as ``itk/codes.py`` types it; anything else raises :class:`InvalidRequest` (nothing is sent)."""
    kind = "negative" if nack else "positive"
    allowed = [c.code for c in itk.CODES.values() if c.level == itk.BUSINESS and c.negative == nack]
    listed = f"the {kind} business codes are {', '.join(allowed)}"
    if code is None and nack:
        raise InvalidRequest(f"a nack needs its code: {listed}")
    rc = itk.lookup("30001" if code is None else code)
    if rc is None or rc.withdrawn or rc.level != itk.BUSINESS:
        raise InvalidRequest(f"{code!r} is not an ITK3 business response code: {listed}")
    if rc.negative != nack:
        raise InvalidRequest(f"{rc.code} is a {'positive' if nack else 'negative'} code, not a {kind} one: {listed}")
    return rc
