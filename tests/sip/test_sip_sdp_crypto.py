"""SDES in SDP (RFC 4568): a=crypto parsing, the answer's suite and key, 488s, SRTP policy."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callvault.sip.sdp import (
    build_recording_answer,
    choose_codecs,
    choose_crypto,
    insecure_offer_error,
    new_srtp_key,
    offer_is_secure,
    parse_crypto,
    parse_sdp,
    recording_answer_error,
)

HEAD = "v=0\r\no=src 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
KEY = bytes(range(30))
INLINE = base64.b64encode(KEY).decode()
OTHER = base64.b64encode(bytes(range(100, 130))).decode()
OURS = b"\xaa" * 30


def sdp(*lines: str) -> bytes:
    return (HEAD + "".join(line + "\r\n" for line in lines)).encode()


def savp(*crypto: str, proto: str = "RTP/SAVP", port: int = 4000) -> list[str]:
    return [f"m=audio {port} {proto} 0 101", "a=rtpmap:101 telephone-event/8000",
            *(f"a=crypto:{line}" for line in crypto), "a=sendonly"]


def answer(body: bytes) -> str:
    offer = parse_sdp(body)
    ports = [5000 + 2 * i for i in range(len(offer.media))]
    return build_recording_answer(
        offer, "192.0.2.10", ports, session_id=1, version=1, new_key=lambda suite: OURS
    ).decode()


def test_crypto_lines_are_parsed() -> None:
    body = sdp(*savp(
        f"1 AES_CM_128_HMAC_SHA1_32 inline:{OTHER}|2^20|1:4",
        f"2 AES_CM_128_HMAC_SHA1_80 inline:{INLINE}|2^31",
        f"3 AES_CM_128_HMAC_SHA1_80 inline:{INLINE} UNENCRYPTED_SRTCP",
        "bad line",
    ))
    (media,) = parse_sdp(body).media
    assert media.secure
    first, second, third = media.crypto  # the malformed line is ignored (RFC 4568 5.1.2)
    assert (first.tag, first.suite, first.mki) == (1, "AES_CM_128_HMAC_SHA1_32", "1:4")
    assert first.unusable() == "MKI not supported"
    assert (second.tag, second.key_salt, second.session_params) == (2, KEY, ())
    assert second.unusable() is None
    assert third.session_params == ("UNENCRYPTED_SRTCP",)
    assert third.unusable() == "session parameter UNENCRYPTED_SRTCP not supported"


@pytest.mark.parametrize("value", [
    "", "x AES_CM_128_HMAC_SHA1_80 inline:abc", "1 AES_CM_128_HMAC_SHA1_80",
    "1 AES_CM_128_HMAC_SHA1_80 outline:abc", "1 AES_CM_128_HMAC_SHA1_80 inline:abc|soon",
])
def test_malformed_crypto_is_none(value: str) -> None:
    assert parse_crypto(value) is None


def test_bad_keys_are_unusable() -> None:
    short = parse_crypto("1 AES_CM_128_HMAC_SHA1_80 inline:" + base64.b64encode(b"k" * 16).decode())
    assert short is not None and short.unusable() == "bad key length"
    not_base64 = parse_crypto("1 AES_CM_128_HMAC_SHA1_80 inline:!!!!")
    assert not_base64 is not None and not_base64.unusable() == "bad key length"
    two = parse_crypto(f"1 AES_CM_128_HMAC_SHA1_80 inline:{INLINE};inline:{OTHER}")
    assert two is not None and two.unusable() == "several keys"


def test_answer_prefers_the_80_bit_tag_and_states_our_own_key() -> None:
    body = sdp(*savp(f"1 AES_CM_128_HMAC_SHA1_32 inline:{OTHER}",
                     f"2 AES_CM_128_HMAC_SHA1_80 inline:{INLINE}"))
    (media,) = parse_sdp(body).media
    chosen = choose_crypto(media)
    assert chosen is not None and (chosen.tag, chosen.key_salt) == (2, KEY)
    text = answer(body)
    assert "m=audio 5000 RTP/SAVP 0 101\r\n" in text
    crypto = [line for line in text.split("\r\n") if line.startswith("a=crypto:")]
    ours = base64.b64encode(OURS).decode()
    assert crypto == [f"a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:{ours}"]
    assert "a=recvonly" in text


def test_answer_accepts_the_32_bit_tag_alone() -> None:
    text = answer(sdp(*savp(f"7 AES_CM_128_HMAC_SHA1_32 inline:{OTHER}")))
    assert "a=crypto:7 AES_CM_128_HMAC_SHA1_32 inline:" in text


def test_our_keys_are_fresh_and_sized_for_the_suite() -> None:
    keys = {new_srtp_key("AES_CM_128_HMAC_SHA1_80") for _ in range(20)}
    assert len(keys) == 20 and {len(key) for key in keys} == {30}
    offer = parse_sdp(sdp(*savp(f"1 AES_CM_128_HMAC_SHA1_80 inline:{INLINE}")))
    first = build_recording_answer(offer, "192.0.2.10", [5000], session_id=1, version=1)
    second = build_recording_answer(offer, "192.0.2.10", [5000], session_id=1, version=1)
    assert first != second and INLINE.encode() not in first


def test_only_unknown_suites_get_a_precise_488() -> None:
    offer = parse_sdp(sdp(*savp(
        f"1 AES_256_CM_HMAC_SHA1_80 inline:{base64.b64encode(bytes(46)).decode()}",
        f"2 AES_CM_128_HMAC_SHA1_80 inline:{INLINE}|2^20|1:4",
    )))
    (media,) = offer.media
    assert choose_crypto(media) is None and choose_codecs(media) == {}
    error = recording_answer_error(offer)
    assert error is not None and error.status == 488
    assert "AES_256_CM_HMAC_SHA1_80 (unsupported suite)" in str(error)
    assert "AES_CM_128_HMAC_SHA1_80 (MKI not supported)" in str(error)
    assert "supported RTP/AVP, or RTP/SAVP with AES_CM_128_HMAC_SHA1_80" in str(error)
    assert error.warning == str(error)


def test_srtp_without_crypto_or_over_dtls_is_refused() -> None:
    error = recording_answer_error(parse_sdp(sdp(*savp())))
    assert error is not None and "RTP/SAVP without a=crypto" in str(error)
    dtls = recording_answer_error(parse_sdp(sdp(*savp(proto="UDP/TLS/RTP/SAVP"))))
    assert dtls is not None and dtls.status == 488
    assert "transport UDP/TLS/RTP/SAVP" in str(dtls)


def test_an_unusable_srtp_stream_is_rejected_beside_a_usable_one() -> None:
    body = sdp(*savp("1 AES_192_CM_HMAC_SHA1_80 inline:" + INLINE),
               *savp(f"1 AES_CM_128_HMAC_SHA1_80 inline:{INLINE}", port=4002))
    assert recording_answer_error(parse_sdp(body)) is None
    text = answer(body)
    assert "m=audio 0 RTP/SAVP 0 101" in text  # RFC 4568 7.1.2: stream rejected
    assert "m=audio 5002 RTP/SAVP 0 101" in text


def test_plain_rtp_is_unchanged() -> None:
    text = answer(sdp("m=audio 4000 RTP/AVP 0", "a=sendonly"))
    assert "m=audio 5000 RTP/AVP 0" in text and "a=crypto" not in text


def test_offer_is_secure_for_sources_that_require_srtp() -> None:
    secure = sdp(*savp(f"1 AES_CM_128_HMAC_SHA1_80 inline:{INLINE}"),
                 *savp(f"1 AES_CM_128_HMAC_SHA1_32 inline:{OTHER}", port=4002))
    assert offer_is_secure(parse_sdp(secure))
    assert insecure_offer_error(parse_sdp(secure)) is None
    mixed = parse_sdp(sdp(*savp(f"1 AES_CM_128_HMAC_SHA1_80 inline:{INLINE}"),
                          "m=audio 4002 RTP/AVP 0", "a=sendonly"))
    assert not offer_is_secure(mixed)
    error = insecure_offer_error(mixed)
    assert error is not None and error.status == 488
    assert "m-line 2 (RTP/AVP)" in str(error)
    assert not offer_is_secure(parse_sdp(sdp("m=audio 4000 RTP/AVP 0")))
    # a stream we do not record (video, port 0) does not make an offer insecure
    with_video = parse_sdp(sdp(*savp(f"1 AES_CM_128_HMAC_SHA1_80 inline:{INLINE}"),
                               "m=video 4004 RTP/AVP 96", "m=audio 0 RTP/AVP 0"))
    assert offer_is_secure(with_video)
    assert not offer_is_secure(parse_sdp(sdp("m=video 4004 RTP/SAVP 96")))


@given(st.text(max_size=200))
def test_fuzz_parse_crypto_never_raises(value: str) -> None:
    crypto = parse_crypto(value)
    if crypto is not None:
        crypto.unusable()


@given(st.lists(st.sampled_from([
    "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" + INLINE, "a=crypto:", "a=crypto:1",
    "a=crypto:99999999999 X inline:", "m=audio 4000 RTP/SAVP 0", "m=audio 1 RTP/SAVPF 8",
    "a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:" + OTHER + "|2^20 KDR=1", "a=sendonly",
]), max_size=12))
def test_fuzz_sdp_with_crypto_answers_or_488s(lines: list[str]) -> None:
    offer = parse_sdp(sdp(*lines))
    error = recording_answer_error(offer)
    assert error is None or error.status == 488
    if error is None:
        answer(sdp(*lines))
