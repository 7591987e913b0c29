"""Listening live (SPEC 7, LiveCenter's loudspeaker): a running call's audio as 20 ms PCM frames.

One ``ListenFeed`` per call is shared by all its listeners. While somebody
listens it sets ``RtpReceiver.listener`` on each of the call's streams (SIPREC
and B2BUA calls alike: the relay's taps go through the same receivers), so the
per-packet cost when nobody listens stays the receiver's one ``is not None``.

Each packet is parsed (RFC 3550 5.1), put back in sequence order
(``media/reorder.py``, a small window), decoded (G.711 by table, the others
through ``media/codecs.py``) to 8 kHz and placed by its RTP timestamp on the
call's clock: the stream is anchored at its first packet's arrival, so loss
leaves silence where the packet was and reordering puts a packet back in its
place. ``tick(now)`` gives out every 20 ms frame whose time lies ``PLAYOUT_MS``
in the past (the server side's jitter buffer); a packet later than that is
counted and moves its stream's anchor, so the buffer grows with the network's
jitter.

What a listener hears follows its tenant's recording-channel setting
(``TenantPolicy.channels``, as the finisher does): ``user`` the recorded
user's streams (left), ``other`` the other party's (right), ``both`` the two
as stereo; a single mixed stream is in every choice. The user is the tenant's
own recorded user when it has one in the call (a call between two tenants has
a different user for each).

Frames go to each subscriber's bounded queue without waiting: a slow browser
loses its oldest frames (counted), capture is never delayed. The wire format
(one binary WebSocket message per frame) is ``FRAME_HEADER`` then int16
little-endian PCM, interleaved when there are two channels.

``ListenHub`` is the thin async shell: one 20 ms timer for all feeds, feeds
made on the first subscriber and detached with the last.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np
import numpy.typing as npt

from callvault.errors import RemoteProtocolError
from callvault.media.codecs import Decoder, UnsupportedCodec, get_decoder, is_audio
from callvault.media.reorder import ReorderBuffer
from callvault.media.rtp import RtpPacket

if TYPE_CHECKING:
    from callvault.media.receiver import RtpReceiver
    from callvault.recording.journal import StreamLayout
    from callvault.siprec.call import RecordedCall

log = logging.getLogger(__name__)

RATE = 8000
FRAME_MS = 20
FRAME_SAMPLES = RATE * FRAME_MS // 1000
PLAYOUT_MS = 60  # server-side jitter buffer: covers the reorder window and network jitter
REANCHOR_MS = 1000  # a packet this far from its anchor's expectation restarts the stream's clock
QUEUE_FRAMES = 25  # per listener: 500 ms; beyond it the oldest frames are dropped
FRAME_VERSION = 1
# version, channels, samples per channel, sequence, server wall-clock ms at send
FRAME_HEADER = struct.Struct("<BBHIQ")

Channels = Literal["user", "other", "both"]
Side = Literal["user", "other", "mix"]
Pcm = npt.NDArray[np.int16]


def channel_setting(value: str) -> Channels:
    """The tenant's setting as a listening choice; anything unknown is ``both``."""
    return value if value in ("user", "other") else "both"  # type: ignore[return-value]


def frame_channels(channels: Channels) -> int:
    return 2 if channels == "both" else 1


@dataclass(frozen=True)
class Listening:
    """What one listener hears: the tenant's channel setting and its user in the call."""

    channels: Channels
    user_participant: str | None = None  # None: the call's own left/right layout


def side_of(layout: StreamLayout, user_participant: str | None) -> Side:
    if layout.channel == "mix":
        return "mix"
    if user_participant is not None and layout.participant_id is not None:
        return "user" if layout.participant_id == user_participant else "other"
    return "user" if layout.channel == "left" else "other"


class Subscriber:
    """One listener's bounded frame queue; ``None`` in it means the call ended."""

    def __init__(self, listening: Listening, capacity: int = QUEUE_FRAMES) -> None:
        self.listening = listening
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(capacity + 1)
        self.capacity = capacity
        self.dropped = 0
        self.sent = 0
        self.closed = False

    def offer(self, frame: bytes) -> None:
        """Queue without waiting; a full queue loses its oldest frame."""
        if self.closed:
            return
        while self.queue.qsize() >= self.capacity:
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(frame)
        self.sent += 1

    def end(self) -> None:
        if not self.closed:
            self.closed = True
            if self.queue.full():
                self.queue.get_nowait()
            self.queue.put_nowait(None)


@dataclass
class StreamStats:
    packets: int = 0
    late: int = 0  # arrived after their frame was given out
    reanchors: int = 0
    undecodable: int = 0


def _to_rate(samples: Pcm, rate: int) -> Pcm:
    """Down to 8 kHz by averaging (G.722 16 kHz, Opus 48 kHz); enough for listening."""
    if rate == RATE or samples.size == 0:
        return samples
    factor = rate // RATE
    usable = samples.size - samples.size % factor
    out: Pcm = samples[:usable].reshape(-1, factor).mean(axis=1).astype(np.int16)
    return out


class _StreamPlayout:
    """One stream: ordered, decoded, placed on the call's clock in 20 ms frames."""

    def __init__(self, receiver: RtpReceiver, layout: StreamLayout) -> None:
        self.receiver = receiver
        self.layout = layout
        self.reorder = ReorderBuffer(window=2)
        self.decoders: dict[int, Decoder] = {}
        self.ssrc: int | None = None
        self.origin = 0  # sample position (8 kHz, call clock) of RTP timestamp 0, mod 2**32
        self.frames: dict[int, npt.NDArray[np.int32]] = {}
        self.stats = StreamStats()

    def packet(self, data: bytes, arrival_ms: int, emitted: int) -> None:
        try:
            packet = RtpPacket.parse(data)
        except RemoteProtocolError:
            return
        codec = self.layout.codecs.get(packet.payload_type)
        if codec is None or not is_audio(codec) or not packet.payload:
            return
        self.stats.packets += 1
        for ordered, arrived in self.reorder.push(packet, arrival_ms):
            self._place(ordered, arrived, emitted)

    def _place(self, packet: RtpPacket, arrival_ms: int, emitted: int) -> None:
        codec = self.layout.codecs[packet.payload_type]
        decoder = self.decoders.get(packet.payload_type)
        if decoder is None or packet.ssrc != self.ssrc:
            if packet.ssrc != self.ssrc:
                self.decoders.clear()
            try:
                decoder = get_decoder(codec)
            except UnsupportedCodec:
                self.stats.undecodable += 1
                return
            self.decoders[packet.payload_type] = decoder
        pcm = _to_rate(decoder.decode(packet.payload), decoder.rate)
        # the RTP clock in 8 kHz samples (Opus: 48 kHz clock; G.722: 8 kHz clock, RFC 3551 4.5.2)
        ts = packet.timestamp * RATE // codec.clock_rate if codec.clock_rate else packet.timestamp
        arrival = arrival_ms * RATE // 1000
        span = (1 << 32) * RATE // max(codec.clock_rate, 1)
        position = self._position(ts, span)
        if packet.ssrc != self.ssrc or abs(position - arrival) > REANCHOR_MS * RATE // 1000:
            self.ssrc = packet.ssrc
            if position != arrival:
                self.stats.reanchors += 1 if self.stats.packets > 1 else 0
            self.origin = arrival - ts
            position = arrival
        first_open = (emitted + 1) * FRAME_SAMPLES  # first sample not yet given out
        if position < first_open:
            # late: its frame is gone; move the anchor so the next packets are in time
            self.stats.late += 1
            shift = first_open - position
            self.origin += shift
            position += shift
        self._write(position, pcm)

    def _position(self, ts: int, span: int) -> int:
        """Sample position on the call's clock, unwrapping the 32-bit timestamp."""
        position = self.origin + ts
        # pick the wrap of the timestamp nearest to the stream's last written frame
        if self.frames:
            last = max(self.frames) * FRAME_SAMPLES
            while position < last - span // 2:
                position += span
            while position > last + span // 2:
                position -= span
        return position

    def _write(self, position: int, pcm: Pcm) -> None:
        offset = 0
        while offset < pcm.size:
            frame, within = divmod(position + offset, FRAME_SAMPLES)
            take = min(FRAME_SAMPLES - within, pcm.size - offset)
            buffer = self.frames.get(frame)
            if buffer is None:
                buffer = self.frames[frame] = np.zeros(FRAME_SAMPLES, dtype=np.int32)
            # a duplicate overwrites itself; reorder has already dropped most of them
            buffer[within : within + take] = pcm[offset : offset + take]
            offset += take

    def take(self, frame: int) -> npt.NDArray[np.int32] | None:
        for old in [k for k in self.frames if k < frame]:
            del self.frames[old]  # frames of a re-anchored past
        return self.frames.pop(frame, None)


class ListenFeed:
    """A call's audio for all its listeners (synchronous; ``ListenHub`` drives it)."""

    def __init__(
        self,
        call: RecordedCall,
        *,
        clock_ms: Callable[[], int] | None = None,
        wall_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self.call = call
        self.clock_ms = clock_ms if clock_ms is not None else call.now_ms
        self.wall_ms = wall_ms
        self.subscribers: list[Subscriber] = []
        self.streams: dict[int, _StreamPlayout] = {}
        self.emitted = self.clock_ms() // FRAME_MS - PLAYOUT_MS // FRAME_MS - 1
        self.sequence = 0
        self.ended = False

    # -- listeners ---------------------------------------------------------
    def subscribe(self, listening: Listening, capacity: int = QUEUE_FRAMES) -> Subscriber:
        subscriber = Subscriber(listening, capacity)
        self.subscribers.append(subscriber)
        if self.ended:
            subscriber.end()
        else:
            self.sync_streams()
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        subscriber.closed = True
        if subscriber in self.subscribers:
            self.subscribers.remove(subscriber)
        if not self.subscribers:
            self.detach()

    def detach(self) -> None:
        """Nobody listens: the receivers go back to their one attribute check."""
        for playout in self.streams.values():
            if playout.receiver.listener is not None:
                playout.receiver.listener = None
        self.streams.clear()

    # -- streams -----------------------------------------------------------
    def sync_streams(self) -> None:
        """Follow the call's streams: a re-INVITE may add, remove or rebind one."""
        current = self.call.streams
        for index in [i for i in self.streams if i not in current]:
            self.streams.pop(index).receiver.listener = None
        for index, stream in current.items():
            playout = self.streams.get(index)
            if playout is not None and playout.receiver is stream.receiver:
                playout.layout = stream.layout  # sides and codecs follow re-offers
                continue
            if playout is not None:
                playout.receiver.listener = None
            playout = _StreamPlayout(stream.receiver, stream.layout)
            self.streams[index] = playout
            stream.receiver.listener = self._listener(playout)

    def _listener(self, playout: _StreamPlayout) -> Callable[[bytes, int], None]:
        def heard(data: bytes, arrival_ms: int) -> None:
            playout.packet(data, arrival_ms, self.emitted)

        return heard

    # -- frames ------------------------------------------------------------
    def tick(self, now_ms: int | None = None) -> int:
        """Give out every frame that is ``PLAYOUT_MS`` old; returns how many."""
        if self.ended:
            return 0
        if self.call.ended:
            self.end()
            return 0
        now = self.clock_ms() if now_ms is None else now_ms
        self.sync_streams()
        due = (now - PLAYOUT_MS) // FRAME_MS - 1  # the last frame wholly in the past
        if due - self.emitted > 50:  # a stall of a second: skip, do not burst old audio
            self.emitted = due - 1
        count = 0
        while self.emitted < due:
            self.emitted += 1
            self._emit(self.emitted)
            count += 1
        return count

    def _emit(self, frame: int) -> None:
        heard = [
            (playout.layout, pcm)
            for playout in self.streams.values()
            if (pcm := playout.take(frame)) is not None
        ]
        wall = self.wall_ms()
        built: dict[Listening, bytes] = {}
        for subscriber in self.subscribers:
            listening = subscriber.listening
            message = built.get(listening)
            if message is None:
                message = built[listening] = self._frame(heard, listening, wall)
            subscriber.offer(message)
        self.sequence = (self.sequence + 1) & 0xFFFFFFFF

    def _frame(
        self,
        heard: list[tuple[StreamLayout, npt.NDArray[np.int32]]],
        listening: Listening,
        wall: int,
    ) -> bytes:
        left = np.zeros(FRAME_SAMPLES, dtype=np.int32)
        right = np.zeros(FRAME_SAMPLES, dtype=np.int32)
        for layout, pcm in heard:
            side = side_of(layout, listening.user_participant)
            if side in ("user", "mix"):
                left += pcm
            if side in ("other", "mix"):
                right += pcm
        if listening.channels == "user":
            pcm = left
        elif listening.channels == "other":
            pcm = right
        else:
            pcm = np.column_stack((left, right)).reshape(-1)
        samples = np.clip(pcm, -32768, 32767).astype("<i2").tobytes()
        header = FRAME_HEADER.pack(
            FRAME_VERSION, frame_channels(listening.channels), FRAME_SAMPLES, self.sequence, wall
        )
        return header + samples

    def end(self) -> None:
        """The call ended: every listener is told, the receivers are let go."""
        self.ended = True
        for subscriber in self.subscribers:
            subscriber.end()
        self.detach()


@dataclass
class ListenHub:
    """Feeds by call, driven by one 20 ms timer while anybody listens anywhere."""

    loop: asyncio.AbstractEventLoop
    feeds: dict[str, ListenFeed] = field(default_factory=dict)
    _timer: asyncio.TimerHandle | None = None
    _next_at: float = 0.0

    def subscribe(self, call: RecordedCall, listening: Listening) -> Subscriber:
        feed = self.feeds.get(call.uuid)
        if feed is None or feed.call is not call:
            feed = self.feeds[call.uuid] = ListenFeed(call)
        subscriber = feed.subscribe(listening)
        if self._timer is None:
            self._next_at = self.loop.time()
            self._schedule()
        return subscriber

    def unsubscribe(self, call: RecordedCall, subscriber: Subscriber) -> None:
        feed = self.feeds.get(call.uuid)
        if feed is None:
            return
        feed.unsubscribe(subscriber)
        if not feed.subscribers:
            del self.feeds[call.uuid]
        if not self.feeds and self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def listeners(self) -> int:
        return sum(len(feed.subscribers) for feed in self.feeds.values())

    def _schedule(self) -> None:
        self._next_at += FRAME_MS / 1000
        # deadlines on the loop's clock, so a late tick does not push the next one
        self._timer = self.loop.call_at(self._next_at, self._tick)

    def _tick(self) -> None:
        for feed in list(self.feeds.values()):
            try:
                feed.tick()
            except Exception:  # one broken feed must not stop the others
                log.exception("live listening: feed of call %s failed", feed.call.uuid)
                feed.end()
        if self.feeds:
            if self.loop.time() - self._next_at > 1.0:
                self._next_at = self.loop.time()
            self._schedule()
        else:
            self._timer = None
