"""SIPREC calls end to end: INVITE → RTP → BYE → MP3 checked by content."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from callvault.demo.client import CallPlan, Participant
from callvault.media.analysis import tone_spans
from callvault.media.sender import Impairments
from callvault.media.tones import sine
from callvault.recording.spool import is_unused
from tests.e2e.harness import running_recorder

LEFT_HZ, RIGHT_HZ = 440.0, 1000.0


def _covered(spans: list[tuple[float, float]], start: float, end: float) -> float:
    """Seconds of [start, end] covered by spans."""
    return sum(max(0.0, min(e, end) - max(s, start)) for s, e in spans)


async def test_two_stream_call_udp_with_impairments_and_digits(tmp_path: Path) -> None:
    async with running_recorder(tmp_path) as rec:
        plan = CallPlan(
            caller=Participant(
                "sip:alice@acme.example",
                "Alice",
                sine(LEFT_HZ, 4.0),
                digits=[(1.0, "5")],
                impairments=Impairments(reorder_every=5, duplicate_every=7, drop_every=40),
            ),
            callee=Participant(
                "sip:+31612345678@pstn.example",
                "Customer",
                sine(RIGHT_HZ, 4.0),
                digits=[(2.0, "9")],
                impairments=Impairments(reorder_every=6, duplicate_every=9),
            ),
            duration_s=4.0,
        )
        result = await rec.client.place(plan)
        assert result.status == 200
        [(_call, recording_id)] = await rec.wait_finished()
        assert recording_id is not None
        meta = await rec.recording(recording_id)
        pcm, rate, raw = await rec.audio(recording_id)
        import hashlib

        assert hashlib.sha256(raw).hexdigest() == meta["sha256"]
        assert meta["channels"] == 2 and pcm.shape[0] == 2
        left, right = pcm[0], pcm[1]
        duration = left.shape[0] / rate
        assert 3.6 < duration < 4.6
        # the user's tone fills the left channel, the other party's the right; never crossed
        assert _covered(tone_spans(left, rate, LEFT_HZ), 0.2, duration - 0.2) > duration - 0.7
        assert _covered(tone_spans(right, rate, RIGHT_HZ), 0.2, duration - 0.2) > duration - 0.7
        assert _covered(tone_spans(left, rate, RIGHT_HZ), 0, duration) < 0.1
        assert _covered(tone_spans(right, rate, LEFT_HZ), 0, duration) < 0.1
        digits = {(d["digit"], d["stream_index"]) for d in meta["dtmf"]}
        assert digits == {("5", 0), ("9", 1)}
        sides = {p["aor"]: p["side"] for p in meta["parties"]}
        assert sides["sip:alice@acme.example"] == "user"
        assert meta["user_id"] == rec.users["alice"]
        calls = (await rec.http.get(f"/api/v1/tenants/{rec.tenant_id}/calls")).json()["items"]
        assert calls[0]["recording_ids"] == [recording_id]
        assert np.abs(left).max() > 1000


async def test_tcp_call_with_pause_is_cut_and_segmented(tmp_path: Path) -> None:
    async with running_recorder(tmp_path) as rec:
        plan = CallPlan(
            caller=Participant("sip:+31687654321@pstn.example", "Supplier", sine(RIGHT_HZ, 6.0)),
            callee=Participant("sip:bob@acme.example", "Bob", sine(LEFT_HZ, 6.0)),
            duration_s=6.0,
            pause=(2.0, 4.0),
            payload_type=8,
            transport="tcp",
        )
        assert (await rec.client.place(plan)).status == 200
        [(_call, recording_id)] = await rec.wait_finished()
        assert recording_id is not None
        meta = await rec.recording(recording_id)
        assert meta["user_id"] == rec.users["bob"]
        segments = meta["segments"]
        assert len(segments) == 2
        first, second = segments
        # the pause (about 2 s to 4 s of the call) is cut out; offsets tell where
        assert abs((second["call_start_ms"] - first["call_end_ms"]) - 2000) < 300
        assert first["file_end_ms"] == second["file_start_ms"]
        pcm, rate, _raw = await rec.audio(recording_id)
        duration = pcm.shape[1] / rate
        assert 3.5 < duration < 4.6  # 6 s call minus the 2 s pause
        left = tone_spans(pcm[0], rate, LEFT_HZ)  # Bob is the recorded user: left
        right = tone_spans(pcm[1], rate, RIGHT_HZ)
        assert _covered(left, 0.2, duration - 0.2) > duration - 0.8
        assert _covered(right, 0.2, duration - 0.2) > duration - 0.8
        assert meta["codecs"] == ["PCMA"]  # payload type 8 only, no DTMF sent


async def test_participant_named_later_by_metadata_update(tmp_path: Path) -> None:
    """Avaya style: the INVITE names a placeholder, an UPDATE names the real user.

    Until the UPDATE nobody may be recorded: the media is received and looked at
    in memory but not written (issue 7, section 6); from the UPDATE on it is."""
    async with running_recorder(tmp_path) as rec:
        placeholder = Participant("sip:anonymous@sbc.example", "", sine(LEFT_HZ, 4.0))
        other = Participant("sip:+31612345678@pstn.example", "Customer", sine(RIGHT_HZ, 4.0))
        alice = Participant("sip:alice@acme.example", "Alice", sine(LEFT_HZ, 1.0))
        plan = CallPlan(
            caller=placeholder,
            callee=other,
            duration_s=4.0,
            metadata_update=(1.0, alice, other),
        )
        assert (await rec.client.place(plan)).status == 200
        [(_call, recording_id)] = await rec.wait_finished()
        assert recording_id is not None
        meta = await rec.recording(recording_id)
        assert meta["user_id"] == rec.users["alice"]
        aors = {p["aor"] for p in meta["parties"]}
        assert "sip:alice@acme.example" in aors
        start = meta["segments"][0]["call_start_ms"] / 1000
        assert 0.9 <= start <= 1.5, meta["segments"]  # from the UPDATE, nothing before
        pcm, rate, _raw = await rec.audio(recording_id)
        duration = pcm.shape[1] / rate
        assert 2.4 < duration < 3.2, duration
        # alice sends stream 1 (label 1): left
        assert _covered(tone_spans(pcm[0], rate, LEFT_HZ), 0.2, duration - 0.2) > duration - 0.8
        assert _covered(tone_spans(pcm[1], rate, RIGHT_HZ), 0.2, duration - 0.2) > duration - 0.8


async def test_calls_of_unknown_parties_and_unrecorded_users_are_not_stored(tmp_path: Path) -> None:
    async with running_recorder(tmp_path) as rec:
        strangers = CallPlan(
            caller=Participant("sip:someone@elsewhere.example", "", sine(LEFT_HZ, 1.5)),
            callee=Participant("sip:+4930123456@pstn.example", "", sine(RIGHT_HZ, 1.5)),
            duration_s=1.5,
        )
        carol = CallPlan(
            caller=Participant("sip:carol@acme.example", "Carol", sine(LEFT_HZ, 1.5)),
            callee=Participant("sip:+31612345678@pstn.example", "", sine(RIGHT_HZ, 1.5)),
            duration_s=1.5,
            transport="tcp",
        )
        results = [await rec.client.place(strangers), await rec.client.place(carol)]
        assert [r.status for r in results] == [200, 200]
        finished = await rec.wait_finished(2)
        assert [r for _c, r in finished] == [None, None]
        page = (await rec.http.get(f"/api/v1/tenants/{rec.tenant_id}/recordings")).json()
        assert page["items"] == []
        # captured audio is gone too: only empty spools made ahead for the next calls
        assert [p.name for p in (tmp_path / "spool").iterdir() if not is_unused(p)] == []
