"""Writing SDP from the parsed model (RFC 4566), and the B2BUA's relayed SDP.

``format_sdp`` writes a ``SessionDescription`` in RFC 4566 section 5's order:
``v=``, ``o=``, ``s=``, ``c=``, ``b=``, ``t=0 0`` (RFC 3264 section 5), the
session's attributes, then each m-line with its own ``c=`` (only where it
differs from the session's), ``b=`` and attributes in their order. Parsing
what it writes gives the same model again (the round trip the tests check).

``relay_sdp`` is what the B2BUA (SPEC section 2, mode 2) sends to one leg in
place of the other leg's SDP: the same streams, codecs and attributes, with
our origin, our address and the relay's ports, so that media flows through
the relay.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from callvault.errors import LocalProtocolError
from callvault.sip.sdp import (
    DIRECTIONS,
    MediaDescription,
    SessionDescription,
    address_line,
    attribute_direction,
    media_description,
)

_NULL_ADDRESSES: Final = frozenset({"0.0.0.0", "::"})
# Attributes the relay drops: it relays RTP only, on its own ports. RTCP has no
# port of ours (a=rtcp, a=rtcp-mux, RFC 3605 and RFC 5761) and ICE would make the
# peers check connectivity past the relay (RFC 8839).
_RELAY_DROPPED: Final = frozenset(
    {"rtcp", "rtcp-mux", "rtcp-mux-only", "candidate", "remote-candidates", "end-of-candidates"}
)


def format_sdp(sdp: SessionDescription) -> bytes:
    """The SDP body of ``sdp``, CRLF line ends, UTF-8.

    The attributes are what is written; should an m-line's ``direction`` have
    been changed without its attributes, its direction attribute is written
    from ``direction``. Raises ``LocalProtocolError`` for a model no peer could
    read (no origin, a port or payload type out of range, an m-line without
    formats, a line break inside a value): that is our bug, not the peer's.
    """
    if not sdp.origin:
        raise LocalProtocolError("SDP without an origin (o=)")
    lines = ["v=0", f"o={sdp.origin}", f"s={sdp.session_name or ' '}"]  # RFC 4566 5.3: "s= "
    if sdp.connection is not None:
        lines.append(f"c={address_line(sdp.connection)}")
    lines.extend(f"b={value}" for value in sdp.bandwidth)
    lines.append("t=0 0")
    lines.extend(_attribute_line(name, value) for name, value in sdp.attributes)
    for media in sdp.media:
        _media_lines(media, sdp, lines)
    for line in lines:
        if "\r" in line or "\n" in line:
            raise LocalProtocolError(f"line break inside an SDP line: {line[:40]!r}")
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def _attribute_line(name: str, value: str | None) -> str:
    return f"a={name}" if value is None else f"a={name}:{value}"


def _format_list(media: MediaDescription) -> str:
    if "RTP/" not in media.proto.upper():
        formats = media.raw_formats
    else:
        bad = [pt for pt in media.formats if not 0 <= pt <= 127]
        if bad:
            raise LocalProtocolError(f"RTP payload type {bad[0]} out of range")
        # as offered when it still says the same (e.g. "08" stays "08")
        same = len(media.raw_formats) == len(media.formats) and all(
            raw.isdigit() and int(raw) == pt
            for raw, pt in zip(media.raw_formats, media.formats, strict=True)
        )
        formats = media.raw_formats if same else [str(pt) for pt in media.formats]
    if not formats:
        raise LocalProtocolError(f"m={media.media} line without formats")
    return " ".join(formats)


def _media_lines(media: MediaDescription, sdp: SessionDescription, lines: list[str]) -> None:
    if not 0 <= media.port <= 65535:
        raise LocalProtocolError(f"port {media.port} out of range")
    lines.append(f"m={media.media} {media.port} {media.proto} {_format_list(media)}")
    if media.connection is not None and media.connection != sdp.connection:
        lines.append(f"c={address_line(media.connection)}")
    lines.extend(f"b={value}" for value in media.bandwidth)
    attributes = media.attributes
    own = [(name, value) for name, value in attributes if name.lower() in DIRECTIONS]
    written = attribute_direction(own) if own else attribute_direction(sdp.attributes)
    if written != media.direction:
        attributes = [(n, v) for n, v in attributes if n.lower() not in DIRECTIONS]
        attributes.append((media.direction, None))
    lines.extend(_attribute_line(name, value) for name, value in attributes)


def _relayed(name: str, value: str | None) -> bool:
    lname = name.lower()
    if lname in _RELAY_DROPPED or lname.startswith("ice-"):
        return False
    # bundling would put every stream on the first port (RFC 8843); the relay has one per stream
    return not (lname == "group" and (value or "").split()[:1] == ["BUNDLE"])


def relay_sdp(
    sdp: SessionDescription,
    *,
    address: str,
    ports: Sequence[int | None],
    session_id: int,
    version: int,
    username: str = "callvault",
) -> SessionDescription:
    """The other leg's ``sdp`` as the B2BUA sends it on: media through our relay.

    Kept: every m-line in order, its formats and attributes (rtpmap, fmtp,
    ptime, direction, crypto, label, ...), ``b=`` lines and the session's
    attributes, so the relay stays codec-transparent. Ours: the origin
    (``username``, ``session_id``, ``version``; the caller raises ``version``
    with each new SDP of the dialog, RFC 3264 section 8), the session name, one
    session-level ``c=`` with ``address`` (media-level ``c=`` removed), and
    ``ports[i]`` for m-line ``i``; ``None`` declines it (port 0, formats only).

    The relay does RTP only: ``a=rtcp``, ``a=rtcp-mux`` (and ``-only``), ICE
    (``a=candidate``, ``a=ice-*``, ``a=remote-candidates``,
    ``a=end-of-candidates``) and a BUNDLE group are dropped. A stream on hold by
    a null address (``c=0.0.0.0``, RFC 3264 section 8.4) keeps it, so that the
    other leg learns of the hold.
    """
    if len(ports) != len(sdp.media):
        raise LocalProtocolError(f"{len(ports)} ports for {len(sdp.media)} m-lines")
    session_attributes = [(n, v) for n, v in sdp.attributes if _relayed(n, v)]
    media: list[MediaDescription] = []
    for offered, port in zip(sdp.media, ports, strict=True):
        if port is not None and not 1 <= port <= 65535:
            raise LocalProtocolError(f"relay port {port} out of range")
        if port is None:
            media.append(
                media_description(
                    offered.media,
                    0,
                    offered.proto,
                    offered.formats,
                    [],
                    connection=address,
                    raw_formats=offered.raw_formats,
                    session_attributes=session_attributes,
                )
            )
            continue
        held = offered.connection is not None and offered.connection in _NULL_ADDRESSES
        media.append(
            media_description(
                offered.media,
                port,
                offered.proto,
                offered.formats,
                [(n, v) for n, v in offered.attributes if _relayed(n, v)],
                connection=offered.connection if held else address,
                raw_formats=offered.raw_formats,
                bandwidth=offered.bandwidth,
                session_attributes=session_attributes,
            )
        )
    return SessionDescription(
        origin=f"{username} {session_id} {version} {address_line(address)}",
        session_name=username,
        connection=address,
        media=media,
        attributes=session_attributes,
        bandwidth=list(sdp.bandwidth),
    )
