"""Learning time credited from the ledger alone: the one crediting rule.

A pure function of a chain's events and one rule: the time between two
consecutive passed checks is credited when the gap is at most `max_gap`.
After a failed or missed check, a pause or the end of the session, nothing
counts until a check passes again; while a session is paused, only the
check that resumes it (its `state_changed` to active) restarts the clock.
Deferred checks (the service's own overload) count neither for nor against
the learner. An inspector who recomputes it from an export gets the same answer.

`CreditClock` is the rule, written once. Everything that credits time folds
through it: a session's credited time on the API, the live view, classroom
chains, and the eligibility scan (which feeds it from parsed JSON rows through
the same step methods, `check`, `missed`, `state_changed`, `ended`, and keeps its
state between scans with `state`/`from_state`). A failure overturned on appeal is fed
to it as a passed check (`supervisor.rules.appeals.credited_back`): the rule itself
does not change.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from supervisor.ledger.events import (
    CheckMissed,
    CheckRecorded,
    Event,
    SessionEnded,
    StateChanged,
)
from supervisor.rules.months import MonthSplitter

ACTIVE = "active"  # the `to_state` that lets the clock run again


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


def _time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _text(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()


class CreditClock:
    """The crediting rule as a running fold: feed events in ledger order, read the
    result at any point. The live service keeps one per session and feeds it only the
    events appended since it last looked, so a check costs the same in the eighth hour
    of a session as in the first.

    With `months`, credited time is also summed per local month ('YYYY-MM' ->
    seconds, in ledger order, as `MonthSplitter.add` sums each credited interval)."""

    __slots__ = (
        "max_gap",
        "intervals",
        "total",
        "last_pass",
        "paused",
        "passed",
        "failed",
        "missed_checks",
        "first_at",
        "last_at",
        "months",
        "monthly",
    )

    def __init__(
        self,
        max_gap: timedelta,
        keep_intervals: bool = True,
        months: MonthSplitter | None = None,
    ) -> None:
        self.max_gap = max_gap
        # Without them (a live view only shows the total) memory stays flat however
        # long the session.
        self.intervals: list[Interval] | None = [] if keep_intervals else None
        self.total = 0.0  # seconds, summed in ledger order (as `sum` over the intervals)
        self.last_pass: datetime | None = None
        self.paused = False
        self.passed = self.failed = self.missed_checks = 0
        self.first_at: datetime | None = None
        self.last_at: datetime | None = None
        self.months = months
        self.monthly: dict[str, float] = {}

    # -- the steps of the rule ---------------------------------------------------------

    def see(self, at: datetime) -> None:
        """Any event's time: the span of the chain."""
        if self.first_at is None or at < self.first_at:
            self.first_at = at
        if self.last_at is None or at > self.last_at:
            self.last_at = at

    def check(self, at: datetime, passed: bool) -> None:
        if not passed:
            self.failed += 1
            self.last_pass = None
            return
        self.passed += 1
        if self.paused:
            return
        last = self.last_pass
        if last is not None:
            step = at - last
            if timedelta(0) < step <= self.max_gap:
                seconds = step.total_seconds()
                self.total += seconds
                if self.intervals is not None:
                    self.intervals.append(Interval(last, at))
                months = self.months
                if months is not None:
                    if months.start <= last and at <= months.end:
                        # Inside the month the splitter last found: what `add` would do.
                        key = months.key
                        self.monthly[key] = self.monthly.get(key, 0.0) + seconds
                    else:
                        months.add(last, at, self.monthly)
            if at <= last:
                return
        self.last_pass = at

    def missed(self) -> None:
        self.missed_checks += 1
        self.last_pass = None

    def state_changed(self, to_state: str, at: datetime) -> None:
        if to_state == ACTIVE:
            self.paused = False
            self.last_pass = at
        else:
            self.paused = True
            self.last_pass = None

    def ended(self) -> None:
        self.last_pass = None

    def feed(self, event: Event) -> None:
        at = getattr(event, "at", None)
        if isinstance(at, datetime):
            self.see(at)
        if isinstance(event, CheckRecorded):
            self.check(event.at, event.passed)
        elif isinstance(event, CheckMissed):
            self.missed()
        elif isinstance(event, StateChanged):
            self.state_changed(event.to_state, event.at)
        elif isinstance(event, SessionEnded):
            self.ended()

    # -- results -----------------------------------------------------------------------

    @property
    def credited_seconds(self) -> float:
        return round(self.total, 6)

    def monthly_seconds(self) -> tuple[tuple[str, float], ...]:
        return tuple(sorted(self.monthly.items()))

    def result(self) -> Credit:
        if self.intervals is None:
            raise ValueError("this clock was made without its intervals")
        return Credit(
            self.credited_seconds,
            tuple(self.intervals),
            self.passed,
            self.failed,
            self.missed_checks,
            self.first_at,
            self.last_at,
        )

    # -- resuming (the eligibility scan keeps this between scans) ----------------------

    def state(self) -> dict[str, Any]:
        """What folding needs to go on from here, as JSON values (no intervals)."""
        return {
            "total": self.total,
            "last_pass": _text(self.last_pass),
            "paused": self.paused,
            "counts": (self.passed, self.failed, self.missed_checks),
            "span": (_text(self.first_at), _text(self.last_at)),
            "monthly": sorted(self.monthly.items()),
        }

    @classmethod
    def from_state(
        cls, body: dict[str, Any], max_gap: timedelta, months: MonthSplitter | None = None
    ) -> CreditClock:
        clock = cls(max_gap, keep_intervals=False, months=months)
        clock.total = body["total"]
        clock.last_pass = _time(body["last_pass"])
        clock.paused = body["paused"]
        clock.passed, clock.failed, clock.missed_checks = body["counts"]
        first, last = body["span"]
        clock.first_at, clock.last_at = _time(first), _time(last)
        clock.monthly = dict(body["monthly"])
        return clock


def credit(events: Iterable[Event], max_gap: timedelta) -> Credit:
    """Credited learning time of one chain of events, in ledger order."""
    clock = CreditClock(max_gap)
    for event in events:
        clock.feed(event)
    return clock.result()
