"""Puts RTP packets of one stream back in sequence order (RFC 3550 A.1).

A synchronous algorithm class, fed one packet at a time: ``push`` returns the
packets that can be released, in order of their extended (32-bit) sequence
number. A packet that continues the sequence is released at once; after a gap
the buffer waits until the newest packet is ``window`` ahead of the gap, then
gives the missing ones up as lost. Duplicates and packets arriving after their
place was given up (late) are dropped and counted. A new SSRC, or a sequence
jump too large to be reordering (a sender restart), starts a new sequence space.
"""

from __future__ import annotations

from dataclasses import dataclass

from callvault.media.rtp import RtpPacket

MAX_DROPOUT = 3000  # RFC 3550 A.1: larger forward jumps are a restart, not loss


@dataclass
class ReorderStats:
    released: int = 0
    duplicates: int = 0
    late: int = 0
    reordered: int = 0
    lost: int = 0
    restarts: int = 0
    ssrc_changes: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(vars(self))


class ReorderBuffer:
    def __init__(self, window: int = 64) -> None:
        if window < 1:
            raise ValueError("window must be at least 1")
        self.window = window
        self.stats = ReorderStats()
        self._ssrc: int | None = None
        self._highest = -1  # highest extended sequence seen in this space
        self._next = -1  # next extended sequence to release
        self._start = -1  # first extended sequence of this space
        self._buffer: dict[int, tuple[RtpPacket, int]] = {}
        self._given_up: set[int] = set()  # recent sequences released as lost

    # The public counters, as attributes for convenience.
    @property
    def duplicates(self) -> int:
        return self.stats.duplicates

    @property
    def late(self) -> int:
        return self.stats.late

    @property
    def reordered(self) -> int:
        return self.stats.reordered

    @property
    def lost(self) -> int:
        return self.stats.lost

    def _extend(self, seq: int) -> int:
        if self._highest < 0:
            return seq
        delta = ((seq - self._highest + 0x8000) & 0xFFFF) - 0x8000
        return self._highest + delta

    def _reset(self, packet: RtpPacket) -> None:
        self._ssrc = packet.ssrc
        # Start the extended space one cycle up, so early reordered packets stay >= 0.
        self._highest = packet.sequence + 0x10000
        self._next = self._start = self._highest
        self._given_up.clear()

    def push(self, packet: RtpPacket, arrival_ms: int) -> list[tuple[RtpPacket, int]]:
        if (
            packet.ssrc == self._ssrc
            and not self._buffer
            and packet.sequence == self._next & 0xFFFF
        ):
            # The usual case, in order: release at once.
            self._next += 1
            self._highest = max(self._highest, self._next - 1)
            self.stats.released += 1
            return [(packet, arrival_ms)]
        released: list[tuple[RtpPacket, int]] = []
        if self._ssrc is None:
            self._reset(packet)
        elif packet.ssrc != self._ssrc:
            released = self.flush()
            self.stats.ssrc_changes += 1
            self._reset(packet)
        ext = self._extend(packet.sequence)
        if ext < self._next:
            if ext in self._given_up or self._start - 100 <= ext < self._start:
                self.stats.late += 1
                return released
            if self._next - ext <= max(self.window, 100):
                self.stats.duplicates += 1
                return released
            # Far behind: the sender restarted its sequence numbers.
            released += self._restart(packet)
            ext = self._next
        elif ext in self._buffer:
            self.stats.duplicates += 1
            return released
        elif ext - self._highest > MAX_DROPOUT:
            released += self._restart(packet)
            ext = self._next
        if ext < self._highest:
            self.stats.reordered += 1
        self._highest = max(self._highest, ext)
        self._buffer[ext] = (packet, arrival_ms)
        self._release(released)
        return released

    def _restart(self, packet: RtpPacket) -> list[tuple[RtpPacket, int]]:
        released = self.flush()
        self.stats.restarts += 1
        self._reset(packet)
        return released

    def _release(self, out: list[tuple[RtpPacket, int]]) -> None:
        buffer = self._buffer
        while buffer:
            item = buffer.pop(self._next, None)
            if item is not None:
                out.append(item)
                self.stats.released += 1
                self._next += 1
                continue
            if self._highest - self._next < self.window:
                break
            # The window is exceeded: give up the missing packet.
            self._given_up.add(self._next)
            self.stats.lost += 1
            self._next += 1
        if len(self._given_up) > 4 * self.window:
            floor = self._next - 2 * self.window
            self._given_up = {seq for seq in self._given_up if seq >= floor}

    def flush(self) -> list[tuple[RtpPacket, int]]:
        """Release everything buffered, in order (end of stream or new SSRC)."""
        out: list[tuple[RtpPacket, int]] = []
        for ext in sorted(self._buffer):
            if ext > self._next:
                self.stats.lost += ext - self._next
                self._given_up.update(range(self._next, ext))
            out.append(self._buffer[ext])
            self.stats.released += 1
            self._next = ext + 1
        self._buffer.clear()
        return out
