"""The RTP side of the test/demo SIPREC client: one G.711 stream, paced in real time.

``G711Stream`` is the sans-IO core: each ``tick()`` is one packet time (20 ms)
and returns the packets of that tick. It plays the parts of a real SBC that
the capture path must survive: random SSRC and initial sequence/timestamp
(RFC 3550 section 5.1), RFC 4733 digits interleaved with the audio (the audio
keeps flowing during an event, as in a SIPREC fork of both legs; the event
packets share the stream's SSRC and sequence space), a pause that makes the
timestamp jump by the paused time, and an SSRC change mid-call with new
sequence and timestamp bases. ``Impairments`` drops, duplicates and swaps
packets on the way out. ``RtpSender`` is the asyncio shell: it paces ticks
from a start time on the loop clock, so there is no drift, and sends them
from a local UDP socket. ``packets_for`` runs the core offline for tests.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from callvault.media.dtmf import DIGIT_EVENTS, TelephoneEvent
from callvault.media.rtp import RtpPacket
from callvault.media.tones import encode_pcma, encode_pcmu

log = logging.getLogger(__name__)

PCMU, PCMA = 0, 8
_SILENCE = {PCMU: 0xFF, PCMA: 0xD5}  # encodings of linear 0


@dataclass(frozen=True)
class Impairments:
    """Network trouble to play on the outgoing packets (0 disables each kind).

    With ``seed=None`` exactly every n-th packet is hit; with a seed each packet
    is hit with probability 1/n, reproducibly. A reordered packet is sent right
    after the packet that follows it (packets n and n+1 swap).
    """

    reorder_every: int = 0
    duplicate_every: int = 0
    drop_every: int = 0
    seed: int | None = None


class ImpairmentFilter:
    """Applies ``Impairments`` to a packet sequence: ``push`` one, get what goes out."""

    def __init__(self, impairments: Impairments) -> None:
        self.impairments = impairments
        self._rng = None if impairments.seed is None else random.Random(impairments.seed)
        self._count = 0
        self._held: list[bytes] = []
        self.dropped = 0
        self.duplicated = 0
        self.reordered = 0

    def _hit(self, every: int, n: int) -> bool:
        if every <= 0:
            return False
        if self._rng is None:
            return n % every == every - 1
        return self._rng.random() < 1.0 / every

    def push(self, packet: bytes) -> list[bytes]:
        n = self._count
        self._count += 1
        imp = self.impairments
        if self._hit(imp.drop_every, n):
            self.dropped += 1
            return []
        copies = [packet]
        if self._hit(imp.duplicate_every, n):
            self.duplicated += 1
            copies.append(packet)
        if self._held:
            out, self._held = copies + self._held, []
            return out
        if self._hit(imp.reorder_every, n):
            self.reordered += 1
            self._held = copies
            return []
        return copies

    def flush(self) -> list[bytes]:
        out, self._held = self._held, []
        return out


@dataclass
class _Digit:
    event: int
    samples: int  # total duration in timestamp units
    pt: int
    volume: int
    timestamp: int = -1  # set on the tick the event starts
    updates: int = 0
    end_sent: int = 0


class G711Stream:
    """Sans-IO sender of one G.711 stream: one ``tick()`` per packet time."""

    def __init__(
        self,
        pcm: npt.ArrayLike,
        payload_type: int = PCMU,
        *,
        ptime_ms: int = 20,
        rate: int = 8000,
        ssrc: int | None = None,
        sequence: int | None = None,
        timestamp: int | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if payload_type not in _SILENCE:
            raise ValueError(f"payload type {payload_type} is not G.711 (0 or 8)")
        self.payload_type = payload_type
        self.rate = rate
        self.samples_per_packet = rate * ptime_ms // 1000
        self._rng = rng or random.Random()
        encoded = (encode_pcmu if payload_type == PCMU else encode_pcma)(pcm)
        spp = self.samples_per_packet
        silence_byte = bytes([_SILENCE[payload_type]])
        if len(encoded) % spp:
            encoded += silence_byte * (spp - len(encoded) % spp)
        self._frames = [encoded[i : i + spp] for i in range(0, len(encoded), spp)]
        self._silence = silence_byte * spp
        self.ssrc = self._rng.getrandbits(32) if ssrc is None else ssrc
        self.sequence = self._rng.getrandbits(16) if sequence is None else sequence
        self._ts_base = self._rng.getrandbits(32) if timestamp is None else timestamp
        self._ts_tick = 0  # tick at which _ts_base applies
        self.tick_index = 0
        self.paused = False
        self._marker = True  # first packet of a talkspurt (RFC 3551 section 4.1)
        self._digits: deque[_Digit] = deque()

    @property
    def audio_done(self) -> bool:
        return self.tick_index >= len(self._frames)

    @property
    def done(self) -> bool:
        """All the audio was played and no digit is queued or in flight."""
        return self.audio_done and not self._digits

    @property
    def timestamp(self) -> int:
        """RTP timestamp of the next tick's audio."""
        elapsed = (self.tick_index - self._ts_tick) * self.samples_per_packet
        return (self._ts_base + elapsed) & 0xFFFFFFFF

    def queue_digit(
        self, digit: str, duration_ms: int = 100, pt: int = 101, volume: int = 10
    ) -> None:
        try:
            event = DIGIT_EVENTS[digit.upper()]
        except KeyError:
            raise ValueError(f"not a DTMF digit: {digit!r}") from None
        samples = max(self.samples_per_packet, duration_ms * self.rate // 1000)
        self._digits.append(_Digit(event=event, samples=samples, pt=pt, volume=volume))

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        if self.paused:
            self.paused = False
            self._marker = True

    def change_ssrc(self) -> None:
        """New SSRC, sequence and timestamp bases from the next tick on."""
        self.ssrc = self._rng.getrandbits(32)
        self.sequence = self._rng.getrandbits(16)
        self._ts_base = self._rng.getrandbits(32)
        self._ts_tick = self.tick_index
        self._marker = True

    def tick(self) -> list[bytes]:
        """The packets of the next packet time (none while paused)."""
        index = self.tick_index
        timestamp = self.timestamp
        self.tick_index += 1
        if self.paused:
            return []  # time goes on: the timestamp jumps by the paused time
        payload = self._frames[index] if index < len(self._frames) else self._silence
        out = [self._packet(self.payload_type, timestamp, payload, self._marker)]
        self._marker = False
        if self._digits:
            out.append(self._digit_packet(self._digits[0], timestamp))
        return out

    def _packet(self, pt: int, timestamp: int, payload: bytes, marker: bool) -> bytes:
        packet = RtpPacket(
            payload_type=pt,
            sequence=self.sequence,
            timestamp=timestamp,
            ssrc=self.ssrc,
            payload=payload,
            marker=marker,
        )
        self.sequence = (self.sequence + 1) & 0xFFFF
        return bytes(packet)

    def _digit_packet(self, digit: _Digit, timestamp: int) -> bytes:
        # RFC 4733 section 2.5.1: every packet of the event carries its start
        # timestamp; the duration grows by one packet time per update; the end
        # packet goes out three times (each with its own sequence number).
        first = digit.timestamp < 0
        if first:
            digit.timestamp = timestamp
        digit.updates += 1
        duration = min(digit.updates * self.samples_per_packet, digit.samples)
        end = duration >= digit.samples
        if end:
            digit.end_sent += 1
            if digit.end_sent == 3:
                self._digits.popleft()
        event = TelephoneEvent(event=digit.event, end=end, volume=digit.volume, duration=duration)
        return self._packet(digit.pt, digit.timestamp, bytes(event), first)


def packets_for(
    pcm: npt.ArrayLike,
    pt: int = PCMU,
    *,
    digits: Sequence[tuple[int, str]] = (),
    digit_ms: int = 100,
    dtmf_pt: int = 101,
    impairments: Impairments | None = None,
    ptime_ms: int = 20,
    ssrc: int | None = None,
    sequence: int | None = None,
    timestamp: int | None = None,
    seed: int | None = None,
) -> list[bytes]:
    """Every packet a sender would send for ``pcm``, in send order, offline.

    ``digits`` are ``(at_ms, digit)`` pairs: the digit is queued at the tick of
    ``at_ms`` (a digit queued while another is in flight waits for it).
    """
    stream = G711Stream(
        pcm,
        pt,
        ptime_ms=ptime_ms,
        ssrc=ssrc,
        sequence=sequence,
        timestamp=timestamp,
        rng=random.Random(seed),
    )
    filt = ImpairmentFilter(impairments or Impairments())
    pending = sorted(digits, key=lambda d: d[0])  # stable: same time keeps order
    out: list[bytes] = []
    while not stream.done or pending:
        now_ms = stream.tick_index * ptime_ms
        while pending and pending[0][0] <= now_ms:
            stream.queue_digit(pending.pop(0)[1], digit_ms, dtmf_pt)
        for packet in stream.tick():
            out.extend(filt.push(packet))
    out.extend(filt.flush())
    return out


class _SenderProtocol(asyncio.DatagramProtocol):
    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and the like: a recorder not listening yet.
        log.debug("RTP send error: %s", exc)


class RtpSender:
    """Sends one G.711 stream of ``pcm`` to ``(host, port)`` in real time."""

    def __init__(
        self,
        pcm: npt.ArrayLike,
        host: str,
        port: int,
        payload_type: int = PCMU,
        *,
        impairments: Impairments | None = None,
        ptime_ms: int = 20,
        local_host: str | None = None,
        local_port: int = 0,
        seed: int | None = None,
        protect: Callable[[bytes], bytes] | None = None,
    ) -> None:
        self.remote = (host, port)
        self._protect = protect  # SRTP: encrypts each packet as it leaves
        self.ptime_ms = ptime_ms
        self.stream = G711Stream(
            np.asarray(pcm, dtype=np.int16),
            payload_type,
            ptime_ms=ptime_ms,
            rng=random.Random(seed),
        )
        self.impairments = ImpairmentFilter(impairments or Impairments())
        self._local = (local_host or ("::" if ":" in host else "0.0.0.0"), local_port)
        self._transport: asyncio.DatagramTransport | None = None
        self._stopping = False
        self.packets_sent = 0

    @property
    def local_address(self) -> tuple[str, int] | None:
        if self._transport is None:
            return None
        sockname = self._transport.get_extra_info("sockname")
        return (str(sockname[0]), int(sockname[1]))

    async def open(self) -> None:
        """Bind the local socket (``run`` does it when not done before)."""
        if self._transport is None:
            loop = asyncio.get_running_loop()
            self._transport, _ = await loop.create_datagram_endpoint(
                _SenderProtocol, local_addr=self._local, remote_addr=self.remote
            )

    def send_digit(self, digit: str, duration_ms: int = 100, pt: int = 101) -> None:
        """Queue an RFC 4733 digit; it starts on the next tick, audio continues."""
        self.stream.queue_digit(digit, duration_ms, pt)

    def pause(self) -> None:
        self.stream.pause()

    def resume(self) -> None:
        self.stream.resume()

    def change_ssrc(self) -> None:
        self.stream.change_ssrc()

    def stop(self) -> None:
        """Make ``run`` return within one packet time."""
        self._stopping = True

    async def run(self, until_done: bool = True) -> None:
        """Send until the audio and queued digits are done (``until_done``) or
        until ``stop()``; after the audio ends it sends silence. Closes the socket.
        """
        await self.open()
        transport = self._transport
        assert transport is not None
        loop = asyncio.get_running_loop()
        period = self.ptime_ms / 1000.0
        start = loop.time()
        ticks = 0
        try:
            while not self._stopping and not (until_done and self.stream.done):
                delay = start + ticks * period - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                    if self._stopping:
                        break
                ticks += 1
                for packet in self.stream.tick():
                    for out in self.impairments.push(packet):
                        transport.sendto(self._protect(out) if self._protect else out)
                        self.packets_sent += 1
            for out in self.impairments.flush():
                transport.sendto(self._protect(out) if self._protect else out)
                self.packets_sent += 1
        finally:
            self.close()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
