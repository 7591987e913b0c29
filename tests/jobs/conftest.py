"""A migrated SQLite database, a fake clock and runners for the job tests; the API
tests' world and the PostgreSQL server, for the tests here that need them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from callvault.db.engine import make_engine, make_sessionmaker, migrate
from callvault.jobs.registry import HANDLERS, JobServices
from callvault.jobs.runner import JobRunner, Schedule
from callvault.settings import load_settings
from callvault.storage.blobs import LocalBlobStore

# fixtures of other folders, for the tests here
from tests.api.conftest import clock, world  # noqa: F401
from tests.postgres.conftest import postgres_url  # noqa: F401


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@dataclass
class Queue:
    sessions: sessionmaker[Session]
    services: JobServices
    clock: Clock

    def runner(self, worker: str | None = None, schedules: tuple[Schedule, ...] = ()) -> JobRunner:
        return JobRunner(self.services, worker=worker, schedules=schedules)


@pytest.fixture
def jobs_db(tmp_path: Path) -> Iterator[Queue]:
    fake = Clock()
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    migrate(url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    services = JobServices(sessions, LocalBlobStore(tmp_path / "blobs"), load_settings(), fake)
    registered = dict(HANDLERS)
    try:
        yield Queue(sessions, services, fake)
    finally:  # handlers a test registered go again
        HANDLERS.clear()
        HANDLERS.update(registered)
        engine.dispose()
