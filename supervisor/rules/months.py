"""Calendar months in the subsidy's local time zone, as UTC instants.

Reports and claims count by month in local time (`subsidy.timezone`); credited
time is split at local month boundaries where it is folded, so a report reads one
number per session and month instead of every credited interval.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

# ASCII digits only: `int` would also take " 2024-1", "2024-+1" or full-width digits,
# which name no month key the folds write ('YYYY-MM'), so a report would count 0 hours.
_MONTH = re.compile(r"(\d{4})-(\d{2})", re.ASCII)


def month_bounds(month: str, tz_name: str) -> tuple[datetime, datetime]:
    """[start, end) in UTC of a month 'YYYY-MM' in the given zone. Raises ValueError."""
    found = _MONTH.fullmatch(month) if isinstance(month, str) else None
    year, mon = (int(found.group(1)), int(found.group(2))) if found else (0, 0)
    if not 1 <= mon <= 12 or not 2000 <= year <= 2200:
        raise ValueError(f"month must be YYYY-MM (got {month!r})")
    return _bounds(year, mon, ZoneInfo(tz_name))


def _bounds(year: int, mon: int, tz: ZoneInfo) -> tuple[datetime, datetime]:
    start = datetime(year, mon, 1, tzinfo=tz)
    end = datetime(year + (mon == 12), mon % 12 + 1, 1, tzinfo=tz)
    return start.astimezone(UTC), end.astimezone(UTC)


class MonthSplitter:
    """Adds time spans to per-month totals ('YYYY-MM' in local time -> seconds).

    Remembers the bounds of the last month it found, so the spans of one session
    (nearly always in one month) cost two comparisons each."""

    __slots__ = ("tz", "start", "end", "key")

    def __init__(self, tz_name: str) -> None:
        self.tz = ZoneInfo(tz_name)
        self.start = self.end = datetime.min.replace(tzinfo=UTC)
        self.key = ""

    def _find(self, at: datetime) -> None:
        local = at.astimezone(self.tz)
        self.start, self.end = _bounds(local.year, local.month, self.tz)
        self.key = f"{local.year:04d}-{local.month:02d}"

    def add(self, start: datetime, end: datetime, into: dict[str, float]) -> None:
        """Add the seconds of [start, end) to `into`, split at month boundaries."""
        while start < end:
            if not self.start <= start < self.end:
                self._find(start)
            stop = min(end, self.end)
            into[self.key] = into.get(self.key, 0.0) + (stop - start).total_seconds()
            start = stop
