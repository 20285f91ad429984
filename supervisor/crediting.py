"""Learning time credited from the ledger alone.

A pure function of a session's events and one rule: the time between two
consecutive passed checks is credited when the gap is at most `max_gap`.
After a failed or missed check, a pause or the end of the session, nothing
counts until a check passes again; while a session is paused, only the
check that resumes it (its `state_changed` to active) restarts the clock.
Deferred checks (the service's own overload) count neither for nor against
the learner. An inspector who
recomputes it from an export gets the same answer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from supervisor.events import (
    CheckMissed,
    CheckRecorded,
    Event,
    SessionEnded,
    StateChanged,
)


@dataclass(frozen=True, slots=True)
class Interval:
    start: datetime
    end: datetime

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


@dataclass(frozen=True, slots=True)
class Credit:
    credited_seconds: float
    intervals: tuple[Interval, ...]
    passed_checks: int
    failed_checks: int
    missed_checks: int
    first_at: datetime | None
    last_at: datetime | None

    @property
    def wall_seconds(self) -> float:
        if self.first_at is None or self.last_at is None:
            return 0.0
        return (self.last_at - self.first_at).total_seconds()


def _event_time(event: Event) -> datetime | None:
    at = getattr(event, "at", None)
    return at if isinstance(at, datetime) else None


def credit(events: Iterable[Event], max_gap: timedelta) -> Credit:
    """Credited learning time of one chain of events, in ledger order."""
    last_pass: datetime | None = None
    paused = False
    intervals: list[Interval] = []
    passed = failed = missed = 0
    first_at: datetime | None = None
    last_at: datetime | None = None
    for event in events:
        at = _event_time(event)
        if at is not None:
            first_at = at if first_at is None else min(first_at, at)
            last_at = at if last_at is None else max(last_at, at)
        if isinstance(event, CheckRecorded):
            if event.passed:
                passed += 1
                if paused:
                    continue
                if last_pass is not None and timedelta(0) < event.at - last_pass <= max_gap:
                    intervals.append(Interval(last_pass, event.at))
                last_pass = event.at if last_pass is None else max(last_pass, event.at)
            else:
                failed += 1
                last_pass = None
        elif isinstance(event, CheckMissed):
            missed += 1
            last_pass = None
        elif isinstance(event, StateChanged):
            if event.to_state == "active":
                paused = False
                last_pass = event.at
            else:
                paused = True
                last_pass = None
        elif isinstance(event, SessionEnded):
            last_pass = None
    total = sum(i.seconds for i in intervals)
    return Credit(round(total, 6), tuple(intervals), passed, failed, missed, first_at, last_at)
