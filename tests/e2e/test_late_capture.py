"""A call whose packets capture reads only at the hang-up keeps all its audio.

Issue 12: recorded streams are stamped with the kernel's receive time
(SO_TIMESTAMPNS), so packets read late are placed when they came. Before,
they carried the time they were read: a call whose 600 ms of packets were all
drained at the BYE had them all at the hang-up's millisecond, and the
finisher, seeing RTP timestamps 600 ms apart arrive at one instant, restarted
its timing (more than 500 ms off) and lost the start of the audio (here the
first 100 ms of each side: 0.49 s of 0.6 s kept).

As in ``test_short_calls.py``, the loop being behind is made deterministic:
the native pump never serves the call's sockets until the BYE.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from callvault.demo.client import CallPlan, Participant
from callvault.media.analysis import tone_spans
from callvault.media.tones import sine
from tests.e2e.harness import running_recorder

LEFT_HZ, RIGHT_HZ = 440.0, 1000.0
CALL_S = 0.6


@pytest.mark.usefixtures("capture_behind")
async def test_600_ms_read_only_at_the_hang_up_keep_their_place(tmp_path: Path) -> None:
    plan = CallPlan(
        caller=Participant("sip:alice@acme.example", "Alice", sine(LEFT_HZ, CALL_S)),
        callee=Participant("sip:+31612345678@pstn.example", "Customer", sine(RIGHT_HZ, CALL_S)),
        duration_s=CALL_S,
    )
    async with running_recorder(tmp_path, mode="always") as rec:
        result = await rec.client.place(plan)
        assert result.status == 200 and result.packets_sent >= 50
        [(_call, recording_id)] = await rec.wait_finished()
        assert recording_id is not None, "the call's audio was not kept"
        pcm, rate, _raw = await rec.audio(recording_id)
        duration = pcm[0].shape[0] / rate
        for channel, hz, other in ((pcm[0], LEFT_HZ, RIGHT_HZ), (pcm[1], RIGHT_HZ, LEFT_HZ)):
            spans = tone_spans(channel, rate, hz)
            # the whole 600 ms of each side's tone, in one stretch from the start
            covered = sum(end - start for start, end in spans)
            assert covered > CALL_S - 0.05, (hz, spans, duration)
            assert spans[0][0] < 0.05, (hz, spans)  # read late, placed from the start
            assert sum(end - start for start, end in tone_spans(channel, rate, other)) < 0.02
