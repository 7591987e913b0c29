"""SRTP and SRTCP decryption for recorded streams keyed by SDES (RFC 3711, RFC 4568).

The recording client offers its master key and salt in ``a=crypto``; the
receiver builds one ``SrtpStreamDecryptor`` per m-line from that key and calls
``unprotect`` on every packet before spooling it. libsrtp (through
``pylibsrtp``, as aiortc does) does the work: it learns each SSRC from the
first authentic packet (``ssrc_any_inbound``; a stream is only created after a
packet passes authentication, so junk allocates nothing), tracks the rollover
counter, and drops replays. Nothing here raises on what arrives from the
network: a packet that is not authentic, is replayed or is not SRTP at all
yields None and is counted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import pylibsrtp

__all__ = [
    "SRTP_SUITES",
    "SrtpCounters",
    "SrtpStreamDecryptor",
    "SrtpSuite",
]



@dataclass(frozen=True, slots=True)
class SrtpSuite:
    """An SDES crypto-suite (RFC 4568 section 6.2) and its libsrtp profile."""

    name: str
    profile: int
    key_length: int  # master key, bytes
    salt_length: int  # master salt, bytes

    @property
    def key_salt_length(self) -> int:
        """Length of the decoded ``inline:`` key-salt value."""
        return self.key_length + self.salt_length


# In our order of preference: the 80-bit tag first, the 32-bit one accepted.
SRTP_SUITES: Final[dict[str, SrtpSuite]] = {
    suite.name: suite
    for suite in (
        SrtpSuite("AES_CM_128_HMAC_SHA1_80", pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
                  16, 14),
        SrtpSuite("AES_CM_128_HMAC_SHA1_32", pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_32,
                  16, 14),
    )
}

# libsrtp's replay errors: a duplicate from the network, not an attack on its own.
_REPLAY_ERRORS: Final = frozenset(
    {"replay check failed (bad index)", "replay check failed (index too old)"}
)
_RTP_MIN: Final = 12  # fixed RTP header
_RTCP_MIN: Final = 8  # RTCP header and sender SSRC


@dataclass
class SrtpCounters:
    """What ``unprotect`` dropped, for metrics and the call's log line."""

    decrypted: int = 0
    auth_failures: int = 0  # not authentic: wrong key, tampered or not SRTP
    replays: int = 0
    malformed: int = 0  # too short or too long to be SRTP


class SrtpStreamDecryptor:
    """Decrypts one offered stream's SRTP (and SRTCP) with the offerer's key.

    ``suite`` is an ``a=crypto`` suite name from ``SRTP_SUITES``; ``key_salt``
    the decoded ``inline:`` value (master key then master salt).
    """

    def __init__(self, suite: str, key_salt: bytes) -> None:
        spec = SRTP_SUITES.get(suite)
        if spec is None:
            raise ValueError(f"unsupported SRTP suite {suite!r}")
        if len(key_salt) != spec.key_salt_length:
            raise ValueError(
                f"{suite} needs {spec.key_salt_length} bytes of key and salt, got {len(key_salt)}"
            )
        self.suite = spec
        policy = pylibsrtp.Policy(
            key=bytes(key_salt), ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND,
            srtp_profile=spec.profile,
        )
        self._rtp = pylibsrtp.Session(policy)
        # SRTP and SRTCP keep separate replay state per SSRC: two sessions keep them apart.
        self._rtcp = pylibsrtp.Session(policy)
        self.rtp = SrtpCounters()
        self.rtcp = SrtpCounters()

    def unprotect(self, packet: bytes) -> bytes | None:
        """The RTP packet inside an SRTP packet; None (counted) when it is not authentic."""
        return _unprotect(self._rtp.unprotect, packet, _RTP_MIN, self.rtp)

    def unprotect_rtcp(self, packet: bytes) -> bytes | None:
        """The RTCP packet inside an SRTCP packet; None (counted) when it is not authentic."""
        return _unprotect(self._rtcp.unprotect_rtcp, packet, _RTCP_MIN, self.rtcp)


def _unprotect(
    process: Callable[[bytes], bytes], packet: bytes, minimum: int, counters: SrtpCounters
) -> bytes | None:
    if len(packet) < minimum or len(packet) > 1500:  # pylibsrtp's buffer holds 1500 bytes
        counters.malformed += 1
        return None
    try:
        plain = process(bytes(packet))
    except pylibsrtp.Error as exc:
        if str(exc) in _REPLAY_ERRORS:
            counters.replays += 1
        else:
            counters.auth_failures += 1
        return None
    except (ValueError, TypeError):
        counters.malformed += 1
        return None
    counters.decrypted += 1
    return plain


class SrtpStreamEncryptor:
    """Encrypts one sent stream (the demo's and the tests' SRC side of SDES)."""

    def __init__(self, suite: str, key_salt: bytes) -> None:
        spec = SRTP_SUITES[suite]
        policy = pylibsrtp.Policy(
            key=bytes(key_salt),
            ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
            srtp_profile=spec.profile,
        )
        self._session = pylibsrtp.Session(policy)

    def protect(self, packet: bytes) -> bytes:
        return bytes(self._session.protect(packet))
