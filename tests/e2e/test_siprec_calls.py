"""SIPREC calls end to end: INVITE → RTP → BYE → MP3 checked by content."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from callvault.demo.client import CallPlan, Participant
from callvault.media.analysis import tone_spans
from callvault.media.sender import Impairments
from callvault.media.tones import sine
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
