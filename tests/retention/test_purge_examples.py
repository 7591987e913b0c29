"""Issue 8's retention examples, purge included ("How it is checked"): recordings at
-100, -20 and -3 days (and an unsaved Playback one at -2 days); the slider moves
180 -> 30 on one day and 30 -> 60 ten days later, through the real recording-settings
API, on the portal's clock. After each step: exactly which recordings the audio API
still serves (206 vs 410) and which the purge job (run through the operator's "purge
now") deleted, the calls staying listed."""

from __future__ import annotations

from datetime import UTC, timedelta

from sqlalchemy import select

from callvault.db.models import Call, Recording
from callvault.jobs.kinds import load_handlers
from callvault.jobs.registry import JobServices
from callvault.jobs.runner import JobRunner
from callvault.retention.rule import local_day_start
from callvault.settings import load_settings
from tests.api.conftest import Clock, World
from tests.api.test_operator import _accept, _settings
from tests.retention.test_slider_plans_holds import T0, _reachable, _seed_ages


def _purge(world: World, runner: JobRunner, ids: dict[str, str]) -> set[str]:
    """Runs the purge now (as the operator asks for it); the names whose audio it deleted."""
    r = world.client.post("/api/v1/operator/purge", headers=world.auth("operator"))
    assert r.status_code == 202, r.text
    assert runner.run_due() == 1
    names = {rid: name for name, rid in ids.items()}
    with world.sessions() as session:
        rows = session.execute(
            select(Recording.id, Recording.audio_deleted_reason, Recording.blob_key).where(
                Recording.id.in_(names)
            )
        ).all()
        assert session.scalar(select(Call.id).where(Call.id.in_(names))) is not None
    purged = set()
    for rid, reason, key in rows:
        assert (reason is None) == (world.blobs.root / key).exists()  # no orphan, nothing lost
        if reason is not None:
            assert reason == "expired"
            purged.add(names[rid])
    return purged


def test_slider_180_to_30_then_60_ten_days_later_with_the_purge(world: World) -> None:
    clock = Clock(T0)
    world.app.state.clock = clock
    load_handlers()
    runner = JobRunner(JobServices(world.sessions, world.blobs, load_settings(), clock=clock))
    _accept(world)
    ids = _seed_ages(world)
    everything = {"old", "month", "recent", "playback"}
    assert _reachable(world, ids) == everything
    assert _purge(world, runner, ids) == set()

    assert _settings(world, {"retention_days": 30})[0] == 200  # day 0: 180 -> 30
    assert _reachable(world, ids) == everything
    assert _purge(world, runner, ids) == set()  # counted from today: nothing expired

    clock.advance(days=2)  # the unsaved Playback recording's 3 days are over
    assert _reachable(world, ids) == {"old", "month", "recent"}
    assert _purge(world, runner, ids) == {"playback"}

    clock.advance(days=8)  # day 10: 30 -> 60
    assert _settings(world, {"retention_days": 60})[0] == 200
    assert _purge(world, runner, ids) == {"playback"}
    clock.advance(days=25)  # day 35: the 30 days would have been over; the 60 are not
    assert _reachable(world, ids) == {"old", "month", "recent"}
    assert _purge(world, runner, ids) == {"playback"}

    day10 = local_day_start(T0 + timedelta(days=10), "Europe/Amsterdam")
    clock.now = day10 + timedelta(days=60, seconds=-1)  # the last second of the 60 days
    assert _reachable(world, ids) == {"old", "month", "recent"}
    assert _purge(world, runner, ids) == {"playback"}
    clock.advance(seconds=2)
    assert _reachable(world, ids) == set()
    assert _purge(world, runner, ids) == everything
    assert _purge(world, runner, ids) == everything  # a second run finds nothing new
    with world.sessions() as session:
        expired_at = {
            at.replace(tzinfo=UTC) if at is not None else None
            for at in session.scalars(
                select(Recording.audio_deleted_at).where(Recording.id.in_(ids.values()))
            )
        }
    assert None not in expired_at
    assert max(at for at in expired_at if at is not None) <= clock.now
