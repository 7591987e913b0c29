"""ReorderBuffer: order, duplicates, late packets, loss, wrap-around, SSRC changes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from callvault.media.reorder import ReorderBuffer
from callvault.media.rtp import RtpPacket


def pkt(seq: int, ssrc: int = 1) -> RtpPacket:
    return RtpPacket(0, seq & 0xFFFF, seq * 160, ssrc, b"")


def run(buffer: ReorderBuffer, seqs: list[int], ssrc: int = 1) -> list[int]:
    out = []
    for i, seq in enumerate(seqs):
        out += [p.sequence for p, _ in buffer.push(pkt(seq, ssrc), i)]
    return out + [p.sequence for p, _ in buffer.flush()]


def test_in_order_is_released_at_once() -> None:
    buffer = ReorderBuffer()
    assert [p.sequence for p, _ in buffer.push(pkt(5), 0)] == [5]
    assert [(p.sequence, t) for p, t in buffer.push(pkt(6), 20)] == [(6, 20)]


def test_reordered_and_duplicates() -> None:
    buffer = ReorderBuffer()
    assert run(buffer, [1, 3, 2, 2, 4, 3, 5]) == [1, 2, 3, 4, 5]
    assert (buffer.duplicates, buffer.reordered, buffer.late, buffer.lost) == (2, 1, 0, 0)


def test_window_gives_up_a_gap_then_late_packet_is_dropped() -> None:
    buffer = ReorderBuffer(window=4)
    assert run(buffer, [1, 3, 4, 5, 6, 7, 2]) == [1, 3, 4, 5, 6, 7]
    assert (buffer.lost, buffer.late) == (1, 1)


def test_sequence_wraps() -> None:
    assert run(ReorderBuffer(), [65534, 0, 65535, 1]) == [65534, 65535, 0, 1]


def test_ssrc_change_flushes_and_restarts() -> None:
    buffer = ReorderBuffer()
    out = [p.sequence for p, _ in buffer.push(pkt(10), 0)]
    out += [p.sequence for p, _ in buffer.push(pkt(12), 1)]
    out += [p.sequence for p, _ in buffer.push(pkt(500, ssrc=2), 2)]
    assert out == [10, 12, 500] and buffer.stats.ssrc_changes == 1


def test_large_jumps_restart_the_sequence_space() -> None:
    buffer = ReorderBuffer()
    assert run(buffer, [100, 101, 40000, 40001, 5, 6]) == [100, 101, 40000, 40001, 5, 6]
    assert buffer.stats.restarts == 2 and buffer.lost == 0


@given(st.lists(st.integers(0, 30), max_size=200), st.integers(0, 65535))
def test_any_local_shuffle_comes_out_sorted_without_duplicates(
    offsets: list[int], base: int
) -> None:
    seqs = [base + i + off - 15 for i, off in enumerate(offsets)]
    seqs = [s for s in seqs if s >= base]
    buffer = ReorderBuffer(window=64)
    released = run(buffer, [s & 0xFFFF for s in seqs])
    expected = sorted(set(seqs))
    extended = [base + ((r - base) & 0xFFFF) for r in released]
    assert extended == sorted(extended) and len(set(extended)) == len(extended)
    assert set(extended) <= set(expected)
    assert len(released) + buffer.late + buffer.duplicates == len(seqs)
