"""Migration 0026: labels learn their call (backfilled from their recording, then
NOT NULL), the label and party indexes become what the models say, and it goes
down and up again; on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine, delete, inspect, select, text

from callvault.admin import create_tenant
from callvault.db.engine import alembic_config, make_engine, make_sessionmaker, migrate
from callvault.db.models import Call, Recording, RecordingLabel
from tests.databases import KINDS, postgres_server
from tests.schema_diff import schema_differences

TABLES = {"recording_labels", "call_parties"}


@pytest.fixture(params=KINDS)
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database, not migrated."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'db.sqlite'}"
        return
    admin_url = postgres_server(request.config).url
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text("CREATE DATABASE callvault_0026"))
    try:
        yield admin_url.rsplit("/", 1)[0] + "/callvault_0026"
    finally:
        with admin.connect() as connection:
            connection.execute(text("DROP DATABASE IF EXISTS callvault_0026 WITH (FORCE)"))
        admin.dispose()


def _recording(tenant_id: int, call: Call, n: int) -> Recording:
    return Recording(
        tenant_id=tenant_id,
        call_id=call.id,
        blob_key=f"x/{n}.mp3",
        sha256="0" * 64,
        size_bytes=10,
        duration_ms=1000,
        channels=2,
        sample_rate=8000,
        started_at=call.started_at,
        created_at=call.started_at,
    )


def _seed(url: str) -> dict[int, tuple[str, datetime]]:
    """Two calls, three recordings, four labels; label id -> its call and its start."""
    engine = make_engine(url)
    with make_sessionmaker(engine)() as session:
        tenant = create_tenant(session, "Acme", ["acme.example"], ["+31201110000"])
        calls = [
            Call(
                tenant_id=tenant.id,
                sip_call_id=f"c{n}",
                started_at=datetime(2026, 11, n, 9, n, tzinfo=UTC),
            )
            for n in (1, 2)
        ]
        session.add_all(calls)
        session.flush()
        recordings = [_recording(tenant.id, calls[n // 2], n) for n in range(3)]
        session.add_all(recordings)
        session.flush()
        of_call = {c.id: c for c in calls}
        labels = [
            RecordingLabel.of(r, of_call[r.call_id], text)
            for r, text in zip(recordings + recordings[:1], ["a", "b", "c", "d"], strict=True)
        ]
        session.add_all(labels)
        session.commit()
        expected = {
            label.id: (label.call_id, of_call[label.call_id].started_at) for label in labels
        }
    engine.dispose()
    assert len(set(expected.values())) == 2
    return expected


def _label_columns(url: str) -> dict[str, bool]:
    engine = make_engine(url)
    try:
        return {c["name"]: c["nullable"] for c in inspect(engine).get_columns("recording_labels")}
    finally:
        engine.dispose()


# the label index on lower(text) cannot be reflected on SQLite
@pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression")
@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
def test_labels_get_their_call_backfilled_and_it_goes_down_and_up(empty_url: str) -> None:
    migrate(empty_url)
    expected = _seed(empty_url)
    command.downgrade(alembic_config(empty_url), "0025")
    assert "call_id" not in _label_columns(empty_url)

    migrate(empty_url)  # the backfill: each label's call from its recording, and its start
    columns = _label_columns(empty_url)
    assert columns["call_id"] is False and columns["started_at"] is False  # NOT NULL
    engine = make_engine(empty_url)
    with make_sessionmaker(engine)() as session:
        got = {
            i: (c, at.astimezone(UTC) if at.tzinfo else at.replace(tzinfo=UTC))
            for i, c, at in session.execute(
                select(RecordingLabel.id, RecordingLabel.call_id, RecordingLabel.started_at)
            )
        }
        assert got == expected
        by_recording = {i: c for i, c in session.execute(select(Recording.id, Recording.call_id))}
        for label in session.scalars(select(RecordingLabel)):
            assert label.call_id == by_recording[label.recording_id]
        # a call's labels go with it (the new foreign key cascades)
        call_id = next(iter(expected.values()))[0]
        session.execute(delete(Call).where(Call.id == call_id))
        session.commit()
        left = set(session.scalars(select(RecordingLabel.call_id)))
        assert left and call_id not in left
    engine.dispose()
    assert schema_differences(empty_url, TABLES) == []
