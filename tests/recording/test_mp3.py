"""MP3 encoding: exact length and alignment through the LAME gapless tag."""

from __future__ import annotations

import numpy as np
import pytest

from callvault.recording.mp3 import decode_mp3, encode_mp3, gapless_length


@pytest.mark.parametrize("rate", [8000, 16000])
@pytest.mark.parametrize("stereo", [False, True])
def test_round_trip_keeps_length_and_onset(rate: int, stereo: bool) -> None:
    x = np.zeros(rate * 2, dtype=np.int16)
    burst = np.sin(2 * np.pi * 1000 * np.arange(rate // 10) / rate) * 10000
    x[rate : rate + rate // 10] = burst.astype(np.int16)
    data = encode_mp3(x, x if stereo else None, rate, 32)
    audio, got_rate = decode_mp3(data)
    assert got_rate == rate and audio.shape == (2 if stereo else 1, len(x))
    assert gapless_length(data) == len(x)
    onset = int(np.nonzero(np.abs(audio[0].astype(int)) > 2000)[0][0])
    assert abs(onset - rate) <= rate // 500


def test_empty_and_tiny_inputs() -> None:
    for n in (0, 1, 575):
        audio, _ = decode_mp3(encode_mp3(np.zeros(n, dtype=np.int16), None, 8000, 32))
        assert audio.shape == (1, n)


def test_mismatched_channels_refused() -> None:
    with pytest.raises(ValueError):
        encode_mp3(np.zeros(5, dtype=np.int16), np.zeros(4, dtype=np.int16), 8000, 32)
