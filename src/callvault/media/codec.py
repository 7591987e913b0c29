"""One RTP payload type as the SDP describes it (RFC 4566 ``a=rtpmap``, RFC 3551).

A leaf module: SDP parsing (``sip/sdp.py``), the decoders (``media/codecs.py``),
the relay, the mixer and the session journal (``recording/journal.py``) all
name codecs by this type, so ``media/`` needs nothing from ``recording/`` for it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Codec:
    """One RTP payload type from the SDP (``a=rtpmap``)."""

    name: str  # e.g. "PCMU", "PCMA", "G722", "G729", "opus", "telephone-event"
    clock_rate: int
    channels: int = 1
