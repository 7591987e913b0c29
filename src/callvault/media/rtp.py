"""RTP packets (RFC 3550 section 5.1) as a wire dataclass: ``parse`` / ``bytes``."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from callvault.errors import RemoteProtocolError

_HEADER = struct.Struct("!BBHII")


@dataclass(frozen=True, slots=True)
class RtpPacket:
    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes
    marker: bool = False
    csrc: tuple[int, ...] = ()

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        if len(data) < 12:
            raise RemoteProtocolError(f"RTP packet too short ({len(data)} bytes)")
        first, second, sequence, timestamp, ssrc = _HEADER.unpack_from(data, 0)
        if first >> 6 != 2:
            raise RemoteProtocolError(f"RTP version {first >> 6} is not 2")
        cc = first & 0x0F
        pos = 12 + 4 * cc
        if pos > len(data):
            raise RemoteProtocolError("RTP CSRC list runs past the packet")
        csrc = struct.unpack_from(f"!{cc}I", data, 12) if cc else ()
        if first & 0x10:  # header extension: skip it
            if pos + 4 > len(data):
                raise RemoteProtocolError("RTP extension header runs past the packet")
            (words,) = struct.unpack_from("!H", data, pos + 2)
            pos += 4 + 4 * words
        end = len(data)
        if first & 0x20:  # padding: last octet says how much
            if end <= pos:
                raise RemoteProtocolError("RTP padding without payload")
            end -= data[-1]
        if end < pos:
            raise RemoteProtocolError("RTP header runs past the packet")
        return cls(
            payload_type=second & 0x7F,
            sequence=sequence,
            timestamp=timestamp,
            ssrc=ssrc,
            payload=bytes(data[pos:end]),
            marker=bool(second & 0x80),
            csrc=tuple(csrc),
        )

    def __bytes__(self) -> bytes:
        first = 0x80 | len(self.csrc)
        second = (0x80 if self.marker else 0) | (self.payload_type & 0x7F)
        header = _HEADER.pack(
            first, second, self.sequence & 0xFFFF, self.timestamp & 0xFFFFFFFF, self.ssrc
        )
        if self.csrc:
            header += struct.pack(f"!{len(self.csrc)}I", *self.csrc)
        return header + self.payload
