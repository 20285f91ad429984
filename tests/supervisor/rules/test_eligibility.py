"""Eligibility as a pure function of ledger events: every reason, and properties
(hypothesis) over generated session chains. The session fold resumes from its
stored state at any split, and reads stored rows as it reads decoded events."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storage.canonical import canonical_json
from storage.exceptions import InvalidInput as StorageInvalidInput
from storage.types import LedgerEvent
from supervisor.ledger import codec
from supervisor.ledger import events as ev
from supervisor.ledger import subsidy as se
from supervisor.rules.crediting import credit
from supervisor.rules.eligibility import (
    FlagSummary,
    SessionFold,
    Standing,
    course_terms,
    evaluate,
    session_summary,
    summarise_flag,
    summarise_learner,
    summarise_session,
)
from supervisor.rules.months import MonthSplitter
from supervisor.subsidy.scan import _loads, _loads_all, fast_decode, rows_of

GAP = timedelta(minutes=15)
TZ = "Asia/Shanghai"
T0 = datetime(2026, 10, 8, 1, 0, tzinfo=UTC)
LEARNER, COURSE, INST = 7, 3, 1


def rules(kind: str = "per_learner", mode: str = "online", hours: float = 1.0) -> se.Event:
    return se.CourseRulesPublished(
        COURSE,
        INST,
        "Welder",
        mode,
        hours,
        "Welder",
        4,
        kind,
        20.0 if kind == "per_hour" else 900.0,
        30.0 if kind == "per_hour" else None,
        None,
        None,
        "operator:1",
        T0,
    )


def learner_chain(
    consent: bool = True, face: bool = True, enrolled: bool = True, passed: bool | None = True
) -> list[ev.Event]:
    out: list[ev.Event] = []
    if consent:
        out.append(ev.ConsentGiven(LEARNER, 1, "v1", "learner:1", T0))
    if face:
        out.append(ev.TemplateEnrolled(LEARNER, 1, "ab" * 32, 200, "learner:1", T0))
    if enrolled:
        out.append(se.LearnerEnrolled(LEARNER, COURSE, INST, "operator:1", T0))
    if passed is not None:
        out.append(se.AssessmentRecorded(LEARNER, COURSE, 1, passed, 80.0, T0, "op:1", T0))
    return out


def check(
    at: datetime,
    passed: bool = True,
    kind: str = "identity",
    purpose: str = "scheduled",
    distance: float | None = 0.31,
) -> ev.CheckRecorded:
    return ev.CheckRecorded(
        check_id=f"c{at.timestamp()}",
        check_kind=kind,
        purpose=purpose,
        verdict="match" if passed else "mismatch",
        passed=passed,
        at=at,
        distance=distance if kind == "identity" else None,
        threshold=0.53,
        issues=(),
        faces=1,
        frames=2,
        evidence_sha256=None,
    )


def session(minutes: int = 70, start_passed: bool = True, sid: str = "s1") -> list[ev.Event]:
    out: list[ev.Event] = [ev.SessionStarted(sid, LEARNER, COURSE, INST, "upload", T0)]
    out.append(check(T0, start_passed, purpose="start"))
    for m in range(1, minutes + 1):
        out.append(check(T0 + timedelta(minutes=m), kind="presence", distance=None))
    out.append(ev.SessionEnded("learner", T0 + timedelta(minutes=minutes)))
    return out


def decide(
    events: list[ev.Event] | None = None,
    learner: list[ev.Event] | None = None,
    registered: bool = True,
    flags: list[FlagSummary] | None = None,
    course: list[ev.Event] | None = None,
    standing: Standing | None = None,
    as_of: datetime | None = None,
):  # type: ignore[no-untyped-def]
    sessions = [
        summarise_session("session:s1", events if events is not None else session(), GAP, TZ)
    ]
    return evaluate(
        course_terms(course if course is not None else [rules()]),
        COURSE,
        registered,
        summarise_learner(LEARNER, learner if learner is not None else learner_chain()),
        [s for s in sessions if s is not None],
        flags or [],
        standing,
        as_of,
    )


def test_eligible_with_the_amount_and_its_sessions() -> None:
    e = decide()
    assert e.eligible and e.reasons == () and e.amount == 900.0
    assert e.credited_hours == round(70 / 60, 6)
    assert [s.chain_id for s in e.sessions] == ["session:s1"]


def test_per_hour_subsidy_is_capped() -> None:
    e = decide(course=[rules("per_hour")])
    assert e.eligible and e.amount == 23.33  # 20 yuan x 1.1667 h
    e = decide(events=session(minutes=120), course=[rules("per_hour")])
    assert e.amount == 30.0


def test_every_reason_is_returned() -> None:
    assert decide(course=[]).reasons == ("course_not_published",)
    withdrawn = [rules(), se.CourseRulesWithdrawn(COURSE, "operator:1", T0)]
    assert decide(course=withdrawn).reasons == ("course_not_published",)
    assert decide(registered=False).reasons == ("not_in_real_name_system",)
    assert decide(learner=learner_chain(consent=False, face=False)).reasons == ("no_consent",)
    assert decide(learner=learner_chain(face=False)).reasons == ("no_face_enrolled",)
    withdrawn_consent = learner_chain() + [ev.ConsentWithdrawn(LEARNER, 1, 1, "learner:1", T0)]
    assert decide(learner=withdrawn_consent).reasons == ("no_consent",)
    assert decide(learner=learner_chain(enrolled=False)).reasons == ("not_enrolled",)
    assert decide(events=session(minutes=30)).reasons == ("insufficient_hours",)
    # A session whose sign-in check did not pass: its later checks still credit time.
    e = decide(events=session(start_passed=False))
    assert e.reasons == ("start_check_not_passed",)
    assert decide(learner=learner_chain(passed=None)).reasons == ("no_assessment",)
    assert decide(learner=learner_chain(passed=False)).reasons == ("assessment_failed",)
    flag = FlagSummary(1, "replayed_image", INST, (LEARNER,), "open", T0, (LEARNER,))
    assert decide(flags=[flag]).reasons == ("open_fraud_flag",)
    other = FlagSummary(2, "check_impostor", INST, (99, LEARNER), "confirmed", T0, (99, LEARNER))
    assert decide(flags=[other]).reasons == ("confirmed_fraud_flag",)
    # A flag that names the learner but does not hold them up (another learner's open
    # flag, or a confirmation against someone else) leaves them eligible.
    bystander = FlagSummary(3, "check_impostor", INST, (99, LEARNER), "open", T0, (99,))
    assert decide(flags=[bystander]).reasons == ()
    # The institution's status at the moment decided for (a claim's period end).
    later = T0 + timedelta(days=30)
    suspended = Standing(INST, ((later, "suspended"),))
    assert decide(standing=suspended).reasons == ("institution_suspended",)
    assert decide(standing=suspended, as_of=T0).reasons == ()
    expelled = Standing(INST, ((T0, "suspended"), (later, "expelled")))
    assert decide(standing=expelled).reasons == ("institution_expelled",)
    assert decide(standing=expelled, as_of=T0 + timedelta(days=1)).reasons == (
        "institution_suspended",
    )
    # All at once.
    e = decide(
        events=session(minutes=10, start_passed=False),
        learner=learner_chain(consent=False, face=False, enrolled=False, passed=False),
        registered=False,
        flags=[flag, other],
    )
    assert set(e.reasons) == {
        "not_in_real_name_system",
        "no_consent",
        "not_enrolled",
        "insufficient_hours",
        "start_check_not_passed",
        "assessment_failed",
        "open_fraud_flag",
        "confirmed_fraud_flag",
    }
    assert not e.eligible and e.amount == 0


def test_delivery_mode_decides_which_hours_count() -> None:
    online = summarise_session("session:s1", session(), GAP, TZ)
    assert online is not None
    classroom = replace(online, kind="classroom", chain_id="class:1:learner:7")
    learner = summarise_learner(LEARNER, learner_chain())
    both = [online, classroom]
    on = evaluate(course_terms([rules(mode="online")]), COURSE, True, learner, both, [])
    cl = evaluate(course_terms([rules(mode="classroom")]), COURSE, True, learner, both, [])
    bl = evaluate(course_terms([rules(mode="blended")]), COURSE, True, learner, both, [])
    assert on.classroom_seconds == 0 and on.online_seconds == 4200
    assert cl.online_seconds == 0 and cl.classroom_seconds == 4200
    assert bl.credited_hours == round(2 * 70 / 60, 6)


# -- properties -------------------------------------------------------------------------

STEP = st.tuples(
    st.integers(min_value=1, max_value=1200),
    st.sampled_from(["pass", "presence", "fail", "missed", "pause", "resume", "deferred"]),
)


def build(steps: list[tuple[int, str]], t0: datetime = T0) -> list[ev.Event]:
    out: list[ev.Event] = [ev.SessionStarted("s1", LEARNER, COURSE, INST, "upload", t0)]
    out.append(check(t0, purpose="start"))
    at, state = t0, "active"
    for n, (dt, what) in enumerate(steps):
        at = at + timedelta(seconds=dt)
        if what == "pass":
            out.append(check(at, distance=0.3 + (n % 7) / 100))
        elif what == "presence":
            out.append(check(at, kind="presence"))
        elif what == "fail":
            out.append(check(at, passed=False))
        elif what == "missed":
            out.append(ev.CheckMissed(f"m{n}", "identity", at, at, "no_frame"))
        elif what == "deferred":
            out.append(ev.CheckDeferred(f"d{n}", "identity", at, "overloaded"))
        elif what == "pause" and state == "active":
            out.append(ev.StateChanged("active", "paused", "check_failed", at))
            state = "paused"
        elif what == "resume" and state == "paused":
            out.append(check(at))
            out.append(ev.StateChanged("paused", "active", "identity_check_passed", at))
            state = "active"
    out.append(ev.SessionEnded("learner", at + timedelta(seconds=1)))
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(STEP, max_size=40), st.integers(min_value=0, max_value=41), st.integers(1, 500))
def test_a_failed_check_never_increases_credited_hours(
    steps: list[tuple[int, str]], where: int, offset: int
) -> None:
    events = build(steps)
    where = 2 + where % (len(events) - 2)  # after the sign-in check
    before = events[where - 1]
    at_before = getattr(before, "at")  # noqa: B009
    failed = check(at_before + timedelta(microseconds=offset), passed=False)
    with_failure = events[:where] + [failed] + events[where:]
    assert credit(with_failure, GAP).credited_seconds <= credit(events, GAP).credited_seconds
    # ...nor makes an ineligible learner eligible.
    a = decide(events=events)
    b = decide(events=with_failure)
    assert b.credited_hours <= a.credited_hours
    assert not (b.eligible and not a.eligible)


@settings(max_examples=100, deadline=None)
@given(st.lists(STEP, max_size=40), st.sampled_from(["replayed_image", "two_places_online"]))
def test_a_dismissed_flag_restores_eligibility(steps: list[tuple[int, str]], kind: str) -> None:
    events = build(steps)
    raised = se.FlagRaised(5, kind, INST, (LEARNER,), "x", "0" * 64, T0)
    dismissed = se.FlagDecided(5, "dismissed", "checked", "inspector:1", None, T0)
    confirmed = se.FlagDecided(5, "confirmed", "", "inspector:1", None, T0)
    without = decide(events=events)
    open_ = decide(events=events, flags=[summarise_flag([raised])])  # type: ignore[list-item]
    assert not open_.eligible and "open_fraud_flag" in open_.reasons
    decided = decide(events=events, flags=[summarise_flag([raised, confirmed, dismissed])])  # type: ignore[list-item]
    assert decided == without
    again = decide(events=events, flags=[summarise_flag([raised, dismissed, confirmed])])  # type: ignore[list-item]
    assert "confirmed_fraud_flag" in again.reasons


def _fold(rows: list[tuple[str, int, str, str, str]], state: dict | None = None) -> SessionFold:  # type: ignore[type-arg]
    months = MonthSplitter(TZ)
    fold = SessionFold.from_state(state, GAP, months) if state else SessionFold(GAP, months)
    fold.feed_rows(rows, _loads_all([r[3] for r in rows]))
    return fold


def _stored(chain: str, events: list[ev.Event]) -> list[LedgerEvent]:
    out = []
    for seq, e in enumerate(events, start=1):
        enc = codec.encode(e)
        out.append(LedgerEvent(chain, seq, T0, enc.kind, enc.payload, "0" * 64, f"{seq:064x}"))
    return out


# 23:40 on 31 October in Shanghai: sessions from here cross into November.
MONTH_EDGE = datetime(2026, 10, 31, 15, 40, tzinfo=UTC)


@settings(max_examples=200, deadline=None)
@given(st.lists(STEP, max_size=60), st.sampled_from([T0, MONTH_EDGE]))
def test_recomputation_from_the_stored_ledger_gives_the_same_answer(
    steps: list[tuple[int, str]], t0: datetime
) -> None:
    events = build(steps, t0)
    stored = _stored("session:s1", events)
    decoded = [codec.decode(s) for s in stored]
    assert decoded == [fast_decode(s.kind, s.payload) for s in stored]
    ref = summarise_session("session:s1", decoded, GAP, TZ, ("session:s1", 1, stored[0].hash))  # type: ignore[arg-type]
    rows = rows_of(stored)
    whole = _fold(rows)
    assert session_summary("session:s1", orjson.loads(orjson.dumps(whole.summary()))) == ref
    # The fold stops and goes on through its JSON state: any split gives the same.
    for cut in range(len(rows) + 1):
        first = _fold(rows[:cut])
        resumed = _fold(rows[cut:], orjson.loads(orjson.dumps(first.state())))
        assert resumed.state() == whole.state()
        assert resumed.summary() == whole.summary()
    assert decide(events=decoded) == decide(events=decoded)  # type: ignore[arg-type]


def test_the_scan_parses_payloads_as_the_json_module_does() -> None:
    # orjson on the hot path; what it refuses falls back to json.loads, same values.
    for text in (
        '{"a": 1, "b": [1.5, null, true], "c": "Zh\\u00e9", "d": -9223372036854775808}',
        '{"x": NaN}',  # json.loads reads it; orjson refuses
        '{"k": 1, "k": 2}',
        '{"f": 0.1234567890123456789, "e": 1e-7}',
    ):
        got, want = _loads(text), json.loads(text)
        assert repr(got) == repr(want)
    with pytest.raises(ValueError):
        _loads('{"unterminated": ')
    # orjson would read an integer past 64 bits as a float: the ledger never holds one.
    with pytest.raises(StorageInvalidInput, match="64 bits"):
        canonical_json({"n": 2**63})


def test_credited_time_is_split_at_local_month_boundaries() -> None:
    # Checks every minute from 23:40 to 00:20 Shanghai time, 31 October to 1 November.
    out: list[ev.Event] = [ev.SessionStarted("s1", LEARNER, COURSE, INST, "upload", MONTH_EDGE)]
    out.append(check(MONTH_EDGE, purpose="start"))
    for m in range(1, 41):
        out.append(check(MONTH_EDGE + timedelta(minutes=m), kind="presence", distance=None))
    s = summarise_session("session:s1", out, GAP, TZ)
    assert s is not None
    assert s.monthly == (("2026-10", 20 * 60.0), ("2026-11", 20 * 60.0))
    assert s.credited_seconds == 40 * 60.0
    # In UTC the whole session is in October.
    utc = summarise_session("session:s1", out, GAP, "UTC")
    assert utc is not None and utc.monthly == (("2026-10", 40 * 60.0),)
