"""Prompt pacing and the numbering of one continuous RTP stream (media/announce.py)."""

from __future__ import annotations

from callvault.media.announce import FRAME_BYTES, FRAME_SAMPLES, PromptPacer, StreamRewriter


def pcm(frames: float, value: int = 1000) -> bytes:
    return value.to_bytes(2, "little", signed=True) * int(frames * FRAME_SAMPLES)


def test_frames_are_due_every_20_ms_and_the_prompt_ends_after_its_last_frame() -> None:
    pacer = PromptPacer()
    ended: list[str] = []
    pacer.add(pcm(2.5), now_ms=1000, on_done=lambda: ended.append("p"))
    frames, done = pacer.due(1000)
    assert [f.first for f in frames] == [True]
    assert pacer.next_due_ms == 1020
    assert pacer.due(1019) == ([], [])
    frames, done = pacer.due(1040)
    assert len(frames) == 2 and not done
    # the half frame at the end is padded with silence
    assert frames[-1].pcm == pcm(0.5) + bytes(FRAME_BYTES // 2)
    assert pacer.active
    frames, done = pacer.due(1060)  # the last frame has been heard
    assert frames == [] and len(done) == 1
    done[0]()
    assert ended == ["p"] and not pacer.active and pacer.next_due_ms is None
    assert pacer.frames == 3


def test_a_second_prompt_follows_the_first_without_a_gap() -> None:
    pacer = PromptPacer()
    pacer.add(pcm(1, 1), now_ms=0, on_done=lambda: None)
    pacer.add(pcm(1, 2), now_ms=5, on_done=lambda: None)
    frames, done = pacer.due(0)
    assert [f.pcm for f in frames] == [pcm(1, 1)]
    frames, done = pacer.due(20)
    assert [(f.pcm, f.first) for f in frames] == [(pcm(1, 2), True)] and len(done) == 1
    frames, done = pacer.due(40)
    assert frames == [] and len(done) == 1 and not pacer.active


def test_a_stalled_pacer_goes_on_from_now_instead_of_bursting() -> None:
    pacer = PromptPacer()
    pacer.add(pcm(50), now_ms=0)
    pacer.due(0)
    frames, _ = pacer.due(1000)  # 50 frames late
    assert len(frames) == 1
    assert pacer.next_due_ms == 1020


def test_clear_hands_back_the_callbacks_uncalled() -> None:
    pacer = PromptPacer()
    called: list[int] = []
    pacer.add(pcm(1), 0, lambda: called.append(1))
    assert len(pacer.clear()) == 1 and called == [] and not pacer.active


def test_prompt_then_relayed_audio_is_one_stream() -> None:
    rw = StreamRewriter()
    # relayed untouched so far: seq 500, ts 80000, SSRC 7, at t=1000
    rw.seen(7, 500, 80000, 1000)
    rw.start_prompt()
    out = [rw.generate(1020 + 20 * n, first=n == 0) for n in range(3)]
    assert [o[0] for o in out] == [7, 7, 7]
    assert [o[1] for o in out] == [501, 502, 503]
    assert [o[2] for o in out] == [80160, 80320, 80480]
    rw.end_prompt()
    # the sender went on with its own numbers meanwhile
    assert rw.relay(7, 504 + 10, 80000 + 160 * 14, 1080, audio=True) == (504, 80640)
    assert rw.relay(7, 515, 80000 + 160 * 15, 1100, audio=True) == (505, 80800)
    assert rw.ssrc == 7


def test_a_prompt_before_any_packet_picks_its_own_stream_and_relayed_audio_joins_it() -> None:
    rw = StreamRewriter()
    rw.start_prompt()
    ssrc, seq, ts = rw.generate(0, first=True)
    rw.end_prompt()
    out_seq, out_ts = rw.relay(99, 7, 1234, 20, audio=True)
    assert rw.ssrc == ssrc
    assert out_seq == (seq + 1) & 0xFFFF and out_ts == (ts + 160) & 0xFFFFFFFF


def test_events_during_a_prompt_take_the_next_numbers_and_keep_one_timestamp() -> None:
    rw = StreamRewriter()
    rw.seen(7, 100, 16000, 0)
    rw.start_prompt()
    _, s1, t1 = rw.generate(20, first=True)
    e1 = rw.relay(7, 105, 16800, 30, audio=False)
    _, s2, t2 = rw.generate(40, first=False)
    e2 = rw.relay(7, 106, 16800, 50, audio=False)  # same event: same timestamp
    assert [s1, e1[0], s2, e2[0]] == [101, 102, 103, 104]
    assert e1[1] == e2[1]
    assert t2 == t1 + 160


def test_a_new_sender_ssrc_continues_the_stream() -> None:
    rw = StreamRewriter()
    rw.seen(7, 100, 16000, 0)
    rw.start_prompt()
    rw.generate(20, first=True)
    rw.end_prompt()
    rw.relay(7, 110, 17600, 40, audio=True)
    seq, ts = rw.relay(8, 9000, 5, 60, audio=True)  # the sender's stream changed
    assert seq == 103 and ts == 16000 + 160 * 3
    assert rw.ssrc == 7


def test_numbers_wrap() -> None:
    rw = StreamRewriter()
    rw.seen(1, 0xFFFF, 0xFFFFFF60, 0)
    rw.start_prompt()
    _, seq, ts = rw.generate(20, first=True)
    assert (seq, ts) == (0, 0)
