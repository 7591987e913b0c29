"""Decoders: exact G.711 tables, PyAV codecs, the factory's refusals."""

from __future__ import annotations

from typing import Any

import av
import numpy as np
import pytest

from callvault.media.codec import Codec
from callvault.media.codecs import (
    ALAW_TABLE,
    ULAW_TABLE,
    UnsupportedCodec,
    concealment,
    decode_g711,
    decoder_rate,
    encode_pcma,
    encode_pcmu,
    get_decoder,
    samples_per_ms,
)


@pytest.mark.parametrize(("name", "table"), [("pcm_mulaw", ULAW_TABLE), ("pcm_alaw", ALAW_TABLE)])
def test_g711_tables_match_libavcodec(name: str, table: np.ndarray) -> None:
    context: Any = av.CodecContext.create(name, "r")
    context.sample_rate = 8000
    context.layout = "mono"
    (frame,) = context.decode(av.Packet(bytes(range(256))))
    assert np.array_equal(frame.to_ndarray()[0], table)


def test_g711_known_codes() -> None:
    assert list(ULAW_TABLE[[0xFF, 0x7F, 0x80, 0x00]]) == [0, 0, 32124, -32124]
    assert list(ALAW_TABLE[[0xD5, 0x55, 0xAA, 0x2A]]) == [8, -8, 32256, -32256]


def test_g711_round_trip_is_within_one_step() -> None:
    x = np.arange(-32768, 32768, 7, dtype=np.int32).astype(np.int16)
    for encode, codec in ((encode_pcmu, Codec("PCMU", 8000)), (encode_pcma, Codec("PCMA", 8000))):
        y = get_decoder(codec).decode(encode(x)).astype(np.int32)
        assert np.all(np.abs(y - x) <= np.maximum(16, np.abs(x.astype(np.int32)) // 16 + 16))


def test_g722_decodes_at_16k() -> None:
    decoder = get_decoder(Codec("G722", 8000))
    assert decoder.rate == 16000 == decoder_rate(Codec("G722", 8000))
    assert len(decoder.decode(bytes(160))) == 320


def test_opus_decodes_at_48k() -> None:
    decoder = get_decoder(Codec("opus", 48000, 2))
    assert decoder.rate == 48000
    assert len(decoder.decode(b"\xf8\xff\xfe")) == 960  # a 20 ms CELT silence frame


def test_g729_frames_and_sid() -> None:
    decoder = get_decoder(Codec("G729", 8000))
    assert len(decoder.decode(bytes(20))) == 160
    assert len(decoder.decode(bytes(22))) == 240  # two frames + an Annex B SID frame


def test_corrupt_payload_decodes_to_nothing() -> None:
    assert len(get_decoder(Codec("G729", 8000)).decode(b"")) == 0


def test_unsupported_codec_is_488() -> None:
    with pytest.raises(UnsupportedCodec) as error:
        get_decoder(Codec("AMR", 8000))
    assert error.value.status == 488


def test_helpers() -> None:
    assert samples_per_ms(16000) == 16
    assert not concealment(80).any() and len(concealment(80)) == 80
    assert len(get_decoder(Codec("PCMU", 8000)).concealment(5)) == 5


def test_decode_g711_is_the_table_lookup_for_every_pair_and_length() -> None:
    every_pair = np.arange(65536, dtype=np.uint16).view(np.uint8)  # each two codes once
    for table in (ULAW_TABLE, ALAW_TABLE):
        slices = (every_pair, every_pair[1:], every_pair[:-1], every_pair[::3], every_pair[:160])
        for codes in (*slices, every_pair[:0]):
            decoded = decode_g711(table, codes)
            assert decoded.dtype == np.int16
            assert np.array_equal(decoded, table[codes])


def test_decode_g711_follows_the_table_it_is_given_not_one_that_lived_at_its_address() -> None:
    codes = np.arange(65536, dtype=np.uint16).view(np.uint8)  # long: the pair-table path
    for shift in range(8):  # each table dropped before the next is made: its id may be reused
        table = (ULAW_TABLE >> 1) + np.int16(shift)
        assert np.array_equal(decode_g711(table, codes), table[codes])
        del table
