"""The ITK3 acknowledgement service: the ITK steps of a poll and of ``Bridge.ack``, over one
store and its MESH mailboxes (receive and correlate responses, answer inbound ITK messages,
send the end application's business acknowledgements)."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from typing import Any

from .. import itk, pipeline
from ..actors import Actor, with_actor
from ..config import Config, Route
from ..errors import AckRefused, InvalidRequest, TransportError
from ..events import EventKind, Notification
from ..faults import checkpoint
from ..itk.parse import HEAD as ITK_HEAD
from ..kinds import BUS_OWED, INF
from ..mesh import MeshMailbox
from ..models import Direction, State, TimelineKind
from ..payloads.base import Finding
from ..plugins import Plugins
from ..store import Store, StoredMessage
from .correlation import Correlated, correlate
from .rules import RESPONSE_CAP, business_code, due, findings_json, itk_cap, judge, not_xml, ods

log = logging.getLogger("meshbridge")


class Acknowledgements:
    """The ITK steps of a poll and of ``Bridge.ack``, wired to one store and its MESH mailboxes."""

    def __init__(
        self,
        config: Config,
        store: Store,
        plugins: Plugins,
        mailbox: Callable[[str], MeshMailbox],
        transmit: Callable[[StoredMessage], object] | None = None,
        correlated: Correlated | None = None,
    ) -> None:
        """``transmit(row)`` sends a stored response born claimed (the Bridge's: its retry policy,
        and a refused login raising ``mesh-auth``); by default :func:`pipeline.transmit`.
        ``correlated`` is told of each response applied (the Bridge's metrics)."""
        self.correlated = correlated
        self.config, self.store, self.plugins, self.mailbox = config, store, plugins, mailbox
        self.transmit = transmit or (
            lambda row: pipeline.transmit(self.store, self.mailbox(row.mailbox), row, claimed=True)
        )

    # -- responses we receive --------------------------------------------------------------

    def receive_response(self, message: StoredMessage) -> StoredMessage | None:
        """An inbound message on an ack workflow (or an ITK008M anywhere): correlate it.

        One over ``RESPONSE_CAP`` is never read: an orphan with the reason.
        """
        if (message.payload_size or 0) > RESPONSE_CAP:
            size = message.payload_size
            self._orphan(message, f"ITK response of {size} bytes is over the {RESPONSE_CAP}-byte cap: not read")
            return None
        try:
            header = itk.parse(self.store.payloads.read(message.sha256))
        except itk.ItkUnreadable as exc:
            self._orphan(message, f"unreadable ITK response: {exc}")
            return None
        if not header.is_response:
            self._orphan(message, f"not an ITK response (event {header.event_code}) on an ack workflow")
            return None
        handling = header.handling
        full_ack = header.level == itk.BUSINESS and handling is not None and handling.inf_ack
        if full_ack:  # our 20013 will be new data: on a full store disk, wait (DiskFull) before applying it
            self.store.space.room_for(0)
        target = correlate(self.config, self.store, message, header, self.correlated)
        if target is not None and full_ack and handling is not None:
            # Full Acknowledgement: the business response asks us for an infrastructure ack
            self.respond(
                route=None,
                mailbox=message.mailbox,
                to=message.peer or "",
                workflow=message.workflow_id or "",
                original_id=header.message_id,
                code=itk.SUCCESS,
                answers=message.id,
                ods_code=self._ods(target.route, message.mailbox),
                sender_reference=handling.sender_reference,
            )
        return target

    def _orphan(self, message: StoredMessage, reason: str) -> None:
        alert = Notification(
            EventKind.ORPHAN, message.id, f"{message.id} from {message.peer}: {reason}", {"reason": reason}
        )
        self.store.transition(
            message.id,
            State.ORPHAN,
            from_states=(State.MESH_ACKED,),
            detail={"reason": reason},
            last_error=reason,
            alert=alert,
        )

    # -- messages we receive ---------------------------------------------------------------

    def receive_message(self, route: Route, message: StoredMessage, respond: bool = True) -> str:
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
        if (message.payload_size or 0) > cap:
            self._too_large(route, message, f"over the {cap}-byte cap (route option max_size)", respond)
            return State.INVALID
        try:
            return self._answer(route, message, respond)
        except MemoryError:
            self._too_large(route, message, "more than this process has the memory to read", respond)
            return State.INVALID

    def _answer(self, route: Route, message: StoredMessage, respond: bool = True) -> str:
        options = route.itk
        assert options is not None
        data = self.store.payloads.read(message.sha256)
        try:
            header = itk.parse(data)
        except itk.ItkUnreadable as exc:
            finding = Finding(f"unreadable ITK message: {exc}", code="itk.10009")
            self._refuse(route, message, State.INVALID, "10009", (finding,), itk.UNREADABLE, True, respond=respond)
            return State.INVALID
        if header.is_response:
            self.receive_response(message)
            return State.CORRELATED
        self.store.update(message.id, itk_message_id=header.message_id)
        # a duplicate comes from the same sender: another mailbox reusing the id must not block the genuine one
        duplicate = any(
            m.id != message.id and (m.peer or "").upper() == (message.peer or "").upper()
            for m in self.store.find_itk(Direction.IN, header.message_id)
        )
        result = pipeline.check_stored(self.store, self.plugins, message, route.payload_type, route)
        verdict = judge(header, result, itk.check(data), duplicate)
        handling = header.handling
        wants_inf = handling is None or handling.inf_ack is not False
        if not verdict.positive:
            state = State.DUPLICATE if verdict.code == "20007" else State.INVALID
            reference = handling.sender_reference if handling else None
            self._refuse(
                route, message, state, verdict.code, verdict.findings, header.message_id, wants_inf, reference, respond
            )
            return state
        answered: dict[str, Any] = {"inf_ack_code": itk.SUCCESS if wants_inf else None} if respond else {}
        self.store.transition(
            message.id,
            State.VALID,
            from_states=(State.MESH_ACKED,),
            route=route.name,
            payload_type=result.payload_type,
            detail={"payload_type": result.payload_type, "itk_message_id": header.message_id},
            **answered,
        )
        if respond and handling is not None and handling.bus_ack:  # ours: overdue after bus_ack_within
            self.store.expect(message.id, BUS_OWED, due(options.bus_ack_within))
        if respond and wants_inf:
            self.respond(
                route=route,
                mailbox=message.mailbox,
                to=message.peer or "",
                workflow=options.ack_workflow,
                original_id=header.message_id,
                code=itk.SUCCESS,
                answers=message.id,
                ods_code=ods(options, message.mailbox),
                sender_reference=handling.sender_reference if handling else None,
            )
        return State.VALID

    def answer_undecodable(self, route: Route, message: StoredMessage) -> None:
        """An ``invalid`` message whose body could not be decoded, on an ITK route: answer 10009
        with ``UNREADABLE-IN-ORIGINAL-MESSAGE`` (TKW-x: an unreadable data file always gets one)."""
        assert route.itk is not None
        self.store.update(message.id, route=route.name, inf_ack_code="10009")
        self.respond(
            route=route,
            mailbox=message.mailbox,
            to=message.peer or "",
            workflow=route.itk.ack_workflow,
            original_id=itk.UNREADABLE,
            code="10009",
            text="the message body could not be decoded",
            answers=message.id,
            ods_code=ods(route.itk, message.mailbox),
        )

    def _too_large(self, route: Route, message: StoredMessage, why: str, respond: bool = True) -> None:
        """Refuse a message over the cap with 20015 "Message too large", reading only its head:
        the answer names its MessageHeader.id if that is in the first bytes, else UNREADABLE."""
        with self.store.payloads.open(message.sha256) as payload:
            found = itk.header_in_head(payload.read(ITK_HEAD))
        original, handling = found if found else (itk.UNREADABLE, None)
        if found:
            self.store.update(message.id, itk_message_id=original)
        size = message.payload_size
        finding = Finding(
            f"ITK message is {size} bytes, {why}: not read",
            code=f"itk.{itk.TOO_LARGE}",
        )
        wants_inf = handling is None or handling.inf_ack is not False
        reference = handling.sender_reference if handling else None
        self._refuse(route, message, State.INVALID, itk.TOO_LARGE, (finding,), original, wants_inf, reference, respond)

    def _refuse(
        self,
        route: Route,
        message: StoredMessage,
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
        answered: dict[str, Any] = {"inf_ack_code": code if answer else None} if respond else {}
        alert = Notification(
            EventKind.DUPLICATE if state == State.DUPLICATE else EventKind.INVALID,
            message.id,
            f"{message.id} on {route.name} refused with {code}",
            {"findings": [f.as_dict() for f in findings]},
        )
        self.store.transition(
            message.id,
            state,
            from_states=(State.MESH_ACKED,),
            route=route.name,
            findings=findings_json(findings),
            detail={"code": code, "findings": [f.as_dict() for f in findings], **({} if respond else {"sent": False})},
            alert=alert,  # its notification, with the state
            **answered,
        )
        if answer and respond:
            text = "; ".join(str(f) for f in findings[:3]) or None
            self.respond(
                route=route,
                mailbox=message.mailbox,
                to=message.peer or "",
                workflow=options.ack_workflow,
                original_id=original,
                code=code,
                text=text,
                answers=message.id,
                ods_code=ods(options, message.mailbox),
                sender_reference=sender_reference,
            )

    # -- the end application's business ack -------------------------------------------------

    def business_ack(
        self, message_id: str, code: str | None, text: str | None, *, nack: bool = False, by: Actor | None = None
    ) -> StoredMessage:
        rc = business_code(code, nack=nack)
        code = rc.code
        if text is not None and (bad := not_xml(text)):
            raise InvalidRequest(f"the response text holds {bad!r}, which XML cannot carry (nor so ITK3)")
        message = self.store.get(message_id)
        route = self.config.route(message.route) if message.route else None
        if message.direction != Direction.IN or not message.itk_message_id or route is None or route.itk is None:
            raise AckRefused(f"{message.id} is not an inbound ITK message")
        if message.bus_ack_code:
            raise AckRefused(f"{message.id} was already answered with {message.bus_ack_code}")
        if message.state not in (State.VALID, State.DELIVERED):
            raise AckRefused(f"{message.id} is {message.state}: only a valid message gets a business ack")
        if not any(e.kind == BUS_OWED for e in self.store.expectations(message.id)):
            raise AckRefused(f"{message.id}: the sender did not ask for a business ack (BusAckRequested=false)")
        positive = not rc.negative
        if (message.payload_size or 0) > itk_cap(route):  # read only the head of what is too big to read
            with self.store.payloads.open(message.sha256) as payload:
                found = itk.header_in_head(payload.read(ITK_HEAD))
            handling = found[1] if found else None
        else:
            handling = itk.parse(self.store.payloads.read(message.sha256)).handling
        self.respond(
            route=route,
            mailbox=message.mailbox,
            to=message.peer or "",
            workflow=route.itk.ack_workflow,
            original_id=message.itk_message_id,
            code=code,
            text=text,
            answers=message.id,
            inf_ack_requested=route.itk.full_ack,
            ods_code=ods(route.itk, message.mailbox),
            expect_within=route.itk.inf_ack_within,
            sender_reference=handling.sender_reference if handling else None,
        )
        self.store.meet(message.id, BUS_OWED, code, positive=positive, text=text)
        self.store.transition(
            message.id,
            State.BUS_ACKED if positive else State.BUS_NACKED,
            from_states=(State.VALID, State.DELIVERED),
            bus_ack_code=code,
            detail=with_actor({"code": code, "display": rc.display, "text": text}, by),
        )
        return self.store.get(message.id)

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
    ) -> StoredMessage:
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
            self.store.expect(row.id, INF, due(expect_within))
        self.store.event(
            answers, TimelineKind.RESPONDED, {"code": code, "response": row.id, "to": to, "workflow": workflow}
        )
        checkpoint("respond:stored")
        try:
            self.transmit(row)
        except TransportError as exc:
            log.warning("response %s not sent yet: %s", row.id, exc)
        return self.store.get(row.id)

    def _ods(self, route_name: str | None, mailbox: str) -> str:
        for route in self.config.routes:
            if route.name == route_name and route.itk:
                return ods(route.itk, mailbox)
        return mailbox[:3]
