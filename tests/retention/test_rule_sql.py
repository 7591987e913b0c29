"""The slider's one UPDATE gives exactly what the Python rule gives, on SQLite and
PostgreSQL, on both sides of a daylight-saving change (SPEC 4)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from callvault.admin import create_tenant
from callvault.db.engine import make_engine, make_sessionmaker, migrate
from callvault.db.models import Call, Recording, Tenant
from callvault.retention.rule import local_day_start, recompute_expiry, retention_expiry

AMSTERDAM = "Europe/Amsterdam"
# Europe/Amsterdam: summer time starts 2026-03-29 02:00 local, ends 2026-10-25 03:00 local
STARTS = [
    datetime(2025, 12, 1, 9, 0, tzinfo=UTC),
    datetime(2026, 3, 28, 22, 30, 0, 123456, tzinfo=UTC),  # 23:30 local, the night before
    datetime(2026, 3, 29, 0, 30, tzinfo=UTC),  # 01:30 local, just before the change
    datetime(2026, 3, 29, 1, 30, tzinfo=UTC),  # 03:30 local, just after
    datetime(2026, 10, 24, 22, 15, tzinfo=UTC),  # 00:15 local on the day summer time ends
    datetime(2026, 10, 25, 23, 59, 59, 999999, tzinfo=UTC),
]


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _seed(session: Session, tenant: Tenant) -> dict[str, tuple[datetime, datetime | None]]:
    """Recordings at STARTS, plus an unsaved Playback one and one whose audio is gone."""
    rows: dict[str, tuple[datetime, datetime | None]] = {}
    for n, started in enumerate([*STARTS, STARTS[0], STARTS[0]]):
        call = Call(tenant_id=tenant.id, sip_call_id=f"c{n}", direction="inbound")
        call.started_at = started
        session.add(call)
        session.flush()
        kept = datetime(2030, 1, 1, tzinfo=UTC)
        rec = Recording(
            tenant_id=tenant.id,
            call_id=call.id,
            blob_key=f"k{n}",
            sha256=hashlib.sha256(b"x").hexdigest(),
            size_bytes=1,
            duration_ms=60000,
            channels=2,
            sample_rate=8000,
            started_at=started,
            expires_at=kept,
            saved=n != len(STARTS),  # the first extra one: unsaved Playback
            audio_deleted_at=kept if n == len(STARTS) + 1 else None,
        )
        session.add(rec)
        session.flush()
        rows[rec.id] = (started, None if n < len(STARTS) else kept)
    session.commit()
    return rows


def _check(url: str) -> None:
    migrate(url)
    engine = make_engine(url)
    statements: list[str] = []
    event.listen(
        engine, "before_cursor_execute", lambda *a: statements.append(a[2]), named=False
    )
    try:
        sessions = make_sessionmaker(engine)
        with sessions() as session:
            tenant = create_tenant(session, "Delta", ["delta.example"], [])
            session.commit()
            rows = _seed(session, tenant)
            # changes on both DST days, just after local midnight and late in the day
            for changed_at, days in [
                (datetime(2026, 3, 28, 23, 5, tzinfo=UTC), 30),  # 00:05 local, 29 March
                (datetime(2026, 3, 29, 21, 0, tzinfo=UTC), 7),  # 23:00 local, 29 March
                (datetime(2026, 10, 24, 22, 30, tzinfo=UTC), 180),  # 00:30 local, 25 October
            ]:
                tenant.retention_days = days
                statements.clear()
                recompute_expiry(session, tenant, changed_at)
                updates = [s for s in statements if s.lstrip().startswith("UPDATE recordings")]
                assert len(updates) == 1, updates  # one statement, whatever the count
                session.commit()
                got = dict(session.execute(select(Recording.id, Recording.expires_at)).all())
                for rid, (started, untouched) in rows.items():
                    want = untouched or retention_expiry(started, days, changed_at, AMSTERDAM)
                    stored = got[rid]
                    assert stored is not None and _utc(stored) == want, (rid, started, days)
    finally:
        engine.dispose()


def test_local_day_start_around_daylight_saving() -> None:
    # the 29th of March lasts 23 hours in Amsterdam, the 25th of October 25
    assert local_day_start(datetime(2026, 3, 29, 12, tzinfo=UTC), AMSTERDAM) == datetime(
        2026, 3, 28, 23, tzinfo=UTC
    )
    assert local_day_start(datetime(2026, 3, 30, 12, tzinfo=UTC), AMSTERDAM) == datetime(
        2026, 3, 29, 22, tzinfo=UTC
    )
    assert local_day_start(datetime(2026, 10, 25, 12, tzinfo=UTC), AMSTERDAM) == datetime(
        2026, 10, 24, 22, tzinfo=UTC
    )
    changed = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)
    old = datetime(2026, 1, 1, tzinfo=UTC)
    assert retention_expiry(old, 30, changed, AMSTERDAM) == datetime(
        2026, 3, 28, 23, tzinfo=UTC
    ) + timedelta(days=30)


def test_python_rule_and_sql_agree_on_sqlite(tmp_path: Path) -> None:
    _check(f"sqlite:///{tmp_path / 'db.sqlite'}")


def test_python_rule_and_sql_agree_on_postgres(postgres_url: str) -> None:
    _check(postgres_url)
