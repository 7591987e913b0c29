"""One bridged call: two legs, the relay between them, and its recording (SPEC 2, mode 2).

Signalling (RFC 3261, RFC 7092 transparency): the INVITE from leg a goes to
the route's target as a new dialog (leg b) with the same Request-URI, so
digest credentials computed for it stay valid; provisional answers, early
media and the final answer come back; CANCEL is passed on and a 200 racing
it is ACKed and ended with BYE. In the dialog, re-INVITE, UPDATE, INFO,
REFER, NOTIFY, OPTIONS and MESSAGE cross to the other leg and their answers
come back, SDP rewritten to the relay's ports. A re-INVITE arriving on a leg
where our own re-INVITE is still open is glare: 491 (RFC 3261 14.2). BYE
ends both legs. RFC 4028: when a 2xx set a session interval, a session not
refreshed in time is ended on both legs.

Media: the relay (``media/relay.py``) anchors one audio m-line per leg;
other m-lines are declined. The recording is a ``RecordedCall`` fed by the
relay's taps, so the live policy decides what is kept exactly as for SIPREC,
with the short code heard on the user's leg only.

Announcements (SPEC 3): when the capture gate opens, the other party hears
the tenant's start prompt and the user a short tone; when it closes during
the call, the other party hears the stop prompt. A transfer that brings a new
party (a REFER we carry out, or a re-INVITE with a new asserted identity)
is journalled as a change of parties, and the new party hears the start
prompt again when the tenant chose so.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sipmessage import Address, Parameters, Request, Response

from callvault.announcements.library import Kind
from callvault.b2bua.coaching import Audit, MediaFactory, Presences, conference_bridge
from callvault.b2bua.legs import (
    REQUEST_HEADERS,
    RESPONSE_HEADERS,
    SDP,
    Leg,
    Side,
    aor_of,
    copied,
    other,
    sdp_of,
    supported_without_100rel,
)
from callvault.b2bua.recording import recording_metadata, recording_sdp
from callvault.b2bua.routes import Route, RouteTable
from callvault.b2bua.transfer import refer_here
from callvault.errors import LocalProtocolError, RemoteProtocolError
from callvault.media.receiver import RtpReceiver
from callvault.media.relay import MediaRelay
from callvault.sip.dialog import Dialog
from callvault.sip.endpoint import IncomingRequest, SipEndpoint
from callvault.sip.sdp import SessionDescription
from callvault.sip.sdp_writer import format_sdp, relay_sdp
from callvault.siprec.call import CallContext, RecordedCall
from callvault.siprec.info_dtmf import parse_info_dtmf
from callvault.sources.registry import RecordingSource

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from callvault.b2bua.coaching import CoachingSession

SIDES: tuple[Side, Side] = ("a", "b")
RETIRED_BYE_S = 2.0


def _no_audit(*_args: Any) -> None:
    """BridgeContext's default: no database (tests of signalling alone)."""


@dataclass
class BridgeContext:
    """What bridged calls need from the application (the composition root)."""

    calls: CallContext  # the recorder's: directory, spool, ports, finisher, live calls
    endpoint: SipEndpoint
    contact: str  # our Contact on both legs
    routes: Callable[[], RouteTable]
    prompt: Callable[[int, Kind], bytes | None]  # (tenant, start or stop) -> 8 kHz PCM
    user_tone: Callable[[Kind], bytes]  # what the user hears when recording starts, stops
    on_closed: Callable[[BridgedCall], None]
    on_legs_changed: Callable[[BridgedCall], None]  # a leg's dialog was replaced (transfer)
    on_challenged: Callable[[BridgedCall, ChallengedLeg], None]  # leg b asked for credentials
    # silent coaching (coaching.py): audit rows (written off the loop by the app), the
    # supervisor's media bridge, and LiveCenter's board (who coaches which call)
    audit: Audit = field(default=_no_audit)
    coaching_media: MediaFactory = field(default=conference_bridge)
    live: Presences | None = None


@dataclass(frozen=True)
class ChallengedLeg:
    """Leg b of a call answered 401/407: its INVITE's Call-ID, From tag and CSeq."""

    call_id: str
    from_tag: str
    cseq: int


def _audio_index(sdp: SessionDescription) -> int | None:
    return next((i for i, m in enumerate(sdp.media) if m.media == "audio" and m.port != 0), None)


def _session_interval(response: Response) -> int | None:
    return _session_interval_of(response.headers.get("Session-Expires"))


def _session_interval_of(value: str | None) -> int | None:
    if not value:
        return None
    try:
        return max(90, int(value.split(";")[0].strip()))
    except ValueError:
        return None


class BridgedCall:
    def __init__(
        self,
        ctx: BridgeContext,
        invite: IncomingRequest,
        source: RecordingSource,
        route: Route,
        retry_of: ChallengedLeg | None = None,
    ) -> None:
        self.ctx = ctx
        self.invite = invite
        self.source = source
        self.route = route
        message = invite.message
        aor_a, name_a = aor_of(
            message.headers.get("P-Asserted-Identity") or message.headers.get("From")
        )
        aor_b, name_b = aor_of(message.headers.get("To"))
        self.a = Leg("a", invite.transport, invite.remote, aor_a, name_a)
        target = route.target
        self.b = Leg("b", target.transport, (target.host, target.port), aor_b, name_b)
        # a retry with credentials goes on leg b's Call-ID and From tag (RFC 3261 8.1.3.5)
        self.call_id_b = retry_of.call_id if retry_of else secrets.token_hex(12) + "@callvault"
        self.tag_a = secrets.token_hex(8)
        self.tag_b = retry_of.from_tag if retry_of else secrets.token_hex(8)
        self.cseq_b = retry_of.cseq + 1 if retry_of else 1
        self.relay = MediaRelay(ctx.calls.loop, ctx.calls.media_address, ctx.calls.ports)
        self.recording = RecordedCall(ctx.calls, message.call_id or "")
        self.recording.source_id = source.id
        self.recording.allowed_tenants = source.tenant_ids
        self.recording.bridged = True
        self.recording.stream_binder = self
        self.recording.on_capture = self._capture_changed
        self.session_id = secrets.token_hex(8)
        self.leg_call_ids = {"a": message.call_id or "", "b": self.call_id_b}
        self.sdp_version = {"a": 1, "b": 1}
        self.sdp_session = int(time.time()) & 0xFFFFFFFF
        self.invite_b: Request | None = None
        self.answered = False
        self.cancelled = False
        self.ended = False
        self.recording_started = False
        self.announced_users: set[Side] = set()  # who heard the start tone
        self.retired: dict[str, Leg] = {}  # transferors' legs, by Call-ID, until they end
        self.tasks: set[asyncio.Task[None]] = set()
        self.timer: asyncio.TimerHandle | None = None
        self.session_interval: int | None = None
        self.coach: CoachingSession | None = None  # a supervisor coaching this call

    # -- helpers -------------------------------------------------------------------
    def leg(self, side: Side) -> Leg:
        return self.a if side == "a" else self.b

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def offer_for(self, to: Side, sdp: SessionDescription, audio: int | None) -> bytes:
        """``sdp`` (sent by the other leg) as leg ``to`` must see it: our ports."""
        ports: list[int | None] = [None] * len(sdp.media)
        if audio is not None:
            ports[audio] = self.relay.local_port(to)
        self.sdp_version[to] += 1
        rewritten = relay_sdp(
            sdp,
            address=self.ctx.calls.media_address,
            ports=ports,
            session_id=self.sdp_session,
            version=self.sdp_version[to],
        )
        return format_sdp(rewritten)

    def learn_sdp(self, side: Side, sdp: SessionDescription) -> None:
        """``side`` sent ``sdp``: send its media there, accept media from there."""
        leg = self.leg(side)
        leg.sdp = sdp
        leg.audio_index = _audio_index(sdp)
        if leg.audio_index is None:
            self.relay.set_remote(side, None, None)
            return
        media = sdp.media[leg.audio_index]
        holding = media.direction in ("sendonly", "inactive") or media.paused
        host = None if media.connection in (None, "0.0.0.0", "::") else media.connection
        self.relay.set_codecs(side, media.rtpmap)
        # a party holding the call still receives nothing from us (RFC 3264 8.4)
        self.relay.set_remote(side, None if holding else host, None if holding else media.port)

    # -- StreamBinder (the recording's streams come from the relay) -----------------
    def bind(self, index: int, receiver: RtpReceiver) -> int:
        side: Side = "a" if index == 0 else "b"
        self.relay.set_tap(side, receiver.datagram_received)
        return self.relay.local_port(side)

    def unbind(self, index: int) -> None:
        self.relay.set_tap("a" if index == 0 else "b", None)

    # -- set-up -------------------------------------------------------------------
    async def start(self) -> None:
        """Offer the call to leg b and bring its answer back to leg a."""
        message = self.invite.message
        self.invite.on_cancel = self._cancelled_by_a  # before the first await
        try:
            offer = sdp_of(message)
        except RemoteProtocolError as exc:
            self._fail_a(exc.status, str(exc))
            return
        if offer is None:
            self._fail_a(488, "INVITE without an SDP offer is not supported")
            return
        if _audio_index(offer) is None:
            self._fail_a(488, "the offer has no audio stream")
            return
        try:
            await self.relay.open()
        except OSError as exc:
            log.warning("bridged call %s: no media port: %s", message.call_id, exc)
            self._fail_a(503, "out of media ports", retry_after=5)
            return
        if self.cancelled:  # CANCEL came while the ports opened: the endpoint sent 487
            self.close("cancel")
            return
        self.learn_sdp("a", offer)
        request = self._invite_for_b(message, offer)
        self.invite_b = request
        try:
            response = await self.ctx.endpoint.request(
                request,
                self.b.remote,
                self.b.transport,
                on_provisional=self._provisional,
            )
        except TimeoutError:
            self._fail_a(408, f"the route's target {self.route.target.text} did not answer")
            return
        except (OSError, ConnectionError) as exc:
            self._fail_a(503, f"the route's target {self.route.target.text} is unreachable: {exc}")
            return
        if 200 <= response.code < 300:
            await self._answered(request, response)
        else:
            self._final_failure(response)

    def _invite_for_b(self, message: Request, offer: SessionDescription) -> Request:
        request = Request(method="INVITE", uri=message.uri)
        headers = request.headers
        address = Address.parse(message.headers["From"])
        params = {k: v for k, v in address.parameters.items() if k.lower() != "tag"}
        params["tag"] = self.tag_b
        headers.add(
            "From",
            str(Address(uri=address.uri, name=address.name, parameters=Parameters(**params))),
        )
        headers.add("To", message.headers["To"])
        headers.add("Call-ID", self.call_id_b)
        headers.add("CSeq", f"{self.cseq_b} INVITE")
        headers.add("Contact", self.ctx.contact)
        try:
            forwards = int(message.headers.get("Max-Forwards") or "70")
        except ValueError:
            forwards = 70
        headers.add("Max-Forwards", str(max(forwards - 1, 0)))
        for name, value in [*supported_without_100rel(message), *copied(message, REQUEST_HEADERS)]:
            headers.add(name, value)
        request.body = self.offer_for("b", offer, self.a.audio_index)
        headers.add("Content-Type", SDP)
        return request

    def _provisional(self, response: Response) -> None:
        if self.ended or self.invite.answered or response.code == 100:
            return
        body = b""
        try:
            sdp = sdp_of(response)
        except RemoteProtocolError:
            sdp = None
        if sdp is not None:  # early media (RFC 3960): relayed, not recorded
            self.learn_sdp("b", sdp)
            body = self.offer_for("a", sdp, self.b.audio_index)
        self.invite.respond(
            response.code,
            response.phrase,
            headers=[("Contact", self.ctx.contact), *copied(response, ("P-Asserted-Identity",))],
            body=body,
            content_type=SDP if body else None,
            to_tag=self.tag_a,
        )

    async def _answered(self, request: Request, response: Response) -> None:
        try:
            dialog_b = Dialog.from_outgoing_invite(request, response)
        except RemoteProtocolError as exc:
            log.info("bridged call: leg b's 2xx is unusable: %s", exc)
            self._fail_a(502, "the called party's answer is unusable")
            return
        self.b.dialog = dialog_b
        self.ctx.endpoint.send_ack(response, dialog_b)
        if self.cancelled or self.ended:
            # the 200 crossed the CANCEL (RFC 3261 9.1): leg a got its 487, so end leg b
            self.bye("b")
            self.close("cancel")
            return
        try:
            answer = sdp_of(response)
        except RemoteProtocolError as exc:
            answer = None
            log.info("bridged call: leg b's answer SDP is unusable: %s", exc)
        if answer is None or _audio_index(answer) is None:
            self.bye("b")
            self._fail_a(488, "the called party accepted no audio stream")
            return
        self.learn_sdp("b", answer)
        self.session_interval = _session_interval(response)
        timer_headers = self._timer_for_a(response)
        self.a.dialog = Dialog.from_incoming_invite(
            self.invite.message, self.tag_a, self.ctx.contact
        )
        self.invite.on_ack_timeout = lambda: self.hang_up("ack-timeout")
        self.invite.respond(
            200,
            response.phrase or "OK",
            headers=[
                ("Contact", self.ctx.contact),
                *copied(response, RESPONSE_HEADERS),
                *timer_headers,
            ],
            body=self.offer_for("a", answer, self.b.audio_index),
            content_type=SDP,
            to_tag=self.tag_a,
        )
        self.answered = True
        await self._start_recording()
        self._watch_session()

    def _timer_for_a(self, response: Response) -> list[tuple[str, str]]:
        """RFC 4028 section 8.2: leg b's answer has no Session-Expires (its UA does
        not do timers) but leg a asked for one and supports them: we keep the timer,
        with leg a as the refresher, and say so in the 2xx."""
        if self.session_interval is not None:
            return []
        asked = _session_interval_of(self.invite.message.headers.get("Session-Expires"))
        supported = ",".join(self.invite.message.headers.getlist("Supported")).lower()
        if asked is None or "timer" not in supported:
            return []
        self.session_interval = asked
        return [("Session-Expires", f"{asked};refresher=uac"), ("Require", "timer")]

    def _final_failure(self, response: Response) -> None:
        if response.code in (401, 407):  # the retry with credentials continues leg b
            self.ctx.on_challenged(self, ChallengedLeg(self.call_id_b, self.tag_b, self.cseq_b))
        if self.invite.answered:
            self.close("failed")
            return
        self.invite.respond(
            response.code,
            response.phrase,
            headers=copied(response, RESPONSE_HEADERS),
            to_tag=self.tag_a,
        )
        self.close("failed")

    def _fail_a(self, status: int, why: str, retry_after: int | None = None) -> None:
        log.info("bridged call %s: %s %s", self.invite.message.call_id, status, why)
        if not self.invite.answered:
            headers = [("Warning", f'399 callvault "{why[:200]}"')]
            if retry_after is not None:
                headers.append(("Retry-After", str(retry_after)))
            self.invite.respond(status, why[:120], headers=headers, to_tag=self.tag_a)
        self.close("failed")

    def _cancelled_by_a(self) -> None:
        self.cancelled = True
        request = self.invite_b
        if request is not None and not self.answered:
            self.spawn(self._cancel_b(request))

    async def _cancel_b(self, request: Request) -> None:
        try:
            await self.ctx.endpoint.cancel(request, self.b.remote, self.b.transport)
        except (TimeoutError, OSError, ConnectionError) as exc:
            log.info("CANCEL to leg b not answered: %s", exc)

    # -- recording ---------------------------------------------------------------
    async def _start_recording(self) -> None:
        ports = (self.relay.local_port("a"), self.relay.local_port("b"))
        sdp = recording_sdp((self.a, self.b), ports)
        metadata = recording_metadata((self.a, self.b), self.session_id)
        self.ctx.calls.calls[self.recording.sip_call_id] = self.recording
        async with self.recording.lock:
            await self.recording.apply_offer(sdp, metadata)
            self._hide_code()
            self.recording.answered()

    async def _update_recording(self, parties_changed: bool = False) -> None:
        if not self.answered or self.recording.ended:
            return
        ports = (self.relay.local_port("a"), self.relay.local_port("b"))
        sdp = recording_sdp((self.a, self.b), ports)
        metadata = (
            recording_metadata((self.a, self.b), self.session_id) if parties_changed else None
        )
        async with self.recording.lock:
            await self.recording.apply_offer(sdp, metadata)
            self._hide_code()

    def _user_sides(self) -> set[Side]:
        """The legs whose party is a recorded user whose recording captures now."""
        sides: set[Side] = set()
        live = self.recording.live
        for slot, _snapshot in self.recording.slots:
            if live.capturing(slot.key):
                for leg in (self.a, self.b):
                    if leg.party_id == slot.participant_id:
                        sides.add(leg.side)
        return sides

    def _tenant(self) -> int | None:
        return self.recording.tenant_id

    def _hide_code(self) -> None:
        tenant = self._tenant()
        if tenant is None:
            return
        policy = self.ctx.calls.directory().policy(tenant)
        users = {
            leg.side
            for leg in (self.a, self.b)
            for slot, _ in self.recording.slots
            if leg.party_id == slot.participant_id
        }
        for side in SIDES:
            hide = policy.hide_code_from_other and side in users and not self._end_to_end_srtp()
            self.relay.hide_code(side, policy.short_code if hide else None)

    def _capture_changed(self, _t: int, is_open: bool) -> None:
        if self.ended:
            return
        tenant = self._tenant()
        if tenant is None:
            return
        policy = self.ctx.calls.directory().policy(tenant)
        users = self._user_sides() if is_open else set()
        if is_open:
            self.recording_started = True
            others: list[Side] = [s for s in SIDES if s not in users] or list(SIDES)
            if policy.announce_start:
                self._announce(tenant, "start", others)
            for side in users:
                self._play(side, self.ctx.user_tone("start"))
            self.announced_users = users
        elif self.recording_started:
            users = self.announced_users
            everyone_else: list[Side] = [s for s in SIDES if s not in users] or list(SIDES)
            if policy.announce_stop:
                self._announce(tenant, "stop", everyone_else)
            for side in users:
                self._play(side, self.ctx.user_tone("stop"))

    def _recorded_parties(self) -> set[str]:
        return {slot.participant_id for slot, _ in self.recording.slots}

    def _announce(self, tenant: int, kind: Kind, sides: list[Side]) -> None:
        pcm = self.ctx.prompt(tenant, kind)
        if pcm is None:
            return
        for side in sides:
            self._play(side, pcm)

    def _end_to_end_srtp(self) -> bool:
        """SDES keys pass between the legs unchanged (the recording decrypts with
        them), so audio we put into the stream would fail the phones' checks."""
        return any(
            leg.sdp is not None
            and leg.audio_index is not None
            and leg.sdp.media[leg.audio_index].secure
            for leg in (self.a, self.b)
        )

    def _play(self, side: Side, pcm: bytes) -> None:
        if self._end_to_end_srtp():
            log.warning(
                "bridged call %s: SRTP end to end, no prompt or tone played", self.recording.uuid
            )
            return
        self.relay.play(side, pcm)

    def new_party(self, side: Side, aor: str | None, name: str | None) -> None:
        """A transfer brought someone else onto leg ``side``."""
        leg = self.leg(side)
        leg.generation += 1
        leg.party_id = f"{side}{leg.generation}"
        leg.aor, leg.name = aor, name
        log.info("bridged call %s: leg %s now with %s", self.recording.uuid, side, aor)

    async def parties_changed(self, side: Side) -> None:
        stream = self.recording.streams.get(0 if side == "a" else 1)
        if stream is not None:
            stream.receiver.relatch()  # the relay latched to the new party already
        await self._update_recording(parties_changed=True)
        tenant = self._tenant()
        if tenant is None or not self.recording_started:
            return
        policy = self.ctx.calls.directory().policy(tenant)
        if (
            policy.announce_after_transfer
            and self.leg(side).party_id not in self._recorded_parties()
        ):
            self._announce(tenant, "start", [side])

    # -- in the dialog --------------------------------------------------------------
    def matches(self, request: IncomingRequest, side: Side) -> bool:
        """RFC 3261 12.2.2: the leg's Call-ID and both tags."""
        dialog = self.leg(side).dialog
        if dialog is None:
            return False
        message = request.message
        from_tag = message.from_address.parameters.get("tag")
        to_tag = message.to_address.parameters.get("tag")
        return (
            message.call_id == dialog.call_id
            and from_tag == dialog.remote_tag
            and to_tag == dialog.local_tag
        )

    def in_dialog(self, request: IncomingRequest, side: Side) -> None:
        method = request.message.method
        if method == "ACK":
            return  # our 2xx was acknowledged; leg b's 2xx we ACKed ourselves
        if self.ended:
            request.respond(481, "Call/Transaction Does Not Exist")
            return
        dialog = self.leg(side).dialog
        assert dialog is not None
        try:
            dialog.validate_request(request.message)
        except RemoteProtocolError as exc:
            request.respond(exc.status, str(exc)[:120])
            return
        if method == "BYE":
            request.respond(200)
            self.bye(other(side))
            self.hang_up("bye", quiet=True)
            return
        if method == "INVITE" and self.leg(side).invite_pending:
            request.respond(491, "Request Pending")  # glare: ours on this leg is still open
            return
        if method == "REFER" and refer_here(self, request, side):
            return
        self.spawn(self._pass_request(request, side))

    async def _pass_request(self, request: IncomingRequest, side: Side) -> None:
        to = other(side)
        message = request.message
        method = message.method
        source_leg, target_leg = self.leg(side), self.leg(to)
        body = bytes(message.body or b"")
        content_type = message.headers.get("Content-Type")
        try:
            sdp = sdp_of(message)
        except RemoteProtocolError as exc:
            request.respond(exc.status, str(exc)[:120])
            return
        new_party = None
        if method == "INVITE":
            asserted = message.headers.get("P-Asserted-Identity")
            if asserted:
                aor, name = aor_of(asserted)
                if aor and aor != source_leg.aor:
                    new_party = (aor, name)
        if sdp is not None:
            self.learn_sdp(side, sdp)
            body = self.offer_for(to, sdp, source_leg.audio_index)
            content_type = SDP
        if method == "INFO" and side in self._user_sides_any():
            self._info_key(message)
        assert target_leg.dialog is not None
        out = target_leg.dialog.create_request(
            method, body, content_type if body else None, headers=copied(message, REQUEST_HEADERS)
        )
        if method == "INVITE":
            target_leg.invite_pending = True
        try:
            response = await self.ctx.endpoint.request(out, target_leg.remote, target_leg.transport)
        except (TimeoutError, OSError, ConnectionError) as exc:
            log.info("bridged call: %s on leg %s not answered: %s", method, to, exc)
            if not request.answered:
                request.respond(408 if isinstance(exc, TimeoutError) else 503)
            if method == "INVITE":
                target_leg.invite_pending = False
            return
        if method == "INVITE":
            target_leg.invite_pending = False
            if 200 <= response.code < 300:
                self.ctx.endpoint.send_ack(response, target_leg.dialog)
        answer_body = bytes(response.body or b"")
        answer_type = response.headers.get("Content-Type")
        try:
            answer = sdp_of(response) if 200 <= response.code < 300 else None
        except RemoteProtocolError:
            answer = None
        if answer is not None:
            self.learn_sdp(to, answer)
            answer_body = self.offer_for(side, answer, target_leg.audio_index)
            answer_type = SDP
        if 200 <= response.code < 300 and method in ("INVITE", "UPDATE"):
            interval = _session_interval(response)
            if interval is not None:
                self.session_interval = interval
            self._watch_session()  # a refresh
        if not request.answered:
            request.respond(
                response.code,
                response.phrase,
                headers=[
                    *([("Contact", self.ctx.contact)] if method in ("INVITE", "UPDATE") else []),
                    *copied(response, RESPONSE_HEADERS),
                    *copied(response, ("Event", "Subscription-State")),
                ],
                body=answer_body,
                content_type=answer_type if answer_body else None,
            )
        if 200 <= response.code < 300 and (sdp is not None or answer is not None or new_party):
            if new_party is not None:
                self.new_party(side, *new_party)
                await self.parties_changed(side)
            else:
                await self._update_recording()

    def _user_sides_any(self) -> set[Side]:
        recorded = self._recorded_parties()
        return {leg.side for leg in (self.a, self.b) if leg.party_id in recorded}

    def _info_key(self, message: Request) -> None:
        try:
            digit = parse_info_dtmf(message.headers.get("Content-Type"), message.body)
        except RemoteProtocolError:
            return
        if digit is not None:
            self.recording.info_digit(digit.digit, digit.duration_ms)

    # -- RFC 4028 -----------------------------------------------------------------
    def _watch_session(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.session_interval is None or self.ended:
            return
        # RFC 4028 section 10: without a refresh, end the session this long before
        # the interval runs out (the refresher had until then)
        interval = self.session_interval
        delay = interval - min(32, interval / 3)
        self.timer = self.ctx.calls.loop.call_later(delay, self._session_expired)

    def _session_expired(self) -> None:
        self.timer = None
        log.info("bridged call %s: session not refreshed; ending both legs", self.recording.uuid)
        self.hang_up("session-expired")

    # -- the end ------------------------------------------------------------------
    def bye(self, side: Side) -> None:
        self._bye_leg(self.leg(side))

    def _bye_leg(self, leg: Leg) -> None:
        if leg.dialog is None:
            return
        try:
            bye = leg.dialog.create_request("BYE")
        except LocalProtocolError:  # terminated already: nothing to end
            return
        leg.dialog.terminate()
        self.spawn(self._send_quietly(bye, leg))

    # -- the transferor's leg after a transfer -------------------------------------
    def retire(self, leg: Leg) -> None:
        """The party who transferred ends its leg itself after the NOTIFY with 200
        (RFC 5589 section 6.1); if it has not within ``RETIRED_BYE_S``, we do."""
        if leg.dialog is None:
            return
        self.retired[leg.dialog.call_id] = leg
        self.ctx.calls.loop.call_later(RETIRED_BYE_S, self._end_retired, leg.dialog.call_id)

    def _end_retired(self, call_id: str) -> None:
        leg = self.retired.pop(call_id, None)
        if leg is not None:
            self._bye_leg(leg)
            self.ctx.on_legs_changed(self)

    def retired_request(self, request: IncomingRequest) -> None:
        """A request on a retired leg: its BYE is welcome, anything else is too late."""
        message = request.message
        leg = self.retired.get(message.call_id or "")
        if message.method == "ACK":
            return
        if (
            leg is None
            or leg.dialog is None
            or not (
                message.from_address.parameters.get("tag") == leg.dialog.remote_tag
                and message.to_address.parameters.get("tag") == leg.dialog.local_tag
            )
        ):
            request.respond(481, "Call/Transaction Does Not Exist")
            return
        if message.method == "BYE":
            request.respond(200)
            leg.dialog.terminate()
            self.retired.pop(leg.dialog.call_id, None)
            self.ctx.on_legs_changed(self)
        elif message.method == "NOTIFY":
            request.respond(200)
        else:
            request.respond(481, "Call/Transaction Does Not Exist")

    async def _send_quietly(self, request: Request, leg: Leg) -> None:
        try:
            await self.ctx.endpoint.request(request, leg.remote, leg.transport)
        except (TimeoutError, OSError, ConnectionError, LocalProtocolError) as exc:
            log.info("%s to leg %s not answered: %s", request.method, leg.side, exc)

    def hang_up(self, reason: str, *, quiet: bool = False) -> None:
        """End the call on both legs (``quiet``: the leg that asked already knows)."""
        if self.ended:
            return
        if not quiet:
            self.bye("a")
            self.bye("b")
        for leg in list(self.retired.values()):
            self._bye_leg(leg)
        self.retired.clear()
        self.close(reason)

    def close(self, reason: str) -> None:
        if self.ended:
            return
        self.ended = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.coach is not None:
            self.coach.call_ended()  # BYE to the supervisor, the bridge off the relay
        self.relay.drain()  # what was sent before the BYE is relayed and recorded too
        self.recording.end(reason)  # unanswered: an empty journal the finisher drops
        self.relay.close()
        self.ctx.on_closed(self)
