"""In-band DTMF: key presses heard as tones in the audio (ITU-T Q.23, Q.24).

``InbandDtmfDetector`` finds the dual tones of Q.23 (rows 697/770/852/941 Hz,
columns 1209/1336/1477/1633 Hz) in one stream's 16-bit linear audio. It is
sans-IO and streaming: ``feed`` takes any number of samples with the time of
the first one and returns the digits it completed; ``finish`` flushes the
rest at the end of the stream.

Each 25 ms window (hopped every 2.5 ms) is measured with the Goertzel
algorithm at the eight frequencies, each probed at the nominal frequency and
1.5 % either side (Q.24's accept band); the window holds a digit when, as in
Q.24's receiver requirements and the usual detectors (Bellcore TR-NWT-000506):

* each tone is above the minimum level (-30 dBm0 by default);
* the twist is within limits: the high group at most 4 dB above the low group
  ("normal twist") and the low group at most 8 dB above the high group
  ("reverse twist");
* each tone stands 6 dB above the others of its group;
* the two tones hold most of the window's energy (``min_tone_ratio``): speech
  and music spread their energy over many harmonics and partials, so this
  rejects them, and it rejects a tone 2nd harmonic or partial as well.

Windows then become key presses: a tone must last 40 ms (Q.24's shortest
accepted digit; 30 ms tones are rejected) and a pause of 40 ms separates two
presses of one key, while shorter drop-outs (a lost packet) do not split a
press. Once a press is seen, the windows around it where both its tones are
still there (at a quarter of their power or more) belong to it even when
speech on top fails the energy test, so a key pressed while the other party
talks keeps its full length. Durations are estimated from where the windows
start to pass the tests, to about 3 ms; the cuts sit halfway (35 ms for
tones, 25 ms for pauses).

The work is numpy over whole blocks: every sample is projected once onto the
probes in 2.5 ms sub-blocks, and windows are sums of ten sub-blocks (about
1 000 times real time on one core).

After the call, ``detect_keys`` runs a cheap per-frame gate over a whole stream
and this detector only around the frames it flags; what the live listener
(``live_keys.py``) already analysed during the call, the gate skips except
around the keys the listener heard (issue 12, "Make finishing cheap").
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from callvault.media.dtmf import DtmfDigit

ROWS = (697.0, 770.0, 852.0, 941.0)
COLUMNS = (1209.0, 1336.0, 1477.0, 1633.0)
KEYS = "123A456B789C*0#D"  # row-major: KEYS[row * 4 + column]

DETECTOR_VERSION = "q24/1"
"""The detector with its default parameters, as the journal names it: the live
listener writes it with each stretch it analysed (``recording/journal.py``
``InbandListened``) and the finisher skips only what this same version heard.
Change it whenever a change here may find other keys, or the same keys elsewhere."""

FULL_SCALE_DBM0 = 3.17  # a full-scale sine, in dBm0 (ITU-T G.711)
_PROBES = (-0.015, 0.0, 0.015)  # relative offsets probed around each frequency

Pcm = npt.NDArray[np.int16]
Floats = npt.NDArray[np.float64]


def _power_of_dbm0(level_dbm0: float) -> float:
    """Mean power (full scale = 1.0) of a sine at ``level_dbm0``."""
    amplitude = math.pow(10.0, (level_dbm0 - FULL_SCALE_DBM0) / 20.0)
    return amplitude * amplitude / 2.0


_TABLE_HOPS = 4096
_HISTORY_WINDOWS = 64  # 160 ms: how far back a press's start is looked for


def _frac(cycles: Floats) -> Floats:
    frac: Floats = cycles - np.floor(cycles)
    return frac


@dataclass(slots=True)
class _Press:
    """A key press being heard; window indices are global and inclusive."""

    key: int
    early: int  # the first window of an unbroken run, up to ``first``, with both tones
    first: int  # the first window that passed every test
    last: int  # the last such window
    held: int  # the last window of an unbroken run where both tones were still there
    level: float  # the weaker tone's power at its best window
    holding: bool = True  # False once a window lost the tones after ``last``

    @property
    def row(self) -> int:
        return self.key // 4

    @property
    def column(self) -> int:
        return 4 + self.key % 4


class InbandDtmfDetector:
    """Finds DTMF digits in one stream's audio (see the module doc)."""

    def __init__(
        self,
        rate: int = 8000,
        *,
        stream_index: int = 0,
        min_level_dbm0: float = -30.0,
        normal_twist_db: float = 4.0,
        reverse_twist_db: float = 8.0,
        relative_peak_db: float = 6.0,
        min_tone_ratio: float = 0.7,
        min_tone_ms: int = 40,
        min_pause_ms: int = 40,
    ) -> None:
        if rate < 4000 or rate % 400:
            raise ValueError(f"unsupported sample rate {rate} (a multiple of 400, >= 4000)")
        self.rate = rate
        self.stream_index = stream_index
        self.hop = rate // 400  # 2.5 ms
        self.hops_per_window = 10  # 25 ms
        self.window = self.hop * self.hops_per_window
        self._min_power = _power_of_dbm0(min_level_dbm0)
        self._normal_twist = 10.0 ** (normal_twist_db / 10.0)
        self._reverse_twist = 10.0 ** (reverse_twist_db / 10.0)
        self._relative_peak = 10.0 ** (-relative_peak_db / 10.0)
        self._min_ratio = min_tone_ratio
        # A window passes the ratio test once the tone fills ``min_tone_ratio`` of
        # it, so the first passing window starts this many samples before the tone.
        self._edge = (1.0 - min_tone_ratio) * self.window
        # Decisions on estimated durations sit halfway between what must be
        # accepted and what must be rejected: 35 ms for tones (30 ms rejected),
        # 25 ms for pauses (Q.24: drop-outs of 10 ms or so do not split a digit).
        self._min_tone_samples = (min_tone_ms - 5) * rate / 1000
        self._min_pause_samples = (min_pause_ms - 15) * rate / 1000

        freqs = np.array([f * (1 + d) for f in ROWS + COLUMNS for d in _PROBES])
        self._freqs = freqs
        n = np.arange(self.hop)
        # Real matrix with interleaved (cos, -sin) columns: one real product per
        # block, read back as complex without a copy.
        phase = 2.0 * np.pi * np.outer(n, freqs) / rate
        basis = np.empty((self.hop, 2 * len(freqs)))
        basis[:, 0::2], basis[:, 1::2] = np.cos(phase), -np.sin(phase)
        self._basis = np.asfortranarray(basis)
        # Phase of hop g's first sample against sample 0, as table[g % K] * coarse(g // K):
        # two lookups instead of a complex exponential per hop and probe.
        self._cycles_per_hop = freqs * self.hop / rate
        k = np.arange(_TABLE_HOPS)
        self._fine = np.exp(-2j * np.pi * _frac(np.outer(k, self._cycles_per_hop)))

        self._rest: Floats = np.zeros(0)  # samples short of a whole hop
        self._hops = 0  # hops projected so far
        self._tail_x = np.zeros((0, len(freqs)), dtype=np.complex128)  # last hops, for windows
        self._tail_e: Floats = np.zeros(0)
        self._tail_s: Floats = np.zeros(0)
        self._anchor = (0, 0.0)  # (global sample index, its time in ms)
        self._press: _Press | None = None
        self._history: Floats = np.zeros((0, 8))
        self._boundary = -1  # the last window of the last press reported

    # -- input --

    def feed(self, samples: Pcm, t0_ms: int) -> list[DtmfDigit]:
        """Analyse ``samples`` (int16, mono), the first at ``t0_ms``; return completed digits.

        Calls are taken as contiguous audio; ``t0_ms`` re-anchors the clock.
        """
        start = self._hops * self.hop + len(self._rest)
        self._anchor = (start, float(t0_ms))
        x = np.asarray(samples, dtype=np.float64) / 32768.0
        return self._analyse(np.concatenate([self._rest, x]))

    def finish(self) -> list[DtmfDigit]:
        """End of the stream: analyse what is buffered and report a digit still sounding."""
        out = self._analyse(np.concatenate([self._rest, np.zeros(self.window)]))
        if self._press is not None:
            out += self._emit(self._press)
            self._press = None
        self._rest = np.zeros(0)
        return out

    # -- windows --

    def _analyse(self, x: Floats) -> list[DtmfDigit]:
        count = len(x) // self.hop
        self._rest = x[count * self.hop :]
        if count == 0:
            return []
        blocks = x[: count * self.hop].reshape(count, self.hop)
        hops = np.arange(self._hops, self._hops + count)
        self._hops += count
        projected = np.ascontiguousarray(blocks @ self._basis).view(np.complex128)
        # Refer every sub-block to the stream's sample 0, so sub-blocks add up.
        coarse_first = hops[0] // _TABLE_HOPS
        coarse_index = np.arange(coarse_first, hops[-1] // _TABLE_HOPS + 1, dtype=np.float64)
        coarse = np.exp(
            -2j * np.pi * _frac(np.outer(coarse_index * _TABLE_HOPS, self._cycles_per_hop))
        )
        projected *= self._fine[hops % _TABLE_HOPS]
        projected *= coarse[hops // _TABLE_HOPS - coarse_first]
        xs = np.concatenate([self._tail_x, projected])
        es = np.concatenate([self._tail_e, np.einsum("ij,ij->i", blocks, blocks)])
        ss = np.concatenate([self._tail_s, blocks.sum(axis=1)])
        keep = self.hops_per_window - 1
        self._tail_x, self._tail_e, self._tail_s = xs[-keep:], es[-keep:], ss[-keep:]
        if len(xs) < self.hops_per_window:
            return []
        keys, power = self._classify(xs, es, ss)
        first_window = self._hops - len(keys) - keep
        return self._track(keys, power, first_window)

    def _classify(
        self, xs: npt.NDArray[np.complex128], es: Floats, ss: Floats
    ) -> tuple[npt.NDArray[np.int8], Floats]:
        """Per window: the key index 0-15 it holds, or -1; and the eight tone powers."""
        w, n = self.hops_per_window, self.window
        count = len(xs) - w + 1
        y, energy, mean = xs[:count].copy(), es[:count].copy(), ss[:count].copy()
        for i in range(1, w):
            y += xs[i : i + count]
            energy += es[i : i + count]
            mean += ss[i : i + count]
        energy /= n
        mean /= n
        energy = energy - mean * mean
        parts = y.view(np.float64).reshape(len(y), -1, 2)
        power = np.einsum("ijk,ijk->ij", parts, parts) * (2.0 / (n * n))
        power = power.reshape(len(power), 8, len(_PROBES)).max(axis=2)
        rows, cols = np.sort(power[:, :4], axis=1), np.sort(power[:, 4:], axis=1)
        row, col = rows[:, -1], cols[:, -1]
        ok = (row >= self._min_power) & (col >= self._min_power)
        ok &= col <= row * self._normal_twist
        ok &= row <= col * self._reverse_twist
        ok &= rows[:, -2] <= row * self._relative_peak
        ok &= cols[:, -2] <= col * self._relative_peak
        ok &= row + col >= self._min_ratio * energy
        key = np.argmax(power[:, :4], axis=1) * 4 + np.argmax(power[:, 4:], axis=1)
        result: npt.NDArray[np.int8] = np.where(ok, key, -1).astype(np.int8)
        return result, power

    # -- windows to key presses --

    def _track(self, keys: npt.NDArray[np.int8], power: Floats, first: int) -> list[DtmfDigit]:
        """Join the windows ``first ...`` into key presses; return the presses completed."""
        out: list[DtmfDigit] = []
        # Tone powers of recent windows too, to find where a press began.
        power = np.concatenate([self._history, power])
        base = first - len(self._history)  # global index of power[0]
        self._history = power[-_HISTORY_WINDOWS:]
        edges = np.flatnonzero(np.diff(keys)) + 1
        starts = np.concatenate([[0], edges]).tolist()
        ends = (np.concatenate([edges, [len(keys)]]) - 1).tolist()
        for a, b in zip(starts, ends, strict=True):
            key = int(keys[a])
            if key < 0:
                continue
            run = power[first + a - base : first + b + 1 - base]
            press = self._press
            if press is not None:
                self._hold(press, power, base, first + a - 1)
                if press.key == key and (
                    not self._separated(press, first + a)
                    or self._bridged(press, power, base, first + a - 1)
                ):
                    press.last = press.held = first + b
                    press.holding = True
                    press.level = max(press.level, self._level(run, press))
                    continue
                out += self._emit(press)
            press = _Press(key, first + a, first + a, first + b, first + b, 0.0)
            press.level = self._level(run, press)
            self._begin(press, power, base)
            self._press = press
        last = first + len(keys) - 1
        press = self._press
        if press is not None:
            self._hold(press, power, base, last)
            if not press.holding and self._separated(press, last + 1):
                out += self._emit(press)
                self._press = None
        return out

    @staticmethod
    def _level(power: Floats, press: _Press) -> float:
        return float(np.minimum(power[:, press.row], power[:, press.column]).max())

    def _tones_on(self, press: _Press, power: Floats) -> npt.NDArray[np.bool_]:
        """Windows where both of the press's tones are still there (a quarter of their power).

        A loud syllable of the other direction may fail the window tests while
        the key's tones go on: such windows neither start nor end a press.
        """
        floor = max(press.level / 4.0, self._min_power)
        on: npt.NDArray[np.bool_] = np.minimum(power[:, press.row], power[:, press.column]) >= floor
        return on

    def _begin(self, press: _Press, power: Floats, base: int) -> None:
        """Move ``press.early`` back over the windows before it where its tones sound."""
        lo = max(base, self._boundary + 1)
        if lo >= press.first:
            return
        on = self._tones_on(press, power[lo - base : press.first - base])
        off = np.flatnonzero(~on)
        press.early = lo + (int(off[-1]) + 1 if len(off) else 0)

    def _bridged(self, press: _Press, power: Floats, base: int, upto: int) -> bool:
        """Whether one of the press's tones sounds in every window after it up to ``upto``.

        Speech on top can cancel one tone for a while; a real pause silences both.
        """
        lo = press.held + 1
        if lo < base:
            return False
        floor = max(press.level / 4.0, self._min_power)
        gap = power[lo - base : upto - base + 1]
        return bool((np.maximum(gap[:, press.row], gap[:, press.column]) >= floor).all())

    def _hold(self, press: _Press, power: Floats, base: int, upto: int) -> None:
        """Extend ``press.held`` over the windows up to ``upto`` where its tones go on."""
        if not press.holding or press.held >= upto:
            return
        lo = max(press.held + 1, base)
        on = self._tones_on(press, power[lo - base : upto - base + 1])
        off = np.flatnonzero(~on)
        if len(off):
            press.held = lo + int(off[0]) - 1
            press.holding = False
        else:
            press.held = upto

    def _end_sample(self, press: _Press) -> float:
        """Estimated end of the tone: from the last full window, or the last held one."""
        strict = press.last * self.hop + self.window - self._edge
        held = press.held * self.hop + self.window / 2
        return max(strict, held)

    def _separated(self, press: _Press, window: int) -> bool:
        """Whether a tone starting in ``window`` is a new press after ``press``."""
        gap = window * self.hop + self._edge - self._end_sample(press)
        return gap >= self._min_pause_samples

    def _emit(self, press: _Press) -> list[DtmfDigit]:
        self._boundary = press.held
        start = min(press.first * self.hop + self._edge, press.early * self.hop + self.window / 2)
        end = self._end_sample(press)
        if end - start < self._min_tone_samples:
            return []
        anchor_sample, anchor_ms = self._anchor
        start_ms = anchor_ms + (start - anchor_sample) * 1000.0 / self.rate
        return [
            DtmfDigit(
                digit=KEYS[press.key],
                stream_index=self.stream_index,
                start_ms=math.floor(start_ms + 0.5),
                duration_ms=round((end - start) * 1000.0 / self.rate),
                source="inband",
            )
        ]


# -- a cheap gate for whole calls ----------------------------------------------------

GATE_FRAME_MS = 20
GATE_MARGIN_MS = 120  # audio kept around a candidate frame for the exact detector
GATE_MIN_SHARE = 0.08  # each group's strongest tone holds at least this share of the frame


Floats32 = npt.NDArray[np.float32]
_GATE_MATRICES: dict[tuple[int, int], tuple[Floats32, Floats32, Floats32]] = {}


def _gate_matrices(frame: int, rate: int) -> tuple[Floats32, Floats32, Floats32]:
    """What ``_gate_hits`` multiplies a frame of int16 samples by, with the Hann window
    and the scale to full scale folded in: the DFT bins it reads (each tone's bin and
    its neighbours; cosine columns, then sine columns), then the DC and Nyquist bins;
    the window's squares (the frame's windowed power); and which bins sum to each of
    the eight tones (bins x 8)."""
    cached = _GATE_MATRICES.get((frame, rate))
    if cached is None:
        width = rate / frame
        centres = [round(freq / width) for freq in (*ROWS, *COLUMNS)]
        bins = sorted({b for c in centres for b in range(max(c - 1, 0), c + 2)})
        n = np.arange(frame)
        window = np.hanning(frame) / 32768.0
        phase = 2 * np.pi * np.outer(n, bins) / frame
        nyquist = np.where(n % 2, -1.0, 1.0) if frame % 2 == 0 else np.zeros(frame)
        columns = [np.cos(phase), -np.sin(phase), np.ones((frame, 1)), nyquist[:, None]]
        product = np.concatenate(columns, axis=1) * window[:, None]
        tones = np.zeros((len(bins), 8))
        for k, centre in enumerate(centres):
            for b in range(max(centre - 1, 0), centre + 2):
                tones[bins.index(b), k] = 1.0
        cached = _GATE_MATRICES[(frame, rate)] = (
            product.astype(np.float32),
            (window * window).astype(np.float32),
            tones.astype(np.float32),
        )
    return cached


def _gate_hits(
    samples: Pcm, rate: int, at: npt.NDArray[np.intp] | None = None
) -> npt.NDArray[np.intp]:
    """The 20 ms frames (of all, or of the frame indices ``at``) where one row tone
    and one column tone both stand out: see ``candidate_spans``. Each frame is
    Hann-windowed and read at the bins around the eight tones only, all in one
    matrix product (not a whole FFT per frame)."""
    frame = rate * GATE_FRAME_MS // 1000
    count = len(samples) // frame
    whole = samples[: count * frame].reshape(count, frame)
    frames = (whole if at is None else whole[at]).astype(np.float32)
    product, power_weights, tones = _gate_matrices(frame, rate)
    bins = len(tones)
    projected = frames @ product
    spectrum = projected[:, :bins] ** 2 + projected[:, bins : 2 * bins] ** 2
    dc, nyquist = projected[:, -2], projected[:, -1]
    # the one-sided spectrum's total power by Parseval: (N sum y^2 + |Y_0|^2 + |Y_N/2|^2) / 2
    total = (frame * ((frames * frames) @ power_weights) + dc * dc + nyquist * nyquist) / 2
    total += 1e-9
    shares = (spectrum @ tones) / total[:, None]  # each tone's share of the frame
    loud = total > _power_of_dbm0(-36.0) * frame * frame * 0.375  # Hann power gain
    rows, columns = shares[:, :4].max(axis=1), shares[:, 4:].max(axis=1)
    hits = np.flatnonzero(loud & (rows > GATE_MIN_SHARE) & (columns > GATE_MIN_SHARE))
    return hits if at is None else at[hits]


def _spans_of_hits(hits: Iterable[int], samples: int, rate: int) -> list[tuple[int, int]]:
    """Sample ranges around the gate's frames, joined where they touch."""
    frame = rate * GATE_FRAME_MS // 1000
    margin = rate * GATE_MARGIN_MS // 1000
    spans: list[tuple[int, int]] = []
    for index in hits:
        start, end = max(0, int(index) * frame - margin), int(index + 1) * frame + margin
        if spans and start <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], end))
        else:
            spans.append((start, min(end, samples)))
    return spans


def candidate_spans(samples: Pcm, rate: int) -> list[tuple[int, int]]:
    """Sample ranges that might hold a key press: frames where one row tone and one
    column tone both stand out (a Hann-windowed FFT per 20 ms frame). Speech and
    music rarely pass, silence and single tones never; the exact detector then runs
    only on these ranges, which makes whole-call detection several times cheaper.
    A 40 ms tone always fills at least one whole frame, so no key is missed here."""
    if len(samples) < rate * GATE_FRAME_MS // 1000:
        return []
    return _spans_of_hits(_gate_hits(samples, rate).tolist(), len(samples), rate)


def _gate_hits_unheard(
    samples: Pcm,
    rate: int,
    heard: Sequence[tuple[int, int]],
    keys_heard: Sequence[tuple[int, int]],
) -> list[int]:
    """The gate's frames outside ``heard`` (sample ranges a live listener analysed)
    and around ``keys_heard`` (sample ranges of the keys it found there), plus every
    frame the gate's spans could join to those: the same spans ``candidate_spans``
    gives there, at the cost of the frames looked at."""
    frame = rate * GATE_FRAME_MS // 1000
    count = len(samples) // frame
    look = np.ones(count + 1, dtype=np.bool_)
    for start, end in heard:  # frames wholly inside what was heard
        look[max(0, -(-start // frame)) : max(0, end // frame)] = False
    for start, end in keys_heard:
        look[max(0, start // frame) : max(0, end // frame + 1)] = True
    look = look[:count]
    # two hits join into one span when fewer frames than this lie between them
    reach = 2 * (rate * GATE_MARGIN_MS // 1000) // frame + 1
    seen = np.zeros(count, dtype=np.bool_)
    hits: list[npt.NDArray[np.intp]] = []
    while look.any():
        found = _gate_hits(samples, rate, np.flatnonzero(look))
        seen |= look
        hits.append(found)
        # the frames a found hit could join decide where its span ends: look at them too
        near = np.zeros(count + 1, dtype=np.int32)
        np.add.at(near, np.maximum(found - reach, 0), 1)
        np.add.at(near, np.minimum(found + reach + 1, count), -1)
        look = (np.cumsum(near[:count]) > 0) & ~seen
    return sorted(set(np.concatenate(hits).tolist())) if hits else []


def detect_keys(
    samples: Pcm,
    rate: int,
    stream_index: int = 0,
    *,
    heard: Sequence[tuple[int, int]] = (),
    keys_heard: Sequence[tuple[int, int]] = (),
) -> list[DtmfDigit]:
    """Every key press in a whole decoded stream (t = 0 at its first sample).

    ``heard``: sample ranges the live listener (``live_keys.py``, this detector,
    ``DETECTOR_VERSION``) already analysed, and ``keys_heard`` the sample ranges
    around the keys it found there: the whole-stream gate skips the rest of those
    ranges. Where it still looks (outside them, and around those keys) it finds
    what it finds without them, so a key the listener heard gets the timeline's
    own start and length, as before."""
    if len(samples) < rate * GATE_FRAME_MS // 1000:
        return []
    if heard:
        hits = _gate_hits_unheard(samples, rate, heard, keys_heard)
    else:
        hits = _gate_hits(samples, rate).tolist()
    found: list[DtmfDigit] = []
    for start, end in _spans_of_hits(hits, len(samples), rate):
        detector = InbandDtmfDetector(rate, stream_index=stream_index)
        t0 = start * 1000 // rate
        found += detector.feed(samples[start:end], t0) + detector.finish()
    return found
