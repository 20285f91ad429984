"""Times as a person reads them: in the configured zone (`web.timezone`,
`Asia/Shanghai` by default), with the UTC offset where a time stands alone.

The ledger and the JSON API keep timezone-aware UTC; this is the one place where a time
becomes text or a spreadsheet value for a person. Naive datetimes are refused: a time
without a zone is a bug upstream, not something to guess about.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo


def offset_label(offset: timedelta | None) -> str:
    """`UTC+8`, `UTC+5:30`, `UTC-3`, `UTC` for an offset from UTC."""
    if not offset:
        return "UTC"
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes > 0 else "-"
    hours, rest = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours}" + (f":{rest:02d}" if rest else "")


@dataclass(frozen=True, slots=True)
class LocalTime:
    """Formats aware datetimes in one zone (an IANA name, e.g. `Asia/Shanghai`)."""

    zone_name: str

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.zone_name)

    def local(self, at: datetime) -> datetime:
        """`at` in the zone (aware)."""
        if at.tzinfo is None:
            raise ValueError("a naive datetime has no defined local time")
        return at.astimezone(self.zone)

    def wall(self, at: datetime) -> datetime:
        """`at` as a naive local wall-clock time, for spreadsheet cells (which hold no
        zone; the column header names it, see `zone_label`)."""
        return self.local(at).replace(tzinfo=None)

    def format(self, at: datetime | None, *, seconds: bool = False, offset: bool = True) -> str:
        """`2026-11-30 16:00 (UTC+8)`; '' for None. `offset=False` where a header or the
        page already names the zone."""
        if at is None:
            return ""
        local = self.local(at)
        text = local.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")
        return f"{text} ({offset_label(local.utcoffset())})" if offset else text

    def date(self, at: datetime | None) -> str:
        """The local calendar date, `2026-11-30`."""
        return "" if at is None else self.local(at).strftime("%Y-%m-%d")

    def zone_label(self, around: datetime | None = None) -> str:
        """The zone as a column header names it: `UTC+8` when the zone keeps one offset
        through the year of `around` (now when None), else the IANA name (a zone with
        summer time, whose offset differs between rows)."""
        year = (around or datetime.now(UTC)).year
        winter = datetime(year, 1, 15, tzinfo=UTC).astimezone(self.zone).utcoffset()
        summer = datetime(year, 7, 15, tzinfo=UTC).astimezone(self.zone).utcoffset()
        return offset_label(winter) if winter == summer else self.zone_name
