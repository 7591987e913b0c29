"""How a bridged call is recorded: as the same ``RecordedCall`` a SIPREC session is.

The B2BUA describes its call the way a SIPREC client would (SPEC section 2:
both modes feed one pipeline): one participant per leg, each sending one
stream, and an SDP with one ``sendonly`` m-line per leg (``a=label`` a or b,
the codecs and ``c=`` of what that leg sends). ``RecordedCall`` then matches
the parties to users, runs the live policy, journals and spools exactly as for
SIPREC; only the packets come from the relay's taps instead of sockets of its
own (``StreamBinder``).
"""

from __future__ import annotations

from dataclasses import replace

from callvault.b2bua.legs import Leg
from callvault.sip.sdp import MediaDescription, SessionDescription
from callvault.siprec.metadata import MetaParticipant, MetaStream, RecordingMetadata

SENDING = frozenset({"sendrecv", "sendonly"})


def recording_metadata(legs: tuple[Leg, Leg], session_id: str) -> RecordingMetadata:
    """The call's parties as SIPREC metadata: participant per leg, stream per leg."""
    participants = tuple(
        MetaParticipant(
            id=leg.party_id,
            aors=(leg.aor,) if leg.aor else (),
            name=leg.name,
            sends=(f"s{leg.side}",),
            receives=(f"s{'b' if leg.side == 'a' else 'a'}",),
            associated=True,
        )
        for leg in legs
    )
    streams = tuple(MetaStream(id=f"s{leg.side}", label=leg.side) for leg in legs)
    return RecordingMetadata(session_id=session_id, participants=participants, streams=streams)


def _sent_stream(leg: Leg, port: int) -> MediaDescription | None:
    if leg.sdp is None or leg.audio_index is None:
        return None
    media = leg.sdp.media[leg.audio_index]
    sending = media.direction in SENDING and not media.paused
    return replace(
        media,
        port=port,
        label=leg.side,
        direction="sendonly" if sending else "inactive",
    )


def recording_sdp(legs: tuple[Leg, Leg], ports: tuple[int, int]) -> SessionDescription | None:
    """What each leg sends, as a SIPREC client would offer it (None until both spoke)."""
    media = [_sent_stream(leg, port) for leg, port in zip(legs, ports, strict=True)]
    if any(m is None for m in media):
        return None
    return SessionDescription(
        origin="callvault 0 0 IN IP4 127.0.0.1",
        session_name="b2bua",
        connection=None,
        media=[m for m in media if m is not None],
    )
