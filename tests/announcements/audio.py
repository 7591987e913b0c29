"""Test audio: tones as WAV (any rate, any channels) and MP3, and finding a tone by FFT."""

from __future__ import annotations

import io
import wave

import lameenc
import numpy as np
from numpy.typing import NDArray


def tone(hz: float, seconds: float, rate: int, amplitude: float = 0.5) -> NDArray[np.float64]:
    t = np.arange(int(rate * seconds)) / rate
    return np.sin(2 * np.pi * hz * t) * amplitude


def pcm16(signal: NDArray[np.float64], channels: int = 1) -> bytes:
    samples = (signal * 32767).round().astype("<i2")
    if channels > 1:
        samples = np.repeat(samples[:, None], channels, axis=1).reshape(-1)
    return samples.tobytes()


def wav_file(signal: NDArray[np.float64], rate: int, channels: int = 1) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(channels)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(pcm16(signal, channels))
    return out.getvalue()


def mp3_file(
    signal: NDArray[np.float64], rate: int, channels: int = 2, bit_rate: int = 128
) -> bytes:
    encoder = lameenc.Encoder()
    encoder.set_bit_rate(bit_rate)
    encoder.set_in_sample_rate(rate)
    encoder.set_channels(channels)
    encoder.set_quality(2)
    return bytes(encoder.encode(pcm16(signal, channels)) + encoder.flush())


def read_wav(data: bytes) -> tuple[int, int, int, NDArray[np.int16]]:
    """(rate, channels, sample width, samples) of a WAV."""
    with wave.open(io.BytesIO(data), "rb") as reader:
        frames = reader.readframes(reader.getnframes())
        return (
            reader.getframerate(),
            reader.getnchannels(),
            reader.getsampwidth(),
            np.frombuffer(frames, "<i2"),
        )


def peak_hz(samples: NDArray[np.int16], rate: int) -> float:
    """The strongest frequency of ``samples``."""
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(samples.size)))
    spectrum[0] = 0.0
    return float(np.fft.rfftfreq(samples.size, 1 / rate)[int(np.argmax(spectrum))])
