"""Every recording mode over real SIPREC calls, checked by what the MP3 holds.

One recorder, one user per mode (set up through the API: plus button, mode),
the same call for each: the user (left) sends 440 Hz, the other party (right)
1000 Hz. The user enters the short code *1 at 2.0/2.3 s as RFC 4733 events
AND as in-band tones at the same moment (must count once), and again at
5.0/5.3 s in-band only; the other party sends *1 as RFC 4733 at 3.5/3.8 s
(must change nothing).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from callvault.demo.client import CallPlan, Participant
from callvault.media.analysis import tone_spans
from callvault.media.tones import dtmf_tone, sine
from callvault.recording.spool import is_unused
from tests.e2e.harness import Recorder, running_recorder

RATE = 8000
CALL_S = 8.0
USER_HZ, OTHER_HZ = 440.0, 1000.0
FIRST_CODE, SECOND_CODE = 2.3, 5.3  # when the code's digit is pressed


def _user_audio(inband_at: list[float]) -> np.ndarray:
    pcm = sine(USER_HZ, CALL_S, RATE, -12.0)
    for at in inband_at:
        for offset, key in ((0.0, "*"), (0.3, "1")):
            start = int((at + offset) * RATE)
            tone = dtmf_tone(key, 0.1, RATE, -12.0)
            pcm[start : start + len(tone)] = tone
            pcm[start + len(tone) : start + len(tone) + 240] = 0  # short gap, as a keypad
    return pcm


def _plan(user_aor: str, other_number: str = "+31612345678") -> CallPlan:
    return CallPlan(
        caller=Participant(
            user_aor,
            "User",
            _user_audio([2.0, 5.0]),
            digits=[(2.0, "*"), (2.3, "1")],
        ),
        callee=Participant(
            f"sip:{other_number}@pstn.example",
            "Customer",
            sine(OTHER_HZ, CALL_S, RATE, -12.0),
            digits=[(3.5, "*"), (3.8, "1")],
        ),
        duration_s=CALL_S,
    )


async def _user(rec: Recorder, name: str, mode: str) -> int:
    r = await rec.http.post(
        f"/api/v1/tenants/{rec.tenant_id}/users",
        json={"name": name, "aors": [f"{name}@acme.example"]},
    )
    assert r.status_code == 201, r.text
    user_id = int(r.json()["id"])
    r = await rec.http.post(
        f"/api/v1/tenants/{rec.tenant_id}/recording-list", json={"user_id": user_id}
    )
    assert r.status_code == 201 and r.json()["mode"] == "on_demand_user"
    r = await rec.http.put(
        f"/api/v1/tenants/{rec.tenant_id}/recording-list/{user_id}", json={"mode": mode}
    )
    assert r.status_code == 200, r.text
    return user_id


def _covered(spans: list[tuple[float, float]], start: float, end: float) -> float:
    return sum(max(0.0, min(e, end) - max(s, start)) for s, e in spans)


# mode -> the call-time spans that must be kept (seconds)
EXPECTED = {
    "never": None,
    "always": [(0.0, CALL_S)],
    "always_pause": [(0.0, FIRST_CODE), (SECOND_CODE, CALL_S)],
    "on_demand_keep": [(0.0, SECOND_CODE)],
    "on_demand_user": [(FIRST_CODE, SECOND_CODE)],
    "playback": [(0.0, CALL_S)],
}


Kept = tuple[dict[str, Any], np.ndarray, int]
"""A kept recording: its metadata (the API's), its PCM (channels x samples) and rate."""
ModeResults = tuple[dict[str, int], dict[str, Kept | None]]
"""The user id of each mode, and what each plan's call kept (None: nothing)."""


@pytest.fixture
async def mode_results(tmp_path: Path) -> AsyncIterator[ModeResults]:
    async with running_recorder(tmp_path) as rec:
        users = {mode: await _user(rec, f"u_{mode}", mode) for mode in EXPECTED}
        # contacts: a blacklisted number is never kept, a whitelisted one always
        black = await _user(rec, "u_black", "playback")
        white = await _user(rec, "u_white", "on_demand_user")
        for uid, lst, number in (
            (black, "blacklist", "+31611111111"),
            (white, "whitelist", "+31622222222"),
        ):
            r = await rec.http.post(
                f"/api/v1/tenants/{rec.tenant_id}/users/{uid}/contacts",
                json={"list": lst, "value": number},
            )
            assert r.status_code == 201
        plans = {mode: _plan(f"sip:u_{mode}@acme.example") for mode in EXPECTED}
        quiet = CallPlan(  # playback without any key: unsaved for 3 days
            caller=Participant("sip:u_playback@acme.example", "User", sine(USER_HZ, 3.0)),
            callee=Participant("sip:+31633333333@pstn.example", "", sine(OTHER_HZ, 3.0)),
            duration_s=3.0,
        )
        plans["quiet_playback"] = quiet
        plans["black"] = _plan("sip:u_black@acme.example", "+31611111111")
        plain_white = _plan("sip:u_white@acme.example", "+31622222222")
        plain_white.caller.digits = []
        plain_white.caller.audio = sine(USER_HZ, CALL_S, RATE, -12.0)
        plans["white"] = plain_white
        results = await asyncio.gather(*(rec.client.place(p) for p in plans.values()))
        assert all(r.status == 200 for r in results), results
        finished = await rec.wait_finished(len(plans), timeout=90)
        by_call = {}
        for call_id, recording_id in finished:
            by_call[call_id] = recording_id
        out: dict[str, Kept | None] = {}
        calls = (await rec.http.get(f"/api/v1/tenants/{rec.tenant_id}/calls?limit=100")).json()
        assert len(calls["items"]) == len(plans)  # every call is listed, kept or not
        for name in plans:
            aor = plans[name].caller.aor
            call = next(
                c
                for c in calls["items"]
                if c["from_aor"] == aor
                and ((name == "quiet_playback") == (c["duration_ms"] < 5000))
            )
            rid = call["recording_ids"][0] if call["recording_ids"] else None
            if rid is None:
                out[name] = None
                continue
            meta = await rec.recording(rid)
            pcm, rate, _raw = await rec.audio(rid)
            out[name] = (meta, pcm, rate)
        yield users, out


async def test_every_mode(mode_results: ModeResults) -> None:
    users, out = mode_results
    for mode, expected in EXPECTED.items():
        got = out[mode]
        if expected is None:
            assert got is None, f"{mode}: nothing may be kept"
            continue
        assert got is not None, f"{mode}: a recording was expected"
        meta, pcm, rate = got
        assert meta["user_id"] == users[mode]
        segments = [(s["call_start_ms"] / 1000, s["call_end_ms"] / 1000) for s in meta["segments"]]
        assert len(segments) == len(expected), (mode, segments)
        for (gs, ge), (es, ee) in zip(segments, expected, strict=True):
            assert abs(gs - es) < 0.45 and abs(ge - ee) < 0.45, (mode, segments, expected)
        kept = sum(e - s for s, e in expected)
        duration = pcm.shape[1] / rate
        assert abs(duration - kept) < 0.6, (mode, duration, kept)
        left, right = pcm[0], pcm[1]
        assert _covered(tone_spans(left, rate, USER_HZ), 0, duration) > kept - 1.4, mode
        assert _covered(tone_spans(right, rate, OTHER_HZ), 0, duration) > kept - 0.8, mode
        # the short code's tones are cut out of the saved audio
        for freq in (941.0, 1209.0, 697.0):
            assert _covered(tone_spans(left, rate, freq), 0, duration) < 0.05, (mode, freq)
        assert _covered(tone_spans(left, rate, OTHER_HZ), 0, duration) < 0.1


async def test_playback_and_contacts(mode_results: ModeResults) -> None:
    _users, out = mode_results
    playback = out["playback"]
    assert playback is not None
    saved, _pcm, _rate = playback
    assert saved["mode"] == "playback" and saved["saved"] is True  # code pressed: saved
    from datetime import datetime, timedelta

    # saved: kept for the tenant's retention (the slider's default, 7 days), not 3
    started = datetime.fromisoformat(saved["started_at"])
    assert abs(
        datetime.fromisoformat(saved["expires_at"]) - started - timedelta(days=7)
    ) < timedelta(seconds=5)
    quiet = out["quiet_playback"]
    assert quiet is not None  # kept, but unsaved for 3 days
    meta = quiet[0]
    assert meta["saved"] is False and "unsaved" in meta["kept_reason"]

    started = datetime.fromisoformat(meta["started_at"])
    assert abs(
        datetime.fromisoformat(meta["expires_at"]) - started - timedelta(days=3)
    ) < timedelta(seconds=5)
    assert out["black"] is None  # blacklisted contact: never kept
    white = out["white"]
    assert white is not None  # whitelisted: kept although the code was never pressed
    meta, pcm, rate = white
    assert pcm.shape[1] / rate > CALL_S - 0.8


async def test_transfer_to_another_recorded_user_keeps_one_conversation(tmp_path: Path) -> None:
    """Alice (always) hands the call to Bob (on demand, started by user) at 3 s by a
    SIPREC metadata update: one recording, Alice's part kept, Bob's policy from then on
    (he never presses the code), both see the recording, the change is in its timeline."""
    async with running_recorder(tmp_path) as rec:
        r = await rec.http.put(
            f"/api/v1/tenants/{rec.tenant_id}/recording-list/{rec.users['bob']}",
            json={"mode": "on_demand_user"},
        )
        assert r.status_code == 200
        other = Participant("sip:+31612345678@pstn.example", "Customer", sine(OTHER_HZ, 6.0))
        alice = Participant("sip:alice@acme.example", "Alice", sine(USER_HZ, 6.0))
        bob = Participant("sip:bob@acme.example", "Bob", sine(USER_HZ, 1.0))
        plan = CallPlan(
            caller=alice, callee=other, duration_s=6.0, metadata_update=(3.0, bob, other)
        )
        assert (await rec.client.place(plan)).status == 200
        [(_call, recording_id)] = await rec.wait_finished()
        assert recording_id is not None
        meta = await rec.recording(recording_id)
        pcm, rate, _raw = await rec.audio(recording_id)
        [segment] = meta["segments"]
        assert segment["call_start_ms"] < 300 and abs(segment["call_end_ms"] - 3000) < 400
        assert abs(pcm.shape[1] / rate - 3.0) < 0.5
        parties = {p["aor"]: p for p in meta["parties"]}
        assert parties["sip:alice@acme.example"]["left_ms"] is not None  # she left at ~3 s
        assert abs(parties["sip:bob@acme.example"]["joined_ms"] - 3000) < 400
        # both users see it (tokens of their own)
        for name in ("alice", "bob"):
            token = (
                await rec.http.post(
                    f"/api/v1/tenants/{rec.tenant_id}/users/{rec.users[name]}/tokens"
                )
            ).json()["token"]
            seen = await rec.http.get(
                f"/api/v1/recordings/{recording_id}", headers={"Authorization": f"Bearer {token}"}
            )
            assert seen.status_code == 200, name


async def test_tenant_without_accepted_notice_records_nothing(tmp_path: Path) -> None:
    async with running_recorder(tmp_path, accept_notice=False) as rec:
        plan = CallPlan(
            caller=Participant("sip:alice@acme.example", "Alice", sine(USER_HZ, 2.0)),
            callee=Participant("sip:+31612345678@pstn.example", "", sine(OTHER_HZ, 2.0)),
            duration_s=2.0,
        )
        assert (await rec.client.place(plan)).status == 200
        [(_call, recording_id)] = await rec.wait_finished()
        assert recording_id is None
        page = (await rec.http.get(f"/api/v1/tenants/{rec.tenant_id}/recordings")).json()
        assert page["items"] == []
        # captured audio is gone too: only empty spools made ahead for the next calls
        assert [p.name for p in (tmp_path / "spool").iterdir() if not is_unused(p)] == []


async def test_short_code_by_sip_info_and_tenant_channel_settings(tmp_path: Path) -> None:
    """On demand, started by user, with *1 sent as SIP INFO (dtmf-relay) at 1.5 s and
    again at 3.5 s; the tenant keeps pauses as silence and records a mono mix."""
    async with running_recorder(tmp_path, mode="on_demand_user") as rec:
        r = await rec.http.patch(
            f"/api/v1/tenants/{rec.tenant_id}/recording-settings",
            json={"pause_mode": "silence", "channels": "mix"},
        )
        assert r.status_code == 200, r.text
        plan = CallPlan(
            caller=Participant("sip:alice@acme.example", "Alice", sine(USER_HZ, 5.0)),
            callee=Participant("sip:+31612345678@pstn.example", "", sine(OTHER_HZ, 5.0)),
            duration_s=5.0,
            info_digits=[(1.3, "*"), (1.5, "1"), (3.3, "*"), (3.5, "1")],
        )
        assert (await rec.client.place(plan)).status == 200
        [(_call, recording_id)] = await rec.wait_finished()
        assert recording_id is not None
        meta = await rec.recording(recording_id)
        pcm, rate, _raw = await rec.audio(recording_id)
    assert [(d["digit"], d["source"]) for d in meta["dtmf"]] == [
        ("*", "info"),
        ("1", "info"),
        ("*", "info"),
        ("1", "info"),
    ]
    [segment] = meta["segments"]
    assert abs(segment["call_start_ms"] - 1500) < 300 and abs(segment["call_end_ms"] - 3500) < 300
    assert meta["channels"] == 1 and pcm.shape[0] == 1  # mono mix of both parties
    duration = pcm.shape[1] / rate
    assert abs(duration - 2.0) < 0.4
    assert _covered(tone_spans(pcm[0], rate, USER_HZ), 0, duration) > duration - 0.5
    assert _covered(tone_spans(pcm[0], rate, OTHER_HZ), 0, duration) > duration - 0.5


async def test_silence_mode_keeps_the_timeline(tmp_path: Path) -> None:
    """Always with pause: *1 at 1.3 s pauses, *1 at 3.3 s resumes; with pauses kept as
    silence the file is as long as the call and silent in between."""
    async with running_recorder(tmp_path, mode="always_pause") as rec:
        r = await rec.http.patch(
            f"/api/v1/tenants/{rec.tenant_id}/recording-settings", json={"pause_mode": "silence"}
        )
        assert r.status_code == 200
        plan = CallPlan(
            caller=Participant(
                "sip:alice@acme.example",
                "Alice",
                sine(USER_HZ, 5.0),
                digits=[(1.0, "*"), (1.3, "1"), (3.0, "*"), (3.3, "1")],
            ),
            callee=Participant("sip:+31612345678@pstn.example", "", sine(OTHER_HZ, 5.0)),
            duration_s=5.0,
        )
        assert (await rec.client.place(plan)).status == 200
        [(_call, recording_id)] = await rec.wait_finished()
        assert recording_id is not None
        meta = await rec.recording(recording_id)
        pcm, rate, _raw = await rec.audio(recording_id)
    first, second = meta["segments"]
    assert second["file_start_ms"] - first["file_end_ms"] == (
        second["call_start_ms"] - first["call_end_ms"]
    )  # the pause stays in the file as silence
    duration = pcm.shape[1] / rate
    assert abs(duration - 5.0) < 0.4
    gap = (first["file_end_ms"] / 1000 + 0.1, second["file_start_ms"] / 1000 - 0.1)
    assert _covered(tone_spans(pcm[1], rate, OTHER_HZ), *gap) < 0.05
    assert _covered(tone_spans(pcm[1], rate, OTHER_HZ), 0, gap[0] - 0.1) > gap[0] - 0.6
