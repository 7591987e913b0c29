"""Prompts played into a relayed call: pacing and one continuous RTP stream.

Sans-IO parts of ``media/relay.py`` (issue 10, SPEC section 3:
announcements), testable without an event loop:

* ``PromptPacer`` cuts queued prompts (8 kHz mono signed 16-bit little
  endian PCM) into frames of 160 samples, one per 20 ms, and says which are
  due at a given time. A prompt "plays" until the end of its last frame; a
  second prompt queued meanwhile follows it without a gap.
* ``StreamRewriter`` keeps what one receiving party sees as ONE RTP stream
  (RFC 3550 section 5.1: one SSRC, sequence numbers and timestamps going on)
  while its packets come sometimes from the other party (relayed) and
  sometimes from a prompt (generated). Relayed packets are passed with their
  own numbers until the first prompt; from then on they are shifted by an
  offset, re-computed whenever the source of the numbers changes (a prompt
  ended, the sender's SSRC changed), so that the receiver's jitter buffer sees
  neither a jump back nor a second stream.
"""

from __future__ import annotations

import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

FRAME_MS = 20
FRAME_SAMPLES = 160  # 20 ms at 8 kHz: the RTP timestamp step of a G.711 frame
FRAME_BYTES = 2 * FRAME_SAMPLES  # of 16-bit PCM
# A pacer more than this many frames behind (the loop stalled) re-anchors on
# the clock instead of bursting the backlog into the phone.
MAX_CATCH_UP = 5


@dataclass(frozen=True, slots=True)
class PacedFrame:
    """One frame of a prompt, due now."""

    pcm: bytes  # FRAME_BYTES of 16-bit little-endian PCM
    first: bool  # the first frame of a prompt (RTP marker: a talkspurt begins)


@dataclass(slots=True)
class _Prompt:
    pcm: bytes
    on_done: Callable[[], None] | None
    pos: int = 0  # byte offset of the next frame


class PromptPacer:
    """Queued prompts, as frames of 20 ms due at real time.

    ``due(now_ms)`` returns the frames whose time has come and the ``on_done``
    callbacks of the prompts that ended (a prompt ends when its last frame has
    been heard, i.e. 20 ms after that frame was due). ``next_due_ms`` is when
    to call ``due`` again (None: nothing queued).
    """

    def __init__(self) -> None:
        self._queue: deque[_Prompt] = deque()
        self._next_ms: int | None = None  # when the next frame (or end) is due
        self.frames = 0  # frames handed out, all prompts

    @property
    def active(self) -> bool:
        """A prompt is playing (or queued): the relayed audio is not heard."""
        return bool(self._queue)

    @property
    def next_due_ms(self) -> int | None:
        return self._next_ms if self._queue else None

    def add(self, pcm: bytes, now_ms: int, on_done: Callable[[], None] | None = None) -> None:
        """Queue ``pcm`` after what is playing; an idle pacer starts at ``now_ms``."""
        if len(pcm) % 2:
            pcm = pcm[:-1]  # half a sample is not audio
        if not self._queue:
            self._next_ms = now_ms
        self._queue.append(_Prompt(pcm, on_done))

    def due(self, now_ms: int) -> tuple[list[PacedFrame], list[Callable[[], None]]]:
        frames: list[PacedFrame] = []
        done: list[Callable[[], None]] = []
        queue = self._queue
        next_ms = self._next_ms
        if next_ms is None:
            return frames, done
        if now_ms - next_ms > MAX_CATCH_UP * FRAME_MS:
            next_ms = now_ms  # stalled: go on from now rather than burst
        while queue and next_ms <= now_ms:
            prompt = queue[0]
            if prompt.pos >= len(prompt.pcm):
                # its last frame has been heard (or it was empty): the next one follows at once
                queue.popleft()
                if prompt.on_done is not None:
                    done.append(prompt.on_done)
                continue
            chunk = prompt.pcm[prompt.pos : prompt.pos + FRAME_BYTES]
            if len(chunk) < FRAME_BYTES:
                chunk += bytes(FRAME_BYTES - len(chunk))  # the tail, padded with silence
            frames.append(PacedFrame(chunk, first=prompt.pos == 0))
            prompt.pos += FRAME_BYTES
            next_ms += FRAME_MS
        self._next_ms = next_ms
        self.frames += len(frames)
        return frames, done

    def clear(self) -> list[Callable[[], None]]:
        """Drop every queued prompt; returns their callbacks (not called)."""
        done = [p.on_done for p in self._queue if p.on_done is not None]
        self._queue.clear()
        self._next_ms = None
        return done


class StreamRewriter:
    """The numbering of the RTP stream one party receives (one direction).

    ``relay`` maps a relayed packet's (ssrc, seq, ts) to the numbers to send;
    ``generate`` numbers the next prompt frame. ``rewriting`` is False until
    the first prompt: until then the relay forwards packets untouched.
    """

    __slots__ = (
        "_in_ssrc",
        "_seq_off",
        "_synced",
        "_ts_off",
        "_ts_synced",
        "generating",
        "last_ms",
        "last_seq",
        "last_ts",
        "rewriting",
        "ssrc",
    )

    def __init__(self) -> None:
        self.rewriting = False
        self.generating = False
        self.ssrc: int | None = None  # the stream's SSRC, once known
        self.last_seq = 0  # the newest sequence number sent
        self.last_ts = 0  # the newest audio timestamp sent
        self.last_ms = 0  # when that audio was sent
        self._in_ssrc: int | None = None
        self._seq_off = 0
        self._ts_off = 0
        self._synced = False
        self._ts_synced = False

    def seen(self, ssrc: int, seq: int, ts: int, now_ms: int) -> None:
        """The last packet relayed untouched before the first prompt: the stream
        the receiver knows so far (``ts`` is the audio time it had reached)."""
        if not self.rewriting:
            self.ssrc = self._in_ssrc = ssrc
            self.last_seq = seq
            self.last_ts = ts
            self.last_ms = now_ms

    def start_prompt(self) -> None:
        """A prompt begins: from now on packets are numbered by this rewriter."""
        if self.ssrc is None:  # nothing was ever sent to this party
            self.ssrc = secrets.randbits(32)
            self.last_seq = secrets.randbits(16)
            self.last_ts = secrets.randbits(32)
        self.rewriting = True
        self.generating = True
        self._ts_synced = False

    def end_prompt(self) -> None:
        """The prompts ended: the next relayed packet re-anchors the offsets."""
        self.generating = False
        self._synced = False
        self._ts_synced = False

    def generate(self, now_ms: int, first: bool) -> tuple[int, int, int]:
        """(ssrc, seq, ts) of the next prompt frame sent at ``now_ms``."""
        step = FRAME_SAMPLES
        if first:  # real time since the last audio, at least one frame
            step = max(FRAME_SAMPLES, (now_ms - self.last_ms) * 8)
        self.last_seq = (self.last_seq + 1) & 0xFFFF
        self.last_ts = (self.last_ts + step) & 0xFFFFFFFF
        self.last_ms = now_ms
        assert self.ssrc is not None  # set by start_prompt
        return self.ssrc, self.last_seq, self.last_ts

    def relay(self, ssrc: int, seq: int, ts: int, now_ms: int, *, audio: bool) -> tuple[int, int]:
        """(seq, ts) to send for a relayed packet (the SSRC sent is ``self.ssrc``).

        While a prompt plays only events are relayed: they take the next
        sequence number, and their timestamp is mapped once per prompt so that
        the packets of one RFC 4733 event keep sharing one timestamp."""
        if ssrc != self._in_ssrc:  # a new sender stream: continue ours
            self._in_ssrc = ssrc
            self._synced = self._ts_synced = False
        if not self._ts_synced:
            gap = max(FRAME_SAMPLES, (now_ms - self.last_ms) * 8)
            self._ts_off = (self.last_ts + gap - ts) & 0xFFFFFFFF
            self._ts_synced = True
        out_ts = (ts + self._ts_off) & 0xFFFFFFFF
        if self.generating:
            self.last_seq = out_seq = (self.last_seq + 1) & 0xFFFF
            return out_seq, out_ts
        if not self._synced:
            self._seq_off = (self.last_seq + 1 - seq) & 0xFFFF
            self._synced = True
        out_seq = (seq + self._seq_off) & 0xFFFF
        if _newer16(out_seq, self.last_seq):
            self.last_seq = out_seq
        if audio and _newer32(out_ts, self.last_ts):
            self.last_ts = out_ts
            self.last_ms = now_ms
        return out_seq, out_ts


def _newer16(a: int, b: int) -> bool:
    return a != b and (a - b) & 0xFFFF < 0x8000


def _newer32(a: int, b: int) -> bool:
    return a != b and (a - b) & 0xFFFFFFFF < 0x80000000
