"""The SIPREC recording server (SRS) as a SIP request handler (RFC 7866 section 7).

Dispatches requests from the SIP endpoint to ``RecordedCall`` objects. Every
request of one call is handled in order under that call's lock; requests of
different calls never wait for each other. Peer errors become the SIP status
they carry; our own bugs become a 500 for that request only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from callvault.errors import RemoteProtocolError
from callvault.media.ports import PortsExhausted
from callvault.sip.dialog import Dialog
from callvault.sip.endpoint import IncomingRequest
from callvault.sip.sdp import build_recording_answer, recording_answer_error
from callvault.siprec.call import CallContext, RecordedCall
from callvault.siprec.offer import is_siprec_request, parse_offer

log = logging.getLogger(__name__)

ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE, INFO"


class SiprecServer:
    def __init__(self, ctx: CallContext, *, contact_host: str, contact_port: int) -> None:
        self.ctx = ctx
        self.contact = f"<sip:srs@{contact_host}:{contact_port}>"
        self.tasks: set[asyncio.Task[None]] = set()
        self.rejected = 0

    # -- dispatch ---------------------------------------------------------------
    def handle(self, request: IncomingRequest) -> None:
        method = request.message.method
        call = self.ctx.calls.get(request.message.call_id or "")
        if method == "INVITE":
            if call is None:
                if request.message.to_address.parameters.get("tag"):
                    request.respond(481, "Call/Transaction Does Not Exist")
                    return
                self._spawn(self._new_call(request))
            else:
                self._spawn(self._in_dialog(call, request))
        elif method == "ACK":
            return
        elif call is None:
            if method in ("BYE", "UPDATE", "INFO"):
                request.respond(481, "Call/Transaction Does Not Exist")
            else:
                request.respond(405, "Method Not Allowed", headers=[("Allow", ALLOW)])
        elif method == "BYE":
            request.respond(200)
            call.end("bye")
        elif method in ("UPDATE", "INFO"):
            self._spawn(self._in_dialog(call, request))
        else:
            request.respond(405, "Method Not Allowed", headers=[("Allow", ALLOW)])

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    @staticmethod
    def _reject(request: IncomingRequest, exc: RemoteProtocolError) -> None:
        headers = []
        if exc.warning or exc.status in (400, 488, 415):
            text = (exc.warning or str(exc)).replace('"', "'")[:200]
            headers.append(("Warning", f'399 callvault "{text}"'))
        reason = str(exc).replace("\r", " ").replace("\n", " ")[:120]
        request.respond(exc.status, reason, headers=headers)

    # -- new session ------------------------------------------------------------
    async def _new_call(self, request: IncomingRequest) -> None:
        message = request.message
        try:
            if not is_siprec_request(message):
                raise RemoteProtocolError(
                    "not a SIPREC session (no Require: siprec, +sip.src or metadata)", 488
                )
            offer = parse_offer(message.headers.get("Content-Type"), message.body)
            if offer.sdp is None:
                raise RemoteProtocolError("INVITE without SDP offer is not supported", 488)
            problem = recording_answer_error(offer.sdp)
            if problem is not None:
                raise problem
        except RemoteProtocolError as exc:
            self.rejected += 1
            log.info("rejected INVITE %s: %s", message.call_id, exc)
            self._reject(request, exc)
            return
        call = RecordedCall(self.ctx, message.call_id or "")
        self.ctx.calls[call.sip_call_id] = call
        async with call.lock:
            try:
                ports = await call.apply_offer(offer.sdp, offer.metadata)
            except PortsExhausted:
                call.end("rejected")
                request.respond(503, "Out of media ports", headers=[("Retry-After", "5")])
                return
            except RemoteProtocolError as exc:
                call.end("rejected")
                self._reject(request, exc)
                return
            if call.tenant_id is None:
                log.info("call %s: no party belongs to a tenant yet", message.call_id)
            request.on_cancel = lambda: call.end("cancel")
            request.on_ack_timeout = lambda: call.end("ack-timeout")
            self._answer(call, request, ports)
            call.dialog = Dialog.from_incoming_invite(message, call.local_tag, self.contact)
            call.answered()

    def _answer(self, call: RecordedCall, request: IncomingRequest, ports: list[int | None] | None) -> None:
        assert call.sdp is not None
        body = b""
        if ports is not None:
            call.sdp_version += 1
            body = build_recording_answer(
                call.sdp,
                self.ctx.media_address,
                ports,
                session_id=int(call.t0 * 1000) & 0xFFFFFFFF,
                version=call.sdp_version,
            )
        request.respond(
            200,
            "OK",
            headers=[("Contact", self.contact), ("Allow", ALLOW), ("Supported", "timer")],
            body=body,
            content_type="application/sdp" if body else None,
            to_tag=call.local_tag,
        )

    # -- in-dialog requests -------------------------------------------------------
    async def _in_dialog(self, call: RecordedCall, request: IncomingRequest) -> None:
        message = request.message
        async with call.lock:
            if call.ended:
                request.respond(481, "Call/Transaction Does Not Exist")
                return
            if message.method == "INFO":
                request.respond(200)
                return
            try:
                offer = parse_offer(message.headers.get("Content-Type"), message.body)
                if offer.sdp is not None:
                    problem = recording_answer_error(offer.sdp)
                    if problem is not None:
                        raise problem
                ports = await call.apply_offer(offer.sdp, offer.metadata)
            except RemoteProtocolError as exc:
                log.info("call %s: rejected %s: %s", call.uuid, message.method, exc)
                self._reject(request, exc)
                return
            except PortsExhausted:
                request.respond(503, "Out of media ports", headers=[("Retry-After", "5")])
                return
            self._answer(call, request, ports)
