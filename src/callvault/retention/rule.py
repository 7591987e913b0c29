"""The expiry rule (SPEC section 4), in the tenant's time zone, in Python and in SQL.

``expires_at = max(recorded_at, day_of_last_change) + retention_days``: a
slider change applies to every recording, old ones included, and the new
period counts from the (local) day of the change. Unsaved Playback
recordings expire ``UNSAVED_PLAYBACK_DAYS`` after the call whatever the slider says.

The local day start is found in Python (SQLite knows no time zones); the
days are then added as whole 24-hour days to the UTC instant, in Python and
in SQL alike (``PlusDays``), so both give the same instant on every side of
a daylight-saving change. ``recompute_expiry`` is the slider's one UPDATE.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, DateTime, Integer, case, literal, update
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import FunctionElement

from callvault.db.models import Recording, Tenant

UNSAVED_PLAYBACK_DAYS = 3


def local_day_start(at: datetime, timezone: str) -> datetime:
    """Midnight (UTC-aware) of the local day ``at`` falls on in ``timezone``."""
    zone = ZoneInfo(timezone)
    local = at.astimezone(zone)
    midnight = datetime(local.year, local.month, local.day, tzinfo=zone)
    return midnight.astimezone(UTC)


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def retention_expiry(
    recorded_at: datetime, retention_days: int, changed_at: datetime | None, timezone: str
) -> datetime:
    base = _utc(recorded_at)
    if changed_at is not None:
        base = max(base, local_day_start(_utc(changed_at), timezone))
    return base + timedelta(days=retention_days)


class PlusDays(FunctionElement[datetime]):
    """SQL: ``timestamp + N days`` of 24 hours, on SQLite and PostgreSQL.

    SQLite stores ``YYYY-MM-DD HH:MM:SS.ffffff`` text (SQLAlchemy's format):
    the date and whole seconds are shifted by ``strftime`` and the fraction is
    kept as it was, so the result compares as text like any stored value. PostgreSQL
    adds hours, not days: ``interval '1 day'`` follows the session's time
    zone across a daylight-saving change, Python's ``timedelta`` does not.
    """

    type = DateTime(timezone=True)
    inherit_cache = True

    def __init__(self, value: ColumnElement[datetime], days: int) -> None:
        super().__init__(value, literal(int(days), Integer()))


def _args(element: PlusDays, compiler: SQLCompiler, **kw: Any) -> tuple[str, str]:
    # both are SQL (the days a bound parameter): a compiled statement is cached and
    # reused for every number of days
    value, days = list(element.clauses)
    return compiler.process(value, **kw), compiler.process(days, **kw)


@compiles(PlusDays, "sqlite")
def _plus_days_sqlite(element: PlusDays, compiler: SQLCompiler, **kw: Any) -> str:
    value, days = _args(element, compiler, **kw)
    # whole seconds in, the fraction appended as it was: strftime would round .999999 up
    shifted = f"strftime('%Y-%m-%d %H:%M:%S', substr({value}, 1, 19), ({days}) || ' days')"
    return f"({shifted} || substr({value}, 20))"


@compiles(PlusDays)
def _plus_days_default(element: PlusDays, compiler: SQLCompiler, **kw: Any) -> str:
    value, days = _args(element, compiler, **kw)
    return f"({value} + CAST({days} AS INTEGER) * INTERVAL '24 hours')"


def expiry_sql(retention_days: int, day_start: datetime) -> ColumnElement[datetime]:
    """SQL of ``retention_expiry`` for ``Recording``: ``max(started_at, day_start) + days``."""
    base = case((Recording.started_at > day_start, Recording.started_at), else_=day_start)
    return PlusDays(base, retention_days)


def recompute_expiry(session: Session, tenant: Tenant, changed_at: datetime) -> int:
    """The slider moved (or the plan clamped it): every recording of ``tenant`` expires
    anew from the local day of ``changed_at``, in one UPDATE; returns how many rows.

    Left alone: unsaved Playback recordings (they keep their 3 days) and recordings
    whose audio is gone already. The caller commits.
    """
    day_start = local_day_start(_utc(changed_at), tenant.timezone)
    result = session.execute(
        update(Recording)
        .where(
            Recording.tenant_id == tenant.id,
            Recording.saved.is_(True),
            Recording.audio_deleted_at.is_(None),
        )
        .values(expires_at=expiry_sql(tenant.retention_days, day_start))
        .execution_options(synchronize_session=False)
    )
    session.expire_all()  # loaded recordings now carry a stale expires_at
    return int(getattr(result, "rowcount", 0) or 0)
