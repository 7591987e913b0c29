"""The login backoff on PostgreSQL: the same single guarded UPDATE, atomic there too.

SQLite serialises writers anyway; PostgreSQL runs the 25 attempts' UPDATEs
concurrently under row locks, which is where a read-then-write counter would
let most of them through. Also: migration 0005 goes down and up again there.
Needs Debian's PostgreSQL binaries (tests/postgres/conftest.py).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from alembic import command
from sqlalchemy import text

from callvault.db.engine import alembic_config, make_engine, make_sessionmaker, migrate
from callvault.portal import passwords
from tests.postgres.conftest import postgres_url  # the throw-away server fixture

__all__ = ["postgres_url"]


def test_backoff_is_atomic_on_postgresql(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    with engine.begin() as connection:  # a fresh schema for this test
        connection.execute(text("drop schema public cascade; create schema public"))
    migrate(postgres_url)
    command.downgrade(alembic_config(postgres_url), "0004")
    migrate(postgres_url)
    sessions = make_sessionmaker(engine)
    now = datetime.now(UTC)

    def attempt(n: int, at: datetime = now) -> bool:
        with sessions() as session:
            try:
                passwords.begin_attempt(session, "victim", "203.0.113.9", at)
            except passwords.LoginThrottled:
                return False
            return True

    with ThreadPoolExecutor(max_workers=25) as pool:
        passed = list(pool.map(attempt, range(25)))
    assert passed.count(True) == passwords.FREE_PER_PAIR
    # backoff, then a success forgets the pair's count
    assert not attempt(0, now + timedelta(seconds=1))
    assert attempt(0, now + timedelta(seconds=2))
    with sessions() as session:
        passwords.attempt_succeeded(session, "victim", "203.0.113.9")
        session.commit()
    assert attempt(0, now + timedelta(seconds=3))
    engine.dispose()
