"""Playback by time, with a clock passed in (issue 9 "How it is checked"): unsaved ->
purged after 3 days; kept -> the plan's retention; discarded -> gone at once;
blacklisted -> never asked, never kept; whitelisted -> kept, never asked."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from callvault.db.models import DeletionReceipt, Job, Recording
from callvault.demo.client import CallPlan, Participant
from callvault.jobs.kinds import load_handlers
from callvault.jobs.registry import JobServices
from callvault.jobs.runner import JobRunner
from callvault.media.tones import sine
from callvault.retention.purge import purge
from callvault.settings import load_settings
from tests.api.conftest import Clock, World
from tests.e2e.harness import Recorder, running_recorder
from tests.playback.helpers import recording


def _row(world: World, rid: str) -> Recording:
    with world.sessions() as session:
        row = session.get(Recording, rid)
        assert row is not None
        session.expunge(row)
        return row


def _gone(world: World, rid: str) -> bool:
    row = _row(world, rid)
    return row.audio_deleted_at is not None and not (world.blobs.root / row.blob_key).exists()


def test_unsaved_kept_and_discarded_over_the_days(world: World, clock: Clock) -> None:
    call_at = clock.now
    with world.sessions() as session:
        unsaved, kept, discarded = (
            recording(session, world.blobs, world.tenant_a, world.users["a_user"], call_at)
            for _ in range(3)
        )
        session.commit()
    me = world.auth("a_user")
    assert world.client.post(f"/api/v1/recordings/{kept}/keep", headers=me).status_code == 200
    assert (
        world.client.post(f"/api/v1/recordings/{discarded}/discard", headers=me).status_code == 200
    )
    assert _gone(world, discarded)  # at once, before any purge
    assert _row(world, discarded).audio_deleted_reason == "discarded"

    # just before the 3 days: nothing goes
    purge(world.sessions, world.blobs, call_at + timedelta(days=3) - timedelta(seconds=1))
    assert not _gone(world, unsaved) and not _gone(world, kept)
    # after them, by the daily job on the fake clock: the unanswered one is purged
    clock.now = call_at + timedelta(days=3, seconds=1)
    load_handlers()
    runner = JobRunner(JobServices(world.sessions, world.blobs, load_settings(), clock=clock))
    r = world.client.post("/api/v1/operator/purge", headers=world.auth("operator"))
    assert r.status_code == 202
    assert runner.run_one()
    assert _gone(world, unsaved) and _row(world, unsaved).audio_deleted_reason == "expired"
    assert not _gone(world, kept)
    r = world.client.get(f"/api/v1/recordings/{unsaved}/audio", headers=me)
    assert (r.status_code, r.json()["error"]["id"]) == (410, "audio-expired")

    # the kept one lives the tenant's retention (7 days, the default plan's default), from the call
    kept_until = _row(world, kept).expires_at
    assert kept_until is not None
    assert kept_until.replace(tzinfo=UTC) == call_at + timedelta(days=7)
    purge(world.sessions, world.blobs, call_at + timedelta(days=7) - timedelta(seconds=1))
    assert not _gone(world, kept)
    purge(world.sessions, world.blobs, call_at + timedelta(days=7, seconds=1))
    assert _gone(world, kept) and _row(world, kept).audio_deleted_reason == "expired"
    with world.sessions() as session:
        kinds = sorted(r.kind for r in session.scalars(select(DeletionReceipt)))
    assert kinds.count("discard") == 1


# --- the lists, over real SIPREC calls ------------------------------------------------------

RATE = 8000


def _call(user_aor: str, other: str) -> CallPlan:
    return CallPlan(
        caller=Participant(user_aor, "User", sine(440.0, 3.0, RATE, -12.0)),
        callee=Participant(f"sip:{other}@pstn.example", "Customer", sine(1000.0, 3.0, RATE, -12.0)),
        duration_s=3.0,
    )


async def _playback_user(rec: Recorder) -> tuple[int, str]:
    """A playback user with a portal token of their own (they keep their lists)."""
    r = await rec.http.post(
        f"/api/v1/tenants/{rec.tenant_id}/users", json={"name": "pia", "aors": ["pia@acme.example"]}
    )
    assert r.status_code == 201, r.text
    uid = int(r.json()["id"])
    r = await rec.http.post(
        f"/api/v1/tenants/{rec.tenant_id}/recording-list", json={"user_id": uid}
    )
    assert r.status_code == 201
    r = await rec.http.put(
        f"/api/v1/tenants/{rec.tenant_id}/recording-list/{uid}", json={"mode": "playback"}
    )
    assert r.status_code == 200
    r = await rec.http.post(f"/api/v1/tenants/{rec.tenant_id}/users/{uid}/tokens")
    assert r.status_code == 201, r.text
    return uid, r.json()["token"]


async def test_blacklisted_never_kept_whitelisted_kept_unasked(tmp_path: Path) -> None:
    async with running_recorder(tmp_path) as rec:
        uid, token = await _playback_user(rec)
        mine = {"Authorization": f"Bearer {token}"}
        for lst, number in (("blacklist", "+31611111111"), ("whitelist", "+31622222222")):
            r = await rec.http.post(
                "/api/v1/me/contacts", json={"list": lst, "value": number}, headers=mine
            )
            assert r.status_code == 201, r.text
        plans = {
            "black": _call("sip:pia@acme.example", "+31611111111"),
            "white": _call("sip:pia@acme.example", "+31622222222"),
            "plain": _call("sip:pia@acme.example", "+31633333333"),
        }
        results = await asyncio.gather(*(rec.client.place(p) for p in plans.values()))
        assert all(r.status == 200 for r in results), results
        await rec.wait_finished(len(plans), timeout=90)
        calls = (await rec.http.get(f"/api/v1/tenants/{rec.tenant_id}/calls?limit=10")).json()
        by_other = {c["to_number"]: c["recording_ids"] for c in calls["items"]}
        assert by_other["+31611111111"] == []  # blacklisted: never kept
        [white] = by_other["+31622222222"]
        [plain] = by_other["+31633333333"]
        meta = await rec.recording(white)
        assert (meta["user_id"], meta["mode"], meta["saved"]) == (uid, "playback", True)
        started = datetime.fromisoformat(meta["started_at"])
        expires = datetime.fromisoformat(meta["expires_at"])
        assert expires - started > timedelta(days=3)  # the tenant's retention, not 3 days

        inbox = (await rec.http.get("/api/v1/me/inbox", headers=mine)).json()
        assert [i["recording_id"] for i in inbox["items"]] == [plain]  # only it is asked
        home = (await rec.http.get("/api/v1/me/recordings", headers=mine)).json()["items"]
        assert {i["recording_id"]: i["mark"] for i in home} == {white: "saved", plain: "unsaved"}
        r = await rec.http.post(f"/api/v1/recordings/{white}/keep", headers=mine)
        assert (r.status_code, r.json()["error"]["id"]) == (409, "playback-not-asked")
        sessions = rec.app.sessions
        with sessions() as session:
            asked = set(session.scalars(select(Job.key).where(Job.kind == "playback.ask")).all())
        assert f"playback.ask:{white}" not in asked  # never asked (if asking exists yet)
        # the answer from the phone: keep
        r = await rec.http.post(f"/api/v1/recordings/{plain}/keep", headers=mine)
        assert r.status_code == 200 and r.json()["saved"] is True
        assert (await rec.http.get("/api/v1/me/inbox", headers=mine)).json()["count"] == 0
