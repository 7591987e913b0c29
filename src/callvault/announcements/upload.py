"""A tenant's own prompt: check the uploaded WAV or MP3 and convert it for the phone (SPEC 3).

The B2BUA plays prompts into G.711 calls, so every prompt is kept as 8 kHz
mono 16-bit PCM in a WAV file, whatever the upload was. The upload is judged
by its bytes, not its name: only a RIFF/WAVE file or an MPEG audio stream
(with or without an ID3 tag) is opened, and PyAV is told which demuxer to use,
so no other of FFmpeg's many formats is ever probed on a stranger's file.

Limits: the file at most ``MAX_UPLOAD_BYTES`` (413), its audio between
``MIN_DURATION_MS`` and ``MAX_DURATION_MS`` (a prompt the caller can hear, one
that does not hold up the call), and not silence only (422 each, with its own
error id). Decoding stops as soon as the audio is known to be too long, so a
small file that expands to hours costs no more than the limit.
"""

from __future__ import annotations

import hashlib
import io
import wave
from dataclasses import dataclass

import av
import numpy as np
from numpy.typing import NDArray

from callvault.errors import ApiError, ErrorId

SAMPLE_RATE = 8000  # what G.711 carries; the relay sends 20 ms frames of it
MAX_UPLOAD_BYTES = 2 * 1024 * 1024
MAX_DURATION_MS = 30_000
MIN_DURATION_MS = 300
# a 20 ms window louder than about -45 dBFS (RMS) is sound; a file with none is silent
SILENCE_RMS = 180.0
_WINDOW = SAMPLE_RATE // 50


class PromptRefused(ApiError):
    """An upload that cannot be a prompt; ``error_id`` says why."""

    error_id = ErrorId.PROMPT_FORMAT


@dataclass(frozen=True)
class ConvertedPrompt:
    wav: bytes  # 8 kHz mono s16le in a WAV container
    duration_ms: int
    sha256: str  # of ``wav``


def _container(data: bytes) -> str:
    """The demuxer for ``data``: ``wav`` or ``mp3``; anything else is refused."""
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "wav"
    if data[:3] == b"ID3":
        return "mp3"
    # an MPEG audio frame header: 11 sync bits, then a layer that is not "reserved"
    if len(data) >= 2 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0 and data[1] & 0x06:
        return "mp3"
    raise PromptRefused("a prompt must be a WAV or MP3 file")


def _decode(data: bytes, container: str) -> NDArray[np.int16]:
    """The file's first audio stream at 8 kHz mono s16, cut just past the length limit."""
    limit = SAMPLE_RATE * MAX_DURATION_MS // 1000 + SAMPLE_RATE  # one second over: refused
    pieces: list[NDArray[np.int16]] = []
    have = 0
    unreadable = PromptRefused(
        "the file's audio cannot be decoded", error_id=ErrorId.PROMPT_UNREADABLE
    )
    try:
        with av.open(io.BytesIO(data), mode="r", format=container) as source:
            if not source.streams.audio:
                raise unreadable
            stream = source.streams.audio[0]
            resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
            for frame in source.decode(stream):
                for out in resampler.resample(frame):
                    samples = out.to_ndarray().reshape(-1).astype(np.int16, copy=False)
                    pieces.append(samples)
                    have += samples.size
                if have > limit:
                    break
            else:
                for out in resampler.resample(None):  # the resampler's tail
                    pieces.append(out.to_ndarray().reshape(-1).astype(np.int16, copy=False))
    except PromptRefused:
        raise
    except (av.FFmpegError, ValueError, IndexError) as exc:
        raise unreadable from exc
    if not pieces:
        raise unreadable
    return np.concatenate(pieces)


def _is_silent(samples: NDArray[np.int16]) -> bool:
    whole = samples[: samples.size - samples.size % _WINDOW].astype(np.float64)
    if whole.size == 0:
        whole = samples.astype(np.float64)
        return bool(np.sqrt(np.mean(whole**2)) < SILENCE_RMS)
    rms = np.sqrt(np.mean(whole.reshape(-1, _WINDOW) ** 2, axis=1))
    return bool(rms.max() < SILENCE_RMS)


def pcm_to_wav(pcm: bytes, rate: int = SAMPLE_RATE) -> bytes:
    """Mono s16le PCM in a WAV container."""
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(pcm)
    return out.getvalue()


def convert_upload(data: bytes, filename: str) -> ConvertedPrompt:
    """Check an uploaded WAV or MP3 and convert it to an 8 kHz mono 16-bit WAV.

    ``filename`` is only for the messages: the bytes decide the format.
    """
    name = filename.strip()[:200] or "the file"
    if len(data) > MAX_UPLOAD_BYTES:
        raise PromptRefused(
            f"{name} is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MiB",
            error_id=ErrorId.PROMPT_TOO_LARGE,
        )
    samples = _decode(data, _container(data))
    duration_ms = samples.size * 1000 // SAMPLE_RATE
    if duration_ms > MAX_DURATION_MS:
        raise PromptRefused(
            f"{name} plays longer than {MAX_DURATION_MS // 1000} s",
            error_id=ErrorId.PROMPT_TOO_LONG,
        )
    if duration_ms < MIN_DURATION_MS:
        raise PromptRefused(
            f"{name} plays {duration_ms} ms; a prompt needs at least {MIN_DURATION_MS} ms",
            error_id=ErrorId.PROMPT_TOO_SHORT,
        )
    if _is_silent(samples):
        raise PromptRefused(f"{name} holds only silence", error_id=ErrorId.PROMPT_SILENT)
    wav = pcm_to_wav(samples.astype("<i2").tobytes())
    return ConvertedPrompt(wav=wav, duration_ms=duration_ms, sha256=hashlib.sha256(wav).hexdigest())
