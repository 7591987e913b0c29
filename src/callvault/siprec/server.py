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
from callvault.metrics import Metrics
from callvault.sip.dialog import Dialog
from callvault.sip.endpoint import ACCEPT, IncomingRequest, SipEndpoint
from callvault.sip.sdp import build_recording_answer, recording_answer_error
from callvault.sip.session_timer import SessionTimer
from callvault.siprec.call import CallContext, RecordedCall
from callvault.siprec.info_dtmf import parse_info_dtmf
from callvault.siprec.offer import is_siprec_request, parse_offer

log = logging.getLogger(__name__)

ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE, INFO"


class SiprecServer:
    def __init__(
        self,
        ctx: CallContext,
        *,
        contact_host: str,
        contact_port: int,
        metrics: Metrics | None = None,
    ) -> None:
        self.ctx = ctx
        self.metrics = metrics or Metrics()
        self.contact = f"<sip:srs@{contact_host}:{contact_port}>"
        self.tasks: set[asyncio.Task[None]] = set()
        self.endpoint: SipEndpoint | None = None  # set by the composition root
        self.session_expires_s = 1800

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
    def _reject(
        request: IncomingRequest,
        exc: RemoteProtocolError,
        extra: list[tuple[str, str]] | None = None,
    ) -> None:
        headers = list(extra or [])
        if exc.status == 415:  # RFC 3261 21.4.13: say what we accept
            headers.append(("Accept", ACCEPT))
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
            self.metrics.calls_rejected += 1
            log.info("rejected INVITE %s: %s", message.call_id, exc)
            self._reject(request, exc)
            return
        call = RecordedCall(self.ctx, message.call_id or "")
        self.ctx.calls[call.sip_call_id] = call
        # set before the first await: a CANCEL may arrive while the ports open
        request.on_cancel = lambda: call.end("cancel")
        async with call.lock:
            try:
                ports = await call.apply_offer(offer.sdp, offer.metadata)
            except (PortsExhausted, OSError) as exc:
                log.warning("call %s: no media port: %s", message.call_id, exc)
                call.end("rejected")
                if not request.answered:
                    request.respond(503, "Out of media ports", headers=[("Retry-After", "5")])
                return
            except RemoteProtocolError as exc:
                call.end("rejected")
                self._reject(request, exc)
                return
            call.timer = SessionTimer(default_interval=self.session_expires_s)
            try:
                timer_headers = call.timer.negotiate(message, self.ctx.loop.time())
            except RemoteProtocolError as exc:
                call.end("rejected")
                self._reject(request, exc, getattr(exc, "headers", []))
                return
            if call.tenant_id is None:
                log.info("call %s: no party belongs to a tenant yet", message.call_id)
            if call.ended or request.answered:  # cancelled meanwhile (487 already sent)
                call.end("cancel")
                return
            self.metrics.calls_started += 1
            request.on_ack_timeout = lambda: call.end("ack-timeout")
            try:
                call.dialog = Dialog.from_incoming_invite(message, call.local_tag, self.contact)
            except RemoteProtocolError as exc:
                call.end("rejected")
                self._reject(request, exc)
                return
            call.remote = (request.transport, request.remote)
            self._answer(call, request, ports, timer_headers)
            call.answered()
            self._watch_session_timer(call)

    def _answer(
        self,
        call: RecordedCall,
        request: IncomingRequest,
        ports: list[int | None] | None,
        extra: list[tuple[str, str]] | None = None,
    ) -> None:
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
            headers=[
                ("Contact", self.contact),
                ("Allow", ALLOW),
                ("Supported", "timer"),
                *(extra or []),
            ],
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
            try:
                if call.dialog is not None:
                    call.dialog.validate_request(message)
            except RemoteProtocolError as exc:
                self._reject(request, exc)
                return
            if message.method == "INFO":
                try:
                    digit = parse_info_dtmf(message.headers.get("Content-Type"), message.body)
                except RemoteProtocolError as exc:
                    self._reject(request, exc)
                    return
                if digit is not None:
                    # SIPREC does not say whose key it was; the SRC relays the recorded
                    # user's keypad (recording control), so the digit counts as the user's
                    call.info_digit(digit.digit, digit.duration_ms)
                request.respond(200)
                return
            timer_headers: list[tuple[str, str]] = []
            try:
                if call.timer is not None:
                    timer_headers = call.timer.negotiate(message, self.ctx.loop.time())
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
            except (PortsExhausted, OSError) as exc:
                log.warning("call %s: no media port: %s", call.uuid, exc)
                request.respond(503, "Out of media ports", headers=[("Retry-After", "5")])
                return
            self._answer(call, request, ports, timer_headers)
            self._watch_session_timer(call)

    # -- RFC 4028 session timer: BYE a session the SRC stopped refreshing -----------
    def _watch_session_timer(self, call: RecordedCall) -> None:
        if call.timer_handle is not None:
            call.timer_handle.cancel()
            call.timer_handle = None
        if call.timer is None or call.timer.refresher != "uac":
            return  # we would be the refresher; a recorder has nothing to refresh
        deadline = call.timer.expires_at(self.ctx.loop.time())
        if deadline is not None:
            call.timer_handle = self.ctx.loop.call_at(deadline, self._session_expired, call)

    def _session_expired(self, call: RecordedCall) -> None:
        call.timer_handle = None
        if call.ended:
            return
        log.info("call %s: session timer expired without refresh; sending BYE", call.uuid)
        call.end("session-expired")
        if self.endpoint is not None and call.dialog is not None and call.remote is not None:
            transport, remote = call.remote
            bye = call.dialog.create_request("BYE")
            self._spawn(self._send_quietly(bye, remote, transport))

    async def _send_quietly(self, request: object, remote: tuple[str, int], transport: str) -> None:
        assert self.endpoint is not None
        try:
            await self.endpoint.request(request, remote, transport)  # type: ignore[arg-type]
        except (TimeoutError, OSError) as exc:
            log.info("BYE to %s not answered: %s", remote, exc)
