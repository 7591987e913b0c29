"""Session clean-up is the hourly ``sessions.cleanup`` job, no longer part of login."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from callvault.db.models import Job, LoginAttempt, LoginThrottle, WebSession
from callvault.jobs import housekeeping  # noqa: F401  (registers the handler)
from callvault.jobs.kinds import SCHEDULES
from callvault.jobs.registry import JobServices
from callvault.jobs.runner import JobRunner
from callvault.settings import load_settings
from tests.api.conftest import PASSWORD, Clock, World, give_login


def _count(world: World, model: type[object]) -> int:
    with world.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_login_no_longer_cleans_up_and_the_hourly_job_does(world: World, clock: Clock) -> None:
    login = give_login(world, "a_user")
    browser = TestClient(world.app, base_url="https://testserver")
    assert browser.post("/api/v1/session", json={"login": login, "password": PASSWORD}).is_success
    wrong = browser.post("/api/v1/session", json={"login": "nobody", "password": "wrong pw!"})
    assert wrong.status_code == 401
    with world.sessions() as session:
        session.add(LoginAttempt(login="old", remote_addr="192.0.2.1", at=clock.now))
        session.commit()
    assert (_count(world, WebSession), _count(world, LoginThrottle)) == (1, 2)

    clock.advance(hours=25)  # the first session expired, the throttle rows are stale
    assert browser.post("/api/v1/session", json={"login": login, "password": PASSWORD}).is_success
    # the login itself deleted nothing (it used to delete all three)
    assert _count(world, WebSession) == 2
    assert _count(world, LoginThrottle) == 2
    assert _count(world, LoginAttempt) == 1

    runner = JobRunner(
        JobServices(world.sessions, world.blobs, load_settings(), clock),
        schedules=SCHEDULES,
    )
    assert runner.run_due() >= 1
    with world.sessions() as session:
        job = session.scalars(select(Job).where(Job.kind == "sessions.cleanup")).one()
        assert (job.state, job.result) == ("done", {"web_sessions": 1, "login_attempts": 1})
        assert job.key == f"sessions.cleanup:{clock.now:%Y-%m-%dT%H}"
        [live] = session.scalars(select(WebSession)).all()
        assert live.expires_at.replace(tzinfo=clock.now.tzinfo) > clock.now
        # the stale pair of the wrong login went; the address row counted the new login
        throttled = session.execute(select(LoginThrottle.kind, LoginThrottle.login)).all()
        assert [tuple(row) for row in throttled] == [("address", "")]
    assert _count(world, LoginAttempt) == 0
    assert browser.get("/api/v1/session").status_code == 200  # the live session still works

    clock.advance(hours=1)
    runner.run_due()
    with world.sessions() as session:
        assert (
            session.scalar(select(func.count()).where(Job.kind == "sessions.cleanup")) == 2
        )  # one per hour
