"""One SIPREC recording session (RFC 7866) from INVITE to BYE.

Owns the call's spool, its RTP receivers and ports, and the latest SDP and
metadata. Every change (streams, parties, pause, DTMF, end) is journalled so
the finisher and the policy engine can replay the call without SIP.

The policy runs live (``policy/live.py``): each recorded user of a tenant the
call's source may record for gets a recording slot; the slots' capture gate
decides what of the buffered audio reaches the spool at each flush. A call in
which nobody can be recorded, now or after a key press, gets its streams
declined in the answer (port 0), so no media flows at all.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from callvault.media.dtmf import DtmfDigit
from callvault.media.inband_dtmf import DETECTOR_VERSION
from callvault.media.live_keys import InbandKeyListener
from callvault.media.ports import BIND_ATTEMPTS, PortsExhausted, RtpPortPool
from callvault.media.receiver import RtpReceiver, RtpStreamSet
from callvault.media.srtp import SrtpStreamDecryptor
from callvault.policy.live import LivePolicy, RecordingSlot
from callvault.policy.modes import InvalidShortCode, Mode, ShortCode
from callvault.recording.journal import (
    Answer,
    Capture,
    Channel,
    Dtmf,
    End,
    InbandListened,
    JournalEvent,
    Parties,
    Party,
    Pause,
    PolicySnapshot,
    RecordingRef,
    RecordNow,
    Resume,
    Start,
    StreamLayout,
    Streams,
)
from callvault.recording.policy_apply import contact_rule
from callvault.recording.ready_spools import ReadySpools
from callvault.sip.sdp import SessionDescription, choose_codecs, choose_crypto
from callvault.siprec.metadata import RecordingMetadata
from callvault.siprec.offer import associate_streams
from callvault.sources.registry import SourceRegistry, SourceUsages
from callvault.tenants.directory import Directory, Match

if TYPE_CHECKING:
    from callvault.sip.dialog import Dialog
    from callvault.sip.session_timer import SessionTimer

log = logging.getLogger(__name__)


@dataclass
class CallContext:
    """What a recorded call needs from the application (the composition root)."""

    loop: asyncio.AbstractEventLoop
    spool_root: Path
    media_address: str
    ports: RtpPortPool
    directory: Callable[[], Directory]
    on_ended: Callable[[RecordedCall], None]
    sources: Callable[[], SourceRegistry] = SourceRegistry  # default: none registered
    # told of every change LiveCenter shows: answer, capture, parties, end
    on_changed: Callable[[RecordedCall], None] = lambda call: None
    usages: SourceUsages = field(default_factory=SourceUsages)
    calls: dict[str, RecordedCall] = field(default_factory=dict)  # by SIP Call-ID
    # new calls' spools, made ahead off the loop by a running server
    spools: ReadySpools = field(init=False)
    spools_ahead: int = 0  # how many (recording/ready_spools.py DEPTH); 0: made when taken

    def __post_init__(self) -> None:
        self.spools = ReadySpools(self.spool_root, self.spools_ahead)


class StreamBinder(Protocol):
    """Where a call's streams come from when it opens no socket of its own: the
    B2BUA's relay taps each leg's packets into the stream's receiver."""

    def bind(self, index: int, receiver: RtpReceiver) -> int:
        """Feed stream ``index`` to ``receiver``; return the port it arrives on."""

    def unbind(self, index: int) -> None: ...


@dataclass
class ActiveStream:
    layout: StreamLayout
    port: int
    receiver: RtpReceiver
    keys: InbandKeyListener | None = None  # live in-band detection, when keys matter
    srtp_key: bytes | None = None  # the sender's SDES master key and salt, if SRTP


class RecordedCall:
    def __init__(self, ctx: CallContext, sip_call_id: str) -> None:
        self.ctx = ctx
        self.uuid, self.spool = ctx.spools.take()
        self.sip_call_id = sip_call_id
        self.local_tag = secrets.token_hex(8)
        self.lock = asyncio.Lock()
        self.t0 = ctx.loop.time()
        self.started_at_ms = int(time.time() * 1000)
        self.streams: dict[int, ActiveStream] = {}
        self.media = RtpStreamSet(ctx.loop, ctx.media_address, ctx.ports)
        self.metadata: RecordingMetadata | None = None
        self.sdp: SessionDescription | None = None
        self.parties: list[Party] = []
        self.tenant_id: int | None = None
        self.recorded_user_id: int | None = None
        self.policy: PolicySnapshot | None = None
        self.not_recorded_reason = "no party belongs to a tenant"
        self.dialog: Dialog | None = None
        self.ended = False
        self.sdp_version = 1
        self.timer_handle: asyncio.TimerHandle | None = None
        self.final_stats: dict[str, int] = {}
        self.timer: SessionTimer | None = None
        self.remote: tuple[str, tuple[str, int]] | None = None  # transport, address
        self.source_id: int | None = None  # the registered recording source
        self.reserved_streams = 0  # media lines held against the source's limit
        self.on_release: Callable[[], None] | None = None  # gives the source's share back
        self.allowed_tenants: frozenset[int] | None = None  # None: any (no registry)
        # B2BUA calls: the relay owns the sockets and feeds the receivers (see _open)
        self.stream_binder: StreamBinder | None = None
        self.on_capture: Callable[[int, bool], None] | None = None  # announcements
        self.live = LivePolicy(on_gate=self._gate_changed)
        self.slots: list[tuple[RecordingSlot, PolicySnapshot]] = []
        self._tenants: set[int] = set()  # tenants the parties belong to
        self._keys: dict[str, str] = {}  # participant id -> its recording's key
        self.declined = False  # streams declined: nobody can be recorded
        self.answered_ms: int | None = None  # on the call's clock (``now_ms``)
        self.bridged = False  # a B2BUA call (LiveCenter: coaching is possible)
        self._listening = False  # some stream's in-band keys are listened to

    def _gate_changed(self, t: int, is_open: bool) -> None:
        self.spool.record(Capture(t=t, open=is_open))
        if self.on_capture is not None:
            self.on_capture(t, is_open)
        self.ctx.on_changed(self)

    # -- clock -------------------------------------------------------------
    def now_ms(self) -> int:
        return int((self.ctx.loop.time() - self.t0) * 1000)

    def _journal(self, event: JournalEvent) -> None:
        self.spool.record(event)

    # -- parties -------------------------------------------------------------
    def _match_parties(self, metadata: RecordingMetadata | None) -> None:
        """Match participants to users; the first recording-listed user is "the user"."""
        directory = self.ctx.directory()
        parties: list[Party] = []
        tenant_id: int | None = None
        recorded_user: int | None = None
        recorded_pid: str | None = None
        self.not_recorded_reason = "no party belongs to a tenant"
        self._tenants = set()
        for participant in metadata.participants if metadata else ():
            aor = participant.aors[0] if participant.aors else None
            match = self._allowed(directory.match(aor))
            if match.tenant_id is not None:
                self._tenants.add(match.tenant_id)
            user = match.user
            if user is not None and user.recorded and recorded_user is None:
                if user.tenant_id in directory.suspended:
                    self.not_recorded_reason = "the tenant is suspended"
                elif not directory.policy(user.tenant_id).recording_enabled:
                    self.not_recorded_reason = "the operator has not enabled recording"
                elif not directory.policy(user.tenant_id).active:
                    self.not_recorded_reason = "the tenant has not accepted the legal notice"
                else:
                    recorded_user, recorded_pid = user.id, participant.id
                    tenant_id = user.tenant_id
            if tenant_id is None and match.tenant_id is not None and recorded_user is None:
                tenant_id = match.tenant_id
                self.not_recorded_reason = "no party is a user on the recording list"
            parties.append(
                Party(
                    participant_id=participant.id,
                    aor=aor,
                    name=participant.name,
                    number=match.number,
                    user_id=user.id if user else None,
                )
            )
        self.parties = [
            replace(p, side="user" if p.participant_id == recorded_pid else "other")
            for p in parties
        ]
        self.tenant_id = tenant_id
        self.recorded_user_id = recorded_user
        self.policy = self._policy_snapshot(directory) if recorded_user is not None else None
        self.slots = self._slots(directory)

    def _allowed(self, match: Match) -> Match:
        """A party of a tenant this call's source may not record for is nobody's."""
        if match.tenant_id is None or self.allowed_tenants is None:
            return match
        if match.tenant_id in self.allowed_tenants:
            return match
        return Match(None, None, match.number)

    def _slots(self, directory: Directory) -> list[tuple[RecordingSlot, PolicySnapshot]]:
        """One recording per recorded user of an active tenant, with its policy.

        Keys are ``<tenant>.<rank>``, rank the user's order among the tenant's
        recorded users in this call, so a transfer keeps its recording."""
        present = {p.participant_id for p in self.parties}
        slots: list[tuple[RecordingSlot, PolicySnapshot]] = []
        for party in self.parties:
            known = directory.user(party.user_id) if party.user_id is not None else None
            if known is None or not known.recorded:
                continue
            tenant = known.tenant_id
            if tenant in directory.suspended or not directory.policy(tenant).active:
                continue
            settings = directory.policy(tenant)
            snapshot = PolicySnapshot.of(
                settings.short_code,
                settings.pause_mode,
                settings.channels,
                {str(known.id): known.mode},
                {str(known.id): directory.contacts.get(known.id, {})},
            )
            try:
                mode, code = Mode(known.mode), ShortCode.parse(settings.short_code)
            except (ValueError, InvalidShortCode):
                mode, code = Mode.NEVER, ShortCode()
            slot = RecordingSlot(
                key=self._slot_key(tenant, party.participant_id, present),
                tenant_id=tenant,
                user_id=known.id,
                participant_id=party.participant_id,
                mode=mode,
                code=code,
                contact_rule=contact_rule(snapshot, known.id, self.parties),
            )
            slots.append((slot, snapshot))
        return slots

    def _slot_key(self, tenant: int, participant_id: str, present: set[str]) -> str:
        """A recording's key, stable while its user is in the call: a participant
        keeps its key; a new one takes over the key of a participant of the same
        tenant who left (a transfer: one conversation), else the next rank."""
        key = self._keys.get(participant_id)
        if key is not None and key.startswith(f"{tenant}."):
            return key
        taken = {k for pid, k in self._keys.items() if pid in present}
        mine = [k for k in self._keys.values() if k.startswith(f"{tenant}.")]
        free = sorted(set(mine) - taken, key=lambda k: int(k.split(".")[1]))
        key = free[0] if free else f"{tenant}.{len(set(mine))}"
        for pid in [pid for pid, k in self._keys.items() if k == key]:
            del self._keys[pid]
        self._keys[participant_id] = key
        return key

    def _listening_tenants(self, directory: Directory) -> bool:
        """Whether a tenant of the call lets LiveCenter listen or record now."""
        return any(directory.policy(t).listening_enabled for t in self._tenants)

    def _nobody_recordable(self) -> bool:
        """True when no party can be recorded now or later in the call: the call's
        parties are known (a tenant matched), no recording slot may keep audio, and
        no tenant of the call enabled LiveCenter (listen, record now)."""
        if not self._tenants:
            return False  # unknown parties: later metadata may name a recorded user
        if any(slot.may_record for slot, _ in self.slots):
            return False
        return not self._listening_tenants(self.ctx.directory())

    def _policy_snapshot(self, directory: Directory) -> PolicySnapshot:
        """The policy in force now, journalled so the finisher needs no database."""
        assert self.tenant_id is not None
        tenant = directory.policy(self.tenant_id)
        modes: dict[str, str] = {}
        contacts: dict[str, dict[str, list[str]]] = {}
        for party in self.parties:
            if party.user_id is None:
                continue
            known = directory.user(party.user_id)
            if known is not None and known.recorded:
                modes[str(party.user_id)] = known.mode
                contacts[str(party.user_id)] = directory.contacts.get(party.user_id, {})
        return PolicySnapshot.of(
            tenant.short_code, tenant.pause_mode, tenant.channels, modes, contacts
        )

    def _party_data(self) -> dict[str, Any]:
        """The keys ``start`` and ``parties`` share (``journal.PartyState``)."""
        return {
            "parties": tuple(self.parties),
            "tenant_id": self.tenant_id,
            "recorded_user_id": self.recorded_user_id,
            "policy": self.policy,
            "not_recorded_reason": None if self.recorded_user_id else self.not_recorded_reason,
            # every tenant a party belongs to: each lists the call, recorded or not
            "tenants": tuple(sorted(self._tenants)),
            "recordings": tuple(
                RecordingRef(slot.key, slot.tenant_id, slot.user_id, slot.participant_id, snapshot)
                for slot, snapshot in self.slots
            ),
        }

    # -- streams ---------------------------------------------------------------
    def _channel(self, sender: str | None, audio_lines: int) -> Channel:
        if audio_lines == 1:
            return "mix"
        user = next((p for p in self.parties if p.side == "user"), None)
        if sender is not None and user is not None and sender == user.participant_id:
            return "left"
        return "right"

    def _layouts(self, sdp: SessionDescription) -> dict[int, StreamLayout]:
        owners = associate_streams(sdp, self.metadata)
        chosen = {i: choose_codecs(m) for i, m in enumerate(sdp.media) if m.media == "audio"}
        audio = [i for i, codecs in chosen.items() if codecs]
        layouts = {}
        for index in audio:
            media = sdp.media[index]
            sender = owners.get(index)
            layouts[index] = StreamLayout(
                index=index,
                label=media.label,
                codecs=chosen[index],
                channel=self._channel(sender, len(audio)),
                participant_id=sender,
                active=not media.paused,
            )
        return layouts

    async def _open(self, index: int, layout: StreamLayout) -> ActiveStream:
        """Open a receiver for m-line ``index`` on the next free pool port; ports
        another process holds are skipped."""
        events = frozenset(
            pt for pt, c in layout.codecs.items() if c.name.lower() == "telephone-event"
        )

        def on_dtmf(digit: DtmfDigit, index: int = index) -> None:
            self._live_key(digit, index)
            self.spool.record(
                Dtmf(
                    t=digit.start_ms,
                    stream=index,
                    digit=digit.digit,
                    duration_ms=digit.duration_ms,
                    source=digit.source,
                )
            )

        def new_receiver() -> RtpReceiver:
            return RtpReceiver(
                self.spool.stream(index),
                self.now_ms,
                on_dtmf,
                events,
                stream_index=index,
                expected_host=self._sender_host(index),
                unprotect=self._decryptor(index),
            )

        if self.stream_binder is not None:
            receiver = new_receiver()
            self.media.attach(index, receiver)
            port = self.stream_binder.bind(index, receiver)
            return ActiveStream(layout, port, receiver, srtp_key=self._srtp_key(index))
        for _attempt in range(BIND_ATTEMPTS):
            port = self.ctx.ports.acquire()  # raises PortsExhausted
            receiver = new_receiver()
            try:
                await self.media.add(index, port, receiver)
            except OSError as exc:
                # not given back: it stays out of the pool while someone else holds it
                log.warning("RTP port %s cannot be bound (%s); skipped", port, exc)
                continue
            return ActiveStream(layout, port, receiver, srtp_key=self._srtp_key(index))
        raise PortsExhausted(f"no bindable RTP port after {BIND_ATTEMPTS} attempts")

    async def apply_offer(
        self, sdp: SessionDescription | None, metadata: RecordingMetadata | None
    ) -> list[int | None] | None:
        """Apply a (re-)offer; return the ports to answer with (None: rejected m-line)."""
        named_late = False
        if metadata is not None:
            self.metadata = metadata if self.metadata is None else self.metadata.merged(metadata)
            had_user = self.recorded_user_id is not None
            self._match_parties(self.metadata)
            self.live.set_slots(self.now_ms(), [slot for slot, _ in self.slots])
            if self.sdp is not None:
                self._journal(Parties(t=self.now_ms(), **self._party_data()))
                self.ctx.on_changed(self)
                # the first time a recorded user is named, their side holds for the whole call
                named_late = not had_user and self.recorded_user_id is not None
        if sdp is None:
            if metadata is not None and self.sdp is not None:
                self._relayout(self.sdp, channels_from=0 if named_late else None)
            return None
        first = self.sdp is None
        self.sdp = sdp
        layouts = self._layouts(sdp)
        if first and self._nobody_recordable():
            self.declined = True
            log.info(
                "call %s: streams declined, nobody can be recorded (%s)",
                self.uuid,
                self.not_recorded_reason if not self.slots else "modes and contact lists",
            )
        elif self.declined and not self._nobody_recordable():
            self.declined = False  # a re-offer after a recorded user was named
        if self.declined:
            layouts = {}
        for index, layout in layouts.items():
            if index not in self.streams:
                self.streams[index] = await self._open(index, layout)
            else:
                stream = self.streams[index]
                stream.receiver.expect(self._sender_host(index))
                if self._srtp_key(index) != stream.srtp_key:  # re-keyed (or SRTP on/off)
                    stream.srtp_key = self._srtp_key(index)
                    stream.receiver.set_unprotect(self._decryptor(index))
        for index in [i for i in self.streams if i not in layouts]:
            self._close_stream(index)
        if first:
            self._journal(
                Start(
                    t=self.now_ms(),
                    call_uuid=self.uuid,
                    sip_call_id=self.sip_call_id,
                    recording_session_id=self.metadata.session_id if self.metadata else None,
                    started_at=self.started_at_ms,
                    streams=tuple(layouts.values()),
                    **self._party_data(),
                )
            )
            for layout in layouts.values():
                if not layout.active:
                    self._journal(Pause(t=self.now_ms(), stream=layout.index))
            for index, layout in layouts.items():
                self.streams[index].layout = layout
            self._listen_for_keys()
        else:
            self._relayout(sdp, layouts, channels_from=0 if named_late else None)
        return [self.streams[i].port if i in self.streams else None for i in range(len(sdp.media))]

    def _relayout(
        self,
        sdp: SessionDescription,
        layouts: dict[int, StreamLayout] | None = None,
        channels_from: int | None = None,
    ) -> None:
        layouts = layouts if layouts is not None else self._layouts(sdp)
        paused_or_resumed = False  # LiveCenter shows an SRC pause
        for index, layout in layouts.items():
            stream = self.streams.get(index)
            if stream is None:
                continue
            if stream.layout.active and not layout.active:
                self._journal(Pause(t=self.now_ms(), stream=index))
                paused_or_resumed = True
            elif not stream.layout.active and layout.active:
                self._journal(Resume(t=self.now_ms(), stream=index))
                paused_or_resumed = True
            events = frozenset(
                pt for pt, c in layout.codecs.items() if c.name.lower() == "telephone-event"
            )
            stream.receiver.set_telephone_events(events)
            stream.layout = layout
        self._journal(
            Streams(
                t=self.now_ms(),
                streams=tuple(s.layout for s in self.streams.values()),
                channels_from=channels_from,
            )
        )
        self._listen_for_keys()
        if paused_or_resumed:
            self.ctx.on_changed(self)

    def _sender_host(self, index: int) -> str | None:
        """The host the offer says m-line ``index`` is sent from (None: unknown)."""
        if self.sdp is None or index >= len(self.sdp.media):
            return None
        host = self.sdp.media[index].connection
        if host is None or host in ("0.0.0.0", "::"):
            return None
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return None  # a host name: latch to the first source instead
        return host

    def _srtp_key(self, index: int) -> bytes | None:
        if self.sdp is None or index >= len(self.sdp.media):
            return None
        crypto = choose_crypto(self.sdp.media[index])
        return crypto.key_salt if crypto is not None else None

    def _decryptor(self, index: int) -> Callable[[bytes], bytes | None] | None:
        """SRTP (SDES): decrypt m-line ``index`` with the key its offer carries."""
        assert self.sdp is not None
        crypto = choose_crypto(self.sdp.media[index])
        if crypto is None:
            return None
        assert crypto.key_salt is not None  # choose_crypto only picks usable keys
        return SrtpStreamDecryptor(crypto.suite, crypto.key_salt).unprotect

    def _listen_for_keys(self) -> None:
        """Hear in-band keys live on the streams whose keys can change the capture."""
        for stream in self.streams.values():
            sender = None if stream.layout.channel == "mix" else stream.layout.participant_id
            wanted = self.live.listens_for_keys(sender) and (
                sender is not None or stream.layout.channel == "mix"
            )
            if wanted and stream.keys is None:
                stream.keys = InbandKeyListener(stream.layout.index, stream.layout.codecs)
            elif wanted and stream.keys is not None:
                stream.keys.set_codecs(stream.layout.codecs)
            elif not wanted:
                self._stop_listening(stream)
        self._listening = any(stream.keys is not None for stream in self.streams.values())

    def _live_key(self, digit: DtmfDigit, index: int) -> None:
        stream = self.streams.get(index)
        sender = None
        if stream is not None and stream.layout.channel != "mix":
            sender = stream.layout.participant_id or "?"
        self.live.key(digit.start_ms, digit.digit, sender)

    def _stop_listening(self, stream: ActiveStream) -> None:
        """Journal the key still sounding and what the listener heard: the finisher
        does not search that audio again (``recording/journal.py`` ``InbandListened``)."""
        listener, stream.keys = stream.keys, None
        if listener is None:
            return
        self._journal_inband(stream.layout.index, listener.finish())
        for start, end in listener.heard:
            self._journal(
                InbandListened(
                    t=self.now_ms(),
                    stream=listener.stream_index,
                    from_ms=start,
                    to_ms=end,
                    detector=DETECTOR_VERSION,
                )
            )

    def _close_stream(self, index: int) -> None:
        closed = self.streams.pop(index, None)
        if closed is None:
            return
        self._stop_listening(closed)
        if index in self.media.ports:
            self.media.remove(index)
        elif self.stream_binder is not None:
            self.stream_binder.unbind(index)
            self.media.detach(index)

    def info_digit(self, digit: str, duration_ms: int) -> None:
        t = self.now_ms()
        self.live.key(t, digit, None)
        self._journal(
            Dtmf(t=t, stream=None, digit=digit, duration_ms=duration_ms, source="info", side="user")
        )

    # -- life cycle -----------------------------------------------------------
    def live_stats(self) -> dict[str, int]:
        totals = {"packets": 0, "bytes": 0, "malformed": 0, "foreign": 0, "unauthenticated": 0}
        for receiver in self.media.receivers.values():
            totals["packets"] += receiver.packets
            totals["bytes"] += receiver.bytes
            totals["malformed"] += receiver.malformed
            totals["foreign"] += receiver.foreign
            totals["unauthenticated"] += receiver.unauthenticated
        return totals

    def answered(self) -> None:
        self.answered_ms = self.now_ms()
        self.live.answer(self.answered_ms)
        self._journal(Answer(t=self.answered_ms))
        self.ctx.on_changed(self)

    def record_now(self, on: bool, *, tenant_id: int, by: int | None) -> None:
        """LiveCenter's record now (or stop) for ``tenant_id``'s recordings of the call:
        the gate opens at once; journalled so the finisher keeps that stretch."""
        t = self.now_ms()
        self._journal(RecordNow(t=t, on=on, tenant_id=tenant_id, by=by))
        self.live.record_now(t, on)
        self.ctx.on_changed(self)

    def flush(self) -> None:
        """Every spool tick: hear live keys in the buffered audio, then write what
        the capture gate lets through."""
        now = self.now_ms()
        self.media.tick(now)  # reports digits whose end packets were lost
        self._hear_inband(now)
        # audio from a key still being pressed waits: it may be the pause key
        self.spool.flush(self.live.gate, now, until=self.media.key_pending_since())

    def _hear_inband(self, now: int) -> None:
        if not self._listening:
            return
        for stream in list(self.streams.values()):
            if stream.keys is None:
                continue
            spool = self.spool.streams.get(stream.layout.index)
            if spool is None:
                continue
            for digit in stream.keys.feed(spool.pending()):
                self._live_key(digit, stream.layout.index)
                self._journal_inband(stream.layout.index, [digit])

    def _journal_inband(self, index: int, digits: list[DtmfDigit]) -> None:
        for digit in digits:
            self._journal(
                Dtmf(
                    t=digit.start_ms,
                    stream=index,
                    digit=digit.digit,
                    duration_ms=digit.duration_ms,
                    source="inband",
                )
            )

    def end(self, reason: str) -> None:
        if self.ended:
            return
        self.ended = True
        if self.timer_handle is not None:
            self.timer_handle.cancel()
        self.media.drain()  # what was sent before the BYE and not read yet is kept
        self.final_stats = self.live_stats()
        self.media.close()  # also gives the ports back
        now = self.now_ms()
        self._hear_inband(now)
        for stream in self.streams.values():
            self._stop_listening(stream)
        self.streams.clear()
        self._journal(End(t=now, reason=reason))  # the millisecond the gate closes at
        # everything read so far arrived before the hang-up, but what the loop read
        # only now (drained above, or read in the BYE's own loop iteration) carries
        # the hang-up's own millisecond, at which the gate closes: it is written
        # under the gate as it stood, before the hang-up closes it
        self.spool.flush(self.live.gate, now)
        self.live.hangup(now)
        self.spool.close(self.live.gate, now)
        self.ctx.calls.pop(self.sip_call_id, None)
        if self.on_release is not None:
            self.on_release()
            self.on_release = None
        log.info("call %s (%s) ended: %s", self.uuid, self.sip_call_id, reason)
        self.ctx.on_ended(self)
        self.ctx.on_changed(self)
