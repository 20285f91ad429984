"""Ledger events of the monthly dispatch report (issue "The bureau's month").

One chain per region and period, `dispatch:<region>:<period>` (`<region>` a GB/T 2260
code, or `all` for the whole country; `<period>` `YYYY-MM`, `YYYY-Qn` or `YYYY`):
`dispatch_report_closed`, each time a version of the report is closed. The report
itself (canonical JSON) is kept beside the ledger (`dispatch_reports`); the event
carries its SHA-256, so the periodic seal covers what was reported. Version 1 is the
report as first closed; a later version is a correction, with its reason and the
SHA-256 of the version it corrects.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from supervisor.ledger import events as ev


def dispatch_chain(region: str | None, period: str) -> str:
    return f"dispatch:{region or 'all'}:{period}"


@dataclass(frozen=True, slots=True)
class DispatchReportClosed(ev.Event):
    """`sha256` is of the report's canonical JSON as stored; `as_of` is the cut of the
    ledger it was computed from (events recorded before it). `reason` is "closed" for
    version 1 (the grace after the period passed, or the bureau closed it), else the
    correction's reason; `corrects` the SHA-256 of the version before, `changed` how
    many figures differ from it."""

    KIND: ClassVar[str] = "dispatch_report_closed"
    region: str  # a GB/T 2260 code, or "all"
    period: str
    version: int
    sha256: str
    as_of: datetime
    reason: str
    corrects: str | None
    changed: int
    closed_by: str
    at: datetime


# The kinds of this module, for `supervisor.ledger.kinds`.
KINDS: tuple[type[ev.Event], ...] = (DispatchReportClosed,)
