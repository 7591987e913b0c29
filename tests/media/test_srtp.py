"""SRTP/SRTCP decryption (RFC 3711) with the key from the offer's a=crypto (RFC 4568).

The sending side is libsrtp itself (pylibsrtp's ``protect``), keyed from the
same SDP the recorder parses, so each test is a round trip through the wire.
"""

from __future__ import annotations

import base64
import struct

import pylibsrtp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callvault.media.rtp import RtpPacket
from callvault.media.srtp import SRTP_SUITES, SrtpStreamDecryptor
from callvault.sip.sdp import choose_crypto, parse_sdp

KEY = bytes(range(1, 31))
SUITES = list(SRTP_SUITES)


def offered_decryptor(suite: str, key: bytes = KEY) -> SrtpStreamDecryptor:
    """A decryptor built the way the receiver will: from the offer's chosen a=crypto."""
    body = (
        "v=0\r\no=src 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
        "m=audio 4000 RTP/SAVP 8\r\n"
        f"a=crypto:1 {suite} inline:{base64.b64encode(key).decode()}|2^31\r\n"
        "a=sendonly\r\n"
    ).encode()
    crypto = choose_crypto(parse_sdp(body).media[0])
    assert crypto is not None and crypto.key_salt is not None
    return SrtpStreamDecryptor(crypto.suite, crypto.key_salt)


def sender(suite: str, key: bytes = KEY) -> pylibsrtp.Session:
    return pylibsrtp.Session(pylibsrtp.Policy(
        key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
        srtp_profile=SRTP_SUITES[suite].profile,
    ))


def rtp(sequence: int, ssrc: int = 0x1234ABCD, payload: bytes = b"\xd5" * 160) -> bytes:
    return bytes(RtpPacket(payload_type=8, sequence=sequence & 0xFFFF, timestamp=160 * sequence,
                           ssrc=ssrc, payload=payload))


def rtcp_receiver_report(ssrc: int = 0x1234ABCD) -> bytes:
    return struct.pack("!BBHI", 0x80, 201, 1, ssrc)


@pytest.mark.parametrize("suite", SUITES)
def test_round_trip(suite: str) -> None:
    tx, rx = sender(suite), offered_decryptor(suite)
    for sequence in range(50):
        plain = rtp(sequence, payload=bytes([sequence]) * 160)
        protected = tx.protect(plain)
        assert protected != plain and len(protected) > len(plain)
        assert rx.unprotect(protected) == plain
    assert rx.rtp.decrypted == 50 and rx.rtp.auth_failures == 0


def test_tags_differ_in_length() -> None:
    plain = rtp(1)
    long_tag = sender("AES_CM_128_HMAC_SHA1_80").protect(plain)
    short_tag = sender("AES_CM_128_HMAC_SHA1_32").protect(plain)
    assert (len(long_tag) - len(plain), len(short_tag) - len(plain)) == (10, 4)


def test_wrong_key_and_tampering_fail_authentication() -> None:
    protected = sender("AES_CM_128_HMAC_SHA1_80").protect(rtp(1))
    stranger = offered_decryptor("AES_CM_128_HMAC_SHA1_80", key=bytes(30))
    assert stranger.unprotect(protected) is None
    assert stranger.rtp.auth_failures == 1
    rx = offered_decryptor("AES_CM_128_HMAC_SHA1_80")
    tampered = bytearray(protected)
    tampered[20] ^= 0x01
    assert rx.unprotect(bytes(tampered)) is None
    assert rx.rtp.auth_failures == 1
    assert rx.unprotect(protected) is not None  # the genuine packet still passes


def test_replayed_packet_is_dropped_and_counted() -> None:
    tx, rx = sender("AES_CM_128_HMAC_SHA1_80"), offered_decryptor("AES_CM_128_HMAC_SHA1_80")
    protected = tx.protect(rtp(7))
    assert rx.unprotect(protected) is not None
    assert rx.unprotect(protected) is None
    assert (rx.rtp.decrypted, rx.rtp.replays, rx.rtp.auth_failures) == (1, 1, 0)


def test_reordered_packets_and_a_new_ssrc_decrypt() -> None:
    tx, rx = sender("AES_CM_128_HMAC_SHA1_80"), offered_decryptor("AES_CM_128_HMAC_SHA1_80")
    packets = [tx.protect(rtp(sequence)) for sequence in range(10)]
    for index in (0, 2, 1, 4, 3, 9, 5, 6, 8, 7):
        assert rx.unprotect(packets[index]) is not None
    # the SRC restarts the stream with a new SSRC (RFC 7866 allows it on re-INVITE)
    fresh = rtp(500, ssrc=0x0BADCAFE)
    assert rx.unprotect(tx.protect(fresh)) == fresh


def test_sequence_number_rollover() -> None:
    tx, rx = sender("AES_CM_128_HMAC_SHA1_80"), offered_decryptor("AES_CM_128_HMAC_SHA1_80")
    for sequence in range(65530, 65546):  # wraps to 0..9: the rollover counter becomes 1
        plain = rtp(sequence)
        assert rx.unprotect(tx.protect(plain)) == plain
    assert rx.rtp.decrypted == 16


@pytest.mark.parametrize("suite", SUITES)
def test_rtcp_round_trip(suite: str) -> None:
    tx, rx = sender(suite), offered_decryptor(suite)
    report = rtcp_receiver_report()
    protected = tx.protect_rtcp(report)
    assert rx.unprotect_rtcp(protected) == report
    assert rx.unprotect_rtcp(protected) is None  # SRTCP replay
    assert rx.rtcp.decrypted == 1 and rx.rtcp.replays == 1
    assert rx.rtp.decrypted == 0  # RTP and RTCP are counted apart


def test_sizes_that_cannot_be_srtp() -> None:
    rx = offered_decryptor("AES_CM_128_HMAC_SHA1_80")
    assert rx.unprotect(b"") is None
    assert rx.unprotect(b"\x80" * 11) is None
    assert rx.unprotect(b"\x80" * 1501) is None
    assert rx.unprotect_rtcp(b"\x80\xc9") is None
    assert rx.rtp.malformed == 3 and rx.rtcp.malformed == 1


@settings(max_examples=300)
@given(st.binary(max_size=1600))
def test_fuzz_junk_never_raises(data: bytes) -> None:
    rx = offered_decryptor("AES_CM_128_HMAC_SHA1_32")
    assert rx.unprotect(data) is None
    assert rx.unprotect_rtcp(data) is None
    counted = rx.rtp.auth_failures + rx.rtp.replays + rx.rtp.malformed
    assert counted == 1


def test_bad_construction_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported SRTP suite"):
        SrtpStreamDecryptor("AES_256_CM_HMAC_SHA1_80", bytes(46))
    with pytest.raises(ValueError, match="30 bytes"):
        SrtpStreamDecryptor("AES_CM_128_HMAC_SHA1_80", bytes(16))
