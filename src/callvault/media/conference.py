"""The coaching bridge: a supervisor joined to a relayed call through the mixer.

Issue 11 (SPEC section 7, silent coaching; the German manual's DTMF table).
The asyncio shell around ``media/mixer.py`` and ``media/jitter.py``; the SIP
side (``*98*<ext>``, permissions, the supervisor's dialog, which mode a key
selects) is the B2BUA's. While a bridge is open:

* the relay (``media/relay.py``) hands each leg's audio packets to the bridge
  instead of forwarding them (``MediaRelay.set_mixing``); RTCP and RFC 4733
  events of the customer and the agent are still relayed as before;
* the supervisor has a socket of its own (a port from the pool, latched to
  the host its SDP names and the first port seen, as the relay latches);
* every 20 ms (a timer on the loop, re-anchored after a stall rather than
  bursting) each input's jitter buffer gives one frame, the mixer mixes, and
  each party gets its mix, G.711 in the payload type it has been receiving:
  the customer and the agent through the relay, numbered as one continuous
  stream with the plain relaying before and after (``StreamRewriter``), the
  supervisor from its own socket;
* the supervisor's RFC 4733 digits go to ``on_digit`` only: they are never
  forwarded, never reach a recording tap;
* all audio goes through the mixer in every mode, silent included: the
  customer and the agent hear each other decoded and re-encoded (lossless for
  G.711 to the same law: the decoded value encodes to the same code, but for
  the sign of µ-law's zero), ``target_ms`` later than with plain relaying.
  Forwarding bit-exact in silent mode would change the delay at each mode
  change, an audible jump; this way the only jump is at join and leave.

The recording tap keeps seeing each party's own packets. With
``supervisor_in_recording`` (a tenant option, off by default) the agent's
recorded packets carry agent + supervisor: their payload is decoded, the
supervisor's voice as the call hears it (ramped, nothing in silent mode)
added, and re-encoded; headers, timing and the packets relayed are untouched,
so the recorder's timeline is the agent's own. Where the agent sends nothing
(silence suppression) the supervisor is not recorded.

Only G.711 (PCMU/PCMA) is mixed: other audio is dropped and counted
(``undecodable``); the SIP side should not bridge such calls.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import struct
from collections import deque
from collections.abc import Callable
from typing import Any, cast

import numpy as np

from callvault.errors import RemoteProtocolError
from callvault.media.codec import Codec
from callvault.media.codecs import (
    ALAW_TABLE,
    STATIC_PAYLOAD_TYPES,
    ULAW_TABLE,
    encode_pcma,
    encode_pcmu,
)
from callvault.media.dtmf import Rfc4733Tracker
from callvault.media.jitter import JitterBuffer, Pcm
from callvault.media.mixer import PARTIES, CoachMode, Mixer, Party, soft_clip
from callvault.media.ports import RtpPortPool, bind_from_pool
from callvault.media.relay import MediaRelay, Side, other
from callvault.media.rtp import RtpPacket

log = logging.getLogger(__name__)

FRAME_MS = 20
FRAME_SAMPLES = 160
MAX_CATCH_UP = 5  # frames behind after which the ticks re-anchor on the clock
RECORDING_BACKLOG = 10  # frames of the supervisor's voice held for the agent's recording
_UNSPECIFIED = frozenset({"0.0.0.0", "::"})
_HEADER = struct.Struct("!BBHII")
_DECODE: dict[str, Pcm] = {"pcmu": ULAW_TABLE, "pcma": ALAW_TABLE}
_ENCODE: dict[str, Callable[[Pcm], bytes]] = {"pcmu": encode_pcmu, "pcma": encode_pcma}
Address = tuple[Any, ...]


def _g711(codecs: dict[int, Codec], pt: int) -> str | None:
    codec = codecs.get(pt) or STATIC_PAYLOAD_TYPES.get(pt)
    name = codec.name.lower() if codec is not None else ""
    return name if name in _DECODE else None


class _SupervisorSocket(asyncio.DatagramProtocol):
    def __init__(self, bridge: CoachingBridge) -> None:
        self.bridge = bridge
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.bridge._from_supervisor(data, addr)

    def error_received(self, exc: Exception) -> None:
        self.bridge._send_errors += 1
        log.debug("coaching bridge: socket error %s", exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.bridge._release_port()


class CoachingBridge:
    """A supervisor in a relayed call: mixes per listener in 20 ms ticks."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        relay: MediaRelay,
        agent: Side,
        host: str,
        ports: RtpPortPool,
        *,
        supervisor_in_recording: bool = False,
    ) -> None:
        self._loop = loop
        self._relay = relay
        self._sides: dict[Party, Side] = {"agent": agent, "customer": other(agent)}
        self._party_of: dict[Side, Party] = {agent: "agent", other(agent): "customer"}
        self.host = host
        self._ports = ports
        self.supervisor_in_recording = supervisor_in_recording
        self.on_digit: Callable[[str], None] | None = None
        self.mixer = Mixer(FRAME_SAMPLES)
        self.jitter: dict[Party, JitterBuffer] = {p: JitterBuffer() for p in PARTIES}
        self._socket: _SupervisorSocket | None = None
        self.port = 0
        self._opened = False
        self._closed = False
        # the supervisor's media, from its SDP and the latch
        self._sup_host: str | None = None
        self._sup_sdp_port: int | None = None
        self._sup_latched: Address | None = None
        self._sup_dest: Address | None = None
        self._sup_codecs: dict[int, Codec] = {}
        self._sup_te: frozenset[int] = frozenset()
        self._sup_pt: int | None = None  # the G.711 payload type it sends
        self._tracker = Rfc4733Tracker()
        self._out_ssrc = secrets.randbits(32)
        self._out_seq = secrets.randbits(16)
        self._out_ts = secrets.randbits(32)
        # ticks
        self._timer: asyncio.TimerHandle | None = None
        self._next_ms = 0
        self._first = True  # the next frame to the legs follows a pause
        # the supervisor's voice as the call hears it, for the agent's recording
        self._heard: deque[Pcm] = deque(maxlen=RECORDING_BACKLOG)
        self._heard_buf: Pcm = np.zeros(0, dtype=np.int16)
        # counters
        self._ticks = 0
        self._stalls = 0
        self._sent: dict[Party, int] = dict.fromkeys(PARTIES, 0)
        self._from_sup = 0
        self._sup_foreign = 0
        self._digits = 0
        self._undecodable = 0
        self._malformed = 0
        self._send_errors = 0
        self._recorded_mixed = 0

    # -- set-up --

    async def open(self) -> int:
        """Bind the supervisor's socket and route the call's audio through the
        mixer; returns the port (for the SDP to the supervisor).

        Raises ``PortsExhausted`` when no port can be had."""
        if self._opened:
            return self.port
        protocol = _SupervisorSocket(self)
        port, sock = bind_from_pool(self._ports, self.host)  # raises PortsExhausted
        try:
            await self._loop.create_datagram_endpoint(lambda: protocol, sock=sock)
        except BaseException:
            sock.close()
            self._ports.release(port)
            raise
        self._socket = protocol
        self.port = port
        self._opened = True
        if self._closed:  # closed while binding
            self._close_socket()
            return self.port
        self._relay.set_mixing(self._from_leg)
        if self.supervisor_in_recording:
            self._relay.set_tap_filter(self._sides["agent"], self._recorded_agent)
        self._next_ms = self._now_ms()
        self._first = True
        self._schedule()
        return self.port

    def set_supervisor(self, host: str, port: int, codecs: dict[int, Codec]) -> None:
        """Where the supervisor receives and the payload types it takes (its SDP).

        An unspecified host or port 0 is hold. Packets are accepted from
        ``host`` only, latched to the first port seen; we send there."""
        unspecified = not host or host in _UNSPECIFIED
        moved = host != self._sup_host or (bool(port) and self._sup_sdp_port not in (None, port))
        if not unspecified and moved:
            self._sup_latched = None
            self._sup_host = host
        if not unspecified and port:
            self._sup_sdp_port = port
        if unspecified or not port:
            self._sup_dest = None
        else:
            self._sup_dest = self._sup_latched or (host, port)
        self._sup_codecs = dict(codecs)
        self._sup_te = frozenset(
            pt for pt, c in codecs.items() if c.name.lower() == "telephone-event"
        )

    def set_mode(self, mode: CoachMode) -> None:
        """Who hears the supervisor from now on (gains ramp over a few ms)."""
        self.mixer.set_mode(mode, self._now_ms())

    @property
    def mode(self) -> CoachMode:
        return self.mixer.mode

    # -- media in --

    def _from_leg(self, side: Side, data: bytes, now_ms: int) -> None:
        """An audio packet from the customer or the agent (the relay's hook)."""
        try:
            packet = RtpPacket.parse(data)
        except RemoteProtocolError:
            self._malformed += 1
            return
        name = self._relay.audio_codec(side, packet.payload_type)
        if name is None:
            self._undecodable += 1
            return
        pcm = _DECODE[name][np.frombuffer(packet.payload, dtype=np.uint8)]
        self.jitter[self._party_of[side]].push(
            packet.sequence, packet.timestamp, pcm, now_ms, ssrc=packet.ssrc
        )

    def _from_supervisor(self, data: bytes, addr: Address) -> None:
        if addr != self._sup_latched and not self._latch(addr):
            return
        if len(data) < 12 or 200 <= data[1] <= 204:
            return  # RTCP: nothing of ours to do with it
        try:
            packet = RtpPacket.parse(data)
        except RemoteProtocolError:
            self._malformed += 1
            return
        self._from_sup += 1
        now = self._now_ms()
        pt = packet.payload_type
        if pt in self._sup_te:
            try:
                digits = self._tracker.feed(packet, now)
            except RemoteProtocolError:
                self._malformed += 1
                return
            self._report([d.digit for d in digits])
            return
        name = _g711(self._sup_codecs, pt)
        if name is None:
            self._undecodable += 1
            return
        self._sup_pt = pt
        pcm = _DECODE[name][np.frombuffer(packet.payload, dtype=np.uint8)]
        self.jitter["supervisor"].push(
            packet.sequence, packet.timestamp, pcm, now, ssrc=packet.ssrc
        )

    def _latch(self, addr: Address) -> bool:
        if self._sup_host is None or addr[0] != self._sup_host or self._sup_latched is not None:
            self._sup_foreign += 1
            return False
        self._sup_latched = addr
        if self._sup_dest is not None:
            self._sup_dest = addr  # symmetric RTP
        return True

    def _report(self, digits: list[str]) -> None:
        for digit in digits:
            self._digits += 1
            callback = self.on_digit
            if callback is None:
                continue
            try:
                callback(digit)
            except Exception:
                log.exception("coaching bridge: on_digit failed")

    # -- ticks --

    def _schedule(self) -> None:
        if not self._closed:
            self._timer = self._loop.call_at(self._next_ms / 1000.0, self._tick)

    def _tick(self) -> None:
        self._timer = None
        now = self._now_ms()
        if now - self._next_ms > MAX_CATCH_UP * FRAME_MS:
            self._stalls += 1  # the loop stalled: go on from now rather than burst
            self._next_ms = now
            self._first = True
        while self._next_ms <= now and not self._closed:
            self._frame(self._next_ms)
            self._next_ms += FRAME_MS
        self._report([d.digit for d in self._tracker.flush(now)])
        self._schedule()

    def _frame(self, now_ms: int) -> None:
        """One 20 ms frame: pop, mix, send to all three."""
        self._ticks += 1
        mixer = self.mixer
        for party in PARTIES:
            mixer.put(party, self.jitter[party].pop(now_ms))
        heard = mixer.mix()
        if self.supervisor_in_recording:
            self._heard.append(mixer.supervisor_in_call())
        first = self._first
        self._first = False
        for party in ("customer", "agent"):
            side = self._sides[party]
            if self._relay.send_mixed(side, heard[party], now_ms, first=first):
                self._sent[party] += 1
        self._send_supervisor(heard["supervisor"])

    def _send_supervisor(self, pcm: Pcm) -> None:
        self._out_seq = (self._out_seq + 1) & 0xFFFF
        self._out_ts = (self._out_ts + FRAME_SAMPLES) & 0xFFFFFFFF
        dest, protocol = self._sup_dest, self._socket
        if dest is None or protocol is None or protocol.transport is None:
            return
        pt = self._sup_pt
        if pt is None:
            pt = next((p for p in self._sup_codecs if _g711(self._sup_codecs, p)), None)
        name = _g711(self._sup_codecs, pt) if pt is not None else None
        if pt is None or name is None:
            return
        header = _HEADER.pack(0x80, pt, self._out_seq, self._out_ts, self._out_ssrc)
        protocol.transport.sendto(header + _ENCODE[name](pcm), dest)
        self._sent["supervisor"] += 1

    # -- the agent's recording --

    def _recorded_agent(self, data: bytes) -> bytes:
        """The agent's packet as the recording sees it: + the supervisor's voice."""
        if len(data) < 12 or data[0] & 0x20 or 200 <= data[1] <= 204:
            return data  # not audio we can add to (RTCP; padding: left alone)
        name = self._relay.audio_codec(self._sides["agent"], data[1] & 0x7F)
        if name is None:
            return data
        try:
            packet = RtpPacket.parse(data)
        except RemoteProtocolError:
            return data
        n = len(packet.payload)
        voice = self._take_heard(n)
        if voice is None:
            return data
        own = _DECODE[name][np.frombuffer(packet.payload, dtype=np.uint8)]
        mixed = soft_clip(own.astype(np.float32) + voice)
        self._recorded_mixed += 1
        return data[: len(data) - n] + _ENCODE[name](mixed)

    def _take_heard(self, n: int) -> Pcm | None:
        """The next ``n`` samples of the supervisor's heard voice (None: silence)."""
        buf = self._heard_buf
        if len(buf) < n and self._heard:
            buf = np.concatenate([buf, *self._heard])
            self._heard.clear()
        limit = RECORDING_BACKLOG * FRAME_SAMPLES
        if len(buf) > limit:  # the agent's clock is slower than ours: drop the oldest
            buf = buf[-limit:]
        take, self._heard_buf = buf[:n], buf[n:]
        if not take.any():
            return None
        if len(take) < n:
            take = np.concatenate([take, np.zeros(n - len(take), dtype=np.int16)])
        return take

    # -- reporting, tear-down --

    def stats(self) -> dict[str, int]:
        out = {
            "ticks": self._ticks,
            "stalls": self._stalls,
            "to_customer": self._sent["customer"],
            "to_agent": self._sent["agent"],
            "to_supervisor": self._sent["supervisor"],
            "from_supervisor": self._from_sup,
            "supervisor_foreign": self._sup_foreign,
            "digits": self._digits,
            "undecodable": self._undecodable,
            "malformed": self._malformed,
            "send_errors": self._send_errors,
            "clipped_frames": self.mixer.clipped_frames,
            "recorded_with_supervisor": self._recorded_mixed,
        }
        for party, buffer in self.jitter.items():
            for key, value in buffer.stats().items():
                out[f"{party}_{key}"] = value
        return out

    def close(self) -> None:
        """The supervisor leaves: the relay forwards again (the streams the
        phones receive go on with their SSRC, sequence numbers and timestamps),
        the socket closes and its port goes back to the pool (next loop turn).
        Audio still in the jitter buffers (``target_ms``) is not played."""
        if self._closed:
            return
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._opened:
            self._relay.set_mixing(None)
            if self.supervisor_in_recording:
                self._relay.set_tap_filter(self._sides["agent"], None)
        self._close_socket()

    def _close_socket(self) -> None:
        if self._socket is not None and self._socket.transport is not None:
            self._socket.transport.close()  # the port goes back in connection_lost
        else:
            self._release_port()

    def _release_port(self) -> None:
        if self.port:
            self._ports.release(self.port)
            self.port = 0

    def _now_ms(self) -> int:
        # ceil, as the relay: a timer set for t ms may fire a fraction of a ms early
        return -int(-self._loop.time() * 1000 // 1)
