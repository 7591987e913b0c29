"""Times in the tenant's time zone for people, in UTC with an offset for the API.

Each tenant has one IANA time zone (``Tenant.timezone``, issue 8 section 5):
Reports, the recording page and the period filters (whole local days) use it.
The API answers UTC with an explicit ``+00:00`` (``UtcDateTime``), so a
client never has to guess; SQLite hands stored times back without a zone,
and those are UTC too.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import AfterValidator, PlainSerializer, WithJsonSchema

from callvault.errors import ErrorId, InvalidInput

DEFAULT_TIMEZONE = "Europe/Amsterdam"
MAX_TIMEZONE_LENGTH = 64  # Tenant.timezone's column


def as_utc(value: datetime) -> datetime:
    """``value`` as an aware UTC time (a naive one is a stored UTC time)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utc_text(value: datetime) -> str:
    """ISO 8601 in UTC with an explicit offset: ``2026-12-01T23:30:00+00:00``."""
    return as_utc(value).isoformat()


# what /openapi.json says of such a field: still a date-time, and the offset is part of the
# contract (a client, and schemathesis' response check, may rely on it)
UTC_OFFSET_PATTERN = r"\+00:00$"
_UTC_SCHEMA = {"type": "string", "format": "date-time", "pattern": UTC_OFFSET_PATTERN}

# a datetime field of an API answer: always UTC, always "+00:00" (pydantic alone writes "Z",
# and a naive time from SQLite with no offset at all); every response model uses it
UtcDateTime = Annotated[
    datetime,
    PlainSerializer(utc_text, return_type=str, when_used="json"),
    WithJsonSchema(_UTC_SCHEMA, mode="serialization"),
]


def check_timezone(name: str) -> str:
    """An IANA zone name zoneinfo knows; else 422 ``invalid-timezone``."""
    bad = InvalidInput(
        f"timezone: {name!r} is not an IANA time zone (e.g. Europe/Amsterdam)",
        error_id=ErrorId.INVALID_TIMEZONE,
    )
    # only names from the tz database: no file paths, no "localtime", no POSIX TZ strings
    if not name or len(name) > MAX_TIMEZONE_LENGTH or name in _NOT_ZONES or name not in _known():
        raise bad
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise bad from exc
    return name


# a request field naming a tenant's time zone: 422 ``invalid-timezone`` unless IANA
TimezoneName = Annotated[str, AfterValidator(lambda name: check_timezone(name))]

_KNOWN: frozenset[str] | None = None
# files of the tz database that are not a place's zone (the host's own clock, defaults)
_NOT_ZONES = frozenset({"localtime", "posixrules", "Factory"})


def _known() -> frozenset[str]:
    global _KNOWN
    if _KNOWN is None:
        _KNOWN = frozenset(available_timezones())
    return _KNOWN


def zone(name: str) -> ZoneInfo:
    """The tenant's zone; a name that is not (or no longer) known falls back to the default."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(DEFAULT_TIMEZONE)


def local(value: datetime, timezone: str) -> datetime:
    """``value`` on the tenant's wall clock."""
    return as_utc(value).astimezone(zone(timezone))


def local_text(value: datetime | None, timezone: str, *, seconds: bool = True) -> str:
    """What a page shows: ``2026-12-02 00:30:00`` on the tenant's clock; "–" for none."""
    if value is None:
        return "–"
    return local(value, timezone).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def day_start(day: date, timezone: str) -> datetime:
    """The UTC instant the tenant's local ``day`` begins (DST days are 23 or 25 hours)."""
    return datetime(day.year, day.month, day.day, tzinfo=zone(timezone)).astimezone(UTC)


def day_range(first: date, last: date, timezone: str) -> tuple[datetime, datetime]:
    """[start of ``first``, start of the day after ``last``) in UTC: whole local days."""
    return day_start(first, timezone), day_start(last + timedelta(days=1), timezone)


def month_range(year: int, month: int, timezone: str) -> tuple[datetime, datetime]:
    """[first instant, first instant of the next month) of a local month, in UTC."""
    following = date(year + (month == 12), month % 12 + 1, 1)
    return day_start(date(year, month, 1), timezone), day_start(following, timezone)


TIME_FIELDS = ("started_at", "answered_at", "ended_at", "created_at", "expires_at")


def local_times(body: dict[str, object], timezone: str) -> None:
    """Rewrite an API body's UTC times (ISO text) to the tenant's wall clock, for a page."""
    for key in TIME_FIELDS:
        value = body.get(key)
        if isinstance(value, str):
            body[key] = local(datetime.fromisoformat(value), timezone).isoformat()
