"""A playout (jitter) buffer: RTP audio in as it arrives, 20 ms frames out on a clock.

Issue 11 (SPEC section 7: silent coaching mixes live audio). Sans-IO and
synchronous: ``push`` takes one decoded packet with its RTP sequence number,
timestamp and arrival time; ``pop(now_ms)`` gives the next frame of
``frame_samples`` samples, called once per frame by whoever paces the output
(``media/conference.py``).

Packets are placed by RTP timestamp (RFC 3550 section 5.1), so reordering,
duplicates, any packet size (ptime) and silence suppression need no special
case. Timestamps and sequence numbers are extended past their wrap.

* Start: the first packet is played ``target_ms`` after it arrived (the
  buffer's depth, which absorbs the network's jitter).
* Loss: a frame nobody sent is concealed by repeating the last frame heard,
  fading, for ``FADE_FRAMES`` frames, then silence (ITU-T G.711 Appendix I
  does pitch-period repetition; a faded repeat is the cheap cousin).
* Too deep (a burst, a sender whose clock runs fast): past ``max_ms`` the
  oldest audio is skipped down to ``target_ms``.
* A packet older than what was already played is late: dropped and counted.
* A new stream (another SSRC, a timestamp jump back by more than
  ``RESET_MS`` or ahead by more than ``max_ms``, the first packet after
  ``max_ms`` without any) is re-based
  so that it continues where the old one ended, by arrival time, instead of
  being mistaken for very late or very early audio.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Pcm = npt.NDArray[np.int16]

FADE_FRAMES = 3  # concealed frames that repeat the last one, fading, before silence
RESET_MS = 1000  # a jump back by more than this is a new stream, not a late packet


def _unwrap(value: int, last: int, bits: int) -> int:
    """``value`` (modulo 2**bits) as the extended number nearest to ``last``."""
    span = 1 << bits
    half = span >> 1
    delta = (value - last) & (span - 1)
    if delta >= half:
        delta -= span
    return last + delta


class JitterBuffer:
    """One stream's playout buffer (8 kHz by default), pushed packets, popped frames."""

    def __init__(
        self,
        clock_rate: int = 8000,
        frame_samples: int = 160,
        target_ms: int = 60,
        max_ms: int = 200,
    ) -> None:
        if not 0 <= target_ms < max_ms:
            raise ValueError("a jitter buffer needs 0 <= target_ms < max_ms")
        self.clock_rate = clock_rate
        self.frame_samples = frame_samples
        self.target_ms = target_ms
        self.max_ms = max_ms
        self._per_ms = clock_rate / 1000.0
        self._target = int(target_ms * self._per_ms)
        self._max = int(max_ms * self._per_ms)
        self._reset_span = int(RESET_MS * self._per_ms)
        # extended timestamp (after the re-base offset) -> samples
        self._packets: dict[int, Pcm] = {}
        self._play: int | None = None  # extended timestamp of the next sample to play
        self._ssrc: int | None = None
        self._last_ts: int | None = None  # extended, as sent (before the offset)
        self._last_seq: int | None = None  # extended
        self._offset = 0  # added to extended timestamps: a re-based stream continues
        self._newest_end = 0  # end of the newest audio pushed (offset applied)
        self._newest_arrival = 0
        self._last_frame: Pcm | None = None  # the last frame heard (for concealment)
        self._concealed_run = 0
        self._filling_until: int | None = None  # the start's depth: silence, not loss
        self._silence = np.zeros(frame_samples, dtype=np.int16)
        self._fade = np.linspace(1.0, 0.0, FADE_FRAMES * frame_samples + 1, dtype=np.float32)[1:]
        # stats
        self.pushed = 0
        self.played = 0  # frames with received audio in them
        self.concealed = 0  # frames repeated-and-faded or silent for a gap
        self.late = 0
        self.duplicates = 0
        self.skipped = 0  # samples thrown away because the buffer was too deep
        self.resets = 0

    @property
    def depth_ms(self) -> int:
        """Audio buffered ahead of the playout point."""
        if self._play is None:
            return 0
        return max(0, int((self._newest_end - self._play) / self._per_ms))

    def push(
        self, seq: int, timestamp: int, pcm: Pcm, arrival_ms: int, *, ssrc: int | None = None
    ) -> None:
        """One packet's decoded samples (``timestamp``: its first sample's RTP time)."""
        n = len(pcm)
        if n == 0:
            return
        self.pushed += 1
        fresh = self._last_ts is None or (ssrc is not None and ssrc != self._ssrc)
        if fresh:
            ext_ts, ext_seq = timestamp, seq
        else:
            assert self._last_ts is not None and self._last_seq is not None
            ext_ts = _unwrap(timestamp, self._last_ts, 32)
            ext_seq = _unwrap(seq, self._last_seq, 16)
        if ssrc is not None:
            self._ssrc = ssrc
        position = ext_ts + self._offset
        idle = self._play is None
        if not fresh and not idle:
            assert self._play is not None
            jumped_back = position + n < self._play - self._reset_span
            # further ahead than the buffer holds: a jump, or a long pause in
            # sending; either way the arrival time says where it belongs
            jumped_ahead = position > self._newest_end + self._max
            if jumped_back or jumped_ahead:
                fresh = True
        if fresh or idle:
            position = self._rebase(ext_ts, n, arrival_ms)
            if fresh and self._last_ts is not None:
                self.resets += 1
        assert self._play is not None
        if self._last_seq is None or fresh or ext_seq > self._last_seq:
            self._last_seq = ext_seq
        if self._last_ts is None or fresh or ext_ts > self._last_ts:
            self._last_ts = ext_ts
        if position + n <= self._play:
            self.late += 1
            return
        if position in self._packets:
            self.duplicates += 1
            return
        self._packets[position] = pcm
        if position + n > self._newest_end:
            self._newest_end = position + n
            self._newest_arrival = arrival_ms
        if self._newest_end - self._play > self._max:  # too deep: skip down to the target
            new_play = self._newest_end - self._target
            self.skipped += new_play - self._play
            self._play = new_play
            self._drop_before(new_play)

    def _rebase(self, ext_ts: int, n: int, arrival_ms: int) -> int:
        """A new stream (or the first packet after a long silence): where it plays."""
        if self._play is None:
            # nothing playing: this packet is heard target_ms from now
            self._offset = 0
            self._play = ext_ts - self._target
            self._filling_until = ext_ts
            self._newest_end = ext_ts + n
            self._newest_arrival = arrival_ms
            return ext_ts
        # continue after the old stream's newest audio, by arrival time
        gap = max(0, int((arrival_ms - self._newest_arrival) * self._per_ms) - n)
        # an old stream that had run dry leaves no depth: give the new one half the target
        position = max(self._newest_end + gap, self._play + self._target // 2)
        self._offset = position - ext_ts
        return position

    def _drop_before(self, play: int) -> None:
        for start in [s for s, pcm in self._packets.items() if s + len(pcm) <= play]:
            del self._packets[start]

    def pop(self, now_ms: int) -> Pcm:
        """The next frame (``frame_samples`` samples); concealed where nothing arrived.

        The caller paces: one pop per frame. ``now_ms`` (the arrival clock)
        only tells when the stream has gone quiet for ``max_ms``, after which
        the next packet starts afresh with ``target_ms`` of depth."""
        size = self.frame_samples
        play = self._play
        if play is None:
            return self._silence.copy()
        end = play + size
        out: Pcm | None = None
        for start, pcm in self._packets.items():
            stop = start + len(pcm)
            if stop <= play or start >= end:
                continue
            if out is None:
                out = np.zeros(size, dtype=np.int16)
            lo, hi = max(start, play), min(stop, end)
            out[lo - play : hi - play] = pcm[lo - start : hi - start]
        self._play = end
        self._drop_before(end)
        if out is not None:
            self.played += 1
            self._concealed_run = 0
            self._last_frame = out
            return out
        if self._filling_until is not None and end <= self._filling_until:
            return self._silence.copy()  # the first packet is still target_ms ahead
        if self._newest_end <= end and now_ms - self._newest_arrival > self.max_ms:
            # nothing for max_ms and nothing ahead: the next packet starts afresh
            self._play = None
            self._packets.clear()
        return self._conceal()

    def _conceal(self) -> Pcm:
        self.concealed += 1
        run = self._concealed_run
        self._concealed_run += 1
        last = self._last_frame
        if last is None or run >= FADE_FRAMES:
            return self._silence.copy()
        size = self.frame_samples
        fade = self._fade[run * size : (run + 1) * size]
        return (last.astype(np.float32) * fade).astype(np.int16)

    def stats(self) -> dict[str, int]:
        return {
            "pushed": self.pushed,
            "played": self.played,
            "concealed": self.concealed,
            "late": self.late,
            "duplicates": self.duplicates,
            "skipped_samples": self.skipped,
            "resets": self.resets,
            "depth_ms": self.depth_ms,
        }
