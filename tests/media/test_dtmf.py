"""RFC 4733 payload parsing and the digit tracker, on captured and built packets."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.peers import require

from callvault.errors import RemoteProtocolError
from callvault.media.dtmf import EVENT_DIGITS, DtmfDigit, Rfc4733Tracker, TelephoneEvent
from callvault.media.rtp import RtpPacket

# RFC 4733 captures shipped by Debian's sip-tester (sipp's pcap play samples):
# one per key, named after it. Listed here, not globbed, so that missing files
# are a missing peer rather than an empty (silently skipped) parameter set.
PCAP_DIR = Path("/usr/share/sip-tester")
PCAPS = [PCAP_DIR / f"dtmf_2833_{key}.pcap" for key in [*"0123456789", "pound", "star"]]


def read_pcap_udp(path: Path) -> list[tuple[int, bytes]]:
    """``(time_ms, udp_payload)`` of every Ethernet/IPv4/UDP packet of a classic pcap."""
    data = path.read_bytes()
    magic = data[:4]
    if magic == b"\xd4\xc3\xb2\xa1":
        endian = "<"
    elif magic == b"\xa1\xb2\xc3\xd4":
        endian = ">"
    else:
        raise ValueError(f"{path} is not a classic microsecond pcap")
    (linktype,) = struct.unpack_from(endian + "I", data, 20)
    assert linktype == 1, "Ethernet only"
    out: list[tuple[int, bytes]] = []
    pos = 24
    while pos + 16 <= len(data):
        sec, usec, incl, _orig = struct.unpack_from(endian + "IIII", data, pos)
        frame = data[pos + 16 : pos + 16 + incl]
        pos += 16 + incl
        if frame[12:14] != b"\x08\x00":
            continue  # not IPv4
        ip = frame[14:]
        ihl = (ip[0] & 0x0F) * 4
        if ip[9] != 17:
            continue  # not UDP
        udp = ip[ihl:]
        (length,) = struct.unpack_from("!H", udp, 4)
        out.append((sec * 1000 + usec // 1000, bytes(udp[8:length])))
    return out


def expected_digit(path: Path) -> str:
    name = path.stem.removeprefix("dtmf_2833_")
    return {"pound": "#", "star": "*"}.get(name, name)


@pytest.mark.parametrize("path", PCAPS, ids=[p.stem for p in PCAPS])
def test_captured_rfc4733_packets_give_the_digit_of_the_file(path: Path) -> None:
    require(path, f"{path} (Debian package sip-tester)")
    tracker = Rfc4733Tracker(stream_index=1)
    found: list[DtmfDigit] = []
    packets = read_pcap_udp(path)
    assert packets
    for time_ms, raw in packets:
        packet = RtpPacket.parse(raw)
        assert bytes(packet) == raw  # the wire type round-trips real packets
        event = TelephoneEvent.parse(packet.payload)
        assert bytes(event) == packet.payload[:4]
        found.extend(tracker.feed(packet, time_ms))
    found.extend(tracker.finish())
    assert [d.digit for d in found] == [expected_digit(path)]
    digit = found[0]
    assert digit.stream_index == 1
    assert digit.source == "rfc4733"
    assert digit.start_ms == packets[0][0]
    last = TelephoneEvent.parse(RtpPacket.parse(packets[-1][1]).payload)
    assert last.end
    assert digit.duration_ms == last.duration * 1000 // 8000


def test_parse_fields() -> None:
    event = TelephoneEvent.parse(bytes([11, 0x80 | 10, 0x03, 0x20]))
    assert event == TelephoneEvent(event=11, end=True, volume=10, duration=800)
    assert event.digit == "#"
    assert TelephoneEvent.parse(bytes([16, 0, 0, 0])).digit == "!"
    assert TelephoneEvent.parse(bytes([64, 0, 0, 0])).digit is None


@pytest.mark.parametrize("payload", [b"", b"\x01", b"\x01\x02\x03"])
def test_short_payload_is_a_remote_error(payload: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        TelephoneEvent.parse(payload)


@given(st.integers(0, 255), st.booleans(), st.integers(0, 63), st.integers(0, 0xFFFF))
def test_round_trip(event: int, end: bool, volume: int, duration: int) -> None:
    te = TelephoneEvent(event=event, end=end, volume=volume, duration=duration)
    assert TelephoneEvent.parse(bytes(te)) == te


def test_event_map() -> None:
    assert "".join(EVENT_DIGITS[n] for n in range(16)) == "0123456789*#ABCD"


# -- tracker --

SSRC = 0x1234


def te_packet(
    digit_event: int,
    timestamp: int,
    duration: int,
    *,
    end: bool = False,
    seq: int = 0,
    ssrc: int = SSRC,
) -> RtpPacket:
    payload = bytes(TelephoneEvent(digit_event, end, 10, duration))
    return RtpPacket(101, seq, timestamp, ssrc, payload, marker=duration == 160)


def event_packets(digit_event: int, timestamp: int, updates: int, seq: int = 0) -> list[RtpPacket]:
    """A well-behaved event: updates every 160 samples, then three end packets."""
    out = [te_packet(digit_event, timestamp, 160 * (i + 1), seq=seq + i) for i in range(updates)]
    final = 160 * (updates + 1)
    out += [
        te_packet(digit_event, timestamp, final, end=True, seq=seq + updates + i) for i in range(3)
    ]
    return out


def test_three_end_packets_give_one_digit() -> None:
    tracker = Rfc4733Tracker(stream_index=2)
    out: list[DtmfDigit] = []
    for n, packet in enumerate(event_packets(5, 8000, 4)):
        out += tracker.feed(packet, 1000 + 20 * n)
    assert out == [DtmfDigit("5", 2, 1000, 100)]
    assert not tracker.pending
    assert tracker.finish() == []


def test_retransmitted_and_late_packets_are_dropped() -> None:
    tracker = Rfc4733Tracker()
    packets = event_packets(1, 500, 3)
    out: list[DtmfDigit] = []
    for n, packet in enumerate(packets + packets[:2] + packets[-1:]):
        out += tracker.feed(packet, 20 * n)
    assert [d.digit for d in out] == ["1"]
    assert tracker.finish() == []


def test_duplicated_updates_do_not_split_the_event() -> None:
    tracker = Rfc4733Tracker()
    packets = event_packets(7, 500, 3)
    doubled = [p for p in packets for _ in range(2)]
    out = [d for n, p in enumerate(doubled) for d in tracker.feed(p, n)]
    assert [(d.digit, d.duration_ms) for d in out] == [("7", 80)]


def test_lost_end_is_reported_when_the_next_event_starts() -> None:
    tracker = Rfc4733Tracker()
    first = event_packets(3, 1000, 4)[:-3]  # every end packet lost
    second = event_packets(4, 3000, 4, seq=10)
    out: list[DtmfDigit] = []
    for n, packet in enumerate(first):
        out += tracker.feed(packet, 100 + 20 * n)
    assert out == []
    out += tracker.feed(second[0], 400)
    assert out == [DtmfDigit("3", 0, 100, 80)]  # duration of the last update seen
    for packet in second[1:]:
        out += tracker.feed(packet, 450)
    assert [d.digit for d in out] == ["3", "4"]
    # A stray update of the first event after the second: already reported.
    assert tracker.feed(first[1], 500) == []


def test_lost_end_is_reported_after_the_timeout() -> None:
    tracker = Rfc4733Tracker(timeout_ms=500)
    for n, packet in enumerate(event_packets(9, 1000, 5)[:-3]):
        tracker.feed(packet, 100 + 20 * n)
    assert tracker.pending
    assert tracker.flush(100 + 80 + 499) == []
    assert tracker.flush(100 + 80 + 500) == [DtmfDigit("9", 0, 100, 100)]
    assert tracker.flush(5000) == []
    # Its late end packets change nothing.
    assert tracker.feed(te_packet(9, 1000, 960, end=True), 5000) == []


def test_ssrc_change_starts_a_new_event() -> None:
    tracker = Rfc4733Tracker()
    tracker.feed(te_packet(1, 1000, 160), 0)
    out = tracker.feed(te_packet(2, 1000, 160, ssrc=99), 20)
    assert [d.digit for d in out] == ["1"]
    assert [d.digit for d in tracker.finish()] == ["2"]


def test_older_timestamp_of_unseen_event_is_ignored() -> None:
    tracker = Rfc4733Tracker()
    tracker.feed(te_packet(1, 5000, 160), 0)
    assert tracker.feed(te_packet(2, 4000, 160), 20) == []
    assert [d.digit for d in tracker.finish()] == ["1"]


def test_timestamp_wrap_is_newer() -> None:
    tracker = Rfc4733Tracker()
    tracker.feed(te_packet(1, 0xFFFFFF00, 160), 0)
    out = tracker.feed(te_packet(2, 0x100, 160), 20)
    assert [d.digit for d in out] == ["1"]


def test_non_dtmf_events_are_not_reported() -> None:
    tracker = Rfc4733Tracker()
    assert tracker.feed(te_packet(32, 1000, 800, end=True), 0) == []


def test_clock_rate() -> None:
    tracker = Rfc4733Tracker(clock_rate=16000)
    out = tracker.feed(te_packet(0, 0, 1600, end=True), 0)
    assert out[0].duration_ms == 100
