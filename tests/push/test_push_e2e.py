"""A Playback call over SIPREC asks its user on their phone (issue 9, RFC 8030/8291/8292).

The in-process recorder (``tests/e2e/harness.py``) records a call of Alice,
a Playback user; its own job runner sends the question to the test push
service on loopback, which checks the VAPID token and decrypts the message
as Alice's browser would. Bob, also a Playback user, has a device too and
must get nothing of Alice's call.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from sqlalchemy import select, update

from callvault.db.models import Job, Recording, User
from callvault.demo.client import CallPlan, Participant
from callvault.media.tones import sine
from callvault.portal.auth import issue_token
from callvault.recording.after import ASK_PLAYBACK
from tests.e2e.harness import Recorder, running_recorder
from tests.push.push_service import PushService, Subscription, push_service


async def _job(rec: Recorder, *, state: tuple[str, ...], attempts: int = 1) -> Job:
    """The question's job once the recorder's runner brought it to ``state``."""
    deadline = time.monotonic() + 30
    while True:
        with rec.app.sessions() as session:
            job = session.scalar(select(Job).where(Job.kind == ASK_PLAYBACK))
            if job is not None and job.state in state and job.attempts >= attempts:
                session.expunge(job)
                return job
        assert time.monotonic() < deadline, "the question's job did not get there"
        await asyncio.sleep(0.05)  # polling a state another thread changes, not a timer


async def _device(rec: Recorder, service: PushService, user: str) -> Subscription:
    """``user`` logs in on a browser and turns notifications on, through the API."""
    with rec.app.sessions() as session:
        account = session.get(User, rec.users[user])
        assert account is not None
        token = issue_token(session, f"{user}'s phone", user=account)
        session.commit()
    async with httpx.AsyncClient(
        base_url=str(rec.http.base_url), headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as browser:
        key = (await browser.get("/api/v1/push/vapid-public-key")).json()["key"]
        subscription = service.subscribe(key)
        r = await browser.post(
            "/api/v1/me/push-subscriptions",
            json=subscription.as_json() | {"device_name": f"{user}'s phone"},
        )
        assert r.status_code == 201, r.text
    return subscription


async def _call(rec: Recorder) -> str:
    plan = CallPlan(
        caller=Participant("sip:alice@acme.example", "Alice", sine(440.0, 2.0)),
        callee=Participant("sip:+31612345678@pstn.example", "Customer", sine(1000.0, 2.0)),
        duration_s=2.0,
    )
    assert (await rec.client.place(plan)).status == 200
    [(_call_id, recording_id)] = await rec.wait_finished()
    assert recording_id is not None
    return recording_id


async def test_a_playback_call_leads_to_one_encrypted_push_naming_it(tmp_path: Path) -> None:
    with push_service() as service:
        async with running_recorder(
            tmp_path, mode="playback", push_allow_http_loopback=True
        ) as rec:
            alice = await _device(rec, service, "alice")
            bob = await _device(rec, service, "bob")
            recording_id = await _call(rec)
            job = await _job(rec, state=("done", "failed"))
            assert job.state == "done", job.message
            meta = await rec.recording(recording_id)
            assert meta["mode"] == "playback" and meta["saved"] is False
            with rec.app.sessions() as session:
                jobs = session.scalars(select(Job).where(Job.kind == ASK_PLAYBACK)).all()
                assert len(jobs) == 1  # one question per recording
    assert service.refused == []
    assert service.received_by(bob) == []  # Bob's phone hears nothing of Alice's call
    [push] = service.received_by(alice)
    assert len(service.received) == 1
    message = push.payload
    assert message["type"] == "playback.ask" and message["recording_id"] == recording_id
    assert message["body"].startswith("Customer (+31612345678), "), message["body"]
    assert [a["action"] for a in message["actions"]] == ["keep", "discard"]
    assert message["token"] and message["answer_url"] == "/api/v1/playback/answer"
    assert b"+31612345678" not in push.body and b"ID3" not in push.body  # encrypted, no audio
    assert len(push.body) < 1024


async def test_a_push_service_that_is_down_is_retried_and_does_not_hold_up_the_call(
    tmp_path: Path,
) -> None:
    with push_service() as service:
        async with running_recorder(
            tmp_path, mode="playback", push_allow_http_loopback=True, push_timeout_s=5
        ) as rec:
            alice = await _device(rec, service, "alice")
            service.down()
            recording_id = await _call(rec)  # finished and stored, whatever the push does
            with rec.app.sessions() as session:
                assert session.get(Recording, recording_id) is not None
            job = await _job(rec, state=("queued",))
            assert "no answer from the push service" in (job.message or "")
            assert job.run_after.replace(tzinfo=UTC) > datetime.now(UTC)  # later, by backoff
            assert service.received == []
            # the backoff has passed (moved in the database: no sleeping), the service is back
            service.up()
            with rec.app.sessions() as session:
                session.execute(
                    update(Job).where(Job.id == job.id).values(run_after=datetime.now(UTC))
                )
                session.commit()
            rec.app.jobs.wake()
            job = await _job(rec, state=("done", "failed"), attempts=2)
            assert job.state == "done", job.message
    [push] = service.received_by(alice)
    assert push.payload["recording_id"] == recording_id
