"""The expiry rule (SPEC section 4), in the tenant's time zone.

``expires_at = max(recorded_at, day_of_last_change) + retention_days``: a
slider change applies to every recording, old ones included, and the new
period counts from the (local) day of the change. Unsaved Playback
recordings expire ``UNSAVED_PLAYBACK_DAYS`` after the call whatever the slider says.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

UNSAVED_PLAYBACK_DAYS = 3


def local_day_start(at: datetime, timezone: str) -> datetime:
    """Midnight (UTC-aware) of the local day ``at`` falls on in ``timezone``."""
    zone = ZoneInfo(timezone)
    local = at.astimezone(zone)
    midnight = datetime(local.year, local.month, local.day, tzinfo=zone)
    return midnight.astimezone(UTC)


def retention_expiry(
    recorded_at: datetime, retention_days: int, changed_at: datetime | None, timezone: str
) -> datetime:
    base = recorded_at if recorded_at.tzinfo else recorded_at.replace(tzinfo=UTC)
    if changed_at is not None:
        changed = changed_at if changed_at.tzinfo else changed_at.replace(tzinfo=UTC)
        base = max(base, local_day_start(changed, timezone))
    return base + timedelta(days=retention_days)
