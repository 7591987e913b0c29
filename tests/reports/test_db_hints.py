"""``serial`` (callvault.db.hints), the reports' planner hint, on SQLite and PostgreSQL:
the workers are off in the block, the transaction's own setting is back after it,
and a statement that fails in the block is the error that surfaces."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from callvault.db.engine import make_engine, make_sessionmaker
from callvault.db.hints import serial
from tests.databases import database_url, parametrize_databases

WORKERS = "SELECT current_setting('max_parallel_workers_per_gather')"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    parametrize_databases(metafunc, "sessions")


@pytest.fixture
def sessions(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    with database_url(request, tmp_path) as url:
        engine = make_engine(url)
        try:
            yield make_sessionmaker(engine)
        finally:
            engine.dispose()


def postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def test_the_workers_are_off_in_the_block_and_the_transactions_own_setting_is_back_after(
    sessions: sessionmaker[Session],
) -> None:
    with sessions() as session:
        if postgresql(session):
            session.execute(text("SELECT set_config('max_parallel_workers_per_gather', '3', true)"))
        with serial(session):
            if postgresql(session):
                assert session.scalar(text(WORKERS)) == "0"
            assert session.scalar(text("SELECT 1 + 1")) == 2
        if postgresql(session):
            assert session.scalar(text(WORKERS)) == "3"


def test_a_statement_that_fails_in_the_block_is_the_error_that_surfaces(
    sessions: sessionmaker[Session],
) -> None:
    with sessions() as session:
        before = session.scalar(text(WORKERS)) if postgresql(session) else None
        with pytest.raises(DBAPIError) as raised, serial(session):
            session.execute(text("SELECT * FROM no_such_table"))
        # not the restoring statement's InFailedSqlTransaction (PostgreSQL)
        assert raised.value.statement == "SELECT * FROM no_such_table"
        assert "no_such_table" in str(raised.value.orig)
        session.rollback()  # the session goes on, with the setting it had
        assert session.scalar(text("SELECT 1 + 1")) == 2
        if postgresql(session):
            assert session.scalar(text(WORKERS)) == before
