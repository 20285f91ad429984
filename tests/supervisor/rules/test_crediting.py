"""The crediting function: examples and properties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from supervisor.ledger.codec import decode_all
from supervisor.ledger.events import (
    CheckDeferred,
    CheckMissed,
    CheckRecorded,
    Event,
    SessionEnded,
    SessionStarted,
    StateChanged,
)
from supervisor.rules.crediting import credit
from supervisor.rules.session_state import SessionView, fold
from tests.supervisor.rules.test_eligibility import STEP as STEP_OF_SESSION
from tests.supervisor.rules.test_eligibility import _stored as stored_chain
from tests.supervisor.rules.test_eligibility import build as build_session

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
GAP = timedelta(minutes=15)


def check(minute: float, passed: bool, kind: str = "presence") -> CheckRecorded:
    return CheckRecorded(
        check_id=f"c{minute}",
        check_kind=kind,
        purpose="scheduled",
        verdict="present" if passed else "no_face",
        passed=passed,
        at=T0 + timedelta(minutes=minute),
        distance=None,
        threshold=None,
        issues=(),
        faces=1 if passed else 0,
        frames=1,
        evidence_sha256=None,
    )


def start() -> SessionStarted:
    return SessionStarted("s", 1, 1, 1, "upload", T0)


def test_consecutive_passes_within_the_gap_are_credited() -> None:
    c = credit([start(), check(0, True), check(5, True), check(12, True)], GAP)
    assert c.credited_seconds == 12 * 60
    assert c.passed_checks == 3


def test_a_gap_longer_than_the_maximum_is_not_credited() -> None:
    c = credit([start(), check(0, True), check(20, True), check(25, True)], GAP)
    assert c.credited_seconds == 5 * 60


def test_nothing_counts_after_a_failure_until_a_pass() -> None:
    events = [start(), check(0, True), check(5, False), check(6, True), check(10, True)]
    assert credit(events, GAP).credited_seconds == 4 * 60


def test_a_missed_check_and_the_end_stop_the_clock() -> None:
    missed = CheckMissed(
        "m", "presence", T0 + timedelta(minutes=4), T0 + timedelta(minutes=5), "no_frame"
    )
    events = [start(), check(0, True), missed, check(6, True), check(7, True)]
    assert credit(events, GAP).credited_seconds == 60
    ended = [
        start(),
        check(0, True),
        SessionEnded("learner", T0 + timedelta(minutes=3)),
        check(4, True),
    ]
    assert credit(ended, GAP).credited_seconds == 0


def test_while_paused_only_the_resume_restarts_the_clock() -> None:
    events: list[Event] = [
        start(),
        check(0, True),
        check(2, False),
        StateChanged("active", "paused", "check_failed", T0 + timedelta(minutes=2)),
        check(3, True, "presence"),
        check(4, True, "presence"),
        check(5, True, "identity"),
        StateChanged("paused", "active", "identity_check_passed", T0 + timedelta(minutes=5)),
        check(8, True),
    ]
    assert credit(events, GAP).credited_seconds == 3 * 60


def test_a_deferred_check_counts_neither_way() -> None:
    deferred = CheckDeferred("d", "presence", T0 + timedelta(minutes=3), "overloaded")
    with_deferred = credit([start(), check(0, True), deferred, check(5, True)], GAP)
    without = credit([start(), check(0, True), check(5, True)], GAP)
    assert with_deferred.credited_seconds == without.credited_seconds == 300


steps = st.lists(
    st.tuples(st.floats(min_value=0, max_value=30, allow_nan=False), st.booleans()),
    min_size=0,
    max_size=40,
)


def _events(spec: list[tuple[float, bool]]) -> list[Event]:
    minute, out = 0.0, [start()]
    for delta, passed in spec:
        minute += delta
        out.append(check(minute, passed))
    return out


@settings(max_examples=300, deadline=None)
@given(steps)
def test_never_more_than_wall_time(spec: list[tuple[float, bool]]) -> None:
    c = credit(_events(spec), GAP)
    assert 0 <= c.credited_seconds <= c.wall_seconds + 1e-6


@settings(max_examples=300, deadline=None)
@given(steps)
def test_no_credit_after_a_failure_before_the_next_pass(spec: list[tuple[float, bool]]) -> None:
    events = _events(spec)
    c = credit(events, GAP)
    checks = [e for e in events if isinstance(e, CheckRecorded)]
    for interval in c.intervals:
        inside = [x for x in checks if interval.start < x.at < interval.end]
        assert all(x.passed for x in inside)
        end = next(x for x in checks if x.at == interval.end and x.passed)
        assert end.passed
        assert interval.seconds <= GAP.total_seconds()


@settings(max_examples=300, deadline=None)
@given(steps, st.integers(min_value=0, max_value=40))
def test_adding_a_failed_check_never_increases_credit(
    spec: list[tuple[float, bool]], at: int
) -> None:
    events = _events(spec)
    base = credit(events, GAP).credited_seconds
    position = min(at, len(events))
    when = getattr(events[position - 1], "at", T0) if position else T0
    failed = check(0, False)
    failed = CheckRecorded(**{**{f: getattr(failed, f) for f in failed.__slots__}, "at": when})  # type: ignore[arg-type]
    worse = events[:position] + [failed] + events[position:]
    assert credit(worse, GAP).credited_seconds <= base + 1e-6


@settings(max_examples=100, deadline=None)
@given(steps)
def test_recomputation_gives_the_same_answer(spec: list[tuple[float, bool]]) -> None:
    events = _events(spec)
    assert credit(events, GAP) == credit(list(events), GAP)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(STEP_OF_SESSION, max_size=40),
    st.lists(st.tuples(st.integers(0, 4), st.integers(0, 8)), min_size=1, max_size=12),
)
def test_a_session_view_read_in_overlapping_pieces_equals_the_whole_fold(
    steps: list[tuple[int, str]], reads: list[tuple[int, int]]
) -> None:
    """The live service's view of a session, brought up to date by reads that overlap
    or repeat (two coroutines looking at once), ends as `fold` and `credit` say."""
    stored = stored_chain("session:s1", build_session(steps))
    events = [e for _, e in decode_all(stored)]  # as stored (floats canonicalised)
    view = SessionView(GAP)
    for back, length in reads:
        # A read starts at, or up to 4 events before, the view's last seq.
        lo = max(view.seq - back, 0)
        view.apply(stored[lo : lo + length])
    view.apply(stored)
    assert view.seq == len(stored)
    assert view.snapshot() == fold(events)
    assert view.clock.credited_seconds == credit(events, GAP).credited_seconds
    passed = [e for e in events if isinstance(e, CheckRecorded) and e.passed]
    identity = [e.at for e in passed if e.check_kind == "identity"]
    assert view.identity_passed_at == (identity[-1] if identity else None)


def test_a_session_view_refuses_a_gap_in_the_chain() -> None:
    stored = stored_chain("session:s1", build_session([(60, "pass"), (60, "pass")]))
    view = SessionView(GAP)
    view.apply(stored[:1])
    with pytest.raises(ValueError, match="skip"):
        view.apply(stored[2:])
