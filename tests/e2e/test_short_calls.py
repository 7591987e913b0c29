"""A short call whose packets capture reads only at its hang-up keeps its audio.

Under set-up load the event loop falls behind: a call of a few hundred ms can
be BYEd before capture has read any of its packets. The hang-up then reads what
the kernel still holds (``RtpStreamSet.drain``), stamped with the hang-up's own
millisecond, the instant the live policy's capture gate closes. Those packets
were sent before the BYE: a call whose policy says record keeps them.

Here the loop being behind is made deterministic: the native pump never serves
the call's sockets (its readiness handler only stops watching), so every packet
waits in the kernel until the BYE.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from callvault.demo.client import CallPlan, Participant
from callvault.media.analysis import tone_spans
from callvault.media.tones import sine
from callvault.recording import spool as spools
from callvault.recording.spool import ClosedSpool
from tests.e2e.harness import running_recorder

LEFT_HZ, RIGHT_HZ = 440.0, 1000.0
CALL_S = 0.15


def _plan() -> CallPlan:
    return CallPlan(
        caller=Participant("sip:alice@acme.example", "Alice", sine(LEFT_HZ, CALL_S)),
        callee=Participant("sip:+31612345678@pstn.example", "Customer", sine(RIGHT_HZ, CALL_S)),
        duration_s=CALL_S,
    )


def _covered(spans: list[tuple[float, float]]) -> float:
    return sum(end - start for start, end in spans)


@pytest.mark.usefixtures("capture_behind")
async def test_a_short_call_read_only_at_its_hang_up_keeps_its_audio(tmp_path: Path) -> None:
    async with running_recorder(tmp_path, mode="always") as rec:
        result = await rec.client.place(_plan())
        assert result.status == 200 and result.packets_sent >= 10
        [(_call, recording_id)] = await rec.wait_finished()
        assert recording_id is not None, "the call's audio was not kept"
        pcm, rate, _raw = await rec.audio(recording_id)
        left, right = pcm[0], pcm[1]
        duration = left.shape[0] / rate
        # each side's tone, in its own channel, up to the hang-up: the packets' own audio
        # (all read at the BYE, they are laid out back from it by their RTP timestamps)
        for channel, hz, other in ((left, LEFT_HZ, RIGHT_HZ), (right, RIGHT_HZ, LEFT_HZ)):
            spans = tone_spans(channel, rate, hz)
            assert _covered(spans) > 0.1, (hz, spans, duration)
            assert spans[-1][1] > duration - 0.03, (hz, spans, duration)
            assert _covered(tone_spans(channel, rate, other)) < 0.02


@pytest.mark.usefixtures("capture_behind")
async def test_a_short_call_the_policy_does_not_capture_writes_none_of_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On demand, started by the user: nothing is captured before the code, so the
    packets read at the hang-up are dropped there, never written to the spool."""
    closed: list[ClosedSpool | None] = []

    def take_closed(directory: Path) -> ClosedSpool | None:
        closed.append(spools.take_closed(directory))
        return closed[-1]

    monkeypatch.setattr("callvault.recording.pipeline.take_closed", take_closed)
    async with running_recorder(tmp_path, mode="on_demand_user") as rec:
        result = await rec.client.place(_plan())
        assert result.status == 200 and result.packets_sent >= 10
        [(_call, recording_id)] = await rec.wait_finished()
        assert recording_id is None
        [spool] = closed
        assert spool is not None and not spool.has_audio
        calls = (await rec.http.get(f"/api/v1/tenants/{rec.tenant_id}/calls")).json()["items"]
        assert len(calls) == 1 and calls[0]["recording_ids"] == []
