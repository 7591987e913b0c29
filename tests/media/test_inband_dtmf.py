"""In-band DTMF detection: Q.24 accept/reject rules, speech and music talk-off, streaming."""

from __future__ import annotations

import functools

import numpy as np
import numpy.typing as npt
import pytest

from callvault.media.dtmf import DtmfDigit
from callvault.media.inband_dtmf import InbandDtmfDetector
from callvault.media.tones import DTMF_FREQUENCIES, dtmf_tone, silence, speech

RATE = 8000
KEYS = "123A456B789C*0#D"
Pcm = npt.NDArray[np.int16]

needs_espeak = pytest.mark.peer("espeak-ng", why="speech for the talk-off tests")

EN = (
    "Good morning, thank you for calling. My name is Anna and I will help you today. "
    "Could you please tell me your customer number and the date of your last order? "
    "I see, the parcel was sent on Monday, and it should arrive within two or three "
    "working days. Is there anything else I can do for you? Have a nice day, goodbye. "
)
NL = (
    "Goedemorgen, u spreekt met de klantenservice. Waarmee kan ik u helpen? "
    "Ik zie dat uw bestelling vorige week is verzonden en morgen wordt bezorgd. "
    "Wilt u uw klantnummer en postcode nog even bevestigen? Dank u wel, fijne dag verder. "
)
DE = (
    "Guten Tag, Sie sprechen mit dem Kundendienst. Wie kann ich Ihnen helfen? "
    "Ihre Bestellung wurde am Montag verschickt und kommt voraussichtlich morgen an. "
    "Könnten Sie mir bitte Ihre Kundennummer nennen? Vielen Dank und auf Wiederhören. "
)


def detect(pcm: Pcm, chunk: int | None = None, t0_ms: int = 0, **kwargs: float) -> list[DtmfDigit]:
    detector = InbandDtmfDetector(RATE, stream_index=1, **kwargs)  # type: ignore[arg-type]
    out: list[DtmfDigit] = []
    step = chunk or max(1, len(pcm))
    for i in range(0, len(pcm), step):
        out += detector.feed(pcm[i : i + step], t0_ms + i * 1000 // RATE)
    return out + detector.finish()


def to_pcm(x: npt.NDArray[np.float64]) -> Pcm:
    return np.clip(np.rint(x), -32768, 32767).astype(np.int16)


def active_dbm0(pcm: npt.NDArray[np.float64] | Pcm) -> float:
    """RMS level of the 20 ms frames with speech in them, in dBm0."""
    x = np.asarray(pcm, dtype=np.float64)
    frames = x[: len(x) // 160 * 160].reshape(-1, 160)
    power = (frames**2).mean(axis=1)
    active = power > power.max() * 1e-3
    return float(10 * np.log10(power[active].mean() / (22704.0**2 / 2)))


def at_level(pcm: Pcm | npt.NDArray[np.float64], dbm0: float) -> npt.NDArray[np.float64]:
    x = np.asarray(pcm, dtype=np.float64)
    return x * 10 ** ((dbm0 - active_dbm0(x)) / 20)


def dual(
    digit: str, duration_s: float, low_dbm0: float, high_dbm0: float, deviation: float = 0.0
) -> Pcm:
    """A DTMF tone with each group at its own level and both frequencies off by ``deviation``."""
    low, high = DTMF_FREQUENCIES[digit]
    t = np.arange(round(duration_s * RATE)) / RATE
    peak = 32767 * 10 ** ((np.array([low_dbm0, high_dbm0]) - 3.17) / 20)
    x = peak[0] * np.sin(2 * np.pi * low * (1 + deviation) * t)
    x += peak[1] * np.sin(2 * np.pi * high * (1 + deviation) * t)
    return to_pcm(x)


def framed(*parts: Pcm) -> Pcm:
    return np.concatenate([silence(0.2), *parts, silence(0.2)])


@functools.cache
def voice(text: str, name: str) -> Pcm:
    return speech(text, name)


# -- clean tones --


@pytest.mark.parametrize("digit", list(KEYS))
def test_every_digit_at_minus_20_dbm0(digit: str) -> None:
    found = detect(framed(dtmf_tone(digit, 0.08, level_dbm0=-20)))
    assert [(d.digit, d.stream_index, d.source) for d in found] == [(digit, 1, "inband")]
    assert abs(found[0].start_ms - 200) <= 10
    assert abs(found[0].duration_ms - 80) <= 10


@pytest.mark.parametrize("chunk", [None, 160, 37, 8000])
def test_star_one_with_60_ms_tones_and_gaps(chunk: int | None) -> None:
    pcm = framed(
        dtmf_tone("*", 0.06, level_dbm0=-20), silence(0.06), dtmf_tone("1", 0.06, level_dbm0=-20)
    )
    found = detect(pcm, chunk, t0_ms=10_000)
    assert [d.digit for d in found] == ["*", "1"]
    for d, start in zip(found, (10_200, 10_320), strict=True):
        assert abs(d.start_ms - start) <= 20
        assert abs(d.duration_ms - 60) <= 20


def test_digits_are_reported_as_they_end() -> None:
    detector = InbandDtmfDetector()
    pcm = framed(dtmf_tone("5", 0.1, level_dbm0=-20))
    assert detector.feed(pcm[:1600], 0) == []  # still sounding at 200 ms
    assert [d.digit for d in detector.feed(pcm[1600:], 200)] == ["5"]
    assert detector.finish() == []


def test_a_digit_at_the_very_end_is_flushed_by_finish() -> None:
    detector = InbandDtmfDetector()
    assert detector.feed(np.concatenate([silence(0.1), dtmf_tone("9", 0.1)]), 0) == []
    assert [d.digit for d in detector.finish()] == ["9"]


@pytest.mark.parametrize("offset", range(0, 40, 7))
@pytest.mark.parametrize(("ms", "found"), [(30, False), (33, False), (40, True), (45, True)])
def test_minimum_tone_duration(ms: int, found: bool, offset: int) -> None:
    for digit in KEYS:
        pcm = np.concatenate(
            [np.zeros(800 + offset, np.int16), dtmf_tone(digit, ms / 1000, level_dbm0=-20)]
        )
        assert len(detect(framed(pcm))) == int(found), digit


@pytest.mark.parametrize(("gap_ms", "count"), [(5, 1), (10, 1), (40, 2), (60, 2)])
def test_pause_between_presses_of_one_key(gap_ms: int, count: int) -> None:
    tone = dtmf_tone("7", 0.06, level_dbm0=-20)
    found = detect(framed(tone, silence(gap_ms / 1000), tone))
    assert [d.digit for d in found] == ["7"] * count


def test_different_keys_back_to_back() -> None:
    found = detect(framed(dtmf_tone("1", 0.08), dtmf_tone("2", 0.08)))
    assert [d.digit for d in found] == ["1", "2"]


@pytest.mark.parametrize(
    ("low", "high", "found"),
    [
        (-20, -20, True),
        (-20, -17, True),  # high group 3 dB up
        (-20, -14, False),  # 6 dB: beyond the 4 dB normal twist
        (-20, -27, True),  # low group 7 dB up
        (-20, -30, False),  # 10 dB: beyond the 8 dB reverse twist
    ],
)
def test_twist_limits(low: float, high: float, found: bool) -> None:
    for digit in "1D":
        assert len(detect(framed(dual(digit, 0.1, low, high)))) == int(found)


@pytest.mark.parametrize(
    ("level", "found"), [(-6, True), (-20, True), (-28, True), (-34, False), (-40, False)]
)
def test_minimum_level(level: float, found: bool) -> None:
    assert len(detect(framed(dtmf_tone("0", 0.1, level_dbm0=level)))) == int(found)


@pytest.mark.parametrize(("deviation", "found"), [(0.015, True), (-0.015, True), (0.035, False)])
def test_frequency_tolerance(deviation: float, found: bool) -> None:
    for digit in KEYS:
        assert len(detect(framed(dual(digit, 0.1, -20, -20, deviation)))) == int(found), digit


def test_a_single_tone_is_no_digit() -> None:
    t = np.arange(RATE) / RATE
    for f in (697, 941, 1209, 1633):
        assert detect(to_pcm(6000 * np.sin(2 * np.pi * f * t))) == []


def test_rejects_bad_rates() -> None:
    with pytest.raises(ValueError, match="sample rate"):
        InbandDtmfDetector(8001)


def test_runs_at_16_khz() -> None:
    low, high = DTMF_FREQUENCIES["#"]
    t = np.arange(1600) / 16000
    x = 2000 * (np.sin(2 * np.pi * low * t) + np.sin(2 * np.pi * high * t))
    pcm = np.concatenate([np.zeros(3200), x, np.zeros(3200)])
    detector = InbandDtmfDetector(16000)
    found = detector.feed(to_pcm(pcm), 0) + detector.finish()
    assert [(d.digit, abs(d.start_ms - 200) <= 10) for d in found] == [("#", True)]


# -- speech and music --


@needs_espeak
@pytest.mark.parametrize("duration_s", [0.1, 0.15])
def test_all_digits_under_the_other_directions_speech(duration_s: float) -> None:
    keys = [np.concatenate([dtmf_tone(k, duration_s, level_dbm0=-20), silence(0.1)]) for k in KEYS]
    tones = np.concatenate(keys).astype(np.float64)
    talk = np.concatenate([voice(EN, "en"), voice(NL, "nl"), voice(DE, "de")])[: len(tones)]
    mixed = to_pcm(tones + at_level(talk, -20.0))  # speech as loud as each tone
    found = detect(mixed, chunk=160)
    assert "".join(d.digit for d in found) == KEYS
    for i, d in enumerate(found):
        assert abs(d.start_ms - i * (duration_s + 0.1) * 1000) <= 20


@needs_espeak
@pytest.mark.parametrize(
    ("text", "name"),
    [
        (EN, "en"),
        (EN, "en+f2"),
        (EN, "en-us+m7"),
        (NL, "nl"),
        (NL, "nl+f3"),
        (DE, "de"),
        (DE, "de+m4"),
    ],
)
@pytest.mark.parametrize("dbm0", [-25.0, -15.0, -8.0])
def test_no_digits_in_speech(text: str, name: str, dbm0: float) -> None:
    talk = voice(text * 2, name)
    assert len(talk) >= 20 * RATE
    assert detect(to_pcm(at_level(talk, dbm0)), chunk=160) == []


def _note(midi: int) -> float:
    return 440.0 * 2 ** ((midi - 69) / 12)


def _notes(
    freqs: list[float],
    duration_s: float,
    rng: np.random.Generator,
    vibrato: float,
    amplitudes: list[float] | None = None,
) -> npt.NDArray[np.float64]:
    t = np.arange(round(duration_s * RATE)) / RATE
    x = np.zeros_like(t)
    for i, f in enumerate(freqs):
        wobble = 1 + vibrato * np.sin(2 * np.pi * 5.5 * t + rng.uniform(0, 2 * np.pi))
        x += (amplitudes[i] if amplitudes else 1.0) * np.sin(
            2 * np.pi * np.cumsum(f * wobble) / RATE
        )
    envelope = np.minimum(1.0, np.minimum(t / 0.02, (duration_s - t) / 0.05))
    return x * envelope


def _scaled(x: npt.NDArray[np.float64], dbfs: float) -> Pcm:
    return to_pcm(x / np.sqrt(np.mean(x**2)) * 32768 * 10 ** (dbfs / 20))


CHORDS = [  # piano-like voicings over four octaves, in MIDI notes
    [48, 55, 60, 64, 67, 72, 76],  # C
    [53, 60, 65, 69, 72, 77],  # F
    [43, 55, 59, 62, 65, 67, 71],  # G7
    [45, 57, 60, 64, 69, 72, 76],  # Am
    [50, 57, 62, 65, 69, 74],  # Dm
    [52, 59, 64, 67, 71, 76, 79],  # Em
    [46, 58, 62, 65, 70, 74, 77],  # Bb
    [54, 61, 66, 70, 73, 78],  # F#
]


@pytest.mark.parametrize("vibrato", [0.0, 0.006, 0.015])
@pytest.mark.parametrize("dbfs", [-6.0, -15.0, -25.0])
def test_no_digits_in_chords(vibrato: float, dbfs: float) -> None:
    rng = np.random.default_rng(7)
    music = np.concatenate(
        [_notes([_note(n) for n in chord], 0.6, rng, vibrato) for _ in range(3) for chord in CHORDS]
    )
    assert detect(_scaled(music, dbfs)) == []


def test_no_digits_in_a_major_scale_melody() -> None:
    rng = np.random.default_rng(8)
    scale = [60 + 12 * octave + step for octave in range(3) for step in (0, 2, 4, 5, 7, 9, 11)]
    melody = [*scale, 96, *scale[::-1]]
    harmonics = np.concatenate(
        [
            _notes([_note(n) * k for k in (1, 2, 3, 4)], 0.15, rng, 0.004, [1, 0.5, 0.3, 0.2])
            for n in melody
        ]
    )
    pure = np.concatenate([_notes([_note(n)], 0.15, rng, 0.0) for n in melody])
    for music in (harmonics, pure):
        for dbfs in (-6.0, -25.0):
            assert detect(_scaled(music, dbfs)) == []


def test_no_digits_in_noise() -> None:
    rng = np.random.default_rng(9)
    white = rng.normal(0, 1, 10 * RATE)
    brown = np.cumsum(rng.normal(0, 1, 10 * RATE))
    brown -= np.convolve(brown, np.ones(200) / 200, mode="same")
    for noise in (white, brown):
        for dbfs in (-10.0, -30.0):
            assert detect(_scaled(noise, dbfs), chunk=4000) == []


def test_a_digit_in_light_noise() -> None:
    rng = np.random.default_rng(10)
    pcm = framed(dtmf_tone("B", 0.1, level_dbm0=-20)).astype(np.float64)
    noisy = to_pcm(pcm + rng.normal(0, 150, len(pcm)))  # about -40 dBm0 of noise
    assert [d.digit for d in detect(noisy)] == ["B"]


def test_ten_minutes_of_noise_give_no_digit() -> None:
    pcm = to_pcm(np.random.default_rng(11).normal(0, 3000, 600 * RATE))
    assert detect(pcm, chunk=60 * RATE) == []


def test_whole_call_gate_finds_every_key_the_detector_finds() -> None:
    """``detect_keys`` (FFT gate + exact detector on candidate spans) over a long
    stream finds the same keys as the exact detector alone, and nothing in speech."""
    from callvault.media.inband_dtmf import candidate_spans, detect_keys

    rng = np.random.default_rng(5)
    pcm = to_pcm(rng.normal(0, 300, 30 * RATE))
    for k, key in enumerate("*1590#"):
        start = (2 + 4 * k) * RATE
        tone = dtmf_tone(key, 0.06 + 0.02 * k, RATE, -20.0)
        pcm[start : start + len(tone)] = tone
    gated = [(d.digit, d.start_ms) for d in detect_keys(pcm, RATE)]
    exact = [(d.digit, d.start_ms) for d in detect(pcm, chunk=RATE)]
    assert [d for d, _ in gated] == list("*1590#")
    assert gated == exact
    quiet = to_pcm(np.zeros(10 * RATE))
    assert candidate_spans(quiet, RATE) == []
