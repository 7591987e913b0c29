"""The short tones the recorded user hears (B2BUA mode, SPEC 3: "The user hears a short tone").

While the other party hears the spoken prompt, the user hears only a tone, so
their own conversation is not talked over: two short high beeps when recording
starts, and a falling pair when it stops (so the two can be told apart without
looking at a screen). Both are 8 kHz mono s16le PCM, ready for the relay's
20 ms frames, and made once per process.

Single tones, never two at once: a DTMF detector on the user's leg must not
mistake them for a key press (DTMF is always a pair of frequencies).
"""

from __future__ import annotations

from functools import cache

import numpy as np

from callvault.announcements.upload import SAMPLE_RATE

BEEP_MS = 150
GAP_MS = 100
START_HZ = (1400, 1400)
STOP_HZ = (1400, 1000)
AMPLITUDE = 0.25  # -12 dBFS: clearly heard, not startling
_FADE_MS = 5  # a hard edge clicks


def _beep(hz: int) -> np.ndarray:
    n = SAMPLE_RATE * BEEP_MS // 1000
    t = np.arange(n) / SAMPLE_RATE
    tone = np.sin(2 * np.pi * hz * t) * AMPLITUDE
    fade = SAMPLE_RATE * _FADE_MS // 1000
    ramp = np.linspace(0.0, 1.0, fade)
    tone[:fade] *= ramp
    tone[-fade:] *= ramp[::-1]
    return tone


def _beeps(frequencies: tuple[int, int]) -> bytes:
    gap = np.zeros(SAMPLE_RATE * GAP_MS // 1000)
    signal = np.concatenate([_beep(frequencies[0]), gap, _beep(frequencies[1])])
    return (signal * 32767).round().astype("<i2").tobytes()


@cache
def user_tone() -> bytes:
    """Recording started: two 150 ms beeps at 1400 Hz, 100 ms apart (8 kHz s16le mono)."""
    return _beeps(START_HZ)


@cache
def user_stop_tone() -> bytes:
    """Recording stopped: a 1400 Hz beep, then a 1000 Hz one (8 kHz s16le mono)."""
    return _beeps(STOP_HZ)
