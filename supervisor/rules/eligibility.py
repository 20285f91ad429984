"""Subsidy eligibility: a pure function of ledger events and the course's rules.

Everything here takes decoded ledger events (or summaries folded from them by
the functions below) and returns frozen values; nothing reads storage, the
clock or settings. An inspector who exports the chains of a learner and applies
`evaluate` gets the same answer as the service.

The chains one decision reads:

- the course chain (`course:<id>`): the rules as published (`course_terms`);
- the learner chain (`learner:<id>`): consent, face enrolment, course
  enrolment, assessment results (`summarise_learner`);
- every study session chain of the learner for the course (`summarise_session`),
  credited with `supervisor.rules.crediting.credit` and `policy.max_credited_gap_s`;
- every class chain of the learner in a class of the course, credited with the
  same function and `classroom.max_credited_gap_s`;
- every flag chain naming the learner (`summarise_flag`);
- the learner's appeal chains (`supervisor.rules.appeals`): an upheld appeal on a flag
  has dismissed it in the flag's own chain; one on a failed check or a missed roll
  call has its chain credited with that event read as passed (`credited_back`), which
  gives back at most the interval the failure stopped, within the same `max_gap`.

Reasons a learner is not eligible (all that apply are returned):

| reason | meaning |
|---|---|
| `course_not_published` | no published rules in the ledger (or they were withdrawn) |
| `not_in_real_name_system` | the learner is not in the real-name registry |
| `no_consent` | no biometric consent in force |
| `no_face_enrolled` | no face enrolled under the consent in force |
| `not_enrolled` | not enrolled in the course |
| `insufficient_hours` | credited hours below the course's required hours |
| `start_check_not_passed` | a session of the course began without a passed identity check |
| `no_assessment` | no assessment result for the course |
| `assessment_failed` | the latest assessment result is a fail |
| `institution_suspended` | the course's institution was suspended (at the decision's moment) |
| `institution_expelled` | the course's institution was expelled (idem) |
| `open_fraud_flag` | a fraud flag on the learner is open (the flagged learner; the others a |
|  | flag names are held up only when a confirmation names them) |
| `confirmed_fraud_flag` | a fraud flag on the learner was confirmed (against them) |
| `chain_broken` | a chain the decision reads is broken (its hash chain does not |
|  | verify, or a seal or a scan recorded it broken): nothing of it is counted |

Money is paid only from intact chains: the readers (`supervisor.subsidy.scan`) verify
every chain they fold and pass the broken ones the decision reads as `broken`; a
broken session contributes no credited time, and the learner is not eligible.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from operator import attrgetter
from typing import Any

from supervisor.ledger import events as ev
from supervisor.ledger import privacy as pev
from supervisor.ledger import records as rec
from supervisor.ledger import subsidy as se
from supervisor.rules.crediting import CreditClock
from supervisor.rules.months import MonthSplitter

REASONS = (
    "course_not_published",
    "not_in_real_name_system",
    "no_consent",
    "no_face_enrolled",
    "not_enrolled",
    "insufficient_hours",
    "start_check_not_passed",
    "no_assessment",
    "assessment_failed",
    "institution_suspended",
    "institution_expelled",
    "open_fraud_flag",
    "confirmed_fraud_flag",
    "chain_broken",
)

# Start checks that prove identity: by face, or in person on the approved non-face path.
START_CHECKS = frozenset({"identity", "in_person"})


@dataclass(frozen=True, slots=True)
class CourseTerms:
    """The rules of a course as the ledger holds them."""

    course_id: int
    institution_id: int
    name: str
    delivery_mode: str
    required_hours: float
    subsidy_kind: str
    subsidy_amount: float
    subsidy_cap: float | None
    valid_from: datetime | None
    valid_until: datetime | None
    published: bool


def course_terms(events: Iterable[ev.Event]) -> CourseTerms | None:
    """The rules in force at the end of a course chain (None: never published)."""
    terms: CourseTerms | None = None
    for e in events:
        if isinstance(e, se.CourseRulesPublished):
            terms = CourseTerms(
                e.course_id,
                e.institution_id,
                e.name,
                e.delivery_mode,
                e.required_hours,
                e.subsidy_kind,
                e.subsidy_amount,
                e.subsidy_cap,
                e.valid_from,
                e.valid_until,
                True,
            )
        elif isinstance(e, se.CourseRulesWithdrawn) and terms is not None:
            terms = replace(terms, published=False)
    return terms


@dataclass(frozen=True, slots=True)
class LearnerSummary:
    learner_id: int
    consent: bool  # consent in force at the end of the chain
    face_enrolled: bool  # a template enrolled after the consent in force
    courses: frozenset[int]  # enrolled in
    # course -> (passed, assessed_at) of the latest result recorded
    assessments: tuple[tuple[int, bool, datetime], ...]
    # an approved non-face path: identity is checked in person, not by face
    alternative: bool = False
    # The key groups of the policy the learner belongs or belonged to (records.py):
    # (group, since: local date 'YYYY-MM-DD', removed at or None), in ledger order.
    groups: tuple[tuple[str, str, datetime | None], ...] = ()
    # Skill-level certificates issued: (course, skill level, occupation code, issued on
    # 'YYYY-MM-DD' local date), in ledger order.
    certificates: tuple[tuple[int, int, str, str], ...] = ()

    def assessment(self, course_id: int) -> tuple[bool, datetime] | None:
        for cid, passed, at in self.assessments:
            if cid == course_id:
                return passed, at
        return None


def summarise_learner(learner_id: int, events: Iterable[ev.Event]) -> LearnerSummary:
    consent = face = alternative = False
    courses: set[int] = set()
    latest: dict[int, tuple[bool, datetime]] = {}
    groups: list[tuple[str, str, datetime | None]] = []
    certificates: list[tuple[int, int, str, str]] = []
    for e in events:
        if isinstance(e, ev.ConsentGiven):
            consent, face = True, False
        elif isinstance(e, ev.ConsentWithdrawn):
            consent, face = False, False  # withdrawal deletes the templates
        elif isinstance(e, ev.TemplateEnrolled):
            face = face or consent
        elif isinstance(e, se.LearnerEnrolled):
            courses.add(e.course_id)
        elif isinstance(e, se.AssessmentRecorded):
            latest[e.course_id] = (e.passed, e.assessed_at)
        elif isinstance(e, pev.AlternativeDecided):
            alternative = e.approved
        elif isinstance(e, rec.LearnerGroupAdded):
            # Added again while held: the earlier span stands.
            if not any(g == e.group and removed is None for g, _, removed in groups):
                groups.append((e.group, e.since, None))
        elif isinstance(e, rec.LearnerGroupRemoved):
            groups = [
                (g, since, e.at if g == e.group and removed is None else removed)
                for g, since, removed in groups
            ]
        elif isinstance(e, rec.CertificateIssued):
            certificates.append((e.course_id, e.skill_level, e.occupation_code, e.issued_on))
    return LearnerSummary(
        learner_id,
        consent,
        face,
        frozenset(courses),
        tuple((c, p, a) for c, (p, a) in sorted(latest.items())),
        alternative,
        tuple(groups),
        tuple(certificates),
    )


@dataclass(frozen=True, slots=True)
class SessionSummary:
    """One chain of learning: an online session, or a learner's chain in a class."""

    chain_id: str
    kind: str  # online | classroom
    learner_id: int
    course_id: int
    institution_id: int
    started_at: datetime
    last_at: datetime
    credited_seconds: float  # `Credit.credited_seconds` of the chain
    # the same credited time split at local month boundaries (`subsidy.timezone`):
    # ('YYYY-MM', seconds), by month
    monthly: tuple[tuple[str, float], ...]
    start_check_passed: bool
    checks: int
    passed_checks: int
    check_interval_s: float | None  # median seconds between consecutive checks
    # distances of the passed identity checks (identical ones betray a replayed image)
    identity_distances: tuple[float, ...]
    # when a classroom roll call found the learner present
    present_at: tuple[datetime, ...]
    ref: tuple[str, int, str] | None = None  # (chain, seq, hash) of the chain's first event


# A stored ledger row as the scan reads it: (chain_id, seq, kind, payload, hash).
Row = tuple[str, int, str, str, str]


def _time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _text(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()


class SessionFold:
    """An online session chain folded into its summary, resumable: `state()` is a JSON
    body from which `from_state` goes on with the events appended since.

    Two ways in, one fold: `feed` takes decoded events, `feed_rows` takes stored rows and
    reads their JSON payloads directly (the eligibility scan's fast path over millions of
    events). Both call the same steps, and credited time is the one `CreditClock`."""

    __slots__ = (
        "valid",
        "ids",
        "started_at",
        "ref",
        "clock",
        "checks",
        "last_check",
        "gaps",
        "distances",
        "start_ok",
    )

    def __init__(self, max_gap: timedelta, months: MonthSplitter) -> None:
        self.valid: bool | None = None  # None until the first event is seen
        self.ids = (0, 0, 0)  # learner, course, institution
        self.started_at: datetime | None = None
        self.ref: tuple[str, int, str] | None = None
        self.clock = CreditClock(max_gap, keep_intervals=False, months=months)
        self.checks = 0
        self.last_check: datetime | None = None
        self.gaps: list[float] = []  # seconds between consecutive checks
        self.distances: list[float] = []  # of passed identity checks
        self.start_ok: bool | None = None

    # -- the steps ---------------------------------------------------------------------

    def _begin(self, is_start: bool, ids: tuple[int, int, int], at: datetime | None) -> bool:
        if self.valid is None:
            self.valid = is_start
            if is_start:
                self.ids, self.started_at = ids, at
        return bool(self.valid)

    def _check(
        self, at: datetime, passed: bool, purpose: str, kind: str, distance: float | None
    ) -> None:
        if self.last_check is not None:
            self.gaps.append((at - self.last_check).total_seconds())
        self.last_check = at
        self.checks += 1
        if self.start_ok is None:
            self.start_ok = purpose == "start" and kind in START_CHECKS and passed
        if passed and kind == "identity" and distance is not None:
            self.distances.append(distance)
        self.clock.check(at, passed)

    # -- the two ways in ---------------------------------------------------------------

    def feed(self, events: Sequence[ev.Event], ref: tuple[str, int, str] | None = None) -> None:
        """Fold decoded events of the chain, in ledger order."""
        if not events:
            return
        first = events[0]
        if self.valid is None and isinstance(first, ev.SessionStarted):
            self.ref = ref
        ids = (
            (first.learner_id, first.course_id, first.institution_id)
            if isinstance(first, ev.SessionStarted)
            else (0, 0, 0)
        )
        if not self._begin(isinstance(first, ev.SessionStarted), ids, getattr(first, "at", None)):
            return
        clock = self.clock
        for e in events:
            at = getattr(e, "at", None)
            if isinstance(at, datetime):
                clock.see(at)
            if isinstance(e, ev.CheckRecorded):
                self._check(e.at, e.passed, e.purpose, e.check_kind, e.distance)
            elif isinstance(e, ev.CheckMissed):
                clock.missed()
            elif isinstance(e, ev.StateChanged):
                clock.state_changed(e.to_state, e.at)
            elif isinstance(e, ev.SessionEnded):
                clock.ended()

    def feed_rows(self, rows: Sequence[Row], bodies: Sequence[Any]) -> None:
        """Fold stored rows of the chain (in seq order) with their parsed JSON payloads."""
        if not rows:
            return
        if self.valid is None:
            body = bodies[0]
            is_start = rows[0][2] == "session_started"
            ids = (
                (body["learner_id"], body["course_id"], body["institution_id"])
                if is_start
                else (0, 0, 0)
            )
            if is_start:
                self.ref = (rows[0][0], rows[0][1], rows[0][4])
            self._begin(is_start, ids, _time(body.get("at")) if is_start else None)
        if not self.valid:
            return
        clock = self.clock
        fromiso = datetime.fromisoformat
        for row, body in zip(rows, bodies, strict=True):
            kind = row[2]
            text = body.get("at")
            at = fromiso(text) if isinstance(text, str) else None
            if at is not None:
                clock.see(at)
            if kind == "check":
                assert at is not None
                self._check(
                    at, body["passed"], body["purpose"], body["check_kind"], body.get("distance")
                )
            elif kind == "check_missed":
                clock.missed()
            elif kind == "state_changed":
                assert at is not None
                clock.state_changed(body["to_state"], at)
            elif kind == "session_ended":
                clock.ended()

    # -- what comes out ----------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """The chain's summary as a JSON body (`session_summary` reads it back)."""
        if not self.valid:
            return {"k": "online", "valid": False}
        clock = self.clock
        return {
            "k": "online",
            "valid": True,
            "ids": self.ids,
            "started": _text(self.started_at),
            "last": _text(clock.last_at),
            "total": clock.credited_seconds,
            "monthly": sorted(clock.monthly.items()),
            "counts": (clock.passed, self.checks),
            "median_gap": median_or_none(self.gaps),
            "dist": self.distances,
            "start_ok": bool(self.start_ok),
            "first_hash": self.ref[2] if self.ref is not None else None,
        }

    def state(self) -> dict[str, Any]:
        """What folding needs to go on from here (`from_state`), as a JSON body."""
        if not self.valid:  # nothing seen yet (None), or not a session (False)
            return {"k": "online", "valid": self.valid}
        return {
            "k": "online",
            "valid": True,
            "ids": self.ids,
            "started": _text(self.started_at),
            "ref": self.ref,
            "clock": self.clock.state(),
            "checks": self.checks,
            "last_check": _text(self.last_check),
            "gaps": self.gaps,
            "dist": self.distances,
            "start_ok": self.start_ok,
        }

    @classmethod
    def from_state(
        cls, body: dict[str, Any], max_gap: timedelta, months: MonthSplitter
    ) -> SessionFold:
        fold = cls(max_gap, months)
        fold.valid = body["valid"]
        if not fold.valid:
            return fold
        fold.ids = tuple(body["ids"])
        fold.started_at = _time(body["started"])
        fold.ref = tuple(body["ref"]) if body["ref"] is not None else None
        fold.clock = CreditClock.from_state(body["clock"], max_gap, months)
        fold.checks = body["checks"]
        fold.last_check = _time(body["last_check"])
        fold.gaps = body["gaps"]
        fold.distances = body["dist"]
        fold.start_ok = body["start_ok"]
        return fold


def session_summary(chain_id: str, body: dict[str, Any]) -> SessionSummary | None:
    """The `SessionSummary` of an online chain from its summary body (`SessionFold.summary`,
    as built or as read back from JSON); None when the chain is not a session."""
    if not body["valid"]:
        return None
    learner_id, course_id, institution_id = body["ids"]
    started = datetime.fromisoformat(body["started"])
    last = body["last"]
    passed, checks = body["counts"]
    first_hash = body["first_hash"]
    return SessionSummary(
        chain_id,
        "online",
        learner_id,
        course_id,
        institution_id,
        started,
        datetime.fromisoformat(last) if last is not None else started,
        body["total"],
        tuple((m, s) for m, s in body["monthly"]),
        body["start_ok"],
        checks,
        passed,
        body["median_gap"],
        tuple(body["dist"]),
        (),
        (chain_id, 1, first_hash) if first_hash is not None else None,
    )


def summarise_session(
    chain_id: str,
    events: Sequence[ev.Event],
    max_gap: timedelta,
    tz_name: str,
    ref: tuple[str, int, str] | None = None,
) -> SessionSummary | None:
    """An online session chain (None when it does not begin with session_started)."""
    fold = SessionFold(max_gap, MonthSplitter(tz_name))
    fold.feed(events, ref)
    return session_summary(chain_id, fold.summary())


def median_or_none(values: Sequence[float]) -> float | None:
    """The upper median (no averaging: the value is one that occurred), None for none."""
    return sorted(values)[len(values) // 2] if values else None


def _median_gap(times: Sequence[datetime]) -> float | None:
    return median_or_none([(b - a).total_seconds() for a, b in zip(times, times[1:], strict=False)])


def summarise_class_chain(
    chain_id: str,
    learner_id: int,
    course_id: int,
    institution_id: int,
    events: Sequence[ev.Event],
    max_gap: timedelta,
    tz_name: str,
    ref: tuple[str, int, str] | None = None,
) -> SessionSummary | None:
    """A learner's chain in a class (`class:<id>:learner:<id>`)."""
    if not events:
        return None
    clock = CreditClock(max_gap, keep_intervals=False, months=MonthSplitter(tz_name))
    for e in events:
        clock.feed(e)
    checks = [e for e in events if isinstance(e, ev.CheckRecorded)]
    first_at = clock.first_at
    if first_at is None:
        return None
    return SessionSummary(
        chain_id,
        "classroom",
        learner_id,
        course_id,
        institution_id,
        first_at,
        clock.last_at or first_at,
        clock.credited_seconds,
        clock.monthly_seconds(),
        True,  # roll calls have no sign-in check
        len(checks),
        sum(1 for e in checks if e.passed),
        _median_gap([e.at for e in checks]),
        (),
        tuple(e.at for e in checks if e.passed),
        ref,
    )


@dataclass(frozen=True, slots=True)
class Standing:
    """An institution's status over time, from its chain: (effective from, status)."""

    institution_id: int
    changes: tuple[tuple[datetime, str], ...] = ()
    # The GB/T 2260 administrative division of the latest profile recorded (records.py).
    division: str | None = None

    def status_at(self, at: datetime | None) -> str:
        """The status in force at `at` (None: the latest); active before any change."""
        status = "active"
        for effective, changed in sorted(self.changes):
            if at is None or effective <= at:
                status = changed
        return status


def summarise_standing(institution_id: int, events: Iterable[ev.Event]) -> Standing:
    changes: list[tuple[datetime, str]] = []
    division: str | None = None
    for e in events:
        if isinstance(e, se.InstitutionStatusChanged):
            changes.append((e.effective_at, e.status))
        elif isinstance(e, rec.InstitutionProfileRecorded):
            division = e.division_code
    return Standing(institution_id, tuple(changes), division)


@dataclass(frozen=True, slots=True)
class FlagSummary:
    flag_id: int
    kind: str
    institution_id: int | None
    learner_ids: tuple[int, ...]  # every learner the flag names, the flagged one first
    status: str  # open | confirmed | dismissed
    raised_at: datetime
    # The learners whose eligibility the flag holds up: the flagged learner while it is
    # open or confirmed, and the others only if a confirmation names them. Required:
    # a summary that forgot it would hold up nobody.
    blocks: tuple[int, ...]


def summarise_flag(events: Iterable[ev.Event]) -> FlagSummary | None:
    raised: se.FlagRaised | None = None
    status = "open"
    against: tuple[int, ...] = ()
    for e in events:
        if isinstance(e, se.FlagRaised):
            raised = e
        elif isinstance(e, se.FlagDecided):
            status, against = e.status, e.against or ()
    if raised is None:
        return None
    subject = raised.learner_ids[:1]
    blocks: tuple[int, ...] = ()
    if status == "open":
        blocks = subject
    elif status == "confirmed":
        blocks = subject + tuple(i for i in raised.learner_ids[1:] if i in against)
    return FlagSummary(
        raised.flag_id,
        raised.flag_kind,
        raised.institution_id,
        raised.learner_ids,
        status,
        raised.at,
        blocks,
    )


@dataclass(frozen=True, slots=True)
class SessionCredit:
    chain_id: str
    kind: str
    credited_seconds: float
    start_check_passed: bool


@dataclass(frozen=True, slots=True)
class Eligibility:
    learner_id: int
    course_id: int
    eligible: bool
    amount: float  # yuan; 0 when not eligible
    reasons: tuple[str, ...]
    online_seconds: float
    classroom_seconds: float
    credited_hours: float
    required_hours: float | None
    assessed_at: datetime | None
    sessions: tuple[SessionCredit, ...]  # every chain the hours come from
    flags: tuple[int, ...]  # open or confirmed flags naming the learner
    broken_chains: tuple[str, ...] = ()  # chains the decision reads that are broken


def evaluate(
    terms: CourseTerms | None,
    course_id: int,
    registered: bool,
    learner: LearnerSummary,
    sessions: Iterable[SessionSummary],
    flags: Iterable[FlagSummary],
    standing: Standing | None = None,
    as_of: datetime | None = None,
    broken: Iterable[str] = (),
) -> Eligibility:
    """Eligible with the amount, or every reason not. Pure. `as_of`: the moment the
    decision is for (a claim's period end; None: now), for the institution's status.
    `broken`: the chains this decision reads that are broken (none of their time counts)."""
    reasons: list[str] = []
    broken_chains = tuple(sorted(set(broken)))
    if terms is None or not terms.published:
        reasons.append("course_not_published")
    status = standing.status_at(as_of) if standing is not None else "active"
    if status in ("suspended", "expelled"):
        reasons.append(f"institution_{status}")
    if not registered:
        reasons.append("not_in_real_name_system")
    if learner.alternative:
        pass  # the non-face path: no consent to face checks, no face, by design
    elif not learner.consent:
        reasons.append("no_consent")
    elif not learner.face_enrolled:
        reasons.append("no_face_enrolled")
    if course_id not in learner.courses:
        reasons.append("not_enrolled")
    mode = terms.delivery_mode if terms is not None else "blended"
    counted: list[SessionSummary] = []
    online = classroom = 0.0
    start_failed = False
    for s in sorted(sessions, key=_chain_id):
        if s.course_id != course_id or s.learner_id != learner.learner_id:
            continue
        if s.chain_id in broken_chains:
            continue
        if s.kind == "online":
            if mode == "classroom":
                continue
        elif mode == "online":
            continue
        if terms is not None and not _within(s.started_at, terms):
            continue
        counted.append(s)
        if s.kind == "online":
            online += s.credited_seconds
        else:
            classroom += s.credited_seconds
        start_failed = start_failed or not s.start_check_passed
    hours = (online + classroom) / 3600.0
    if terms is not None and hours + 1e-9 < terms.required_hours:
        reasons.append("insufficient_hours")
    if start_failed:
        reasons.append("start_check_not_passed")
    result = learner.assessment(course_id)
    if result is None:
        reasons.append("no_assessment")
    elif not result[0]:
        reasons.append("assessment_failed")
    named = [f for f in flags if learner.learner_id in f.blocks]
    if any(f.status == "open" for f in named):
        reasons.append("open_fraud_flag")
    if any(f.status == "confirmed" for f in named):
        reasons.append("confirmed_fraud_flag")
    if broken_chains:
        reasons.append("chain_broken")
    amount = 0.0
    if not reasons and terms is not None:
        amount = _amount(terms, hours)
    return Eligibility(
        learner.learner_id,
        course_id,
        not reasons,
        amount,
        tuple(reasons),
        round(online, 6),
        round(classroom, 6),
        round(hours, 6),
        terms.required_hours if terms is not None else None,
        result[1] if result is not None else None,
        tuple(
            SessionCredit(s.chain_id, s.kind, s.credited_seconds, s.start_check_passed)
            for s in counted
        ),
        tuple(sorted(f.flag_id for f in named if f.status != "dismissed")),
        broken_chains,
    )


_chain_id = attrgetter("chain_id")


def _within(at: datetime, terms: CourseTerms) -> bool:
    if terms.valid_from is not None and at < terms.valid_from:
        return False
    return not (terms.valid_until is not None and at >= terms.valid_until)


def _amount(terms: CourseTerms, hours: float) -> float:
    if terms.subsidy_kind == "per_hour":
        amount = terms.subsidy_amount * hours
        if terms.subsidy_cap is not None:
            amount = min(amount, terms.subsidy_cap)
        return round(amount, 2)
    return round(terms.subsidy_amount, 2)
