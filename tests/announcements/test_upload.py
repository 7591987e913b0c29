"""Converting a tenant's upload (SPEC 3): WAV or MP3 in, 8 kHz mono 16-bit WAV out, by content.

Each file is made here (numpy and ``wave``, lameenc for MP3) with a tone at a
known frequency; the tone must come through the conversion where it was (found
by FFT), and every refusal has its own error id.
"""

from __future__ import annotations

import hashlib
import io

import av
import numpy as np
import pytest

from callvault.announcements.upload import (
    MAX_UPLOAD_BYTES,
    ConvertedPrompt,
    PromptRefused,
    convert_upload,
)
from callvault.errors import ErrorId
from tests.announcements.audio import mp3_file, peak_hz, read_wav, tone, wav_file


def _check(converted: ConvertedPrompt, hz: float, ms: int, slack_ms: int = 10) -> None:
    rate, channels, width, samples = read_wav(converted.wav)
    assert (rate, channels, width) == (8000, 1, 2)
    assert abs(converted.duration_ms - ms) <= slack_ms
    assert converted.duration_ms == samples.size // 8
    assert converted.sha256 == hashlib.sha256(converted.wav).hexdigest()
    assert abs(peak_hz(samples, 8000) - hz) < 10


def test_wav_at_44k1_stereo_becomes_8khz_mono() -> None:
    data = wav_file(tone(1000, 2.0, 44100), 44100, channels=2)
    _check(convert_upload(data, "welcome.wav"), 1000, 2000)


def test_mp3_at_44k1_stereo_becomes_8khz_mono() -> None:
    data = mp3_file(tone(700, 3.0, 44100), 44100, channels=2)
    assert data[:2] == b"\xff\xfb"  # an MPEG frame, no ID3 tag
    _check(convert_upload(data, "welcome.mp3"), 700, 3000, slack_ms=80)  # the encoder's padding


def test_mp3_with_an_id3_tag() -> None:
    tag = b"ID3\x03\x00\x00\x00\x00\x00\x0a" + b"\x00" * 10  # an empty ID3v2.3 tag, 10 bytes
    data = tag + mp3_file(tone(500, 1.0, 22050, amplitude=0.3), 22050, channels=1)
    _check(convert_upload(data, "tagged.mp3"), 500, 1000, slack_ms=80)


def test_a_tone_above_4khz_is_filtered_not_folded() -> None:
    """5 kHz cannot pass an 8 kHz line: it must vanish, not alias to 3 kHz."""
    signal = tone(5000, 1.0, 44100) + tone(600, 1.0, 44100, amplitude=0.1)
    converted = convert_upload(wav_file(signal, 44100), "two.wav")
    _, _, _, samples = read_wav(converted.wav)
    assert abs(peak_hz(samples, 8000) - 600) < 10


def test_the_name_does_not_decide_the_format() -> None:
    data = wav_file(tone(1000, 1.0, 16000), 16000)
    _check(convert_upload(data, "looks-like.mp3"), 1000, 1000)


def _refused(data: bytes, error: ErrorId) -> PromptRefused:
    with pytest.raises(PromptRefused) as caught:
        convert_upload(data, "prompt")
    assert caught.value.error_id == error, caught.value
    assert caught.value.status == error.status
    return caught.value


def _flac() -> bytes:
    """A real FLAC file (a format FFmpeg reads well, but not a prompt's)."""
    out = io.BytesIO()
    with av.open(out, "w", format="flac") as container:
        stream = container.add_stream("flac", rate=8000, layout="mono")
        samples = (tone(440, 1.0, 8000) * 32767).astype(np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.rate = 8000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return out.getvalue()


def test_other_formats_are_refused() -> None:
    _refused(b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, ErrorId.PROMPT_FORMAT)
    _refused(b"hello, this is text", ErrorId.PROMPT_FORMAT)
    _refused(b"", ErrorId.PROMPT_FORMAT)
    flac = _flac()
    assert flac[:4] == b"fLaC"
    _refused(flac, ErrorId.PROMPT_FORMAT)


def test_too_large_is_413_before_decoding() -> None:
    error = _refused(b"RIFF" + b"\x00" * MAX_UPLOAD_BYTES, ErrorId.PROMPT_TOO_LARGE)
    assert error.status == 413 and "2 MiB" in str(error)


def test_too_long_is_refused() -> None:
    _refused(wav_file(tone(800, 31.0, 8000), 8000), ErrorId.PROMPT_TOO_LONG)
    # 30 s fits
    assert convert_upload(wav_file(tone(800, 30.0, 8000), 8000), "x").duration_ms == 30_000


def test_a_small_mp3_of_an_hour_is_refused_as_too_long() -> None:
    """Low bit rate: 20 minutes in little more than 1 MiB; decoding stops at the limit."""
    encoder_input = tone(400, 60.0, 8000, amplitude=0.2)
    minute = mp3_file(encoder_input, 8000, channels=1, bit_rate=8)
    data = minute * 20
    assert len(data) <= MAX_UPLOAD_BYTES
    _refused(data, ErrorId.PROMPT_TOO_LONG)


def test_too_short_is_refused() -> None:
    _refused(wav_file(tone(800, 0.2, 8000), 8000), ErrorId.PROMPT_TOO_SHORT)
    assert convert_upload(wav_file(tone(800, 0.3, 8000), 8000), "x").duration_ms == 300


def test_silence_is_refused_a_quiet_voice_is_not() -> None:
    _refused(wav_file(np.zeros(16000), 16000), ErrorId.PROMPT_SILENT)
    hiss = np.random.default_rng(1).normal(0, 0.001, 16000)  # about -60 dBFS
    _refused(wav_file(hiss, 16000), ErrorId.PROMPT_SILENT)
    quiet = tone(800, 1.0, 16000, amplitude=0.03)  # -30 dBFS: soft but heard
    _check(convert_upload(wav_file(quiet, 16000), "x"), 800, 1000)


def test_broken_files_are_unreadable() -> None:
    good = wav_file(tone(800, 1.0, 8000), 8000)
    _refused(good[:40], ErrorId.PROMPT_UNREADABLE)  # the header, no audio
    _refused(b"RIFF\x00\x00\x00\x00WAVEjunk" + b"\x17" * 2000, ErrorId.PROMPT_UNREADABLE)
    _refused(b"\xff\xfb\x90\x00" + b"\x00" * 10, ErrorId.PROMPT_UNREADABLE)
