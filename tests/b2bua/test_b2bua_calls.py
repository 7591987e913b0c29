"""Calls through callvault as a B2BUA between two (or three) baresip phones (issue 10).

A (alice@acme.example, a recorded user) sits behind the PBX on 127.0.0.2,
B (an outside number) behind the trunk on 127.0.0.3, C (another outside
number, a transfer target) on 127.0.0.5. Each sends its own tone (A 700 Hz,
B 1100 Hz, C 500 Hz) and keeps what it heard. Checked by content:

- each hears the other, through callvault's relay;
- when recording starts B hears the tenant's start prompt (shipped nl, found
  by correlation with the shipped WAV) and A the user's short tone (1400 Hz);
- the recording has A's tone left, B's right, and is alice's;
- the short code ``*1`` pressed on A (mode "on demand, started by user")
  starts and stops recording; with ``hide_code_from_other`` B never receives
  its RFC 4733 events (baresip reports every event it gets);
- hold and resume pass through, the recording goes on after resume;
- a blind transfer: the new party hears the prompt again
  (``announce_after_transfer``) and the recording stays one conversation.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import numpy as np
import pytest

from callvault.announcements.library import shipped_wav, wav_pcm
from callvault.announcements.tones import START_HZ
from callvault.media.analysis import tone_spans
from tests.b2bua.harness import (
    PBX_ADDRESS,
    THIRD_ADDRESS,
    TRUNK_ADDRESS,
    Leg,
    phone_legs,
    running_b2bua,
)
from tests.b2bua.phones import (
    TONE_A_HZ,
    TONE_B_HZ,
    TONE_C_HZ,
    Pcm,
    Phone,
    covered,
    locate,
    spans,
    tone,
)

pytestmark = pytest.mark.peer("baresip", why="Debian package baresip-core: the phones")

B_NUMBER = "+31612345678"
C_NUMBER = "+31699999999"
USER_BEEP_HZ = float(START_HZ[0])


def prompt(kind: str, language: str = "nl") -> Pcm:
    return np.frombuffer(wav_pcm(shipped_wav(language, kind)), dtype="<i2").astype(np.int16)


def phones(tmp_path: Path) -> tuple[Phone, Phone]:
    a = Phone(tmp_path / "a", "sip:alice@acme.example", PBX_ADDRESS, tone(TONE_A_HZ, 40))
    b = Phone(tmp_path / "b", f"sip:{B_NUMBER}@pstn.example", TRUNK_ADDRESS, tone(TONE_B_HZ, 40))
    a.configure()  # draws the ports the routes name
    b.configure()
    return a, b


def channel_tone(pcm: np.ndarray, rate: int, freq: float, start: float, end: float) -> float:
    return covered(tone_spans(pcm, rate, freq), start, end)


async def test_a_calls_b_each_hears_the_other_b_hears_the_prompt(tmp_path: Path) -> None:
    a, b = phones(tmp_path)
    async with running_b2bua(tmp_path, phone_legs(a.contact, b.contact)) as cv, a, b:
        await a.dial(cv.uri(B_NUMBER))
        await a.wait_event("CALL_ESTABLISHED", timeout=10)
        await b.wait_event("CALL_ESTABLISHED", timeout=10)
        await asyncio.sleep(5.0)
        await a.hangup()
        await b.wait_event("CALL_CLOSED")
        [(_call, recording_id)] = await cv.rec.wait_finished(timeout=60)
        assert recording_id is not None
        meta = await cv.rec.recording(recording_id)
        pcm, rate, _raw = await cv.rec.audio(recording_id)
    report = a.log() + b.log()

    # B: the start prompt first, then A's tone
    heard_b = b.heard()
    start = prompt("start")
    at, score = locate(heard_b, start)
    assert score > 0.5, (at, score, report)
    assert at < 1.5, (at, report)
    after_prompt = at + len(start) / 8000
    seconds_b = len(heard_b) / 8000
    assert channel_tone(heard_b, 8000, TONE_A_HZ, after_prompt, seconds_b) > (
        seconds_b - after_prompt - 1.0
    ), report
    assert channel_tone(heard_b, 8000, USER_BEEP_HZ, 0, seconds_b) < 0.05  # not the user's beep

    # A: the short beep near the start, B's tone all along
    heard_a = a.heard()
    seconds_a = len(heard_a) / 8000
    beep = spans(heard_a, USER_BEEP_HZ)
    assert 0.1 < covered(beep, 0, 2.0) < 0.6, (beep, report)
    assert covered(spans(heard_a, TONE_B_HZ)) > seconds_a - 1.2, report
    assert covered(spans(heard_a, TONE_A_HZ)) < 0.1, report  # no echo of itself

    # the recording: alice's; A left, B right, neither crossed over
    assert meta["user_id"] == cv.rec.users["alice"], meta
    assert meta["channels"] == 2 and pcm.shape[0] == 2
    duration = pcm.shape[1] / rate
    assert 4.0 < duration < 8.0, duration
    left, right = pcm
    assert channel_tone(left, rate, TONE_A_HZ, 0, duration) > duration - 1.0, meta
    assert channel_tone(right, rate, TONE_B_HZ, 0, duration) > duration - 1.0, meta
    assert channel_tone(left, rate, TONE_B_HZ, 0, duration) < 0.2
    assert channel_tone(right, rate, TONE_A_HZ, 0, duration) < 0.2


@pytest.mark.parametrize("hide", [True, False], ids=["code-hidden", "code-heard"])
async def test_short_code_starts_and_stops_recording(tmp_path: Path, hide: bool) -> None:
    a, b = phones(tmp_path)
    options = {"hide_code_from_other": hide}
    legs = phone_legs(a.contact, b.contact)
    async with (
        running_b2bua(tmp_path, legs, mode="on_demand_user", tenant_options=options) as cv,
        a,
        b,
    ):
        await a.dial(cv.uri(B_NUMBER))
        await b.wait_event("CALL_ESTABLISHED", timeout=10)
        await asyncio.sleep(1.5)
        heard_before_code = len(b.heard())  # dumps grow as packets arrive
        await a.press("*1")  # start
        await asyncio.sleep(4.0)
        await a.press("*1")  # stop
        await asyncio.sleep(3.0)
        await a.hangup()
        await b.wait_event("CALL_CLOSED")
        [(_call, recording_id)] = await cv.rec.wait_finished(timeout=60)
        assert recording_id is not None
        meta = await cv.rec.recording(recording_id)
        pcm, rate, _raw = await cv.rec.audio(recording_id)
    report = a.log() + b.log()

    # the code's events reach B only without the option
    if hide:
        assert b.digits_heard() == [], (b.digits_heard(), report)
    else:
        assert b.digits_heard() == ["*", "1", "*", "1"], (b.digits_heard(), report)

    # nothing announced before the code; the start prompt after it, the stop prompt later
    heard_b = b.heard()
    start_at, start_score = locate(heard_b, prompt("start"))
    stop_at, stop_score = locate(heard_b, prompt("stop"))
    assert start_score > 0.5 and stop_score > 0.5, (start_score, stop_score, report)
    code_s = heard_before_code / 8000
    assert code_s < start_at < code_s + 2.5, (code_s, start_at)
    assert start_at + 3.0 < stop_at < start_at + 7.0, (start_at, stop_at)
    # A: a beep at each press of the code (start: 1400+1400, stop: 1400+1000)
    assert len(spans(a.heard(), USER_BEEP_HZ)) >= 3, report

    # one kept segment, from the first code to the second; the code is alice's
    assert meta["mode"] == "on_demand_user", meta
    [segment] = meta["segments"]
    seconds = (segment["call_end_ms"] - segment["call_start_ms"]) / 1000
    assert 3.0 < seconds < 6.0, segment
    duration = pcm.shape[1] / rate
    assert channel_tone(pcm[0], rate, TONE_A_HZ, 0, duration) > duration - 1.2, meta
    assert channel_tone(pcm[1], rate, TONE_B_HZ, 0, duration) > duration - 1.2, meta
    assert [d["digit"] for d in meta["dtmf"]][:2] == ["*", "1"], meta["dtmf"]


async def test_hold_and_resume_through_callvault(tmp_path: Path) -> None:
    a, b = phones(tmp_path)
    async with running_b2bua(tmp_path, phone_legs(a.contact, b.contact)) as cv, a, b:
        await a.dial(cv.uri(B_NUMBER))
        await b.wait_event("CALL_ESTABLISHED", timeout=10)
        await asyncio.sleep(3.0)
        await a.hold()
        await asyncio.sleep(1.0)
        on_hold = await b.rtp_received()
        await asyncio.sleep(1.0)
        still = await b.rtp_received()
        await a.resume()
        await asyncio.sleep(2.0)
        resumed = await b.rtp_received()
        await a.hangup()
        await b.wait_event("CALL_CLOSED")
        [(_call, recording_id)] = await cv.rec.wait_finished(timeout=60)
        assert recording_id is not None
        pcm, rate, _raw = await cv.rec.audio(recording_id)
    report = a.log() + b.log()
    offers = re.findall(
        r"INVITE sip:.*?a=(sendonly|sendrecv|recvonly|inactive)", b.sip_trace(), re.S
    )
    assert offers == ["sendrecv", "sendonly", "sendrecv"], (offers, report)
    assert still - on_hold < 10, (on_hold, still, report)  # held: A's RTP stopped
    assert resumed - still > 50, (still, resumed, report)  # resumed: 50 packets a second
    duration = pcm.shape[1] / rate
    # the last second of the recording: both talking again
    assert channel_tone(pcm[0], rate, TONE_A_HZ, duration - 1.5, duration - 0.2) > 1.0
    assert channel_tone(pcm[1], rate, TONE_B_HZ, duration - 1.5, duration - 0.2) > 1.0


async def test_blind_transfer_new_party_hears_the_prompt_again(tmp_path: Path) -> None:
    a, b = phones(tmp_path)
    c = Phone(tmp_path / "c", f"sip:{C_NUMBER}@pstn.example", THIRD_ADDRESS, tone(TONE_C_HZ, 40))
    c.configure()
    legs = [
        Leg("pbx-a", "pbx", PBX_ADDRESS, {"": b.contact, C_NUMBER: c.contact}),
        Leg("trunk-b", "trunk", TRUNK_ADDRESS, {"": a.contact, C_NUMBER: c.contact}),
        Leg("trunk-c", "trunk", THIRD_ADDRESS, {"": a.contact}),
    ]
    options = {"announce_after_transfer": True}
    async with running_b2bua(tmp_path, legs, tenant_options=options) as cv, a, b, c:
        await a.dial(cv.uri(B_NUMBER))
        await b.wait_event("CALL_ESTABLISHED", timeout=10)
        await asyncio.sleep(3.5)
        await b.transfer(cv.uri(C_NUMBER))  # B hands alice on to C
        await c.wait_event("CALL_ESTABLISHED", timeout=10)
        await b.wait_event("CALL_CLOSED", timeout=10)
        await asyncio.sleep(4.0)
        await a.hangup()
        await c.wait_event("CALL_CLOSED")
        finished = await cv.rec.wait_finished(timeout=60)
        [(_call, recording_id)] = finished
        assert recording_id is not None
        meta = await cv.rec.recording(recording_id)
        pcm, rate, _raw = await cv.rec.audio(recording_id)
    report = a.log() + b.log() + c.log()

    heard_c = c.heard()
    at, score = locate(heard_c, prompt("start"))
    assert score > 0.5 and at < 1.5, (at, score, report)
    assert covered(spans(heard_c, TONE_A_HZ)) > 1.5, report
    assert covered(spans(a.heard(), TONE_C_HZ)) > 2.5, report

    # one conversation: A all along on the left; B, then C on the right
    duration = pcm.shape[1] / rate
    assert channel_tone(pcm[0], rate, TONE_A_HZ, 0, duration) > duration - 2.0, meta
    b_spans = spans(pcm[1], TONE_B_HZ)
    c_spans = spans(pcm[1], TONE_C_HZ)
    assert covered(b_spans) > 2.5 and covered(c_spans) > 2.5, (b_spans, c_spans)
    assert b_spans[0][0] < c_spans[0][0], (b_spans, c_spans)
    assert any(C_NUMBER in party["aor"] for party in meta["parties"]), meta["parties"]
