"""Tone generators (frequency by FFT peak), speech, and G.711 encoders."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest

from callvault.media.tones import (
    DTMF_FREQUENCIES,
    dtmf_tone,
    encode_pcma,
    encode_pcmu,
    resample,
    silence,
    sine,
    speech,
)


def peaks(pcm: npt.NDArray[np.int16], rate: int, count: int) -> list[float]:
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64) * np.hanning(len(pcm))))
    freqs = np.fft.rfftfreq(len(pcm), 1.0 / rate)
    found: list[float] = []
    for _ in range(count):
        i = int(np.argmax(spectrum))
        found.append(float(freqs[i]))
        spectrum[max(0, i - 20) : i + 20] = 0
    return sorted(found)


@pytest.mark.parametrize(("freq", "rate"), [(440.0, 8000), (1000.0, 8000), (3000.0, 16000)])
def test_sine_frequency_and_length(freq: float, rate: int) -> None:
    pcm = sine(freq, 1.0, rate)
    assert pcm.dtype == np.int16
    assert len(pcm) == rate
    assert peaks(pcm, rate, 1)[0] == pytest.approx(freq, abs=2)


def test_sine_level() -> None:
    # 0 dBm0 peaks at full scale minus 3.17 dB; -10 dBm0 is 10 dB below.
    assert np.abs(sine(1000, 1, amplitude_dbm0=0.0)).max() == pytest.approx(22704, rel=0.01)
    rms = np.sqrt(np.mean(sine(1000, 1, amplitude_dbm0=-10.0).astype(np.float64) ** 2))
    assert 20 * np.log10(rms * np.sqrt(2) / 22704) == pytest.approx(-10, abs=0.1)


def test_silence() -> None:
    pcm = silence(0.5)
    assert pcm.dtype == np.int16 and len(pcm) == 4000 and not pcm.any()


@pytest.mark.parametrize("digit", list("0123456789*#ABCD"))
def test_dtmf_tone_has_its_two_frequencies(digit: str) -> None:
    pcm = dtmf_tone(digit, 0.5, 8000)
    assert len(pcm) == 4000
    low, high = DTMF_FREQUENCIES[digit]
    assert peaks(pcm, 8000, 2) == pytest.approx([low, high], abs=3)


def test_dtmf_tone_rejects_other_keys() -> None:
    with pytest.raises(ValueError):
        dtmf_tone("x", 0.1)


def test_resample_keeps_the_frequency_and_removes_aliases() -> None:
    rate = 22050
    t = np.arange(rate) / rate
    pcm = (8000 * np.sin(2 * np.pi * 500 * t) + 8000 * np.sin(2 * np.pi * 6000 * t)).astype(
        np.int16
    )
    out = resample(pcm, rate, 8000)
    assert len(out) == 8000
    assert peaks(out, 8000, 1)[0] == pytest.approx(500, abs=2)
    spectrum = np.abs(np.fft.rfft(out.astype(np.float64)))
    alias = spectrum[1900:2100].max()  # 6000 Hz folds onto 2000 Hz
    assert alias < spectrum.max() / 100


@pytest.mark.peer("espeak-ng", why="speech synthesis")
def test_speech() -> None:
    pcm = speech("one two three", rate=8000)
    assert pcm.dtype == np.int16
    assert 0.5 * 8000 < len(pcm) < 5 * 8000
    assert np.abs(pcm).max() > 1000


# -- G.711: compared with a direct transcription of the ITU-T G.191 STL code --


def ref_ulaw_compress(lin: int) -> int:
    absno = ((~lin) >> 2) if lin < 0 else (lin >> 2)
    absno += 33
    if absno > 0x1FFF:
        absno = 0x1FFF
    i = absno >> 6
    segno = 1
    while i != 0:
        segno += 1
        i >>= 1
    high_nibble = 0x0008 - segno
    low_nibble = 0x000F - ((absno >> segno) & 0x000F)
    out = (high_nibble << 4) | low_nibble
    if lin >= 0:
        out |= 0x0080
    return out


def ref_alaw_compress(lin: int) -> int:
    ix = ((~lin) >> 4) if lin < 0 else (lin >> 4)
    if ix > 15:
        iexp = 1
        while ix > 16 + 15:
            ix >>= 1
            iexp += 1
        ix -= 16
        ix += iexp << 4
    if lin >= 0:
        ix |= 0x0080
    return ix ^ 0x0055


def ref_ulaw_expand(code: int) -> int:
    sign = -1 if code < 0x80 else 1
    mantissa = ~code
    exponent = (mantissa >> 4) & 0x7
    segment = exponent + 1
    mantissa &= 0x0F
    step = 4 << segment
    return sign * ((0x80 << exponent) + step * mantissa + step // 2 - 4 * 33)


def ref_alaw_expand(code: int) -> int:
    ix = (code ^ 0x55) & 0x7F
    iexp = ix >> 4
    mant = ix & 0x0F
    if iexp > 0:
        mant += 16
    mant = (mant << 4) + 0x0008
    if iexp > 1:
        mant <<= iexp - 1
    return mant if code > 127 else -mant


ALL = np.arange(-32768, 32768, dtype=np.int32).astype(np.int16)


def test_pcmu_matches_reference_on_every_sample() -> None:
    encoded = encode_pcmu(ALL)
    assert len(encoded) == 65536
    assert list(encoded) == [ref_ulaw_compress(int(x)) for x in ALL]


def test_pcma_matches_reference_on_every_sample() -> None:
    encoded = encode_pcma(ALL)
    assert list(encoded) == [ref_alaw_compress(int(x)) for x in ALL]


def test_known_codes() -> None:
    values = np.array([0, -1, 32767, -32768], dtype=np.int16)
    assert encode_pcmu(values) == bytes([0xFF, 0x7F, 0x80, 0x00])
    assert encode_pcma(values) == bytes([0xD5, 0x55, 0xAA, 0x2A])


Encoder = Callable[[npt.ArrayLike], bytes]


@pytest.mark.parametrize(
    ("encode", "expand"),
    [(encode_pcmu, ref_ulaw_expand), (encode_pcma, ref_alaw_expand)],
    ids=["pcmu", "pcma"],
)
def test_round_trip_error_is_within_half_a_step(
    encode: Encoder, expand: Callable[[int], int]
) -> None:
    decoded = np.array([expand(c) for c in range(256)], dtype=np.int64)
    out = decoded[np.frombuffer(encode(ALL), dtype=np.uint8)]
    err = np.abs(out - ALL.astype(np.int64))
    # Each code decodes to the middle of its interval: the error is at most
    # half the largest step (1024 in the top segment) and small near zero.
    assert err.max() <= 1024
    small = np.abs(ALL.astype(np.int64)) < 256
    assert err[small].max() <= 8
    # Every decoded value encodes back to its own code, except that mu-law
    # has two codes for zero (0x7F and 0xFF).
    back = np.frombuffer(encode(np.clip(decoded, -32768, 32767).astype(np.int16)), np.uint8)
    differ = set(np.nonzero(back != np.arange(256))[0].tolist())
    assert differ <= {0x7F}


def test_encoders_accept_lists() -> None:
    assert encode_pcmu([0, 0]) == b"\xff\xff"
    assert encode_pcma(np.zeros(3, dtype=np.int16)) == b"\xd5\xd5\xd5"
