"""Sample generators for the demo client and the tests, and G.711 encoders.

Levels are in dBm0 with the ITU-T G.711 convention that a full-scale 16-bit
sine is +3.17 dBm0 (so 0 dBm0 peaks at about 22 700). ``speech`` runs
``espeak-ng`` in a subprocess: it blocks, so call it off the event loop
(``asyncio.to_thread``). The encoders follow the ITU-T G.191 reference
implementation of G.711 (``ulaw_compress`` / ``alaw_compress``) exactly,
through 65 536-entry lookup tables built once with numpy.
"""

from __future__ import annotations

import functools
import shutil
import struct
import subprocess

import numpy as np
import numpy.typing as npt

Pcm = npt.NDArray[np.int16]

FULL_SCALE_DBM0 = 3.17

DTMF_FREQUENCIES: dict[str, tuple[float, float]] = {}
_ROWS = (697.0, 770.0, 852.0, 941.0)
_COLS = (1209.0, 1336.0, 1477.0, 1633.0)
for _r, _keys in enumerate(("123A", "456B", "789C", "*0#D")):
    for _c, _key in enumerate(_keys):
        DTMF_FREQUENCIES[_key] = (_ROWS[_r], _COLS[_c])


class SpeechUnavailable(RuntimeError):
    """espeak-ng is not installed, or it failed."""


def _peak(level_dbm0: float) -> float:
    return float(32767.0 * 10.0 ** ((level_dbm0 - FULL_SCALE_DBM0) / 20.0))


def _samples(duration_s: float, rate: int) -> int:
    return max(0, round(duration_s * rate))


def _to_int16(signal: npt.NDArray[np.float64]) -> Pcm:
    return np.clip(np.rint(signal), -32768, 32767).astype(np.int16)


def sine(freq_hz: float, duration_s: float, rate: int = 8000, amplitude_dbm0: float = -10.0) -> Pcm:
    t = np.arange(_samples(duration_s, rate), dtype=np.float64) / rate
    return _to_int16(_peak(amplitude_dbm0) * np.sin(2.0 * np.pi * freq_hz * t))


def silence(duration_s: float, rate: int = 8000) -> Pcm:
    return np.zeros(_samples(duration_s, rate), dtype=np.int16)


def dtmf_tone(
    digit: str, duration_s: float = 0.1, rate: int = 8000, level_dbm0: float = -10.0
) -> Pcm:
    """The dual tone of ``digit`` (0-9 * # A-D), each component at ``level_dbm0``."""
    try:
        low, high = DTMF_FREQUENCIES[digit.upper()]
    except KeyError:
        raise ValueError(f"not a DTMF digit: {digit!r}") from None
    t = np.arange(_samples(duration_s, rate), dtype=np.float64) / rate
    peak = _peak(level_dbm0)
    return _to_int16(peak * (np.sin(2 * np.pi * low * t) + np.sin(2 * np.pi * high * t)))


def speech(text: str, voice: str = "en", rate: int = 8000) -> Pcm:
    """``text`` spoken by espeak-ng, as mono int16 at ``rate`` (blocking)."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise SpeechUnavailable("espeak-ng is not installed (apt-get install espeak-ng)")
    try:
        result = subprocess.run(
            [exe, "--stdout", "-v", voice, text], capture_output=True, check=True, timeout=60
        )
    except (subprocess.SubprocessError, OSError) as exc:
        raise SpeechUnavailable(f"espeak-ng failed: {exc}") from exc
    pcm, src_rate = _parse_wav(result.stdout)
    return resample(pcm, src_rate, rate)


def _parse_wav(data: bytes) -> tuple[Pcm, int]:
    # espeak-ng --stdout writes placeholder sizes (it streams), so the stdlib
    # ``wave`` module would over-read: walk the chunks and take the rest as data.
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise SpeechUnavailable("espeak-ng did not write a WAV file")
    pos, rate, channels = 12, 0, 1
    while pos + 8 <= len(data):
        chunk, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        pos += 8
        if chunk == b"fmt ":
            fmt, channels, rate = struct.unpack_from("<HHI", data, pos)
            (bits,) = struct.unpack_from("<H", data, pos + 14)
            if fmt != 1 or bits != 16:
                raise SpeechUnavailable(f"unexpected WAV format {fmt}/{bits} bits")
        elif chunk == b"data":
            body = data[pos : min(len(data), pos + size)]
            body = body[: len(body) - len(body) % (2 * channels)]
            frames = np.frombuffer(body, dtype="<i2").reshape(-1, channels)
            return frames[:, 0].astype(np.int16), rate
        pos += size + (size & 1)
    raise SpeechUnavailable("espeak-ng output has no data chunk")


def resample(pcm: Pcm, src_rate: int, dst_rate: int) -> Pcm:
    """Windowed-sinc low-pass (when decimating), then linear interpolation."""
    if src_rate == dst_rate or len(pcm) == 0:
        return pcm.astype(np.int16, copy=True)
    signal = pcm.astype(np.float64)
    if dst_rate < src_rate:
        cutoff = 0.45 * dst_rate / src_rate  # cycles per input sample, below Nyquist
        taps = np.arange(-32, 33, dtype=np.float64)
        kernel = 2 * cutoff * np.sinc(2 * cutoff * taps) * np.hamming(len(taps))
        signal = np.convolve(signal, kernel / kernel.sum(), mode="same")
    count = int(len(pcm) * dst_rate // src_rate)
    positions = np.arange(count, dtype=np.float64) * (src_rate / dst_rate)
    return _to_int16(np.interp(positions, np.arange(len(signal)), signal))


# -- G.711 (ITU-T G.191 reference algorithms, vectorised over every input) --


def _all_int16() -> npt.NDArray[np.int32]:
    return np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.int16).astype(np.int32)


@functools.cache
def _ulaw_table() -> npt.NDArray[np.uint8]:
    lin = _all_int16()
    absno = np.where(lin < 0, (~lin) >> 2, lin >> 2) + 33
    absno = np.minimum(absno, 0x1FFF)
    segno = np.ones_like(absno)
    i = absno >> 6
    for _ in range(8):
        segno += i != 0
        i >>= 1
    high = 8 - segno
    low = 0x0F - ((absno >> segno) & 0x0F)
    out = (high << 4) | low
    out = np.where(lin >= 0, out | 0x80, out)
    table: npt.NDArray[np.uint8] = out.astype(np.uint8)
    return table


@functools.cache
def _alaw_table() -> npt.NDArray[np.uint8]:
    lin = _all_int16()
    ix = np.where(lin < 0, (~lin) >> 4, lin >> 4)
    big = ix > 15
    iexp = big.astype(np.int32)
    for _ in range(8):
        shift = ix > 31
        ix = np.where(shift, ix >> 1, ix)
        iexp += shift
    ix = np.where(big, ix - 16 + (iexp << 4), ix)
    ix = np.where(lin >= 0, ix | 0x80, ix)
    table: npt.NDArray[np.uint8] = (ix ^ 0x55).astype(np.uint8)
    return table


def _index(pcm: npt.ArrayLike) -> npt.NDArray[np.uint16]:
    return np.ascontiguousarray(pcm, dtype=np.int16).view(np.uint16)


def encode_pcmu(pcm: npt.ArrayLike) -> bytes:
    """G.711 mu-law of 16-bit linear samples."""
    return _ulaw_table()[_index(pcm)].tobytes()


def encode_pcma(pcm: npt.ArrayLike) -> bytes:
    """G.711 A-law of 16-bit linear samples."""
    return _alaw_table()[_index(pcm)].tobytes()
