"""Locating tones in audio: Goertzel power, spans where a tone dominates, levels.

Used by the recorder's tests to assert where a tone sits in a finished file,
and meant for in-band DTMF detection (two Goertzel powers per 20 ms window).
Everything works on whole arrays with numpy; nothing loops per sample.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

Audio = npt.NDArray[np.integer] | npt.NDArray[np.floating]

FULL_SCALE = 32768.0


def _as_float(samples: Audio) -> npt.NDArray[np.float64]:
    return np.asarray(samples, dtype=np.float64) / FULL_SCALE


def goertzel_power(samples: Audio, rate: int, freq: float) -> float:
    """Mean power of the ``freq`` component (a full-scale sine gives 0.5)."""
    x = _as_float(samples)
    n = len(x)
    if n == 0:
        return 0.0
    phase = 2 * np.pi * freq / rate * np.arange(n)
    re = float(np.dot(x, np.cos(phase)))
    im = float(np.dot(x, np.sin(phase)))
    return 2.0 * (re * re + im * im) / (n * n)


def rms_dbfs(samples: Audio) -> float:
    """RMS level in dB relative to full scale; ``-inf`` for silence or no samples."""
    x = _as_float(samples)
    if len(x) == 0:
        return -math.inf
    ms = float(np.mean(x * x))
    return 10 * math.log10(ms) if ms > 0 else -math.inf


def dominant_frequency(samples: Audio, rate: int) -> float:
    """Frequency of the strongest spectral peak (Hann window, parabolic refinement)."""
    x = _as_float(samples)
    if len(x) < 4:
        return 0.0
    spectrum = np.abs(np.fft.rfft((x - x.mean()) * np.hanning(len(x))))
    k = int(np.argmax(spectrum[1:])) + 1
    shift = 0.0
    if 1 <= k < len(spectrum) - 1:
        a, b, c = np.log(spectrum[k - 1 : k + 2] + 1e-12)
        denominator = a - 2 * b + c
        shift = 0.5 * (a - c) / denominator if denominator != 0 else 0.0
    return (k + shift) * rate / len(x)


def _frames(x: npt.NDArray[np.float64], size: int, hop: int) -> npt.NDArray[np.float64]:
    count = 1 + (len(x) - size) // hop
    strides = (x.strides[0] * hop, x.strides[0])
    frames: npt.NDArray[np.float64] = np.lib.stride_tricks.as_strided(
        x, shape=(count, size), strides=strides, writeable=False
    )
    return frames


def tone_spans(
    samples: Audio,
    rate: int,
    freq: float,
    window_ms: float = 20,
    threshold_db: float = -3.0,
    *,
    min_dbfs: float = -45.0,
    hop_ms: float = 5,
    bridge_ms: float = 50,
) -> list[tuple[float, float]]:
    """``(start_s, end_s)`` spans where ``freq`` dominates the audio.

    A window dominates when the tone holds at least ``threshold_db`` of the
    window's power and is louder than ``min_dbfs``; a window counts for its
    centre hop only when it is at least half filled with the tone (its tone
    power within 3 dB of the tone's typical level), so span edges are accurate
    to about one hop rather than one window. Gaps up to ``bridge_ms`` (a lost
    packet or two) do not split a span.
    """
    x = _as_float(samples)
    size = max(1, round(rate * window_ms / 1000))
    hop = max(1, round(rate * hop_ms / 1000))
    if len(x) < size:
        return []
    frames = _frames(x, size, hop)
    total = np.mean(frames * frames, axis=1)
    phase = 2 * np.pi * freq / rate * np.arange(size)
    re = frames @ np.cos(phase)
    im = frames @ np.sin(phase)
    tone = 2.0 * (re * re + im * im) / (size * size)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio_db = 10 * np.log10(tone / total)
        tone_db = 10 * np.log10(tone)
    dominant = (ratio_db >= threshold_db) & (tone_db >= min_dbfs)
    if not dominant.any():
        return []
    typical = float(np.percentile(tone_db[dominant], 90))
    on = dominant & (tone_db >= typical - 3.0)
    # Each window speaks for the hop around its centre.
    centres = (np.arange(len(on)) * hop + size / 2) / rate
    half = hop / 2 / rate
    edges = np.diff(np.concatenate([[0], on.astype(np.int8), [0]]))
    starts = np.nonzero(edges == 1)[0]
    ends = np.nonzero(edges == -1)[0] - 1
    spans: list[tuple[float, float]] = []
    gap = bridge_ms / 1000
    for s, e in zip(starts, ends, strict=True):
        start, end = float(centres[s] - half), float(centres[e] + half)
        if spans and start - spans[-1][1] <= gap:
            spans[-1] = (spans[-1][0], end)
        else:
            spans.append((start, end))
    return [(max(0.0, a), b) for a, b in spans if b - a >= window_ms / 1000]
