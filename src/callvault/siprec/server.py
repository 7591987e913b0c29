"""The SIPREC recording server (SRS) as a SIP request handler (RFC 7866 section 7).

Dispatches requests from the SIP endpoint to ``RecordedCall`` objects. Every
request of one call is handled in order under that call's lock; requests of
different calls never wait for each other. Peer errors become the SIP status
they carry; our own bugs become a 500 for that request only.

Trust (SPEC section 2): only registered recording sources are served. A
request from anywhere else gets one 403 (no dialog, no retransmitted 2xx to
reflect), counted. Each source has limits (calls and media lines open at
once, m-lines per offer, a Session-Expires ceiling); past one the answer is
503 with Retry-After or 488. An in-dialog request must carry the dialog's
Call-ID and both tags (RFC 3261 12.2.2) and come from the call's source;
anything else is 481 and touches nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from sipmessage import Request

from callvault.errors import RemoteProtocolError
from callvault.media.ports import PortsExhausted
from callvault.metrics import Metrics
from callvault.sip.dialog import Dialog, dialog_id_of
from callvault.sip.endpoint import ACCEPT, IncomingRequest, SipEndpoint
from callvault.sip.message import tag_of
from callvault.sip.sdp import (
    SessionDescription,
    build_recording_answer,
    insecure_offer_error,
    recording_answer_error,
)
from callvault.sip.session_timer import SessionTimer
from callvault.sip.transport import Flow
from callvault.siprec.call import CallContext, RecordedCall
from callvault.siprec.info_dtmf import parse_info_dtmf
from callvault.siprec.offer import is_siprec_request, parse_offer
from callvault.sources.registry import RecordingSource

log = logging.getLogger(__name__)

ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE, INFO"
MAX_CALL_ID = 255  # calls.sip_call_id


class SiprecServer:
    def __init__(
        self,
        ctx: CallContext,
        *,
        contact_host: str,
        contact_port: int,
        metrics: Metrics | None = None,
        endpoint: SipEndpoint | None = None,
        session_expires_s: int = 1800,
    ) -> None:
        self.ctx = ctx
        self.metrics = metrics or Metrics()
        self.contact = f"<sip:srs@{contact_host}:{contact_port}>"
        self.tasks: set[asyncio.Task[None]] = set()
        self.endpoint = endpoint  # None: answers only (tests), no requests of our own
        self.session_expires_s = session_expires_s

    # -- dispatch ---------------------------------------------------------------
    def handle(self, request: IncomingRequest) -> None:
        method = request.message.method
        source = self._source(request)
        if source is None:
            return
        call = self.ctx.calls.get(request.message.call_id or "")
        if call is not None and not self._in_call_dialog(call, request, source):
            call = None  # a forged or stray request: it must not touch the call
            if method == "INVITE":
                request.respond(481, "Call/Transaction Does Not Exist")
                return
        if method == "INVITE":
            if call is None:
                if tag_of(request.message.headers.get("To")):
                    request.respond(481, "Call/Transaction Does Not Exist")
                    return
                self._spawn(self._new_call(request, source))
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

    # -- trust ------------------------------------------------------------------
    def screen(self, message: Request, flow: Flow) -> bool:
        """The endpoint's screen: only registered sources get past (a stranger gets
        one stateless 403 from the endpoint, counted and logged here)."""
        source, why = self._identify(flow.remote[0], flow.tls_fingerprint, flow.transport)
        if source is not None:
            return True
        self.metrics.sip_requests_refused_unknown_source += 1
        if message.method != "ACK":
            log.info(
                "refused %s from %s:%s (%s): %s",
                message.method,
                flow.remote[0],
                flow.remote[1],
                flow.transport,
                why,
            )
        return False

    def _identify(
        self, address: str, fingerprint: str | None, transport: str
    ) -> tuple[RecordingSource | None, str]:
        source = self.ctx.sources().identify(address, fingerprint)
        if source is None:
            return None, "not a registered recording source"
        if source.require_tls and transport != "tls":
            return None, f"source {source.name} must use TLS"
        return source, ""

    def _source(self, request: IncomingRequest) -> RecordingSource | None:
        """The registered source sending ``request``; None (after a 403) if none
        (the registry changed since the endpoint's screen let it through)."""
        source, why = self._identify(request.remote[0], request.tls_fingerprint, request.transport)
        if source is None and request.message.method != "ACK":
            log.info("refused %s: %s", request.message.method, why)
            request.respond(403, "Forbidden")
        return source

    @staticmethod
    def _in_call_dialog(
        call: RecordedCall, request: IncomingRequest, source: RecordingSource
    ) -> bool:
        """RFC 3261 12.2.2: Call-ID and both tags, from the call's own source.
        An INVITE retransmitted before the dialog exists has no To tag."""
        if call.source_id != source.id:
            return False
        if call.dialog is None:
            return request.message.method in ("INVITE", "ACK") and not (
                tag_of(request.message.headers.get("To"))
            )
        if request.message.method == "ACK":
            return True  # the endpoint matched it to the 2xx it acknowledges
        return dialog_id_of(request.message) == call.dialog.id

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _check_media_lines(self, source: RecordingSource, count: int) -> None:
        if not source.limits.media_lines_allowed(count):
            self.metrics.sip_requests_refused_limit += 1
            raise RemoteProtocolError(
                f"{count} media lines in one offer; source {source.name} allows"
                f" {source.limits.max_media_lines}",
                488,
            )

    @staticmethod
    def _check_srtp(source: RecordingSource, sdp: SessionDescription) -> None:
        if source.require_srtp:
            problem = insecure_offer_error(sdp)
            if problem is not None:
                raise problem

    def _over_limit(self, request: IncomingRequest, source: RecordingSource, what: str) -> None:
        self.metrics.sip_requests_refused_limit += 1
        log.warning("source %s over its limit (%s): 503", source.name, what)
        request.respond(
            503,
            "Source Over Its Limit",
            headers=[("Retry-After", "30"), ("Warning", f'399 callvault "{what}"')],
        )

    def _release(self, call: RecordedCall, source: RecordingSource) -> None:
        usage = self.ctx.usages.usage(source)
        usage.release_streams(min(call.reserved_streams, usage.streams))
        call.reserved_streams = 0
        if usage.calls > 0:
            usage.release_call()

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
    async def _new_call(self, request: IncomingRequest, source: RecordingSource) -> None:
        message = request.message
        usage = self.ctx.usages.usage(source)
        try:
            if not is_siprec_request(message):
                raise RemoteProtocolError(
                    "not a SIPREC session (no Require: siprec, +sip.src or metadata)", 488
                )
            if len(message.call_id or "") > MAX_CALL_ID:  # it is stored with the call
                raise RemoteProtocolError(f"Call-ID longer than {MAX_CALL_ID} characters", 400)
            offer = parse_offer(message.headers.get("Content-Type"), message.body)
            if offer.sdp is None:
                raise RemoteProtocolError("INVITE without SDP offer is not supported", 488)
            self._check_media_lines(source, len(offer.sdp.media))
            self._check_srtp(source, offer.sdp)
            problem = recording_answer_error(offer.sdp)
            if problem is not None:
                raise problem
        except RemoteProtocolError as exc:
            self.metrics.calls_rejected += 1
            log.info("rejected INVITE %s: %s", message.call_id, exc)
            self._reject(request, exc)
            return
        if not usage.try_open_call():
            self._over_limit(request, source, f"{usage.calls} calls open")
            return
        if not usage.try_open_streams(len(offer.sdp.media)):
            usage.release_call()
            self._over_limit(request, source, f"{usage.streams} media lines open")
            return
        call = RecordedCall(self.ctx, message.call_id or "")
        call.source_id = source.id
        call.allowed_tenants = source.tenant_ids
        call.reserved_streams = len(offer.sdp.media)
        call.on_release = lambda: self._release(call, source)
        self.ctx.calls[call.sip_call_id] = call
        # set before the first await: a CANCEL may arrive while the ports open
        request.on_cancel = lambda: call.end("cancel")
        async with call.lock:
            # let a CANCEL that arrived with the INVITE be read before the answer (a
            # declined call opens no port, so nothing below would yield otherwise)
            await asyncio.sleep(0)
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
            ceiling = source.limits.max_session_expires_s
            call.timer = SessionTimer(
                default_interval=min(self.session_expires_s, ceiling), max_interval=ceiling
            )
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
                    source = self.ctx.sources().get(call.source_id or -1)
                    if source is not None:
                        self._check_media_lines(source, len(offer.sdp.media))
                        self._check_srtp(source, offer.sdp)
                        if not self._reserve(call, source, len(offer.sdp.media)):
                            self._over_limit(request, source, "media lines open")
                            return
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

    def _reserve(self, call: RecordedCall, source: RecordingSource, lines: int) -> bool:
        """Hold ``lines`` media lines for ``call`` (a re-offer may add or drop some)."""
        usage = self.ctx.usages.usage(source)
        more = lines - call.reserved_streams
        if more > 0 and not usage.try_open_streams(more):
            return False
        if more < 0:
            usage.release_streams(min(-more, usage.streams))
        call.reserved_streams = lines
        return True

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
