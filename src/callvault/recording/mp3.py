"""MP3 encoding of finished recordings (LAME via lameenc) and decoding (PyAV).

LAME delays its output by 576 samples and every MP3 decoder adds 529 more,
and it pads the end to a whole frame. lameenc writes no Xing/LAME header, so
``encode_mp3`` puts one in front (a CBR "Info" frame with the LAME extension,
as LAME itself does for files): decoders that honour it (FFmpeg, hence
Chromium and PyAV; Firefox; iTunes) skip the delay and the padding, so file
time 0 is the first input sample and the length is exact.
"""

from __future__ import annotations

import io
import struct
from typing import Any

import lameenc
import numpy as np
import numpy.typing as npt

ENCODER_DELAY = 576  # LAME's own delay; decoders add DECODER_DELAY
DECODER_DELAY = 529

# MPEG audio header tables (ISO 11172-3 / 13818-3, and the MPEG 2.5 extension).
_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}
_BITRATES_V1 = (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)
_BITRATES_V2 = (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)


def _frame_info(header: int) -> tuple[int, int, int, bool] | None:
    """(frame bytes, samples per frame, side-info bytes, mono) of a layer III header."""
    if header >> 21 != 0x7FF:
        return None
    version = (header >> 19) & 3
    layer = (header >> 17) & 3
    bitrate_index = (header >> 12) & 15
    rate_index = (header >> 10) & 3
    if version == 1 or layer != 1 or bitrate_index in (0, 15) or rate_index == 3:
        return None
    mpeg1 = version == 3
    rate = _RATES[version][rate_index]
    kbps = (_BITRATES_V1 if mpeg1 else _BITRATES_V2)[bitrate_index]
    padding = (header >> 9) & 1
    mono = (header >> 6) & 3 == 3
    coefficient = 144 if mpeg1 else 72
    size = coefficient * kbps * 1000 // rate + padding
    side = (17 if mono else 32) if mpeg1 else (9 if mono else 17)
    return size, 1152 if mpeg1 else 576, side, mono


def _count_frames(data: bytes) -> int:
    uniform = _uniform_frame_size(data)
    if uniform:
        return len(data) // uniform
    pos = frames = 0
    sizes: dict[int, int] = {}  # CBR: a handful of distinct headers (padding on or off)
    while pos + 4 <= len(data):
        header = int.from_bytes(data[pos : pos + 4], "big")
        size = sizes.get(header)
        if size is None:
            info = _frame_info(header)
            if info is None:
                break
            size = sizes[header] = info[0]
        pos += size
        frames += 1
    return frames


def _uniform_frame_size(data: bytes) -> int:
    """The frame size when ``data`` is whole frames of one size (CBR where the size
    needs no padding slot: 8 kHz at 32 kbps is 288 bytes a frame), checked at once;
    0 otherwise (then the frames are walked one by one). A header's first three
    bytes (sync, version, layer, bitrate, rate, padding) decide the size; the
    fourth (channel mode extension, which joint stereo changes per frame) does not."""
    info = _frame_info(int.from_bytes(data[:4], "big")) if len(data) >= 4 else None
    if info is None or len(data) % info[0]:
        return 0
    frames = np.frombuffer(data, dtype=np.uint8).reshape(-1, info[0])
    return info[0] if bool((frames[:, :3] == frames[0, :3]).all()) else 0


def _crc16_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC16 = _crc16_table()


def _crc16(data: bytes) -> int:
    """CRC-16 (polynomial 0x8005, reflected 0xA001) as in the LAME tag, a byte a step."""
    crc = 0
    for byte in data:
        crc = (crc >> 8) ^ _CRC16[(crc ^ byte) & 0xFF]
    return crc


def _info_frame(first_header: int, frames: int, audio_bytes: int, samples: int) -> bytes:
    """A silent CBR "Info" frame holding the LAME tag with delay and padding."""
    header = first_header & ~(1 << 9)  # no padding slot
    header |= 1 << 16  # no CRC protection
    info = _frame_info(header)
    assert info is not None
    size, per_frame, side, _ = info
    frame = bytearray(size)
    frame[0:4] = header.to_bytes(4, "big")
    pos = 4 + side
    total_bytes = size + audio_bytes
    xing = b"Info" + struct.pack(">III", 0x3, frames, total_bytes)
    frame[pos : pos + len(xing)] = xing
    pos += len(xing)
    padding = max(0, frames * per_frame - ENCODER_DELAY - samples)
    lame = bytearray(36)
    lame[0:9] = b"LAME3.100"
    # byte 9 revision/VBR method (0 = unknown/CBR), 10 lowpass, 11-18 gains, 19 flags,
    # 20 bitrate, 21-23 delay and padding (12 bits each), 24-31 misc/length/music CRC.
    lame[21:24] = ((min(ENCODER_DELAY, 4095) << 12) | min(padding, 4095)).to_bytes(3, "big")
    lame[28:32] = struct.pack(">I", total_bytes)
    frame[pos : pos + 36] = lame
    crc = _crc16(bytes(frame[: pos + 34]))
    frame[pos + 34 : pos + 36] = crc.to_bytes(2, "big")
    return bytes(frame)


def encode_mp3(
    left: npt.NDArray[np.int16],
    right: npt.NDArray[np.int16] | None,
    rate: int,
    bitrate_kbps: int = 32,
    *,
    quality: int = 7,
) -> bytes:
    """CBR MP3 of int16 audio (mono when ``right`` is None), with a LAME gapless tag."""
    encoder = lameenc.Encoder()
    encoder.set_bit_rate(bitrate_kbps)
    encoder.set_in_sample_rate(rate)
    encoder.set_out_sample_rate(rate)
    encoder.set_channels(1 if right is None else 2)
    encoder.set_quality(quality)
    if right is None:
        pcm = np.ascontiguousarray(left, dtype=np.int16)
    else:
        if len(right) != len(left):
            raise ValueError("left and right must be the same length")
        pcm = np.empty(2 * len(left), dtype=np.int16)
        pcm[0::2] = left
        pcm[1::2] = right
    # lameenc reads the array's buffer itself: no ``tobytes`` copy of the whole call
    audio = bytes(encoder.encode(pcm)) + bytes(encoder.flush())
    if len(audio) < 4:
        return audio
    frames = _count_frames(audio)
    first = int.from_bytes(audio[:4], "big")
    if frames == 0 or _frame_info(first) is None:
        return audio
    return _info_frame(first, frames, len(audio), len(left)) + audio


def decode_mp3(data: bytes) -> tuple[npt.NDArray[np.int16], int]:
    """Decode an MP3 to ``(channels x samples int16, rate)``, honouring its gapless tag."""
    import av

    chunks: list[npt.NDArray[np.int16]] = []
    rate = 0
    opened: Any = av.open(io.BytesIO(data), format="mp3")
    with opened as container:
        stream = container.streams.audio[0]
        rate = int(stream.codec_context.sample_rate)
        for frame in container.decode(stream):
            array = frame.to_ndarray()
            channels = len(frame.layout.channels)
            if not frame.format.name.endswith("p"):
                array = array.reshape(-1, channels).T
            if array.dtype.kind == "f":
                array = np.clip(np.rint(array * 32768.0), -32768, 32767)
            chunks.append(array.astype(np.int16))
    if not chunks:
        return np.zeros((1, 0), dtype=np.int16), rate
    audio = np.concatenate(chunks, axis=1)
    length = gapless_length(data)
    if length is not None:
        audio = audio[:, :length]
    return audio, rate


def gapless_length(data: bytes) -> int | None:
    """Sample count per channel that a LAME tag at the start of ``data`` declares."""
    if len(data) < 4:
        return None
    info = _frame_info(int.from_bytes(data[:4], "big"))
    if info is None:
        return None
    _, per_frame, side, _ = info
    pos = 4 + side
    if data[pos : pos + 4] not in (b"Info", b"Xing"):
        return None
    (flags,) = struct.unpack_from(">I", data, pos + 4)
    if not flags & 1:
        return None
    (frames,) = struct.unpack_from(">I", data, pos + 8)
    pos += 8 + 4 * bin(flags & 0x3).count("1") + (100 if flags & 4 else 0) + (4 if flags & 8 else 0)
    if data[pos : pos + 4] != b"LAME":
        return None
    delay_padding = int.from_bytes(data[pos + 21 : pos + 24], "big")
    delay, padding = delay_padding >> 12, delay_padding & 0xFFF
    return max(0, int(frames) * per_frame - delay - padding)
