"""A stream file's RTP packets as numpy arrays, and their sequence order.

The finisher used to parse, reorder and place a stream packet by packet in
Python (issue 12: most of ``finish()`` was spent there). Here a whole stream
file (``spool.py`` records: ``<u32 arrival_ms><u16 length><packet>``) is read
into arrays in one pass: ``parse_records`` walks the records in runs of equal
length (one vector check per run instead of one step per record) and reads
the RTP headers (RFC 3550 5.1: CSRCs, header extension and padding as
``RtpPacket.parse`` does, malformed packets counted) with gathers over the
whole buffer.

``sequence_order`` gives the packets ``media/reorder.py`` ``ReorderBuffer``
would release, in its order and with its counters, computed over whole
arrays. It covers what real streams do (reordering, duplicates, late packets
past the window, loss, sequence wrap, SSRC changes) and answers None for
what only the buffer's packet-by-packet rules decide (a sequence restart, a
packet so late that it fell out of the buffer's memory): the caller then
feeds the packets one by one.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import numpy.typing as npt

from callvault.media.reorder import MAX_DROPOUT
from callvault.recording.spool import RECORD_HEADER

Ints = npt.NDArray[np.int64]
Bytes = npt.NDArray[np.uint8]

_HEADER = RECORD_HEADER.size  # 6: u32 arrival, u16 length
_LATE_MEMORY = 100  # ReorderBuffer: packets this far before the first are late, not a restart


@dataclass
class PacketArrays:
    """The well-formed packets of one stream file, in arrival order."""

    data: Bytes  # the whole file; payloads are slices of it
    records: int  # records read (a torn last record is not one)
    malformed: int  # records that are no RTP packet
    record_offsets: Ints  # of every record read (well-formed or not)
    arrival_ms: Ints
    payload_type: Ints
    sequence: Ints
    timestamp: Ints
    ssrc: Ints
    payload_start: Ints  # offset in ``data``
    payload_length: Ints

    def take(self, index: Ints) -> PacketArrays:
        """The packets at ``index``, in that order."""
        return PacketArrays(
            self.data,
            self.records,
            self.malformed,
            self.record_offsets,
            self.arrival_ms[index],
            self.payload_type[index],
            self.sequence[index],
            self.timestamp[index],
            self.ssrc[index],
            self.payload_start[index],
            self.payload_length[index],
        )

    def __len__(self) -> int:
        return len(self.arrival_ms)

    def raw(self, record: int) -> tuple[int, bytes]:
        """Record ``record`` as ``(arrival_ms, packet bytes)``, for the per-packet path."""
        at = int(self.record_offsets[record])
        arrival, length = RECORD_HEADER.unpack(self.data[at : at + _HEADER].tobytes())
        return int(arrival), self.data[at + _HEADER : at + _HEADER + length].tobytes()


def _u16le(data: Bytes, at: Ints) -> Ints:
    return data[at].astype(np.int64) | (data[at + 1].astype(np.int64) << 8)


def _u16be(data: Bytes, at: Ints) -> Ints:
    return (data[at].astype(np.int64) << 8) | data[at + 1].astype(np.int64)


def _u32be(data: Bytes, at: Ints) -> Ints:
    return (_u16be(data, at) << 16) | _u16be(data, at + 2)


def _u32le(data: Bytes, at: Ints) -> Ints:
    return _u16le(data, at) | (_u16le(data, at + 2) << 16)


def record_offsets(data: Bytes) -> Ints:
    """Offsets of the whole records in a stream file (a torn tail is left out).

    Records are found in runs of one length: from a record of length L, the
    next ``step`` records are assumed to be L long too and checked at once;
    the first that is not ends the run. The step doubles while runs hold."""
    end = len(data)
    found: list[Ints] = []
    pos = 0
    step = 16
    while pos + _HEADER <= end:
        size = _HEADER + int(data[pos + 4]) + (int(data[pos + 5]) << 8)
        count = min(step, (end - pos) // size)
        if count == 0:
            break  # torn record
        offsets = pos + size * np.arange(count, dtype=np.int64)
        same = _u16le(data, offsets + 4) == size - _HEADER
        taken = count if bool(same.all()) else int(np.argmin(same))
        found.append(offsets[:taken])
        pos = int(offsets[taken - 1]) + size
        step = min(step * 2, 1 << 16) if taken == count else 16
    if not found:
        return np.zeros(0, dtype=np.int64)
    return np.concatenate(found)


def parse_records(raw: bytes) -> PacketArrays:
    """Every record of a stream file, its RTP header read as ``RtpPacket.parse`` reads it."""
    data = np.frombuffer(raw, dtype=np.uint8)
    offsets = record_offsets(data)
    length = _u16le(data, offsets + 4)
    packet = offsets + _HEADER
    ok = length >= 12
    ok[ok] = data[packet[ok]] >> 6 == 2
    first = np.zeros(len(offsets), dtype=np.int64)
    first[ok] = data[packet[ok]]
    head = 12 + 4 * (first & 0x0F)  # CSRCs
    ok &= head <= length
    extension = ok & (first & 0x10 != 0)
    ok &= ~extension | (head + 4 <= length)
    extension &= ok
    head[extension] += 4 + 4 * _u16be(data, packet[extension] + head[extension] + 2)
    stop = length.copy()
    padded = ok & (first & 0x20 != 0)
    ok &= ~padded | (stop > head)
    padded &= ok
    stop[padded] -= data[packet[padded] + length[padded] - 1]
    ok &= stop >= head
    good = packet[ok]
    return PacketArrays(
        data=data,
        records=len(offsets),
        malformed=int(len(offsets) - np.count_nonzero(ok)),
        record_offsets=offsets,
        arrival_ms=_u32le(data, offsets[ok]),
        payload_type=(data[good + 1] & 0x7F).astype(np.int64),
        sequence=_u16be(data, good + 2),
        timestamp=_u32be(data, good + 4),
        ssrc=_u32be(data, good + 8),
        payload_start=good + head[ok],
        payload_length=(stop - head)[ok],
    )


@dataclass
class SequenceOrder:
    """What ``ReorderBuffer`` releases: ``index`` into the arrays, and its counters."""

    index: Ints
    stats: dict[str, int]


def runs_of(values: Ints) -> list[tuple[int, int]]:
    """``[start, stop)`` of each run of equal consecutive values."""
    if len(values) == 0:
        return []
    cuts = np.flatnonzero(values[1:] != values[:-1]) + 1
    bounds = [0, *cuts.tolist(), len(values)]
    return list(pairwise(bounds))


def sequence_order(packets: PacketArrays, window: int) -> SequenceOrder | None:
    """The packets in the order ``ReorderBuffer(window)`` releases them, or None
    where its packet-by-packet rules (a restart) must decide.

    Per run of one SSRC (a new SSRC flushes the buffer): extended sequence
    numbers (RFC 3550 A.1) by summing the wrapped steps; a packet is late when
    a packet ``window`` or more ahead came before it (its gap was given up),
    a duplicate when its number came before and was kept."""
    stats = dict.fromkeys(
        ("released", "duplicates", "late", "reordered", "lost", "restarts", "ssrc_changes"), 0
    )
    kept: list[Ints] = []
    runs = runs_of(packets.ssrc)
    stats["ssrc_changes"] = max(0, len(runs) - 1)
    # beyond these the buffer forgets given-up numbers or calls it a restart
    reach = min(max(window, _LATE_MEMORY), 2 * window)
    for start, stop in runs:
        seq = packets.sequence[start:stop]
        step = np.empty(len(seq), dtype=np.int64)
        step[0] = seq[0] + 0x10000  # as the buffer: one cycle up
        step[1:] = ((seq[1:] - seq[:-1] + 0x8000) & 0xFFFF) - 0x8000
        ext = np.cumsum(step)
        ahead = np.maximum.accumulate(ext)  # the highest number so far
        before = np.empty_like(ext)
        before[0] = ext[0]
        before[1:] = ahead[:-1]
        if bool((ext - before > MAX_DROPOUT).any()):
            return None
        if bool((before + 1 - ext > reach).any()) or bool((ext < ext[0] - _LATE_MEMORY).any()):
            return None
        if bool((step[1:] > 0).all()):  # the usual stream: in order, no copies, none late
            stats["released"] += len(ext)
            stats["lost"] += int(ext[-1] - ext[0] + 1) - len(ext)
            kept.append(np.arange(start, stop, dtype=np.int64))
            continue
        numbers, first_at, which = np.unique(ext, return_index=True, return_inverse=True)
        first = np.zeros(len(ext), dtype=bool)
        first[first_at] = True
        late = (before - ext >= window) | (ext < ext[0])
        late[0] = False
        late_number = late[first_at]  # whether each number's first copy was late
        copies_late = late_number[which.ravel()]
        kept_mask = first & ~late
        late_copies = np.count_nonzero(~first & copies_late)
        stats["late"] += int(np.count_nonzero(first & late) + late_copies)
        stats["duplicates"] += int(np.count_nonzero(~first & ~copies_late))
        stats["reordered"] += int(np.count_nonzero(kept_mask[1:] & (ext[1:] < before[1:])))
        kept_numbers = numbers[~late_number]
        stats["released"] += len(kept_numbers)
        stats["lost"] += int(kept_numbers[-1] - ext[0] + 1) - len(kept_numbers)
        kept.append(start + first_at[~late_number])  # ``numbers`` is sorted: release order
    index = np.concatenate(kept) if kept else np.zeros(0, dtype=np.int64)
    return SequenceOrder(index.astype(np.int64), stats)
