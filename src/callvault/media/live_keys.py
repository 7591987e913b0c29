"""In-band key presses heard while the call runs (ITU-T Q.23 tones in the audio).

The finisher finds in-band keys in the decoded streams after the call; but a
key that *starts* a recording (on demand, started by user) or resumes it
arrives while nothing is written, so it must be heard live. ``InbandKeyListener``
decodes one stream's buffered packets (one batch per spool flush, off the
per-packet path) and runs the streaming ``InbandDtmfDetector`` over them.
Only the streams whose keys can change the capture are listened to.

The listener also keeps which stretches of arrival time it analysed
(``heard``): when it stops, the call journals them with its keys, and the
finisher's whole-stream detection skips that audio (issue 12). A stretch ends
where the listener could not decode a packet of audio, where the detector had
to start again (a new sample rate), and where nothing arrived for a while.
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


MAX_HEARD = 64  # stretches kept per listener; later ones are left to the finisher
HEARD_GAP_MS = 200  # a longer wait for packets ends a stretch


class InbandKeyListener:
    """Decodes one stream's packets in batches and reports the keys it hears."""

    def __init__(self, stream_index: int, codecs: Mapping[int, Codec]) -> None:
        self.stream_index = stream_index
        self._codecs = dict(codecs)
        self._decoders: dict[int, Decoder] = {}
        self._detector: InbandDtmfDetector | None = None
        self.heard: list[tuple[int, int]] = []  # (from_ms, to_ms) of arrival analysed
        self._open = False  # whether the next packet may extend ``heard[-1]``

    def set_codecs(self, codecs: Mapping[int, Codec]) -> None:
        self._codecs = dict(codecs)

    def feed(self, records: Iterable[tuple[int, bytes]]) -> list[DtmfDigit]:
        """Decode ``(arrival_ms, rtp)`` records; return the keys completed."""
        found: list[DtmfDigit] = []
        chunks: list[np.ndarray] = []
        first_ms: int | None = None
        for arrival, raw in records:
            decoded = self._decode(raw)
            if decoded is None:
                continue
            samples, rate = decoded
            if samples is None:  # audio this listener cannot hear: the stretch ends
                self._open = False
                continue
            if self._detector is None or self._detector.rate != rate:
                if self._detector is not None and first_ms is not None:
                    found += self._detector.feed(np.concatenate(chunks), first_ms)
                found += self.finish()
                chunks, first_ms = [], None
                self._detector = InbandDtmfDetector(rate, stream_index=self.stream_index)
            if first_ms is None:
                first_ms = arrival
            chunks.append(samples)
            self._heard(arrival, arrival + len(samples) * 1000 // rate)
        if first_ms is not None and self._detector is not None:
            found += self._detector.feed(np.concatenate(chunks), first_ms)
        return found

    def finish(self) -> list[DtmfDigit]:
        """The key still sounding, if any: call once the listener stops, so that every
        key in ``heard`` has been reported."""
        self._open = False
        return self._detector.finish() if self._detector is not None else []

    def _heard(self, start: int, end: int) -> None:
        if self._open and self.heard and start <= self.heard[-1][1] + HEARD_GAP_MS:
            self.heard[-1] = (self.heard[-1][0], max(self.heard[-1][1], end))
        elif len(self.heard) < MAX_HEARD:
            self.heard.append((start, end))
            self._open = True
        else:
            self._open = False

    def _decode(self, raw: bytes) -> tuple[np.ndarray | None, int] | None:
        """A packet's samples and their rate; (None, 0) for audio that cannot be
        decoded; None for a packet that carries no audio (events, comfort noise)."""
        try:
            packet = RtpPacket.parse(raw)
        except RemoteProtocolError:
            return None, 0
        codec = self._codecs.get(packet.payload_type)
        if codec is not None and codec.name.lower() in NON_AUDIO:
            return None
        if codec is None:
            return None, 0
        decoder = self._decoders.get(packet.payload_type)
        try:
            if decoder is None:
                decoder = self._decoders[packet.payload_type] = get_decoder(codec)
            samples = decoder.decode(packet.payload)
        except Exception as exc:  # a codec library error on one packet must not stop the call
            log.debug("stream %d: live decode failed: %s", self.stream_index, exc)
            return None, 0
        return samples, decoder.rate
