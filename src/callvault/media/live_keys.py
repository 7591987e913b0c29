"""In-band key presses heard while the call runs (ITU-T Q.23 tones in the audio).

The finisher finds in-band keys in the decoded streams after the call; but a
key that *starts* a recording (on demand, started by user) or resumes it
arrives while nothing is written, so it must be heard live. ``InbandKeyListener``
decodes one stream's buffered packets (one batch per spool flush, off the
per-packet path) and runs the streaming ``InbandDtmfDetector`` over them.
Only the streams whose keys can change the capture are listened to.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

import numpy as np

from callvault.errors import RemoteProtocolError
from callvault.media.codec import Codec
from callvault.media.codecs import NON_AUDIO, Decoder, get_decoder
from callvault.media.dtmf import DtmfDigit
from callvault.media.inband_dtmf import InbandDtmfDetector
from callvault.media.rtp import RtpPacket

log = logging.getLogger(__name__)


class InbandKeyListener:
    """Decodes one stream's packets in batches and reports the keys it hears."""

    def __init__(self, stream_index: int, codecs: Mapping[int, Codec]) -> None:
        self.stream_index = stream_index
        self._codecs = dict(codecs)
        self._decoders: dict[int, Decoder] = {}
        self._detector: InbandDtmfDetector | None = None

    def set_codecs(self, codecs: Mapping[int, Codec]) -> None:
        self._codecs = dict(codecs)

    def feed(self, records: Iterable[tuple[int, bytes]]) -> list[DtmfDigit]:
        """Decode ``(arrival_ms, rtp)`` records; return the keys completed."""
        chunks: list[np.ndarray] = []
        first_ms: int | None = None
        for arrival, raw in records:
            samples = self._decode(raw)
            if samples is None:
                continue
            if first_ms is None:
                first_ms = arrival
            chunks.append(samples)
        if first_ms is None or self._detector is None:
            return []
        return self._detector.feed(np.concatenate(chunks), first_ms)

    def finish(self) -> list[DtmfDigit]:
        return self._detector.finish() if self._detector is not None else []

    def _decode(self, raw: bytes) -> np.ndarray | None:
        try:
            packet = RtpPacket.parse(raw)
        except RemoteProtocolError:
            return None
        codec = self._codecs.get(packet.payload_type)
        if codec is None or codec.name.lower() in NON_AUDIO:
            return None
        decoder = self._decoders.get(packet.payload_type)
        try:
            if decoder is None:
                decoder = self._decoders[packet.payload_type] = get_decoder(codec)
            samples = decoder.decode(packet.payload)
        except Exception as exc:  # a codec library error on one packet must not stop the call
            log.debug("stream %d: live decode failed: %s", self.stream_index, exc)
            return None
        if self._detector is None or self._detector.rate != decoder.rate:
            self._detector = InbandDtmfDetector(decoder.rate, stream_index=self.stream_index)
        return samples
