"""Audio decoders for recorded RTP payloads, behind one small interface.

``get_decoder(codec)`` returns a ``Decoder`` that turns one RTP payload into
int16 mono samples at ``decoder.rate``. G.711 (ITU-T G.711, RFC 3551 4.5.14)
is decoded with 256-entry numpy tables; G.722, G.729 and Opus go through
PyAV's codec contexts. Decoders keep codec state, so use one per SSRC and
payload type. Note RFC 3551 4.5.2: G.722's RTP clock is 8000 Hz although it
samples at 16 kHz; Opus (RFC 7587) always uses a 48 kHz RTP clock.

Also here: the inverse G.711 tables (``encode_pcmu`` / ``encode_pcma``), used to
build test streams and by anything that must send G.711.
"""

from __future__ import annotations

from typing import Any, Protocol, cast

import numpy as np
import numpy.typing as npt

from callvault.errors import RemoteProtocolError
from callvault.media.codec import Codec

Samples = npt.NDArray[np.int16]

# RFC 3551 table 4: static payload types, for streams whose SDP map is missing.
STATIC_PAYLOAD_TYPES: dict[int, Codec] = {
    0: Codec("PCMU", 8000),
    8: Codec("PCMA", 8000),
    9: Codec("G722", 8000),
    13: Codec("CN", 8000),
    18: Codec("G729", 8000),
}

# Payloads that carry no audio to decode: events (RFC 4733) and comfort noise (RFC 3389).
NON_AUDIO = frozenset({"telephone-event", "cn"})


class UnsupportedCodec(RemoteProtocolError):
    """The stream uses a codec we cannot decode (answer 488 when negotiating)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"unsupported codec {name!r}", status=488, warning="codec not supported")
        self.codec = name


class Decoder(Protocol):
    """Decodes RTP payloads of one codec to int16 mono at ``rate`` Hz."""

    rate: int

    def decode(self, payload: bytes) -> Samples: ...

    def concealment(self, samples: int) -> Samples: ...


def concealment(samples: int) -> Samples:
    """What a lost packet sounds like in a recording: silence."""
    return np.zeros(max(0, samples), dtype=np.int16)


def samples_per_ms(rate: int) -> float:
    return rate / 1000.0


def is_audio(codec: Codec) -> bool:
    return codec.name.lower() not in NON_AUDIO


def decoder_rate(codec: Codec) -> int:
    """The sample rate ``get_decoder(codec)`` produces (without building it)."""
    name = codec.name.lower()
    if name in ("pcmu", "pcma", "g729"):
        return 8000
    if name == "g722":
        return 16000
    if name == "opus":
        return 48000
    raise UnsupportedCodec(codec.name)


# --- G.711 -------------------------------------------------------------------


def _ulaw_table() -> Samples:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
    return np.where(u & 0x80, 0x84 - t, t - 0x84).astype(np.int16)


def _alaw_table() -> Samples:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    seg = (a & 0x70) >> 4
    t = (a & 0x0F) << 4
    t = np.where(seg == 0, t + 8, (t + 0x108) << np.maximum(seg - 1, 0))
    return np.where(a & 0x80, t, -t).astype(np.int16)


ULAW_TABLE = _ulaw_table()
ALAW_TABLE = _alaw_table()
_PAIR_TABLES: list[tuple[Samples, npt.NDArray[np.int32]]] = []
"""(table, its pair table), found by identity: holding the table, its entry cannot
be taken by another array made at the same address later (as a key of ``id``
could). The two laws are kept; a third table pushes the oldest out."""
_PAIR_TABLES_KEPT = 2
_PAIRS_FROM = 1024  # a packet's payload (160 codes) is looked up faster by ``take`` alone


def decode_g711(table: Samples, codes: npt.NDArray[np.uint8]) -> Samples:
    """``table`` (``ULAW_TABLE`` or ``ALAW_TABLE``) applied to every code: what
    ``table[codes]`` gives, faster. ``take``, not fancy indexing (numpy's fancy
    index of uint8 codes is ~7x slower), and for a long contiguous even-length
    buffer (a whole stream's payloads) two codes a lookup, in a table of sample
    pairs (256 KiB, built at first use)."""
    if len(codes) < _PAIRS_FROM or len(codes) % 2 or not codes.flags.c_contiguous:
        return table.take(codes)
    decoded: Samples = _pairs(table).take(codes.view(np.uint16)).view(np.int16)
    return decoded


def _pairs(table: Samples) -> npt.NDArray[np.int32]:
    """``table``'s pair table: made at first use, then kept (``_PAIR_TABLES``)."""
    for known, pairs in _PAIR_TABLES:
        if known is table:
            return pairs
    # every uint16 as its two bytes in memory order (either endianness), decoded
    both = np.arange(65536, dtype=np.uint16).view(np.uint8).reshape(-1, 2)
    pairs = table.take(both).view(np.int32).reshape(-1)
    _PAIR_TABLES.append((table, pairs))
    del _PAIR_TABLES[:-_PAIR_TABLES_KEPT]
    return pairs


_ENCODE_TABLES: dict[str, npt.NDArray[np.uint8]] = {}


def _encode_table(name: str, decode: Samples) -> npt.NDArray[np.uint8]:
    """65536-entry linear -> code table: the code whose decoded value is nearest."""
    table = _ENCODE_TABLES.get(name)
    if table is None:
        order = np.argsort(decode, kind="stable")
        values = decode[order].astype(np.int32)
        linear = np.arange(-32768, 32768, dtype=np.int32)
        idx = np.clip(np.searchsorted(values, linear), 1, len(values) - 1)
        nearer_low = (linear - values[idx - 1]) <= (values[idx] - linear)
        table = order[np.where(nearer_low, idx - 1, idx)].astype(np.uint8)
        _ENCODE_TABLES[name] = table
    return table


def encode_pcmu(samples: npt.NDArray[np.int16]) -> bytes:
    table = _encode_table("pcmu", ULAW_TABLE)
    return table[samples.astype(np.int32) + 32768].tobytes()


def encode_pcma(samples: npt.NDArray[np.int16]) -> bytes:
    table = _encode_table("pcma", ALAW_TABLE)
    return table[samples.astype(np.int32) + 32768].tobytes()


class G711Decoder:
    """Stateless table lookup: callers may join payloads and look them up at once."""

    rate = 8000

    def __init__(self, table: Samples) -> None:
        self.table = table

    def decode(self, payload: bytes) -> Samples:
        return decode_g711(self.table, np.frombuffer(payload, dtype=np.uint8))

    def concealment(self, samples: int) -> Samples:
        return concealment(samples)


# --- PyAV codecs -------------------------------------------------------------


def _frame_to_mono(frame: Any) -> Samples:
    data = frame.to_ndarray()
    fmt: str = frame.format.name
    channels = len(frame.layout.channels)
    if not fmt.endswith("p"):  # packed: (1, samples * channels)
        data = data.reshape(-1, channels).T
    if fmt.startswith("flt") or fmt.startswith("dbl"):
        mono = data.mean(axis=0) if channels > 1 else data[0]
        result: Samples = np.clip(np.rint(mono * 32768.0), -32768, 32767).astype(np.int16)
        return result
    if channels > 1:
        result = data.astype(np.int32).mean(axis=0).astype(np.int16)
        return result
    return np.asarray(data[0], dtype=np.int16)


class AvDecoder:
    """A PyAV (libavcodec) decoder; corrupt payloads decode to nothing."""

    def __init__(self, name: str, rate: int, frame_bytes: int | None = None) -> None:
        import av

        self._av = av
        self.rate = rate
        self._frame_bytes = frame_bytes
        self._context = cast(Any, av.CodecContext.create(name, "r"))
        self._context.sample_rate = rate
        self._context.layout = "mono"
        self.errors = 0

    def _decode_one(self, payload: bytes) -> list[Samples]:
        try:
            frames = self._context.decode(self._av.Packet(payload))
        except self._av.FFmpegError:
            self.errors += 1
            return []
        return [_frame_to_mono(frame) for frame in frames]

    def decode(self, payload: bytes) -> Samples:
        size = self._frame_bytes
        chunks: list[Samples] = []
        if size is None:
            chunks = self._decode_one(payload)
        else:
            # G.729: 10-byte frames, possibly several per packet; a 2-byte tail is an
            # Annex B SID frame (comfort noise), recorded as 10 ms of silence.
            whole = len(payload) - len(payload) % size
            for pos in range(0, whole, size):
                chunks.extend(self._decode_one(payload[pos : pos + size]))
            if len(payload) > whole:
                chunks.append(concealment(self.rate // 100))
        if not chunks:
            return concealment(0)
        return chunks[0] if len(chunks) == 1 else np.concatenate(chunks)

    def concealment(self, samples: int) -> Samples:
        return concealment(samples)


def get_decoder(codec: Codec) -> Decoder:
    """A fresh decoder for ``codec``; raises ``UnsupportedCodec``."""
    name = codec.name.lower()
    if name == "pcmu":
        return G711Decoder(ULAW_TABLE)
    if name == "pcma":
        return G711Decoder(ALAW_TABLE)
    if name == "g722":
        return AvDecoder("g722", 16000)
    if name == "g729":
        return AvDecoder("g729", 8000, frame_bytes=10)
    if name == "opus":
        return AvDecoder("opus", 48000)
    raise UnsupportedCodec(codec.name)
