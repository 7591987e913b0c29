"""An export's month: ``YYYY-MM`` in the tenant's time zone, as UTC bounds (SPEC 5).

A month starts at local midnight of its first day, so a call at 00:30 on the
1st in Amsterdam (23:30 UTC the day before) belongs to the new month.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from callvault.errors import ErrorId, InvalidInput

_MONTH = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")


def parse_month(month: str) -> tuple[int, int]:
    """``(year, month)``; 422 ``export-month-invalid`` unless ``YYYY-MM``."""
    match = _MONTH.fullmatch(month)
    if match is None or int(match.group(1)) < 2000:
        raise InvalidInput(
            "month must be YYYY-MM (for example 2026-11)", error_id=ErrorId.EXPORT_MONTH_INVALID
        )
    return int(match.group(1)), int(match.group(2))


def month_bounds(month: str, timezone: str) -> tuple[datetime, datetime]:
    """``[start, end)`` of ``month`` in ``timezone``, both in UTC."""
    year, number = parse_month(month)
    zone = ZoneInfo(timezone)
    start = datetime(year, number, 1, tzinfo=zone)
    end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)


def check_not_future(month: str, timezone: str, at: datetime) -> None:
    """422 ``export-month-future`` for a month that has not begun at ``at``."""
    start, _end = month_bounds(month, timezone)
    if start > at:
        raise InvalidInput(
            f"{month} has not begun yet in {timezone}", error_id=ErrorId.EXPORT_MONTH_FUTURE
        )
