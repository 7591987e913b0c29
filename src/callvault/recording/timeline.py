"""Lays one recorded stream on the call timeline.

Input: the stream file's ``(arrival_ms, raw RTP)`` records and the stream's
payload-type map. Packets are put in sequence order (``ReorderBuffer``), then
placed by their RTP timestamps (RFC 3550 5.1): each run of one SSRC is anchored
to the arrival clock, and a packet sits at ``anchor + (timestamp - anchor
timestamp) / clock``. The anchor is the earliest that the run's first packets
allow (the least-delayed arrival), so network jitter at the start of a run does
not shift the run. A new SSRC, a new RTP clock rate, or a timestamp that
disagrees with the arrival time by more than ``reanchor_ms`` (an SBC that froze
or jumped its timestamps across a hold) starts a new run.

Events (RFC 4733) and comfort noise (RFC 3389) are counted and skipped; lost
packets leave silence; where packets overlap, the later one wins. Everything
is resampled to one output rate; ``StreamTimeline.render(rate)`` lets the
finisher pick one rate for all streams of a call.

Two ways in, one result: ``feed`` takes one packet at a time; ``from_spool``
takes a whole stream file and, for G.711 (the usual call), parses, orders
(``packet_arrays``), places and decodes it over whole arrays (issue 12: no
Python per packet). Whatever the arrays cannot decide exactly as ``feed``
does (a sequence restart, another codec) goes through ``feed``; a
differential test holds the two to the same samples and counters.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import as_strided

from callvault.errors import RemoteProtocolError
from callvault.media.codec import Codec
from callvault.media.codecs import (
    ALAW_TABLE,
    STATIC_PAYLOAD_TYPES,
    ULAW_TABLE,
    Decoder,
    G711Decoder,
    Samples,
    UnsupportedCodec,
    decode_g711,
    get_decoder,
    is_audio,
)
from callvault.media.reorder import ReorderBuffer
from callvault.media.rtp import RtpPacket
from callvault.recording.packet_arrays import (
    Bytes,
    Ints,
    PacketArrays,
    parse_records,
    runs_of,
    sequence_order,
)

CodecMap = Mapping[int, Codec]
REANCHOR_MS = 500
ANCHOR_PACKETS = 50  # packets of a run that may pull its anchor earlier
WIDEBAND_RATE = 16000  # the recorder's top rate: opus is resampled down to it


@dataclass
class StreamAudio:
    """One stream on the call timeline: ``samples[0]`` is call time 0."""

    rate: int
    samples: Samples
    first_ms: int | None  # call time of the first audio sample, None if no audio
    last_ms: int | None  # call time just after the last audio sample
    ssrcs: list[int]
    stats: dict[str, int]
    codecs: list[str] = field(default_factory=list)


@dataclass
class _Run:
    ssrc: int
    clock: int
    anchor_ts: int  # extended timestamp at the anchor
    arrival_ms: int  # arrival of the run's first packet (provisional anchor)
    anchor_ms: float = math.inf
    packets: int = 0


# One decoded packet: (run, RTP ticks from the run's anchor, decoder rate, audio).
# G.711 audio stays as payload bytes plus its table until a block is decoded at
# once (one table lookup per block instead of one per packet).
_Piece = tuple[_Run, int, int, "Samples | bytes", "Samples | None"]


def _window(taps: int) -> npt.NDArray[np.float64]:
    return np.hanning(taps + 2)[1:-1]


def _lowpass(factor: int, half_width: int = 16) -> npt.NDArray[np.float64]:
    """Windowed-sinc low-pass for a rate change by ``factor`` (odd length)."""
    delay = half_width * factor
    k = np.arange(2 * delay + 1) - delay
    cutoff = 0.5 / factor * 0.92
    h = 2 * cutoff * np.sinc(2 * cutoff * k) * _window(2 * delay + 1)
    result: npt.NDArray[np.float64] = h / h.sum()
    return result


def resample(x: npt.NDArray[np.int16], src: int, dst: int) -> npt.NDArray[np.int16]:
    """Polyphase resampling by an integer factor (linear interpolation otherwise)."""
    if src == dst or len(x) == 0:
        return x
    xf = x.astype(np.float64)
    if dst % src == 0:
        up = dst // src
        h = _lowpass(up) * up
        delay = (len(h) - 1) // 2
        full = np.zeros(len(x) * up + len(h) - 1)
        for phase in range(up):
            conv = np.convolve(xf, h[phase::up])
            full[phase::up][: len(conv)] = conv[: len(full[phase::up])]
        y = full[delay : delay + len(x) * up]
    elif src % dst == 0:
        down = src // dst
        h = _lowpass(down)
        delay = (len(h) - 1) // 2
        n_out = -(-len(x) // down)
        pad = len(h)
        xp = np.concatenate([np.zeros(pad), xf, np.zeros(pad + down)])
        y = np.zeros(n_out)
        for phase in range(down):
            hs = h[phase::down]
            start = delay + pad - phase
            z = xp[start::down]
            # z[i] pairs with output i; taps reach back j samples of this phase.
            y += np.convolve(z, hs)[:n_out]
    else:
        n_out = round(len(x) * dst / src)
        y = np.interp(np.arange(n_out) * (src / dst), np.arange(len(x)), xf)
    return np.clip(np.rint(y), -32768, 32767).astype(np.int16)


class StreamTimeline:
    """Collects one stream's packets; ``render`` lays them out at a given rate."""

    def __init__(
        self,
        codecs: CodecMap,
        *,
        codec_history: Sequence[tuple[int, CodecMap]] = (),
        window: int = 64,
        reanchor_ms: int = REANCHOR_MS,
    ) -> None:
        # (from_ms, map) in time order; the first map holds from the start.
        self._history: list[tuple[int, CodecMap]] = [(-(2**31), codecs), *codec_history]
        self._reorder = ReorderBuffer(window)
        self._reanchor_ms = reanchor_ms
        self._pieces: list[_Piece] = []
        self._runs: list[_Run] = []
        self._run: _Run | None = None
        self._last_ts = 0  # raw timestamp of the last placed packet
        self._last_ext = 0
        self._decoders: dict[int, tuple[Codec, Decoder]] = {}
        self._unsupported: set[str] = set()
        self.ssrcs: list[int] = []
        self.codecs: list[str] = []
        self.counts: dict[str, int] = dict.fromkeys(
            (
                "packets",
                "malformed",
                "decoded",
                "dtmf_packets",
                "cn_packets",
                "unknown_payload",
                "unsupported",
                "undecodable",
                "reanchors",
            ),
            0,
        )
        self._finished = False
        # from_spool's result: blocks laid out over whole arrays, and the order's counters
        self._array_blocks: list[tuple[int, int, Samples]] = []
        self._order_stats: dict[str, int] | None = None
        self.vectorised = False  # whether from_spool placed the stream over whole arrays

    @classmethod
    def from_spool(
        cls,
        records: bytes,
        codecs: CodecMap,
        *,
        codec_history: Sequence[tuple[int, CodecMap]] = (),
        window: int = 64,
        reanchor_ms: int = REANCHOR_MS,
    ) -> StreamTimeline:
        """A finished timeline of one whole stream file (``spool.py`` records)."""
        timeline = cls(codecs, codec_history=codec_history, window=window, reanchor_ms=reanchor_ms)
        packets = parse_records(records)
        if not timeline._place_arrays(packets):
            for record in range(packets.records):
                timeline.feed(*packets.raw(record))
        timeline.finish()
        return timeline

    def _place_arrays(self, packets: PacketArrays) -> bool:
        """Lay the whole stream out at once (``_lay_out_arrays``); False: not done."""
        if self.counts["packets"] or self._finished:
            return False
        layout = _lay_out_arrays(packets, self._history, self._reorder.window, self._reanchor_ms)
        if layout is None:
            return False
        self.counts.update(layout.counts)
        self._order_stats = layout.order_stats
        self._array_blocks = layout.blocks
        self.ssrcs, self.codecs = layout.ssrcs, layout.codecs
        self.vectorised = self._finished = True
        return True

    def feed(self, arrival_ms: int, raw: bytes) -> None:
        self.counts["packets"] += 1
        try:
            packet = RtpPacket.parse(raw)
        except RemoteProtocolError:
            self.counts["malformed"] += 1
            return
        for released, arrival in self._reorder.push(packet, arrival_ms):
            self._place(released, arrival)

    def finish(self) -> None:
        if not self._finished:
            for released, arrival in self._reorder.flush():
                self._place(released, arrival)
            self._finished = True

    def _codec(self, payload_type: int, arrival_ms: int) -> Codec | None:
        for from_ms, codecs in reversed(self._history):
            if from_ms <= arrival_ms and payload_type in codecs:
                return codecs[payload_type]
        for _, codecs in reversed(self._history):  # sent before the re-INVITE took effect
            if payload_type in codecs:
                return codecs[payload_type]
        return STATIC_PAYLOAD_TYPES.get(payload_type)

    def _decoder(self, payload_type: int, codec: Codec) -> Decoder | None:
        cached = self._decoders.get(payload_type)
        if cached is not None and cached[0] == codec:
            return cached[1]
        try:
            decoder = get_decoder(codec)
        except UnsupportedCodec:
            self._unsupported.add(codec.name)
            return None
        self._decoders[payload_type] = (codec, decoder)
        if codec.name not in self.codecs:
            self.codecs.append(codec.name)
        return decoder

    def _place(self, packet: RtpPacket, arrival_ms: int) -> None:
        codec = self._codec(packet.payload_type, arrival_ms)
        counts = self.counts
        if codec is None:
            counts["unknown_payload"] += 1
            return
        if not is_audio(codec):
            counts["dtmf_packets" if codec.name.lower() != "cn" else "cn_packets"] += 1
            return
        run = self._run
        if run is None or run.ssrc != packet.ssrc or run.clock != codec.clock_rate:
            if run is not None and run.ssrc != packet.ssrc:
                self._decoders.clear()  # codec state belongs to one sender
            run = self._new_run(packet, codec, arrival_ms)
            ext = run.anchor_ts
        else:
            delta = ((packet.timestamp - self._last_ts + 0x80000000) & 0xFFFFFFFF) - 0x80000000
            ext = self._last_ext + delta
            predicted = run.arrival_ms + (ext - run.anchor_ts) * 1000 / run.clock
            if abs(predicted - arrival_ms) > self._reanchor_ms:
                counts["reanchors"] += 1
                run = self._new_run(packet, codec, arrival_ms)
                ext = run.anchor_ts
        self._last_ts = packet.timestamp
        self._last_ext = ext
        decoder = self._decoder(packet.payload_type, codec)
        if decoder is None:
            counts["unsupported"] += 1
            return
        audio: Samples | bytes
        table: Samples | None = None
        if isinstance(decoder, G711Decoder):
            audio, table = packet.payload, decoder.table
        else:
            audio = decoder.decode(packet.payload)
        if len(audio) == 0:
            counts["undecodable"] += 1
            return
        counts["decoded"] += 1
        ticks = ext - run.anchor_ts
        if run.packets < ANCHOR_PACKETS:
            run.anchor_ms = min(run.anchor_ms, arrival_ms - ticks * 1000 / run.clock)
        run.packets += 1
        self._pieces.append((run, ticks, decoder.rate, audio, table))

    def _new_run(self, packet: RtpPacket, codec: Codec, arrival_ms: int) -> _Run:
        run = _Run(packet.ssrc, codec.clock_rate, packet.timestamp, arrival_ms)
        self._run = run
        self._runs.append(run)
        if packet.ssrc not in self.ssrcs:
            self.ssrcs.append(packet.ssrc)
        return run

    @property
    def native_rate(self) -> int:
        """8000 when everything decoded was narrowband, else 16000."""
        top = max((piece[2] for piece in self._pieces), default=8000)
        top = max((block[1] for block in self._array_blocks), default=top)
        return 8000 if top <= 8000 else WIDEBAND_RATE

    def stats(self) -> dict[str, int]:
        merged = dict(self.counts)
        merged.update(self._order_stats or self._reorder.stats.as_dict())
        merged["ssrcs"] = len(self.ssrcs)
        return merged

    def render(self, rate: int | None = None) -> StreamAudio:
        self.finish()
        rate = rate or self.native_rate
        blocks = self._blocks()
        end = 0
        placed: list[tuple[int, Samples]] = []
        for start_dec, block_rate, block in blocks:
            audio = resample(block, block_rate, rate)
            start = round(start_dec * rate / block_rate)
            if start < 0:
                audio = audio[-start:]
                start = 0
            if len(audio) == 0:
                continue
            placed.append((start, audio))
            end = max(end, start + len(audio))
        samples = np.zeros(end, dtype=np.int16)
        first = end
        for start, audio in placed:
            samples[start : start + len(audio)] = audio
            first = min(first, start)
        return StreamAudio(
            rate=rate,
            samples=samples,
            first_ms=first * 1000 // rate if placed else None,
            last_ms=-(-end * 1000 // rate) if placed else None,
            ssrcs=list(self.ssrcs),
            stats=self.stats(),
            codecs=list(self.codecs),
        )

    def _blocks(self) -> list[tuple[int, int, Samples]]:
        """Pieces joined into contiguous blocks (resampled as one, no seams)."""
        if self.vectorised:
            return self._array_blocks
        blocks: list[tuple[int, int, Samples]] = []
        cur_start = cur_end = cur_rate = 0
        chunks: list[Samples | bytes] = []
        cur_table: Samples | None = None

        def close() -> None:
            audio: Samples
            if cur_table is not None:
                payload = b"".join(c for c in chunks if isinstance(c, bytes))
                audio = decode_g711(cur_table, np.frombuffer(payload, dtype=np.uint8))
            else:
                arrays = [c for c in chunks if not isinstance(c, bytes)]
                audio = arrays[0] if len(arrays) == 1 else np.concatenate(arrays)
            blocks.append((cur_start, cur_rate, audio))

        for run, ticks, rate, audio, table in self._pieces:
            pos = round((run.anchor_ms / 1000 + ticks / run.clock) * rate)
            if chunks and rate == cur_rate and table is cur_table and abs(pos - cur_end) <= 1:
                chunks.append(audio)
                cur_end += len(audio)
                continue
            if chunks:
                close()
            chunks = [audio]
            cur_start, cur_rate, cur_table = pos, rate, table
            cur_end = pos + len(audio)
        if chunks:
            close()
        return blocks


@dataclass
class _ArrayLayout:
    """What ``_lay_out_arrays`` found: the timeline's blocks, counters and names."""

    blocks: list[tuple[int, int, Samples]]
    counts: dict[str, int]
    order_stats: dict[str, int]
    ssrcs: list[int]
    codecs: list[str]


_G711_TABLES = {"pcmu": ULAW_TABLE, "pcma": ALAW_TABLE}


def _codec_ids(
    history: Sequence[tuple[int, CodecMap]], packets: PacketArrays
) -> tuple[Ints, list[Codec]]:
    """Each packet's codec as ``StreamTimeline._codec`` picks it (an index into the
    returned list; -1: none)."""
    if len(history) == 1:  # no re-INVITE: one table from payload type to codec
        return _codec_ids_of_one_map(history[0][1], packets)
    ids = np.full(len(packets), -1, dtype=np.int64)
    known: list[Codec] = []

    def assign(selected: npt.NDArray[np.bool_], codec: Codec) -> None:
        if codec not in known:
            known.append(codec)
        ids[selected] = known.index(codec)

    payload_type, arrival = packets.payload_type, packets.arrival_ms
    for from_ms, codecs in reversed(history):
        effective = arrival >= from_ms
        for pt, codec in codecs.items():
            assign((ids < 0) & (payload_type == pt) & effective, codec)
    tables = [codecs for _, codecs in reversed(history)]  # sent before a re-INVITE took effect
    for codecs in [*tables, STATIC_PAYLOAD_TYPES]:
        for pt, codec in codecs.items():
            assign((ids < 0) & (payload_type == pt), codec)
    return ids, known


def _static_lookup() -> tuple[Ints, list[Codec]]:
    lookup = np.full(128, -1, dtype=np.int64)  # RTP payload types are 7 bits
    known: list[Codec] = []
    for pt, codec in STATIC_PAYLOAD_TYPES.items():
        if 0 <= pt < len(lookup):
            if codec not in known:
                known.append(codec)
            lookup[pt] = known.index(codec)
    return lookup, known


_STATIC_LOOKUP = _static_lookup()


def _codec_ids_of_one_map(codecs: CodecMap, packets: PacketArrays) -> tuple[Ints, list[Codec]]:
    """``_codec_ids`` for a stream with one payload-type map (the stream's own
    types, else the static ones), as one lookup per packet."""
    lookup, known = _STATIC_LOOKUP[0].copy(), list(_STATIC_LOOKUP[1])
    for pt, codec in codecs.items():  # the stream's own map wins
        if 0 <= pt < len(lookup):
            if codec not in known:
                known.append(codec)
            lookup[pt] = known.index(codec)
    ids: Ints = lookup.take(packets.payload_type)
    return ids, known


def _first_of_each(values: Ints) -> list[int]:
    """The distinct values in order of first appearance."""
    if len(values) == 0 or bool((values == values[0]).all()):  # one SSRC, one codec
        return [int(values[0])] if len(values) else []
    _, first = np.unique(values, return_index=True)
    return [int(values[i]) for i in np.sort(first)]


def _runs(
    ssrc: Ints, clock: Ints, ts: Ints, arrival: Ints, reanchor_ms: int
) -> tuple[list[tuple[int, int]], Ints, int]:
    """Runs of the audio packets as ``StreamTimeline._place`` starts them: on a new
    SSRC or clock, and where the timestamps stray from the arrival clock by more
    than ``reanchor_ms`` (found in growing windows). Returns the runs, each
    packet's ticks from its run's anchor, and the number of re-anchorings."""
    n = len(ts)
    step = np.zeros(n, dtype=np.int64)
    step[1:] = ((ts[1:] - ts[:-1] + 0x80000000) & 0xFFFFFFFF) - 0x80000000
    total = np.cumsum(step)  # extended timestamp, relative to the first audio packet
    key = ssrc * 1_000_003 + clock  # a change of either starts a run
    runs: list[tuple[int, int]] = []
    reanchors = 0
    for start, stop in runs_of(key):
        run = start
        while run < stop:
            origin, rate, base = int(arrival[run]), int(clock[run]), int(total[run])
            cut, low, width = stop, run + 1, 64
            while low < stop:
                high = min(stop, low + width)
                # the same float expression as ``_place``: predicted vs arrival
                predicted = origin + ((total[low:high] - base) * 1000) / rate
                strays = np.abs(predicted - arrival[low:high]) > reanchor_ms
                if strays.any():
                    cut = low + int(np.argmax(strays))
                    break
                low, width = high, width * 2
            runs.append((run, cut))
            if cut < stop:
                reanchors += 1
            run = cut
    ticks = total.copy()
    for start, stop in runs:
        ticks[start:stop] -= total[start]
    return runs, ticks, reanchors


def _payload_bytes(data: Bytes, start: Ints, length: Ints) -> Bytes:
    """The payloads ``data[start:start + length]`` joined, gathered as rows of one
    length at a time (a payload is then one row copy, not a byte-wise index)."""
    if len(start) == 0:
        return np.zeros(0, dtype=np.uint8)
    size = int(length[0])
    if bool((length == size).all()) and size > 0:
        # a view of every ``size`` bytes from each offset (as ``sliding_window_view``,
        # without its checks), of which the payloads' rows are taken
        windows = as_strided(data, (len(data) - size + 1, size), (1, 1), writeable=False)
        rows: Bytes = windows[start]  # (``take`` along an axis of this view is far slower)
        return rows.reshape(-1)
    before = np.cumsum(length) - length
    source = np.repeat(start - before, length) + np.arange(int(length.sum()), dtype=np.int64)
    joined: Bytes = data[source]
    return joined


def _lay_out_arrays(
    packets: PacketArrays,
    history: Sequence[tuple[int, CodecMap]],
    window: int,
    reanchor_ms: int,
) -> _ArrayLayout | None:
    """A G.711 stream laid out over whole arrays, exactly as feeding it packet by
    packet does; None where only that can decide (see ``sequence_order``) or a
    codec other than G.711 carries audio."""
    order = sequence_order(packets, window)
    if order is None:
        return None
    placed = packets.take(order.index)
    ids, known = _codec_ids(history, placed)
    counts = {"packets": packets.records, "malformed": packets.malformed}
    counts["unknown_payload"] = int(np.count_nonzero(ids < 0))
    audio = np.zeros(len(placed), dtype=bool)
    table_of = np.full(len(known), -1, dtype=np.int64)
    clock_of = np.zeros(len(known), dtype=np.int64)
    counts["dtmf_packets"] = counts["cn_packets"] = 0
    for k, codec in enumerate(known):
        selected = ids == k
        name = codec.name.lower()
        if not is_audio(codec):
            counts["cn_packets" if name == "cn" else "dtmf_packets"] += int(selected.sum())
            continue
        if name not in _G711_TABLES:
            if selected.any():
                return None  # a decoder with state: packet by packet
            continue
        audio |= selected
        table_of[k] = 0 if name == "pcmu" else 1
        clock_of[k] = codec.clock_rate
    voiced = placed.take(np.flatnonzero(audio))
    voiced_ids = ids[audio]
    clock = clock_of[voiced_ids]
    if bool((clock <= 0).any()):
        return None
    runs, ticks, counts["reanchors"] = _runs(
        voiced.ssrc, clock, voiced.timestamp, voiced.arrival_ms, reanchor_ms
    )
    decoded = voiced.payload_length > 0
    counts["decoded"] = int(decoded.sum())
    counts["undecodable"] = len(voiced) - counts["decoded"]
    counts["unsupported"] = 0

    # each run's anchor: the earliest its first ANCHOR_PACKETS decoded packets allow
    run_of = np.repeat(np.arange(len(runs)), [b - a for a, b in runs])
    earliest = voiced.arrival_ms - (ticks * 1000) / clock
    rank: Ints = np.cumsum(decoded, dtype=np.int64) - decoded  # decoded packets before
    run_first = np.array([a for a, _ in runs], dtype=np.int64)
    if runs:
        rank -= rank[run_first][run_of]  # ... within the packet's run
    anchors = np.full(len(runs), math.inf)
    counted = decoded & (rank < ANCHOR_PACKETS)
    np.minimum.at(anchors, run_of[counted], earliest[counted])

    # decoded pieces: where each lands, joined into blocks as ``_blocks`` joins them
    pieces = np.flatnonzero(decoded)
    tables = table_of[voiced_ids[pieces]]
    length = voiced.payload_length[pieces]
    rate = G711Decoder.rate
    position = np.rint(
        (anchors[run_of[pieces]] / 1000 + ticks[pieces] / clock[pieces]) * rate
    ).astype(np.int64)
    before = np.cumsum(length) - length  # samples of the pieces before
    drift = position - before  # equal within a block (give or take one sample)
    starts = [0] if len(pieces) else []
    if len(pieces) > 1:
        changes = np.flatnonzero((drift[1:] != drift[:-1]) | (tables[1:] != tables[:-1])) + 1
        block_drift, block_table = int(drift[0]), int(tables[0])
        for i, d, t in zip(
            changes.tolist(), drift[changes].tolist(), tables[changes].tolist(), strict=True
        ):
            if t != block_table or abs(d - block_drift) > 1:
                starts.append(i)
                block_drift, block_table = d, t
    # every payload byte through its table, in one pass over the stream file
    codes = _payload_bytes(packets.data, voiced.payload_start[pieces], length)
    if not tables.any():
        samples: Samples = decode_g711(ULAW_TABLE, codes)
    elif tables.all():
        samples = decode_g711(ALAW_TABLE, codes)
    else:  # both laws in one stream (a re-INVITE changed it)
        alaw = np.repeat(tables == 1, length)
        samples = np.where(alaw, decode_g711(ALAW_TABLE, codes), decode_g711(ULAW_TABLE, codes))
    ends = [*starts[1:], len(pieces)] if starts else []
    blocks = [
        (int(position[a]), rate, samples[int(before[a]) : int(before[b - 1] + length[b - 1])])
        for a, b in zip(starts, ends, strict=True)
    ]
    names = [known[k].name for k in _first_of_each(voiced_ids)]
    return _ArrayLayout(
        blocks=blocks,
        counts=counts,
        order_stats=order.stats,
        ssrcs=_first_of_each(voiced.ssrc),
        codecs=list(dict.fromkeys(names)),
    )


def lay_out_stream(
    packets: Iterable[tuple[int, bytes]],
    codecs: CodecMap,
    *,
    rate: int | None = None,
    codec_history: Sequence[tuple[int, CodecMap]] = (),
    window: int = 64,
    reanchor_ms: int = REANCHOR_MS,
) -> StreamAudio:
    """Decode and place one stream; ``rate`` defaults to its ``native_rate``."""
    timeline = StreamTimeline(
        codecs, codec_history=codec_history, window=window, reanchor_ms=reanchor_ms
    )
    for arrival_ms, raw in packets:
        timeline.feed(arrival_ms, raw)
    return timeline.render(rate)
