"""Tone location helpers."""

from __future__ import annotations

import math

import numpy as np

from callvault.media.analysis import dominant_frequency, goertzel_power, rms_dbfs, tone_spans


def sine(freq: float, seconds: float, rate: int = 8000, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amp * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def test_goertzel_and_level() -> None:
    x = sine(1000, 0.1, amp=1.0)
    assert abs(goertzel_power(x, 8000, 1000) - 0.5) < 0.01
    assert goertzel_power(x, 8000, 440) < 0.01
    assert abs(rms_dbfs(x) - 10 * math.log10(0.5)) < 0.1
    assert rms_dbfs(np.zeros(10, dtype=np.int16)) == -math.inf


def test_dominant_frequency() -> None:
    assert abs(dominant_frequency(sine(697, 0.5) + sine(60, 0.5, amp=0.1), 8000) - 697) < 2


def test_tone_spans_edges() -> None:
    x = np.zeros(8000 * 4, dtype=np.int16)
    x[8000:16000] = sine(440, 1.0)[:8000]
    x[12000:24000] += sine(1000, 1.5)
    spans = tone_spans(x, 8000, 440)
    assert len(spans) == 1 and abs(spans[0][0] - 1.0) < 0.01 and abs(spans[0][1] - 2.0) < 0.01
    spans = tone_spans(x, 8000, 1000)
    assert len(spans) == 1 and abs(spans[0][0] - 1.5) < 0.01 and abs(spans[0][1] - 3.0) < 0.01
    assert tone_spans(x, 8000, 2000) == []
