"""Portal housekeeping, hourly (``sessions.cleanup``): expired portal sessions,
login attempts older than a day, and login throttle counters that would start
again anyway (``passwords.forget_stale``).

This used to run inside every successful login, which made a login write
three tables and slowed the one request an attacker controls. Nothing here
decides anything: an expired session is refused by its ``expires_at`` and a
throttle row by its times whether or not it was deleted yet.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete
from sqlalchemy.orm import Session

from callvault.db.models import LoginAttempt, WebSession
from callvault.jobs.registry import JobContext, handler
from callvault.portal.passwords import forget_stale

LOGIN_ATTEMPTS_KEPT = timedelta(days=1)


def clean_up_sessions(session: Session, now: datetime) -> dict[str, int]:
    """Delete what has expired by ``now`` (not committed); the counts per table."""
    sessions = session.execute(delete(WebSession).where(WebSession.expires_at <= now))
    attempts = session.execute(
        delete(LoginAttempt).where(LoginAttempt.at < now - LOGIN_ATTEMPTS_KEPT)
    )
    return {
        "web_sessions": int(sessions.rowcount),  # type: ignore[attr-defined]
        "login_attempts": int(attempts.rowcount),  # type: ignore[attr-defined]
    }


@handler("sessions.cleanup")
def run(ctx: JobContext) -> dict[str, Any]:
    now = ctx.now()
    with ctx.sessions() as session:
        deleted = clean_up_sessions(session, now)
        forget_stale(session, now)
        session.commit()
    return dict(deleted)
