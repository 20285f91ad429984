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

from supervisor.ledger.events import (
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


class CreditClock:
    """`credit` as a running fold: feed events in ledger order, read `result()` at any
    point. The live service keeps one per session and feeds it only the events
    appended since it last looked, so a check costs the same in the eighth hour of a
    session as in the first."""

    __slots__ = (
        "max_gap",
        "intervals",
        "total",
        "last_pass",
        "paused",
        "passed",
        "failed",
        "missed",
        "first_at",
        "last_at",
    )

    def __init__(self, max_gap: timedelta, keep_intervals: bool = True) -> None:
        self.max_gap = max_gap
        # Without them (a live view only shows the total) memory stays flat however
        # long the session.
        self.intervals: list[Interval] | None = [] if keep_intervals else None
        self.total = 0.0  # seconds, summed in ledger order (as `sum` over the intervals)
        self.last_pass: datetime | None = None
        self.paused = False
        self.passed = self.failed = self.missed = 0
        self.first_at: datetime | None = None
        self.last_at: datetime | None = None

    def feed(self, event: Event) -> None:
        at = _event_time(event)
        if at is not None:
            self.first_at = at if self.first_at is None else min(self.first_at, at)
            self.last_at = at if self.last_at is None else max(self.last_at, at)
        if isinstance(event, CheckRecorded):
            if event.passed:
                self.passed += 1
                if self.paused:
                    return
                last = self.last_pass
                if last is not None and timedelta(0) < event.at - last <= self.max_gap:
                    interval = Interval(last, event.at)
                    if self.intervals is not None:
                        self.intervals.append(interval)
                    self.total += interval.seconds
                self.last_pass = event.at if last is None else max(last, event.at)
            else:
                self.failed += 1
                self.last_pass = None
        elif isinstance(event, CheckMissed):
            self.missed += 1
            self.last_pass = None
        elif isinstance(event, StateChanged):
            if event.to_state == "active":
                self.paused = False
                self.last_pass = event.at
            else:
                self.paused = True
                self.last_pass = None
        elif isinstance(event, SessionEnded):
            self.last_pass = None

    @property
    def credited_seconds(self) -> float:
        return round(self.total, 6)

    def result(self) -> Credit:
        if self.intervals is None:
            raise ValueError("this clock was made without its intervals")
        return Credit(
            self.credited_seconds,
            tuple(self.intervals),
            self.passed,
            self.failed,
            self.missed,
            self.first_at,
            self.last_at,
        )


def credit(events: Iterable[Event], max_gap: timedelta) -> Credit:
    """Credited learning time of one chain of events, in ledger order."""
    clock = CreditClock(max_gap)
    for event in events:
        clock.feed(event)
    return clock.result()
