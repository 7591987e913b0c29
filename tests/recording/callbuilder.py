"""Builds synthetic call spools: journal events and RTP streams of known tones."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt

from callvault.media.codec import Codec
from callvault.media.codecs import encode_pcma, encode_pcmu
from callvault.media.rtp import RtpPacket
from callvault.recording.journal import StreamLayout, parse_event
from callvault.recording.spool import SpoolReader, SpoolWriter

PCMU = Codec("PCMU", 8000)
PCMA = Codec("PCMA", 8000)
G722 = Codec("G722", 8000)
OPUS = Codec("opus", 48000, 2)
EVENT = Codec("telephone-event", 8000)

Timed = list[tuple[int, RtpPacket]]  # (arrival_ms, packet)


def tone(freq: float, start_ms: int, end_ms: int, rate: int, amplitude: float = 8000.0) -> Any:
    """A sine on the call clock (phase continuous across calls), int16."""
    n0, n1 = start_ms * rate // 1000, end_ms * rate // 1000
    t = np.arange(n0, n1) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def _g711(encoder: Callable[[npt.NDArray[np.int16]], bytes]) -> Callable[..., list[bytes]]:
    def encode(samples: npt.NDArray[np.int16], ptime_ms: int) -> list[bytes]:
        data = encoder(samples)
        step = 8 * ptime_ms
        return [data[i : i + step] for i in range(0, len(data) - step + 1, step)]

    return encode


def _pyav(name: str, rate: int, frame: int) -> Callable[..., list[bytes]]:
    def encode(samples: npt.NDArray[np.int16], ptime_ms: int) -> list[bytes]:
        context: Any = av.CodecContext.create(name, "w")
        context.sample_rate = rate
        context.layout = "mono"
        context.format = "s16"
        if name == "libopus":
            context.bit_rate = 32000
        context.open()
        packets: list[bytes] = []
        for i in range(0, len(samples) - frame + 1, frame):
            audio = av.AudioFrame.from_ndarray(
                samples[None, i : i + frame], format="s16", layout="mono"
            )
            audio.sample_rate = rate
            audio.pts = i
            packets.extend(bytes(p) for p in context.encode(audio))
        packets.extend(bytes(p) for p in context.encode(None))
        return packets

    return encode


# name -> (sample rate, RTP clock, encoder of samples into per-ptime payloads)
ENCODERS: dict[str, tuple[int, int, Callable[..., list[bytes]]]] = {
    "PCMU": (8000, 8000, _g711(encode_pcmu)),
    "PCMA": (8000, 8000, _g711(encode_pcma)),
    "G722": (16000, 8000, _pyav("g722", 16000, 320)),
    "opus": (48000, 48000, _pyav("libopus", 48000, 960)),
}


def rtp_stream(
    codec: str,
    payload_type: int,
    audio_ms: tuple[int, int],
    parts: Sequence[tuple[float, int, int]],
    *,
    ssrc: int = 0x1234,
    seq0: int = 1000,
    ts0: int = 5000,
    delay_ms: int = 0,
    ptime_ms: int = 20,
) -> Timed:
    """Packets covering ``audio_ms`` (call time), silent except for ``parts``.

    ``parts`` are (freq, start_ms, end_ms) tones; packet k goes out at its
    call time and arrives ``delay_ms`` later.
    """
    rate, clock, encode = ENCODERS[codec]
    start, end = audio_ms
    signal = np.zeros((end - start) * rate // 1000, dtype=np.int16)
    for freq, a, b in parts:
        chunk = tone(freq, a, b, rate)
        offset = (a - start) * rate // 1000
        signal[offset : offset + len(chunk)] = chunk
    payloads = encode(signal, ptime_ms)
    step = clock * ptime_ms // 1000
    return [
        (
            start + k * ptime_ms + delay_ms,
            RtpPacket(payload_type, (seq0 + k) & 0xFFFF, (ts0 + k * step) & 0xFFFFFFFF, ssrc, p),
        )
        for k, p in enumerate(payloads)
    ]


class CallBuilder:
    """A spool directory written the way capture writes it."""

    def __init__(
        self,
        directory: Path,
        streams: list[StreamLayout],
        *,
        started_at: int = 1_700_000_000_000,
        **start: Any,
    ) -> None:
        """``start``: more (or other) keys of the ``start`` event."""
        self.directory = directory
        self.writer = SpoolWriter(directory)
        data: dict[str, Any] = {
            "call_uuid": "c0ffee",
            "started_at": started_at,
            "streams": [s.to_dict() for s in streams],
            "parties": [],
            "tenant_id": 1,
        }
        self.event("start", 0, **{**data, **start})

    def event(self, kind: Any, t: int, **data: Any) -> None:
        """One journal event from its line's keys, parsed as the finisher reads it."""
        self.writer.record(parse_event({"type": kind, "t": t, **data}))

    def packets(self, index: int, timed: Timed) -> None:
        spool = self.writer.stream(index)
        for arrival, packet in timed:
            spool.append(arrival, bytes(packet))

    def reader(self) -> SpoolReader:
        self.writer.close()
        return SpoolReader(self.directory)


def layout(
    index: int,
    channel: Any,
    codecs: dict[int, Codec],
    *,
    active: bool = True,
    participant_id: str | None = None,
) -> StreamLayout:
    return StreamLayout(
        index, f"s{index}", codecs, channel, participant_id=participant_id, active=active
    )
