"""SDP parsing and the recorder's answer (RFC 4566, RFC 3264).

A SIPREC recording client offers one m-line per recorded stream, usually
``sendonly`` (RFC 7866 section 8.1.1). The recording server answers each one
with ``recvonly`` and only the payload types it can record (RFC 3264 section
6.1), or rejects it with port 0. The parser is lenient where real clients are
sloppy (LF line ends, unknown lines, trailing blanks) and precise where the
body is unusable: those cases raise ``RemoteProtocolError`` with status 400.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, Literal, cast

from callvault.errors import LocalProtocolError, RemoteProtocolError
from callvault.recording.journal import Codec

Direction = Literal["sendrecv", "sendonly", "recvonly", "inactive"]
DIRECTIONS: Final[frozenset[str]] = frozenset({"sendrecv", "sendonly", "recvonly", "inactive"})

MAX_SDP_BYTES: Final = 64 * 1024
MAX_MEDIA: Final = 32

# RFC 3551 section 6 static payload types, used when a=rtpmap is absent. G722
# is 8000 here although it samples at 16 kHz: the RFC 3551 section 4.5.2 quirk.
STATIC_PAYLOAD_TYPES: Final[dict[int, Codec]] = {
    0: Codec("PCMU", 8000),
    3: Codec("GSM", 8000),
    4: Codec("G723", 8000),
    8: Codec("PCMA", 8000),
    9: Codec("G722", 8000),
    13: Codec("CN", 8000),
    18: Codec("G729", 8000),
}

RECORDABLE: Final[frozenset[str]] = frozenset(
    {"PCMU", "PCMA", "G722", "G729", "opus", "telephone-event"}
)
_RECORDABLE_LOWER: Final = frozenset(name.lower() for name in RECORDABLE)
_NULL_ADDRESSES: Final = frozenset({"0.0.0.0", "::"})


@dataclass
class MediaDescription:
    """One m-line and its attributes (RFC 4566 section 5.14)."""

    media: str
    port: int
    proto: str
    formats: list[int]
    rtpmap: dict[int, Codec]
    fmtp: dict[int, str]
    direction: Direction
    label: str | None  # RFC 4574 a=label, the key into the SIPREC metadata
    connection: str | None  # media-level c= else session-level c= else None
    ptime: int | None
    attributes: list[tuple[str, str | None]] = field(default_factory=list)
    raw_formats: list[str] = field(default_factory=list)  # as offered, for non-RTP lines

    @property
    def paused(self) -> bool:
        """True for the RFC 3264 section 8.4 hold styles: inactive, c=0.0.0.0, port 0."""
        return (
            self.direction == "inactive"
            or self.port == 0
            or (self.connection is not None and self.connection in _NULL_ADDRESSES)
        )


@dataclass
class SessionDescription:
    """A parsed SDP body (RFC 4566 section 5)."""

    origin: str
    session_name: str
    connection: str | None
    media: list[MediaDescription]


def _bad(message: str) -> RemoteProtocolError:
    return RemoteProtocolError(f"bad SDP: {message}", status=400)


@dataclass
class _MediaBuilder:
    """An m-line being read; its direction is settled once the session level is known."""

    media: str
    port: int
    proto: str
    formats: list[int]
    raw_formats: list[str]
    rtpmap: dict[int, Codec] = field(default_factory=dict)
    fmtp: dict[int, str] = field(default_factory=dict)
    direction: Direction | None = None
    label: str | None = None
    connection: str | None = None
    ptime: int | None = None
    attributes: list[tuple[str, str | None]] = field(default_factory=list)

    def build(
        self, session_direction: Direction, session_connection: str | None
    ) -> MediaDescription:
        rtpmap = dict(self.rtpmap)
        for pt in self.formats:
            if pt not in rtpmap and pt in STATIC_PAYLOAD_TYPES:
                rtpmap[pt] = STATIC_PAYLOAD_TYPES[pt]
        return MediaDescription(
            media=self.media,
            port=self.port,
            proto=self.proto,
            formats=self.formats,
            rtpmap=rtpmap,
            fmtp=self.fmtp,
            direction=self.direction or session_direction,
            label=self.label,
            connection=self.connection if self.connection is not None else session_connection,
            ptime=self.ptime,
            attributes=self.attributes,
            raw_formats=self.raw_formats,
        )


def _parse_media_line(value: str, lineno: int) -> _MediaBuilder:
    """``m=<media> <port>[/<count>] <proto> <fmt> ...`` (RFC 4566 section 5.14)."""
    fields = value.split()
    if len(fields) < 4:
        raise _bad(f"line {lineno}: m= needs media, port, proto and formats: {value!r}")
    media, port_field, proto, *fmts = fields
    port_text = port_field.split("/", 1)[0]
    if not port_text.isdigit() or int(port_text) > 65535:
        raise _bad(f"line {lineno}: m= has a bad port {port_field!r}")
    formats: list[int] = []
    if "RTP/" in proto.upper():
        for fmt in fmts:
            if not fmt.isdigit() or int(fmt) > 127:
                raise _bad(f"line {lineno}: m= has a bad RTP payload type {fmt!r}")
            formats.append(int(fmt))
    return _MediaBuilder(media.lower(), int(port_text), proto, formats, fmts)


def _parse_rtpmap(value: str, lineno: int) -> tuple[int, Codec]:
    """``a=rtpmap:<pt> <name>/<clock>[/<channels>]`` (RFC 4566 section 6)."""
    pt_text, _, encoding = value.strip().partition(" ")
    parts = encoding.strip().split("/")
    if (
        not pt_text.isdigit()
        or int(pt_text) > 127
        or len(parts) < 2
        or not parts[0]
        or not parts[1].isdigit()
        or (len(parts) > 2 and not parts[2].isdigit())
    ):
        raise _bad(f"line {lineno}: malformed a=rtpmap:{value}")
    channels = int(parts[2]) if len(parts) > 2 else 1
    return int(pt_text), Codec(parts[0], int(parts[1]), channels)


def _parse_connection(value: str, lineno: int) -> str:
    """``c=IN IP4 <address>[/<ttl>]`` (RFC 4566 section 5.7); returns the address."""
    fields = value.split()
    if len(fields) < 3:
        raise _bad(f"line {lineno}: malformed c={value}")
    return fields[2].split("/", 1)[0]


def _apply_attribute(builder: _MediaBuilder, name: str, val: str | None, lineno: int) -> None:
    builder.attributes.append((name, val))
    lname = name.lower()
    if lname in DIRECTIONS:
        builder.direction = cast(Direction, lname)
    elif lname == "rtpmap" and val is not None:
        pt, codec = _parse_rtpmap(val, lineno)
        builder.rtpmap[pt] = codec
    elif lname == "fmtp" and val is not None:
        pt_text, _, params = val.strip().partition(" ")
        if pt_text.isdigit():
            builder.fmtp[int(pt_text)] = params.strip()
    elif lname == "label" and val is not None:
        builder.label = val.strip()
    elif lname == "ptime" and val is not None:
        with contextlib.suppress(ValueError, OverflowError):  # a broken ptime is only a hint
            builder.ptime = round(float(val))


def _lines(data: bytes) -> list[str]:
    text = data.decode("utf-8", errors="replace")
    return [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]


def parse_sdp(data: bytes) -> SessionDescription:
    """Parse an SDP body (RFC 4566); raise ``RemoteProtocolError(400)`` when unusable."""
    if len(data) > MAX_SDP_BYTES:
        raise _bad(f"body of {len(data)} bytes exceeds {MAX_SDP_BYTES}")
    origin = ""
    session_name = ""
    session_connection: str | None = None
    session_direction: Direction = "sendrecv"
    media: list[_MediaBuilder] = []
    seen_version = False
    for lineno, line in enumerate(_lines(data), start=1):
        if not line:
            continue
        if len(line) < 2 or line[1] != "=" or not line[0].isalpha():
            raise _bad(f"line {lineno} is not <type>=<value>: {line[:40]!r}")
        kind, value = line[0], line[2:]
        if not seen_version:
            if kind != "v":
                raise _bad(f"first line must be v=, got {line[:40]!r}")
            if value.strip() != "0":
                raise _bad(f"unsupported version v={value[:10]}")
            seen_version = True
            continue
        if kind == "m":
            if len(media) >= MAX_MEDIA:
                raise _bad(f"more than {MAX_MEDIA} m= lines")
            media.append(_parse_media_line(value, lineno))
        elif kind == "c":
            address = _parse_connection(value, lineno)
            if media:
                media[-1].connection = address
            else:
                session_connection = address
        elif kind == "a":
            name, sep, val = value.partition(":")
            attr_value = val if sep else None
            if media:
                _apply_attribute(media[-1], name.strip(), attr_value, lineno)
            elif name.strip().lower() in DIRECTIONS:
                session_direction = cast(Direction, name.strip().lower())
        elif kind == "o" and not media:
            origin = value.strip()
        elif kind == "s" and not media:
            session_name = value.strip()
        # b=, t=, k=, i=, u=, e=, p=, z=, r= and unknown types are not needed
    if not seen_version:
        raise _bad("empty body, missing v=")
    return SessionDescription(
        origin=origin,
        session_name=session_name,
        connection=session_connection,
        media=[m.build(session_direction, session_connection) for m in media],
    )


def _is_recordable(codec: Codec) -> bool:
    return codec.name.lower() in _RECORDABLE_LOWER


def _is_voice(codec: Codec) -> bool:
    return codec.name.lower() != "telephone-event"


def choose_codecs(media: MediaDescription) -> dict[int, Codec]:
    """The offered payload types we can record, in offer order (RFC 3264 section 6.1).

    telephone-event is kept only alongside a voice codec; a non-audio m-line
    or a rejected one (port 0) yields nothing.
    """
    if media.media != "audio" or media.port == 0:
        return {}
    chosen = {
        pt: media.rtpmap[pt]
        for pt in media.formats
        if pt in media.rtpmap and _is_recordable(media.rtpmap[pt])
    }
    if not any(_is_voice(codec) for codec in chosen.values()):
        return {}
    return chosen


def _answer_direction(offered: Direction) -> Direction:
    # RFC 3264 section 6.1: we never send, so only recvonly or inactive
    return "recvonly" if offered in ("sendonly", "sendrecv") else "inactive"


def _address_line(address: str) -> str:
    return f"IN {'IP6' if ':' in address else 'IP4'} {address}"


def build_recording_answer(
    offer: SessionDescription,
    local_address: str,
    ports: Sequence[int | None],
    *,
    session_id: int,
    version: int,
) -> bytes:
    """The recorder's RFC 3264 answer: one m-line per offered m-line, in order.

    ``ports[i]`` is the local RTP port for m-line ``i``; ``None`` rejects it
    with port 0 (RFC 3264 section 6), as does an m-line with nothing recordable.
    """
    if len(ports) != len(offer.media):
        raise LocalProtocolError(f"{len(ports)} ports for {len(offer.media)} m-lines")
    lines = [
        "v=0",
        f"o=callvault {session_id} {version} {_address_line(local_address)}",
        "s=callvault",
        f"c={_address_line(local_address)}",
        "t=0 0",
    ]
    for media, port in zip(offer.media, ports, strict=True):
        chosen = choose_codecs(media)
        if port is None or not chosen:
            formats = " ".join(media.raw_formats) or "0"
            lines.append(f"m={media.media} 0 {media.proto} {formats}")
            continue
        lines.append(f"m={media.media} {port} {media.proto} {' '.join(map(str, chosen))}")
        for pt, codec in chosen.items():
            channels = f"/{codec.channels}" if codec.channels != 1 else ""
            lines.append(f"a=rtpmap:{pt} {codec.name}/{codec.clock_rate}{channels}")
            if pt in media.fmtp:
                lines.append(f"a=fmtp:{pt} {media.fmtp[pt]}")
        if media.ptime is not None:
            lines.append(f"a=ptime:{media.ptime}")
        if media.label is not None:
            lines.append(f"a=label:{media.label}")
        lines.append(f"a={_answer_direction(media.direction)}")
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def _describe(media: MediaDescription) -> list[str]:
    names = []
    for pt in media.formats:
        codec = media.rtpmap.get(pt)
        names.append(f"{media.media} {codec.name}" if codec else f"{media.media} pt {pt}")
    if not media.formats:
        names.append(f"{media.media} {media.proto}")
    return names


def recording_answer_error(offer: SessionDescription) -> RemoteProtocolError | None:
    """A 488 when no audio m-line offers a recordable codec (RFC 3261 section 21.4.26)."""
    if any(choose_codecs(media) for media in offer.media):
        return None
    offered: list[str] = []
    for media in offer.media:
        for name in _describe(media):
            if name not in offered:
                offered.append(name)
    text = f"no recordable audio stream: offered codecs {', '.join(offered) or 'none'}"
    return RemoteProtocolError(text, status=488, warning=text)
