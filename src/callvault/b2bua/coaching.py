"""Silent coaching in the B2BUA (SPEC section 7; the German manual's "Silent Coaching").

A supervisor joins a bridged call without a sound, two ways:

* dialling ``*98*<extension>`` (also ``%2A98%2A<extension>``) from their
  phone: an INVITE from a ``pbx``/``trunk`` source, taken before the call
  routes are looked at (``B2buaServer._new_call``). The supervisor is the
  From / P-Asserted-Identity AOR, matched by the directory inside the
  tenants the source may serve;
* from LiveCenter (``portal/live/coach_http.py``): callvault calls the
  supervisor's extension, routed like a call from the coached call's own
  PBX source, and joins them on answer.

Who may coach (``check_supervisor``, ``find_call``): an active user of the
tenant with role admin or listener and the coaching permission
(``User.can_coach``), in a tenant where the operator enabled coaching; a
listener only the calls of the members of the teams they lead
(``portal/visibility.py``'s rule). Every refusal names its reason
(``CoachingRefused``: an ``ErrorId``, one SIP status per id here, a Warning
text) and is audited; one supervisor per call at a time (486 / 409).

Media: a ``CoachingBridge`` (``media/conference.py``) mixes the supervisor
into the call's relay. The supervisor starts silent; their RFC 4733 digits
(reported by the bridge) and SIP INFO digits switch the mode as in the
manual's table: 1 talk to both parties, 2 whisper to the agent, 3 three-way
conference, 0 back to silent listening; other keys do nothing. The digits
go nowhere else: not to the other legs, not to the recording's live policy.

The end: the supervisor's BYE (or a failed answer) closes the bridge and
the relay forwards plainly again; the coached call's end BYEs the supervisor.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol
from urllib.parse import unquote

from sipmessage import URI, Address, Request

from callvault.b2bua.legs import SDP, Side, aor_of, sdp_of
from callvault.errors import ErrorId, LocalProtocolError, RemoteProtocolError
from callvault.media.codec import Codec
from callvault.media.mixer import CoachMode
from callvault.media.ports import PortsExhausted
from callvault.sip.dialog import Dialog
from callvault.sip.endpoint import IncomingRequest
from callvault.sip.sdp import SessionDescription
from callvault.siprec.info_dtmf import parse_info_dtmf
from callvault.tenants.directory import Directory, KnownUser

if TYPE_CHECKING:
    from callvault.b2bua.call import BridgeContext, BridgedCall
    from callvault.sources.registry import RecordingSource

log = logging.getLogger(__name__)

MODE_BY_DIGIT: dict[str, CoachMode] = {
    "0": "silent",
    "1": "customer",  # talk to the other party (the agent hears it too)
    "2": "whisper",  # the agent only
    "3": "conference",
}
COACHING_ROLES = frozenset({"admin", "listener"})
CODE = "*98*"
_EXTENSION = re.compile(r"[0-9A-Za-z_.+-]{1,32}")  # users.extension is String(32)
_G711 = frozenset({"pcmu", "pcma"})
_STATIC = {0: Codec("PCMU", 8000), 8: Codec("PCMA", 8000)}


def coaching_extension(user_part: str) -> str | None:
    """The extension of a Request-URI user part ``*98*<ext>`` (escaped or not), else None."""
    text = unquote(user_part) if "%" in user_part else user_part
    if not text.startswith(CODE):
        return None
    extension = text[len(CODE) :]
    return extension if _EXTENSION.fullmatch(extension) else ""  # "": no such extension


class CoachingRefused(Exception):
    """A coaching request that may not be served: why, for the Warning and the audit."""

    def __init__(self, error: ErrorId, why: str) -> None:
        super().__init__(why)
        self.error = error
        self.why = why

    @property
    def sip_status(self) -> int:
        """The SIP answer: 486 when someone else coaches the call, else 403 (with a Warning)."""
        return 486 if self.error is ErrorId.COACHING_BUSY else 403

    @property
    def sip_reason(self) -> str:
        return "Busy Here" if self.error is ErrorId.COACHING_BUSY else "Forbidden"


class CoachingMedia(Protocol):
    """The media side (``media.conference.CoachingBridge``), as the SIP side uses it."""

    on_digit: Callable[[str], None] | None

    async def open(self) -> int: ...

    def set_supervisor(self, host: str, port: int, codecs: dict[int, Codec]) -> None: ...

    def set_mode(self, mode: CoachMode) -> None: ...

    def close(self) -> None: ...

    def stats(self) -> dict[str, int]: ...


# (the coached call, the agent's leg, supervisor in the recording) -> its media bridge
MediaFactory = Callable[["BridgedCall", Side, bool], CoachingMedia]


def conference_bridge(
    call: BridgedCall, agent: Side, supervisor_in_recording: bool
) -> CoachingMedia:
    """The real bridge: the supervisor mixed into the call's relay."""
    from callvault.media.conference import CoachingBridge

    calls = call.ctx.calls
    bridge: CoachingMedia = CoachingBridge(
        calls.loop,
        call.relay,
        agent,
        calls.media_address,
        calls.ports,
        supervisor_in_recording=supervisor_in_recording,
    )
    return bridge


class Presences(Protocol):
    """LiveCenter's board (``live.board.LiveBoard``): who coaches which call."""

    def join(
        self, call_id: str, *, user_id: int, name: str, kind: Literal["listen", "coach"]
    ) -> Any: ...

    def leave(self, presence: Any) -> None: ...


# (tenant or None, actor, action, target, details) -> one audit row, written off the loop
Audit = Callable[[int | None, str, str, str | None, dict[str, Any]], None]


# -- who may coach whom -----------------------------------------------------------------
def warning(why: str) -> tuple[str, str]:
    """A ``Warning: 399`` header with ``why`` as a quoted string (RFC 3261 20.43)."""
    text = "".join(c if c.isprintable() and c not in '"\\' else "?" for c in why)[:200]
    return ("Warning", f'399 callvault "{text}"')


def check_supervisor(directory: Directory, tenant_id: int, supervisor: KnownUser) -> None:
    """The tenant's enablement and the supervisor's own permission; raises ``CoachingRefused``."""
    if not directory.policy(tenant_id).coaching_enabled:
        raise CoachingRefused(
            ErrorId.COACHING_NOT_ENABLED, "coaching is not enabled for the tenant"
        )
    if not supervisor.active:
        raise CoachingRefused(ErrorId.COACHING_NOT_PERMITTED, "not permitted: the user is inactive")
    if supervisor.role not in COACHING_ROLES:
        raise CoachingRefused(
            ErrorId.COACHING_NOT_PERMITTED,
            f"not permitted: role {supervisor.role} may not coach (admin or listener)",
        )
    if not supervisor.can_coach:
        raise CoachingRefused(
            ErrorId.COACHING_NOT_PERMITTED, "not permitted: the user has no coaching permission"
        )


def may_coach_user(directory: Directory, supervisor: KnownUser, agent: KnownUser) -> bool:
    """Admins every user of their tenant, listeners the members of the teams they lead."""
    if agent.tenant_id != supervisor.tenant_id or agent.id == supervisor.id:
        return False
    if supervisor.role == "admin":
        return True
    return agent.id in directory.members_led_by(supervisor.id)


@dataclass(frozen=True)
class Target:
    """A call a supervisor may coach, and on which leg its agent is."""

    call: BridgedCall
    agent: KnownUser
    agent_side: Side


def agent_side(call: BridgedCall, user_id: int) -> Side | None:
    """The leg of ``call`` whose party is the user ``user_id``."""
    for party in call.recording.parties:
        if party.user_id == user_id:
            for leg in (call.a, call.b):
                if leg.party_id == party.participant_id:
                    return leg.side
    return None


def mixable(call: BridgedCall) -> str | None:
    """Why the bridge cannot mix ``call`` (it mixes plain G.711 only), else None."""
    for leg in (call.a, call.b):
        if leg.sdp is None or leg.audio_index is None:
            return "the call has no audio to join"
        media = leg.sdp.media[leg.audio_index]
        if media.secure:
            return "the call's audio is SRTP end to end"
        first = next(
            (
                codec
                for pt in media.formats
                if (codec := media.rtpmap.get(pt) or _STATIC.get(pt)) is not None
                and codec.name.lower() != "telephone-event"
            ),
            None,
        )
        if first is None or first.name.lower() not in _G711:
            return "the call's audio is not G.711"
    return None


def find_call(calls: Iterable[BridgedCall], agent: KnownUser) -> Target:
    """The agent's current bridged call (answered, running); raises ``CoachingRefused``."""
    for call in calls:
        if not call.answered or call.ended or agent.tenant_id not in call.recording._tenants:
            continue
        side = agent_side(call, agent.id)
        if side is not None:
            why = mixable(call)
            if why is not None:
                raise CoachingRefused(ErrorId.COACHING_NOT_BRIDGED, why)
            return Target(call, agent, side)
    raise CoachingRefused(
        ErrorId.COACHING_NOT_BRIDGED,
        f"extension {agent.extension} is in no call callvault bridges",
    )


def _offered_codecs(media_formats: list[int], rtpmap: dict[int, Codec]) -> dict[int, Codec]:
    """The offer's G.711 payload types and telephone-event, in its order."""
    chosen: dict[int, Codec] = {}
    for pt in media_formats:
        codec = rtpmap.get(pt) or _STATIC.get(pt)
        if codec is None:
            continue
        name = codec.name.lower()
        if (name in _G711 and codec.clock_rate == 8000) or name == "telephone-event":
            chosen[pt] = codec
    return chosen


def supervisor_sdp(
    address: str,
    port: int,
    codecs: dict[int, Codec],
    *,
    session: int,
    version: int,
    declined: list[tuple[str, str, list[str]]] | None = None,
    audio_at: int = 0,
) -> bytes:
    """Our SDP to the supervisor: one sendrecv audio stream on the bridge's port.

    ``declined`` are the offer's other m-lines (media, proto, formats), answered
    with port 0 in their places (RFC 3264 section 6); ``audio_at`` is where the
    audio line goes among them.
    """
    family = "IP6" if ":" in address else "IP4"
    lines = [
        "v=0",
        f"o=callvault {session} {version} IN {family} {address}",
        "s=callvault coaching",
        f"c=IN {family} {address}",
        "t=0 0",
    ]
    others = list(declined or [])
    audio = [f"m=audio {port} RTP/AVP {' '.join(str(pt) for pt in codecs)}"]
    for pt, codec in codecs.items():
        audio.append(f"a=rtpmap:{pt} {codec.name}/{codec.clock_rate}")
        if codec.name.lower() == "telephone-event":
            audio.append(f"a=fmtp:{pt} 0-16")
    audio += ["a=ptime:20", "a=sendrecv"]
    for index in range(len(others) + 1):
        if index == audio_at:
            lines += audio
        else:
            media, proto, formats = others.pop(0)
            lines.append(f"m={media} 0 {proto} {' '.join(formats) or '0'}")
    return ("\r\n".join(lines) + "\r\n").encode()


def _stream_of(sdp: SessionDescription) -> tuple[int, str, int, dict[int, Codec]]:
    """(m-line index, host, port, codecs) of the supervisor's audio; RemoteProtocolError: 488."""
    for index, media in enumerate(sdp.media):
        if media.media != "audio" or media.port == 0:
            continue
        if media.secure:
            raise RemoteProtocolError("coaching takes plain RTP only", status=488)
        codecs = _offered_codecs(media.formats, media.rtpmap)
        if not any(c.name.lower() in _G711 for c in codecs.values()):
            raise RemoteProtocolError("coaching needs G.711 (PCMU or PCMA)", status=488)
        host = media.connection or ""
        return index, host, media.port, codecs
    raise RemoteProtocolError("the offer has no audio stream", status=488)


def _declined(sdp: SessionDescription, audio_at: int) -> list[tuple[str, str, list[str]]]:
    return [
        (m.media, m.proto, m.raw_formats or [str(pt) for pt in m.formats])
        for i, m in enumerate(sdp.media)
        if i != audio_at
    ]


# -- one supervisor on one call ---------------------------------------------------------
class CoachingSession:
    """A supervisor's dialog with callvault and the bridge that mixes them into the call."""

    def __init__(
        self,
        desk: CoachingDesk,
        target: Target,
        supervisor: KnownUser,
        *,
        via: Literal["code", "livecenter"],
        remote: tuple[str, int],
        transport: str,
    ) -> None:
        self.desk = desk
        self.call = target.call
        self.agent = target.agent
        self.agent_side = target.agent_side
        self.supervisor = supervisor
        self.tenant_id = supervisor.tenant_id
        self.via = via
        self.remote = remote
        self.transport = transport
        self.call_id = ""  # the supervisor's dialog's Call-ID, once known
        self.dialog: Dialog | None = None
        self.mode: CoachMode = "silent"
        self.media: CoachingMedia | None = None
        self.presence: Any = None
        self.tag = secrets.token_hex(8)
        self.sdp_session = int(time.time()) & 0xFFFFFFFF
        self.sdp_version = 1
        self.started = time.monotonic()
        self.joined = False
        self.ended = False
        self.outgoing: Request | None = None  # LiveCenter: our INVITE to the supervisor
        self.local_port = 0  # the bridge's port facing the supervisor

    @property
    def actor(self) -> str:
        return f"user:{self.supervisor.id}"

    def _audit(self, action: str, **details: Any) -> None:
        self.desk.audit(self.tenant_id, self.actor, action, self.call.recording.uuid, details)

    async def _open_media(self) -> int:
        policy = self.desk.ctx.calls.directory().policy(self.tenant_id)
        media = self.desk.media_factory(self.call, self.agent_side, policy.supervisor_in_recording)
        self.media = media
        media.on_digit = self.digit
        self.local_port = await media.open()
        media.set_mode("silent")
        return self.local_port

    def _learn(self, host: str, port: int, codecs: dict[int, Codec]) -> None:
        if self.media is not None:
            self.media.set_supervisor(host or self.remote[0], port, codecs)

    # -- *98*<ext>: we answer the supervisor's INVITE ----------------------------------
    async def answer(self, invite: IncomingRequest) -> None:
        message = invite.message
        self.call_id = message.call_id or ""
        try:
            offer = sdp_of(message)
            if offer is None:
                raise RemoteProtocolError("INVITE without an SDP offer", status=488)
            audio_at, host, port, codecs = _stream_of(offer)
            local_port = await self._open_media()
        except RemoteProtocolError as exc:
            self._refuse_invite(invite, exc.status, str(exc))
            return
        except (OSError, PortsExhausted) as exc:
            log.warning("coaching %s: no media port: %s", self.call_id, exc)
            self._refuse_invite(invite, 503, "out of media ports")
            return
        if self.ended or self.call.ended:  # the coached call ended while the port opened
            self._refuse_invite(invite, 487 if self.ended else 480, "the coached call has ended")
            return
        self._learn(host, port, codecs)
        self.dialog = Dialog.from_incoming_invite(message, self.tag, self.desk.ctx.contact)
        invite.on_ack_timeout = lambda: self.end("ack-timeout")
        invite.respond(
            200,
            "OK",
            headers=[("Contact", self.desk.ctx.contact)],
            body=self._answer_sdp(offer, audio_at, local_port, codecs),
            content_type=SDP,
            to_tag=self.tag,
        )
        self._joined()

    def _refuse_invite(self, invite: IncomingRequest, status: int, why: str) -> None:
        if not invite.answered:
            invite.respond(status, why[:120], headers=[warning(why)], to_tag=self.tag)
        self.end("failed", bye=False)

    # -- LiveCenter: we call the supervisor ---------------------------------------------
    async def call_out(self, uri: URI, to: str) -> None:
        contact = self.desk.ctx.contact
        self.call_id = secrets.token_hex(12) + "@callvault"
        self.desk.index(self)
        try:
            local_port = await self._open_media()
        except (OSError, PortsExhausted) as exc:
            log.warning("coaching %s: no media port: %s", self.call_id, exc)
            self.end("failed", bye=False)
            return
        codecs = {**_STATIC, 101: Codec("telephone-event", 8000)}
        request = Request(method="INVITE", uri=uri)
        headers = request.headers
        host = self.desk.ctx.calls.media_address
        agent = self.agent.name.replace('"', "")[:60]
        headers.add("From", f'"Coaching {agent}" <sip:coaching@{host}>;tag={self.tag}')
        headers.add("To", to)
        headers.add("Call-ID", self.call_id)
        headers.add("CSeq", "1 INVITE")
        headers.add("Contact", contact)
        headers.add("Content-Type", SDP)
        request.body = supervisor_sdp(
            host, local_port, codecs, session=self.sdp_session, version=self.sdp_version
        )
        self.outgoing = request
        try:
            response = await self.desk.ctx.endpoint.request(request, self.remote, self.transport)
        except (TimeoutError, OSError, ConnectionError) as exc:
            log.info("coaching %s: the supervisor's phone did not answer: %s", self.call_id, exc)
            self.end("no-answer", bye=False)
            return
        if not 200 <= response.code < 300:
            self.end(f"refused-{response.code}", bye=False)
            return
        try:
            self.dialog = Dialog.from_outgoing_invite(request, response)
        except RemoteProtocolError as exc:
            log.info("coaching %s: the supervisor's 2xx is unusable: %s", self.call_id, exc)
            self.end("failed", bye=False)
            return
        self.desk.ctx.endpoint.send_ack(response, self.dialog)
        if self.ended:  # the coached call ended while the phone rang
            self._bye()
            return
        try:
            answer = sdp_of(response)
            if answer is None:
                raise RemoteProtocolError("2xx without an SDP answer", status=488)
            _at, peer_host, peer_port, peer_codecs = _stream_of(answer)
        except RemoteProtocolError as exc:
            log.info("coaching %s: the supervisor's answer is unusable: %s", self.call_id, exc)
            self.end("failed")
            return
        self._learn(peer_host, peer_port, peer_codecs)
        self._joined()

    def _joined(self) -> None:
        self.joined = True
        self.started = time.monotonic()
        board = self.desk.ctx.live
        if board is not None:
            try:
                self.presence = board.join(
                    self.call.recording.uuid,
                    user_id=self.supervisor.id,
                    name=self.supervisor.name,
                    kind="coach",
                )
            except LookupError:  # the board lost the call (it ended just now)
                self.presence = None
        self._audit(
            "coach.joined",
            via=self.via,
            agent_user_id=self.agent.id,
            extension=self.agent.extension,
        )
        log.info(
            "coaching: user %s joined call %s (agent %s) silently",
            self.supervisor.id,
            self.call.recording.uuid,
            self.agent.id,
        )

    # -- the supervisor's keys ----------------------------------------------------------
    def digit(self, key: str) -> None:
        """A key from the supervisor: a mode of the manual's table, or nothing."""
        mode = MODE_BY_DIGIT.get(key)
        if mode is None or self.ended or mode == self.mode:
            return
        self.mode = mode
        if self.media is not None:
            self.media.set_mode(mode)
        self._audit("coach.mode", mode=mode, key=key)

    # -- in the supervisor's dialog -----------------------------------------------------
    def matches(self, request: IncomingRequest) -> bool:
        dialog = self.dialog
        if dialog is None:
            return False
        message = request.message
        return (
            message.call_id == dialog.call_id
            and message.from_address.parameters.get("tag") == dialog.remote_tag
            and message.to_address.parameters.get("tag") == dialog.local_tag
        )

    def in_dialog(self, request: IncomingRequest) -> None:
        message = request.message
        method = message.method
        if method == "ACK":
            return
        if self.ended or not self.matches(request):
            request.respond(481, "Call/Transaction Does Not Exist")
            return
        assert self.dialog is not None
        try:
            self.dialog.validate_request(message)
        except RemoteProtocolError as exc:
            request.respond(exc.status, str(exc)[:120])
            return
        if method == "BYE":
            request.respond(200)
            self.dialog.terminate()
            self.end("bye", bye=False)
        elif method == "INFO":
            try:
                found = parse_info_dtmf(message.headers.get("Content-Type"), message.body)
            except RemoteProtocolError as exc:
                request.respond(exc.status, str(exc)[:120])
                return
            request.respond(200)
            if found is not None:
                self.digit(found.digit)  # never to the recording's policy
        elif method in ("INVITE", "UPDATE"):
            self._reoffer(request)
        elif method in ("OPTIONS", "NOTIFY"):
            request.respond(200)
        else:
            request.respond(405, "Method Not Allowed", headers=[("Allow", ALLOW)])

    def _answer_sdp(
        self, offer: SessionDescription, audio_at: int, port: int, codecs: dict[int, Codec]
    ) -> bytes:
        """Our answer to the supervisor's (re-)offer: the bridge's port for its audio."""
        return supervisor_sdp(
            self.desk.ctx.calls.media_address,
            port,
            codecs,
            session=self.sdp_session,
            version=self.sdp_version,
            declined=_declined(offer, audio_at),
            audio_at=audio_at,
        )

    def _reoffer(self, request: IncomingRequest) -> None:
        """A re-INVITE or UPDATE (hold, a new address): follow it, same port back."""
        try:
            offer = sdp_of(request.message)
        except RemoteProtocolError as exc:
            request.respond(exc.status, str(exc)[:120])
            return
        if offer is None:  # a refresh without SDP
            request.respond(200, headers=[("Contact", self.desk.ctx.contact)])
            return
        try:
            audio_at, host, port, codecs = _stream_of(offer)
        except RemoteProtocolError as exc:
            request.respond(exc.status, str(exc)[:120])
            return
        media = offer.media[audio_at]
        holding = media.paused or media.direction in ("sendonly", "inactive")
        if not holding:
            self._learn(host, port, codecs)
        self.sdp_version += 1
        request.respond(
            200,
            headers=[("Contact", self.desk.ctx.contact)],
            body=self._answer_sdp(offer, audio_at, self.local_port, codecs),
            content_type=SDP,
        )

    # -- the end ------------------------------------------------------------------------
    def call_ended(self) -> None:
        """The coached call ended: the supervisor's phone is hung up too."""
        self.end("call-ended")

    def _bye(self) -> None:
        dialog = self.dialog
        if dialog is None:
            return
        try:
            bye = dialog.create_request("BYE")
        except LocalProtocolError:
            return
        dialog.terminate()
        self.desk.spawn(self._send_quietly(bye))

    async def _send_quietly(self, request: Request) -> None:
        try:
            await self.desk.ctx.endpoint.request(request, self.remote, self.transport)
        except (TimeoutError, OSError, ConnectionError) as exc:
            log.info("coaching %s: %s not answered: %s", self.call_id, request.method, exc)

    def end(self, reason: str, *, bye: bool = True) -> None:
        """The supervisor leaves (``bye``: tell their phone); idempotent."""
        if self.ended:
            return
        self.ended = True
        if bye:
            self._bye()
        if self.outgoing is not None and self.dialog is None and reason == "call-ended":
            self.desk.spawn(self._cancel(self.outgoing))
        if self.media is not None:
            self.media.close()
        if self.call.coach is self:
            self.call.coach = None
        board = self.desk.ctx.live
        if board is not None and self.presence is not None:
            board.leave(self.presence)
        self.desk.forget(self)
        if self.joined:
            self._audit(
                "coach.left",
                reason=reason,
                seconds=round(time.monotonic() - self.started, 1),
                last_mode=self.mode,
            )

    async def _cancel(self, request: Request) -> None:
        try:
            await self.desk.ctx.endpoint.cancel(request, self.remote, self.transport)
        except (TimeoutError, OSError, ConnectionError) as exc:
            log.info("coaching %s: CANCEL not answered: %s", self.call_id, exc)


ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, UPDATE, NOTIFY"


@dataclass(frozen=True)
class CoachStarted:
    """LiveCenter's answer: callvault is calling the supervisor's phone."""

    call_id: str  # the coached call (its uuid)
    agent_user_id: int
    extension: str  # the supervisor's, which callvault calls


# -- the B2BUA's coaching desk ----------------------------------------------------------
class CoachingDesk:
    """Coaching requests in, sessions by the supervisor's Call-ID (``B2buaServer`` asks)."""

    def __init__(
        self,
        ctx: BridgeContext,
        calls: Callable[[], Iterable[BridgedCall]],
        spawn: Callable[[Any], None],
    ) -> None:
        self.ctx = ctx
        self.calls = calls
        self.spawn = spawn
        self.sessions: dict[str, CoachingSession] = {}

    @property
    def media_factory(self) -> MediaFactory:
        return self.ctx.coaching_media

    def audit(
        self,
        tenant_id: int | None,
        actor: str,
        action: str,
        target: str | None,
        details: dict[str, Any],
    ) -> None:
        try:
            self.ctx.audit(tenant_id, actor, action, target, details)
        except Exception:  # an audit row must never take a call down
            log.exception("coaching: audit %s not written", action)

    def owns(self, call_id: str) -> bool:
        return call_id in self.sessions

    def index(self, session: CoachingSession) -> None:
        self.sessions[session.call_id] = session

    def forget(self, session: CoachingSession) -> None:
        if self.sessions.get(session.call_id) is session:
            del self.sessions[session.call_id]

    def handle(self, request: IncomingRequest) -> None:
        session = self.sessions[request.message.call_id or ""]
        session.in_dialog(request)

    # -- *98*<ext> ---------------------------------------------------------------------
    def invite(self, request: IncomingRequest, source: RecordingSource, extension: str) -> None:
        """A coaching request from a phone: checked, refused (audited) or answered silent."""
        message = request.message
        aor, _name = aor_of(
            message.headers.get("P-Asserted-Identity") or message.headers.get("From")
        )
        directory = self.ctx.calls.directory()
        match = directory.match(aor)
        tenant_id = match.tenant_id if match.tenant_id in source.tenant_ids else None
        supervisor = match.user if tenant_id is not None else None
        try:
            if supervisor is None or tenant_id is None:
                raise CoachingRefused(
                    ErrorId.COACHING_NOT_PERMITTED, f"not permitted: {aor} is no user of callvault"
                )
            target = self.target(directory, supervisor, extension)
        except CoachingRefused as refused:
            self._refused(request, refused, tenant_id, supervisor, aor, extension)
            return
        session = CoachingSession(
            self, target, supervisor, via="code", remote=request.remote,
            transport=request.transport,
        )  # fmt: skip
        target.call.coach = session  # reserved now: a second supervisor gets 486
        session.call_id = message.call_id or ""
        self.index(session)
        self.spawn(session.answer(request))

    def target(self, directory: Directory, supervisor: KnownUser, extension: str) -> Target:
        """The call of ``extension`` that ``supervisor`` may coach now, or ``CoachingRefused``."""
        tenant_id = supervisor.tenant_id
        check_supervisor(directory, tenant_id, supervisor)
        agent = directory.by_extension.get((tenant_id, extension))
        if agent is None:
            raise CoachingRefused(
                ErrorId.COACHING_NO_EXTENSION, f"no such extension {extension}".rstrip()
            )
        if not may_coach_user(directory, supervisor, agent):
            raise CoachingRefused(
                ErrorId.COACHING_NOT_PERMITTED,
                f"not permitted: extension {extension} is not in a team the user leads",
            )
        target = find_call(self.calls(), agent)
        self._not_busy(target.call)
        return target

    @staticmethod
    def _not_busy(call: BridgedCall) -> None:
        if call.coach is not None:
            raise CoachingRefused(ErrorId.COACHING_BUSY, "the call is already being coached")

    def _refused(
        self,
        request: IncomingRequest,
        refused: CoachingRefused,
        tenant_id: int | None,
        supervisor: KnownUser | None,
        aor: str | None,
        extension: str,
    ) -> None:
        log.info("coaching request from %s for %s refused: %s", aor, extension, refused.why)
        actor = f"user:{supervisor.id}" if supervisor is not None else f"sip:{aor or '?'}"[:200]
        self.audit(
            tenant_id,
            actor,
            "coach.refused",
            None,
            {"error": refused.error.value, "why": refused.why, "extension": extension},
        )
        request.respond(refused.sip_status, refused.sip_reason, headers=[warning(refused.why)])

    # -- LiveCenter ---------------------------------------------------------------------
    def call_supervisor(self, tenant_id: int, call_uuid: str, supervisor_id: int) -> CoachStarted:
        """LiveCenter's coach button: check, then call the supervisor's phone.

        Raises ``CoachingRefused`` (the HTTP edge answers its ``ErrorId``; it
        audits the request). A call of ``tenant_id`` not running or not
        bridged is ``COACHING_NOT_BRIDGED``; the caller has checked that the
        call is visible to the supervisor at all.
        """
        directory = self.ctx.calls.directory()
        supervisor = directory.user(supervisor_id)
        if supervisor is None or supervisor.tenant_id != tenant_id:
            raise CoachingRefused(ErrorId.COACHING_NOT_PERMITTED, "not permitted: no such user")
        check_supervisor(directory, tenant_id, supervisor)
        call = next(
            (c for c in self.calls() if c.recording.uuid == call_uuid and not c.ended), None
        )
        if call is None or not call.answered or tenant_id not in call.recording._tenants:
            raise CoachingRefused(
                ErrorId.COACHING_NOT_BRIDGED, "the call is not one callvault bridges"
            )
        target = self._agent_of(directory, supervisor, call)
        why = mixable(call)
        if why is not None:
            raise CoachingRefused(ErrorId.COACHING_NOT_BRIDGED, why)
        self._not_busy(call)
        extension = supervisor.extension
        if not extension:
            raise CoachingRefused(ErrorId.COACHING_NO_PHONE, "the supervisor has no extension")
        route = self.ctx.routes().lookup(call.source.id, None, extension)
        if route is None:
            raise CoachingRefused(
                ErrorId.COACHING_NO_PHONE,
                f"no call route from source {call.source.name} to extension {extension}",
            )
        host = _domain_of(directory, supervisor) or route.target.host
        uri = URI.parse(f"sip:{extension}@{_host_port(route.target.host, route.target.port)}")
        to = str(Address(uri=URI.parse(f"sip:{extension}@{host}"), name=supervisor.name))
        session = CoachingSession(
            self, target, supervisor, via="livecenter",
            remote=(route.target.host, route.target.port), transport=route.target.transport,
        )  # fmt: skip
        call.coach = session
        self.spawn(session.call_out(uri, to))
        return CoachStarted(call.recording.uuid, target.agent.id, extension)

    def _agent_of(self, directory: Directory, supervisor: KnownUser, call: BridgedCall) -> Target:
        """The user of the call the supervisor coaches: the recorded user first."""
        parties = sorted(call.recording.parties, key=lambda p: p.side != "user")
        visible = False
        for party in parties:
            agent = directory.user(party.user_id) if party.user_id is not None else None
            if agent is None or not may_coach_user(directory, supervisor, agent):
                continue
            visible = True
            side = agent_side(call, agent.id)
            if side is not None:
                return Target(call, agent, side)
        raise CoachingRefused(
            ErrorId.COACHING_NOT_PERMITTED if not visible else ErrorId.COACHING_NOT_BRIDGED,
            "not permitted: no party of the call is in a team the user leads"
            if not visible
            else "the call's user is on no leg callvault bridges",
        )

    def close(self) -> None:
        for session in list(self.sessions.values()):
            session.end("shutdown")


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _domain_of(directory: Directory, user: KnownUser) -> str | None:
    """A domain of the user's tenant (for the To header), if it has one."""
    return next(
        (domain for domain, t in directory.tenant_by_domain.items() if t == user.tenant_id), None
    )
