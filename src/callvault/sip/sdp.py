"""SDP parsing and the recorder's answer (RFC 4566, RFC 3264, SDES RFC 4568).

A SIPREC recording client offers one m-line per recorded stream, usually
``sendonly`` (RFC 7866 section 8.1.1). The recording server answers each one
with ``recvonly`` and only the payload types it can record (RFC 3264 section
6.1), or rejects it with port 0. The parser is lenient where real clients are
sloppy (LF line ends, unknown lines, trailing blanks) and precise where the
body is unusable: those cases raise ``RemoteProtocolError`` with status 400.

SRTP by SDES: an ``RTP/SAVP`` m-line carries ``a=crypto`` lines (parsed into
``CryptoAttribute``). The answer picks one offered suite we support
(``choose_crypto``: AES_CM_128_HMAC_SHA1_80, else _32) and states our own
fresh key under the same tag (RFC 4568 section 5.1.2); the receiver decrypts
with the offerer's key. A secure m-line without a usable suite is rejected,
and an offer left with nothing usable gets a 488 naming what was offered.
``offer_is_secure`` tells whether every stream we would record is SRTP, for
sources that require it.

The model keeps what writing needs (``sip/sdp_writer.py``): session-level and
per-m-line attributes in order and ``b=`` lines. The attributes are what is
written; the typed fields (``rtpmap``, ``fmtp``, ``direction``, ``label``,
``ptime``, ``crypto``) are readings of them, so an SDP built from objects goes
through ``media_description``, which derives them the way the parser does.
``t=`` is always ``0 0`` in SIP (RFC 3264 section 5) and is not kept; ``i=``,
``u=``, ``e=``, ``p=``, ``k=``, ``r=`` and ``z=`` are dropped.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal, cast

from callvault.errors import LocalProtocolError, RemoteProtocolError
from callvault.media.codec import Codec
from callvault.media.srtp import SRTP_SUITES

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
SECURE_PROTOCOLS: Final = frozenset({"RTP/SAVP", "RTP/SAVPF"})  # SDES-keyed SRTP (RFC 4568)
# DTLS-SRTP (UDP/TLS/RTP/SAVP) and RTP over TCP are not received.
RECORDABLE_PROTOCOLS: Final = frozenset({"RTP/AVP", "RTP/AVPF"}) | SECURE_PROTOCOLS


@dataclass(frozen=True)
class CryptoAttribute:
    """One ``a=crypto:<tag> <suite> <key-params> [<session-params>]`` (RFC 4568 section 9.1)."""

    tag: int
    suite: str
    key_salt: bytes | None  # the first inline: key and salt, decoded; None if not base64
    keys: int  # how many key-params (we can use exactly one)
    mki: str | None  # "value:length" of the first key, if present
    session_params: tuple[str, ...]

    def unusable(self) -> str | None:
        """Why we cannot use this attribute, or None when we can."""
        suite = SRTP_SUITES.get(self.suite)
        if suite is None:
            return "unsupported suite"
        if self.key_salt is None or len(self.key_salt) != suite.key_salt_length:
            return "bad key length"
        if self.keys != 1:
            return "several keys"
        if self.mki is not None:
            return "MKI not supported"
        if self.session_params:
            # e.g. UNENCRYPTED_SRTP, KDR: answering without them would change their meaning
            return f"session parameter {self.session_params[0].split('=')[0]} not supported"
        return None


_CRYPTO = re.compile(r"(\d{1,9})[ \t]+([A-Za-z0-9_]+)[ \t]+(\S+)((?:[ \t]+\S+)*)[ \t]*")
_LIFETIME = re.compile(r"(?:2\^)?\d+")
_MKI = re.compile(r"\d+:\d+")


def parse_crypto(value: str) -> CryptoAttribute | None:
    """Parse an ``a=crypto`` value; None when it is not even well-formed (it is then ignored)."""
    m = _CRYPTO.fullmatch(value.strip())
    if m is None:
        return None
    tag, suite, key_params, session = m.groups()
    keys = key_params.split(";")
    method, sep, info = keys[0].partition(":")
    if not sep or method.lower() != "inline":
        return None
    key_text, *rest = info.split("|")
    mki = None
    for part in rest:  # lifetime and MKI may each be present (RFC 4568 section 6.1)
        if _MKI.fullmatch(part):
            mki = part
        elif not _LIFETIME.fullmatch(part):
            return None
    try:
        key_salt: bytes | None = base64.b64decode(key_text, validate=True)
    except (binascii.Error, ValueError):
        key_salt = None
    return CryptoAttribute(int(tag), suite, key_salt, len(keys), mki, tuple(session.split()))


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
    crypto: list[CryptoAttribute] = field(default_factory=list)  # well-formed a=crypto lines
    bandwidth: list[str] = field(default_factory=list)  # b= values, e.g. "AS:64"

    @property
    def secure(self) -> bool:
        """True for SDES-keyed SRTP m-lines (RTP/SAVP, RTP/SAVPF)."""
        return self.proto.upper() in SECURE_PROTOCOLS

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
    attributes: list[tuple[str, str | None]] = field(default_factory=list)  # session-level a=
    bandwidth: list[str] = field(default_factory=list)  # session-level b= values


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
    crypto: list[CryptoAttribute] = field(default_factory=list)
    bandwidth: list[str] = field(default_factory=list)

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
            crypto=self.crypto,
            bandwidth=self.bandwidth,
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
    address = fields[2].split("/", 1)[0] if len(fields) >= 3 else ""
    if not address:
        raise _bad(f"line {lineno}: malformed c={value}")
    return address


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
    elif lname == "crypto" and val is not None:
        crypto = parse_crypto(val)
        if crypto is not None:  # RFC 4568 section 5.1.2: ignore what cannot be parsed
            builder.crypto.append(crypto)
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
    if b"\x00" in data:  # RFC 4566 text excludes it; labels and names would carry it on
        raise _bad("NUL character (U+0000)")
    origin = ""
    session_name = ""
    session_connection: str | None = None
    session_direction: Direction = "sendrecv"
    session_attributes: list[tuple[str, str | None]] = []
    session_bandwidth: list[str] = []
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
            else:
                session_attributes.append((name.strip(), attr_value))
                if name.strip().lower() in DIRECTIONS:
                    session_direction = cast(Direction, name.strip().lower())
        elif kind == "b":
            (media[-1].bandwidth if media else session_bandwidth).append(value.strip())
        elif kind == "o" and not media:
            origin = value.strip()
        elif kind == "s" and not media:
            session_name = value.strip()
        # t= (always 0 0 in SIP), k=, i=, u=, e=, p=, z=, r= and unknown types are not needed
    if not seen_version:
        raise _bad("empty body, missing v=")
    return SessionDescription(
        origin=origin,
        session_name=session_name,
        connection=session_connection,
        media=[m.build(session_direction, session_connection) for m in media],
        attributes=session_attributes,
        bandwidth=session_bandwidth,
    )


def attribute_direction(attributes: Sequence[tuple[str, str | None]]) -> Direction:
    """The direction a session-level attribute list sets (the last one), else sendrecv."""
    found: Direction = "sendrecv"
    for name, _ in attributes:
        if name.lower() in DIRECTIONS:
            found = cast(Direction, name.lower())
    return found


def media_description(
    media: str,
    port: int,
    proto: str,
    formats: Sequence[int],
    attributes: Sequence[tuple[str, str | None]],
    *,
    connection: str | None,
    raw_formats: Sequence[str] | None = None,
    bandwidth: Sequence[str] = (),
    session_attributes: Sequence[tuple[str, str | None]] = (),
) -> MediaDescription:
    """An m-line built from objects, its typed fields read from ``attributes`` as parsed.

    ``connection`` is the line's effective address (its own ``c=`` or the
    session's); ``session_attributes`` supply the direction when the line sets
    none. A malformed ``rtpmap`` raises ``RemoteProtocolError`` as in parsing.
    """
    builder = _MediaBuilder(
        media,
        port,
        proto,
        list(formats),
        list(raw_formats) if raw_formats is not None else [str(pt) for pt in formats],
        bandwidth=list(bandwidth),
    )
    for lineno, (name, value) in enumerate(attributes, start=1):
        _apply_attribute(builder, name, value, lineno)
    return builder.build(attribute_direction(session_attributes), connection)


def _is_recordable(codec: Codec) -> bool:
    return codec.name.lower() in _RECORDABLE_LOWER


def _is_voice(codec: Codec) -> bool:
    return codec.name.lower() != "telephone-event"


def choose_codecs(media: MediaDescription) -> dict[int, Codec]:
    """The offered payload types we record, in offer order (RFC 3264 section 6.1).

    telephone-event is kept only alongside a voice codec; a non-audio m-line,
    a rejected one (port 0), a transport we do not receive, or an SRTP m-line
    without a usable ``a=crypto`` (``choose_crypto``) yields nothing.
    """
    if media.proto.upper() not in RECORDABLE_PROTOCOLS:
        return {}
    if media.secure and choose_crypto(media) is None:
        return {}
    return _recordable_codecs(media)


def _recordable_codecs(media: MediaDescription) -> dict[int, Codec]:
    """``choose_codecs`` by codec alone, whatever the transport."""
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


def address_line(address: str) -> str:
    """``IN IP4 <address>`` or ``IN IP6 <address>``: the tail of ``o=`` and ``c=``."""
    return f"IN {'IP6' if ':' in address else 'IP4'} {address}"


def choose_crypto(media: MediaDescription) -> CryptoAttribute | None:
    """The offered ``a=crypto`` we answer, by our suite preference; None if none is usable.

    Plain RTP m-lines have none. The receiver decrypts the stream with this
    attribute's ``suite`` and ``key_salt`` (``SrtpStreamDecryptor``).
    """
    if not media.secure:
        return None
    usable = [crypto for crypto in media.crypto if crypto.unusable() is None]
    for suite in SRTP_SUITES:
        for crypto in usable:
            if crypto.suite == suite:
                return crypto
    return None


def offer_is_secure(offer: SessionDescription) -> bool:
    """True when every stream we would record is SRTP with a usable key (and there is one).

    For sources that require SRTP: a plain-RTP offer there is refused with
    ``insecure_offer_error``'s 488.
    """
    recorded = [media for media in offer.media if choose_codecs(media)]
    return bool(recorded) and all(media.secure for media in recorded)


def insecure_offer_error(offer: SessionDescription) -> RemoteProtocolError | None:
    """A 488 naming the plain streams when the offer is not ``offer_is_secure``."""
    if offer_is_secure(offer):
        return None
    plain = [
        f"m-line {index + 1} ({media.proto})"
        for index, media in enumerate(offer.media)
        if choose_codecs(media) and not media.secure
    ]
    text = f"SRTP required: {', '.join(plain) or 'no stream'} offered without SRTP"
    return RemoteProtocolError(text, status=488, warning=text)


def new_srtp_key(suite: str) -> bytes:
    """A fresh master key and salt for ``suite`` (RFC 4568 section 6.1: random per session)."""
    return secrets.token_bytes(SRTP_SUITES[suite].key_salt_length)


def build_recording_answer(
    offer: SessionDescription,
    local_address: str,
    ports: Sequence[int | None],
    *,
    session_id: int,
    version: int,
    new_key: Callable[[str], bytes] = new_srtp_key,
) -> bytes:
    """The recorder's RFC 3264 answer: one m-line per offered m-line, in order.

    ``ports[i]`` is the local RTP port for m-line ``i``; ``None`` rejects it
    with port 0 (RFC 3264 section 6), as does an m-line with nothing recordable
    or an SRTP m-line without a usable ``a=crypto``. An accepted SRTP m-line
    answers the chosen crypto's tag and suite with a key from ``new_key``.
    """
    # imported here: the writer reads this module's model, this module writes with it
    from callvault.sip.sdp_writer import format_sdp

    if len(ports) != len(offer.media):
        raise LocalProtocolError(f"{len(ports)} ports for {len(offer.media)} m-lines")
    media = [
        _answer_media(offered, port, local_address, new_key)
        for offered, port in zip(offer.media, ports, strict=True)
    ]
    answer = SessionDescription(
        origin=f"callvault {session_id} {version} {address_line(local_address)}",
        session_name="callvault",
        connection=local_address,
        media=media,
    )
    return format_sdp(answer)


def _answer_media(
    media: MediaDescription,
    port: int | None,
    local_address: str,
    new_key: Callable[[str], bytes],
) -> MediaDescription:
    """One answered m-line: what we record, received on ``port``, or rejected with port 0."""
    chosen = choose_codecs(media)
    if port is None or not chosen:
        return media_description(
            media.media,
            0,
            media.proto,
            media.formats,
            [],
            connection=local_address,
            raw_formats=media.raw_formats,
        )
    attributes: list[tuple[str, str | None]] = []
    for pt, codec in chosen.items():
        channels = f"/{codec.channels}" if codec.channels != 1 else ""
        attributes.append(("rtpmap", f"{pt} {codec.name}/{codec.clock_rate}{channels}"))
        if pt in media.fmtp:
            attributes.append(("fmtp", f"{pt} {media.fmtp[pt]}"))
    if media.ptime is not None:
        attributes.append(("ptime", str(media.ptime)))
    if media.label is not None:
        attributes.append(("label", media.label))
    crypto = choose_crypto(media)
    if crypto is not None:
        key = base64.b64encode(new_key(crypto.suite)).decode("ascii")
        attributes.append(("crypto", f"{crypto.tag} {crypto.suite} inline:{key}"))
    attributes.append((_answer_direction(media.direction), None))
    return media_description(
        media.media, port, media.proto, list(chosen), attributes, connection=local_address
    )


def _describe(media: MediaDescription) -> list[str]:
    names = []
    for pt in media.formats:
        codec = media.rtpmap.get(pt)
        names.append(f"{media.media} {codec.name}" if codec else f"{media.media} pt {pt}")
    if not media.formats:
        names.append(f"{media.media} {media.proto}")
    return names


def _transport_error(offer: SessionDescription) -> RemoteProtocolError:
    """488 for streams whose codecs we record but whose transport or keys we cannot use."""
    offered: list[str] = []
    for media in offer.media:
        if not _recordable_codecs(media):
            continue
        if media.proto.upper() not in RECORDABLE_PROTOCOLS:
            offered.append(f"transport {media.proto}")
        elif not media.crypto:
            offered.append(f"{media.proto} without a=crypto")
        for crypto in media.crypto if media.secure else ():
            offered.append(f"{crypto.suite} ({crypto.unusable()})")
    text = (
        f"no usable SRTP crypto or transport: offered {', '.join(dict.fromkeys(offered))}; "
        f"supported RTP/AVP, or RTP/SAVP with {' or '.join(SRTP_SUITES)} and one inline key"
    )
    return RemoteProtocolError(text, status=488, warning=text)


def recording_answer_error(offer: SessionDescription) -> RemoteProtocolError | None:
    """A 488 when no audio m-line is recordable (RFC 3261 section 21.4.26).

    Recordable: a codec we record over a transport we receive and, on an SRTP
    m-line, a usable ``a=crypto`` (RFC 4568 section 7.1.2: an answerer that
    accepts none of the offered attributes rejects the stream).
    """
    if any(choose_codecs(media) for media in offer.media):
        return None
    if any(_recordable_codecs(media) for media in offer.media):
        return _transport_error(offer)
    offered: list[str] = []
    for media in offer.media:
        for name in _describe(media):
            if name not in offered:
                offered.append(name)
    text = f"no recordable audio stream: offered codecs {', '.join(offered) or 'none'}"
    return RemoteProtocolError(text, status=488, warning=text)
