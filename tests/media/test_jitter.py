"""The playout buffer (media/jitter.py): placement by timestamp, concealment, resets.

Frames are told apart by content: frame k of a stream is the constant k + 1
(times 100), so what comes out says which frame it was.
"""

from __future__ import annotations

import numpy as np
import pytest

from callvault.media.jitter import FADE_FRAMES, JitterBuffer

N = 160


def frame(k: int, size: int = N) -> np.ndarray:
    return np.full(size, (k + 1) * 100, dtype=np.int16)


CONCEALED = -1


def label(out: np.ndarray) -> int | None:
    """Which frame ``out`` is (None: silence, CONCEALED: a faded repeat)."""
    if not out.any():
        return None
    if len(set(out.tolist())) != 1:
        return CONCEALED
    return int(out[0]) // 100 - 1


def run(
    buffer: JitterBuffer,
    arrivals: dict[int, list[tuple[int, int, np.ndarray]]],
    ticks: int,
) -> list[int | None]:
    """Tick by tick (20 ms): push what arrives in that tick, then pop one frame."""
    out: list[int | None] = []
    for tick in range(ticks):
        now = 20 * tick
        for seq, ts, pcm in arrivals.get(tick, []):
            buffer.push(seq, ts, pcm, now)
        out.append(label(buffer.pop(now)))
    return out


Arrivals = dict[int, list[tuple[int, int, np.ndarray]]]


def steady(count: int, seq0: int = 0, ts0: int = 0, k0: int = 0) -> Arrivals:
    return {
        i: [((seq0 + i) & 0xFFFF, (ts0 + N * i) & 0xFFFFFFFF, frame(k0 + i))] for i in range(count)
    }


def test_in_order_audio_comes_out_target_ms_later_unchanged() -> None:
    buffer = JitterBuffer()  # 60 ms: three frames
    out = run(buffer, steady(10), 15)
    assert out == [None, None, None, *range(10), CONCEALED, CONCEALED]
    assert buffer.stats()["played"] == 10 and buffer.stats()["late"] == 0


def test_nothing_pushed_is_silence() -> None:
    buffer = JitterBuffer()
    assert not buffer.pop(0).any() and len(buffer.pop(20)) == N


def test_reordered_packets_play_in_timestamp_order() -> None:
    arrivals = steady(8)
    arrivals[3], arrivals[4] = arrivals[4], arrivals[3]  # 4 overtakes 3
    arrivals[6] = arrivals[6] + arrivals.pop(5)  # 5 arrives 20 ms late, after 6
    buffer = JitterBuffer()
    assert run(buffer, arrivals, 11)[3:11] == list(range(8))
    assert buffer.late == 0 and buffer.concealed == 0


def test_duplicates_are_counted_and_played_once() -> None:
    arrivals = steady(6)
    arrivals[2] = arrivals[2] + arrivals[1]  # 1 again
    arrivals[3] = arrivals[3] + arrivals[3]
    buffer = JitterBuffer()
    assert run(buffer, arrivals, 9)[3:] == list(range(6))
    assert buffer.duplicates == 2


def test_a_lost_frame_is_repeated_fading_then_silence() -> None:
    arrivals = steady(12)
    for lost in range(4, 4 + FADE_FRAMES + 2):
        del arrivals[lost]
    buffer = JitterBuffer()
    frames = []
    for tick in range(16):
        for seq, ts, pcm in arrivals.get(tick, []):
            buffer.push(seq, ts, pcm, 20 * tick)
        frames.append(buffer.pop(20 * tick))
    last_heard = frames[3 + 3]  # frame 3
    concealed = frames[3 + 4 : 3 + 4 + FADE_FRAMES]
    levels = [float(np.abs(f.astype(np.float64)).mean()) for f in concealed]
    assert levels[0] < float(last_heard[0]) and levels[0] > 0
    assert levels == sorted(levels, reverse=True) and levels[-1] > 0  # fading
    assert all(
        abs(int(f[0]) - int(last_heard[0])) <= 2 for f in concealed[:1]
    )  # starts at its level
    assert not frames[3 + 4 + FADE_FRAMES].any()  # then silence
    assert label(frames[3 + 4 + FADE_FRAMES + 2]) == 4 + FADE_FRAMES + 2
    assert buffer.concealed >= FADE_FRAMES + 2


def test_a_packet_older_than_what_was_played_is_late() -> None:
    arrivals = steady(8)
    arrivals[9] = arrivals.pop(2)  # 140 ms late: its time has passed
    buffer = JitterBuffer()
    out = run(buffer, arrivals, 12)
    assert out[3:5] == [0, 1] and out[5] != 2
    assert buffer.late == 1


def test_sequence_number_and_timestamp_wrap() -> None:
    arrivals = steady(10, seq0=65530, ts0=(1 << 32) - 4 * N)
    buffer = JitterBuffer()
    assert run(buffer, arrivals, 13)[3:] == list(range(10))
    assert buffer.late == 0 and buffer.resets == 0


def test_packets_of_another_size_are_cut_into_frames() -> None:
    """30 ms packets (ptime 30): 240 samples each, frames of 160 out."""
    buffer = JitterBuffer()
    samples = np.arange(240 * 8, dtype=np.int16)
    out = []
    for tick in range(16):
        now = 20 * tick
        packet = (tick * 2) // 3  # one packet per 30 ms
        if tick * 20 >= packet * 30 and (tick * 20 - 20) < packet * 30 and packet < 8:
            buffer.push(packet, 240 * packet, samples[240 * packet : 240 * (packet + 1)], now)
        out.append(buffer.pop(now))
    played = np.concatenate(out)
    start = int(np.flatnonzero(played)[0]) - 1  # sample 0 is 0 itself
    assert np.array_equal(played[start : start + len(samples)], samples)


def test_a_new_ssrc_continues_where_the_old_stream_ended() -> None:
    arrivals = steady(5)
    # a transfer: another phone, its own numbers, from the next tick on
    for i in range(5):
        arrivals[5 + i] = [(1000 + i, 777_000 + N * i, frame(5 + i))]
    buffer = JitterBuffer()
    out = []
    for tick in range(14):
        for seq, ts, pcm in arrivals.get(tick, []):
            buffer.push(seq, ts, pcm, 20 * tick, ssrc=0x1111 if tick < 5 else 0x2222)
        out.append(label(buffer.pop(20 * tick)))
    assert out[3:13] == list(range(10))
    assert buffer.resets == 1 and buffer.late == 0


def test_a_timestamp_jump_back_is_a_new_stream_not_late_audio() -> None:
    arrivals = steady(5, ts0=5_000_000)
    for i in range(5):  # same SSRC, timestamps restarted
        arrivals[5 + i] = [(5 + i, N * i, frame(5 + i))]
    buffer = JitterBuffer()
    assert run(buffer, arrivals, 13)[3:13] == list(range(10))
    assert buffer.late == 0 and buffer.resets == 1


def test_a_timestamp_jump_forward_is_a_new_stream_not_a_gap() -> None:
    arrivals = steady(5)
    for i in range(5):  # the sender's timestamps jump 10 s ahead
        arrivals[5 + i] = [(5 + i, 80_000 + N * (5 + i), frame(5 + i))]
    buffer = JitterBuffer()
    out = run(buffer, arrivals, 13)
    assert out[3:13] == list(range(10))  # nothing lost, no 10 s of silence
    assert buffer.resets == 1 and buffer.skipped == 0


def test_a_burst_is_capped_at_max_ms() -> None:
    buffer = JitterBuffer(target_ms=60, max_ms=200)
    for i in range(30):  # 600 ms of audio in one go
        buffer.push(i, N * i, frame(i), 0)
    assert buffer.depth_ms <= 200
    first = label(buffer.pop(0))
    assert first is not None and first >= 30 - 200 // 20
    assert buffer.skipped > 0


def test_after_a_long_silence_the_stream_starts_afresh_with_target_depth() -> None:
    arrivals = steady(4)
    for i in range(4):  # silence suppression: 1 s without packets, timestamps go on
        arrivals[60 + i] = [(4 + i, N * (54 + i), frame(4 + i))]
    buffer = JitterBuffer()
    out = run(buffer, arrivals, 68)
    assert out[3:7] == [0, 1, 2, 3]
    assert out[60:63] == [None, None, None]  # target depth again
    assert out[63:67] == [4, 5, 6, 7]
    assert buffer.late == 0


def test_target_must_be_below_max() -> None:
    with pytest.raises(ValueError):
        JitterBuffer(target_ms=200, max_ms=200)
