"""The catalogue, institution status, enrolment, assessments, eligibility, claims,
the monthly report and fraud flags: the service behind `supervisor.api.routes.subsidy`.

Every fact that affects money is appended to the ledger first (course rules as
published, status changes, enrolments, assessment results, flags and their
decisions); the tables in `storage.subsidy_sql` are projections for queries.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from storage.exceptions import Duplicate
from storage.types import (
    AssessmentResult,
    Course,
    CourseEnrolment,
    CourseRules,
    Flag,
    FlagDecision,
    FlagStatus,
    Institution,
    InstitutionRecord,
    InstitutionStatus,
    PublicationStatus,
    Role,
    SubsidyKind,
)
from supervisor.auth import (
    BUREAU,
    READ_ALL,
    Principal,
    can_read_institution,
    can_read_learner,
    require_bureau,
    require_decider,
    require_role,
)
from supervisor.checks.flags import raise_flag
from supervisor.context import Context
from supervisor.errors import Conflict, Forbidden, InvalidInput
from supervisor.ledger import codec
from supervisor.ledger import events as ev
from supervisor.ledger import subsidy as se
from supervisor.registry.credit_code import code_problem, normalise
from supervisor.registry.records import RecordsService, check_classification
from supervisor.registry.status import ensure_may_register
from supervisor.rules import fraud
from supervisor.rules.eligibility import Eligibility
from supervisor.rules.flags import FlagView, view
from supervisor.rules.months import month_bounds
from supervisor.subsidy.flags import add_statement, decide, statements
from supervisor.subsidy.report import ClaimRow, claims, monthly_report
from supervisor.subsidy.scan import Snapshot, learner_snapshot, scan


@dataclass(frozen=True, slots=True)
class PublicCourse:
    """A course of the published catalogue, with its institution (and its status)."""

    course: Course
    rules: CourseRules
    institution: Institution


@dataclass(frozen=True, slots=True)
class FlagDetail:
    view: FlagView
    decisions: tuple[FlagDecision, ...]
    raised_ref: tuple[str, int, str] | None
    statements: tuple[se.FlagStatement, ...] = ()


class SubsidyService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.store = ctx.storage.subsidy
        self.registry = ctx.storage.registry
        self.records = RecordsService(ctx)

    # -- institutions ----------------------------------------------------------------

    async def institution_record(self, p: Principal, institution_id: int) -> InstitutionRecord:
        can_read_institution(p, institution_id)
        return await self.ctx.db(self.store.institution_record, institution_id)

    async def set_credit_code(
        self, p: Principal, institution_id: int, code: str, reason: str | None = None
    ) -> InstitutionRecord:
        """Record the institution's credit code, or correct it (the bureau). A correction
        needs a reason and is recorded in the institution's chain with the earlier code."""
        require_bureau(p)
        problem = code_problem(code)
        if problem is not None:
            raise InvalidInput(
                f"unified social credit code {problem}", reason="invalid_credit_code"
            )
        code = normalise(code)
        current = await self.ctx.db(self.store.institution_record, institution_id)
        if current.credit_code == code:
            raise Conflict("the institution already has this code", reason="same_credit_code")
        if current.credit_code is not None and not (reason or "").strip():
            raise InvalidInput(
                "correcting a recorded credit code needs a reason", reason="reason_required"
            )
        async with self.ctx.lock(se.institution_chain(institution_id)):
            try:
                record = await self.ctx.db(self.store.correct_credit_code, institution_id, code)
            except Duplicate as exc:
                raise Conflict(str(exc), reason="duplicate_credit_code") from None
            event = se.CreditCodeCorrected(
                institution_id,
                current.credit_code,
                code,
                (reason or "first recorded").strip(),
                p.actor,
                self.ctx.clock(),
            )
            await self.ctx.append(se.institution_chain(institution_id), [codec.encode(event)])
        return record

    async def change_status(
        self,
        p: Principal,
        institution_id: int,
        status: InstitutionStatus,
        reason: str,
        effective_at: datetime | None,
    ) -> InstitutionRecord:
        """Suspend, expel or reinstate (the bureau); recorded in the ledger. Reinstating an
        expelled institution takes an admin."""
        require_bureau(p)
        if not reason.strip():
            raise InvalidInput("a reason is required", reason="reason_required")
        current = await self.ctx.db(self.store.institution_record, institution_id)
        if (
            current.status is InstitutionStatus.expelled
            and status is not InstitutionStatus.expelled
        ):
            if p.role is not Role.admin:
                raise Forbidden("only an admin can reinstate an expelled institution")
        if current.status is status:
            raise Conflict(f"the institution is already {status.value}", reason="same_status")
        now = self.ctx.clock()
        at = effective_at or now
        await self.ctx.append(
            se.institution_chain(institution_id),
            [
                codec.encode(
                    se.InstitutionStatusChanged(
                        institution_id, status.value, reason.strip(), at, p.actor, now
                    )
                )
            ],
        )
        return await self.ctx.db(
            self.store.change_status, institution_id, status, reason, at, p.actor
        )

    async def public_list(
        self, status: InstitutionStatus
    ) -> list[tuple[Institution, InstitutionRecord]]:
        """Expelled institutions, for public exposure (no token)."""
        return await self.ctx.db(self.store.institutions_with_status, status)

    async def public_catalogue(
        self, text: str = "", status: InstitutionStatus | None = None
    ) -> tuple[list[Institution], list[PublicCourse]]:
        """The published catalogue, public (no token): institutions with their status,
        and the courses whose rules are published, so that workers can choose. `text`
        keeps what names it (case-insensitive) in a course name, an occupation or an
        institution name; `status` keeps the institutions with that status."""
        institutions = await self.ctx.db(self.registry.list_institutions)
        found = await self.ctx.db(self.registry.list_courses, None)
        rules = await self.ctx.db(self.store.all_course_rules)
        needle = text.strip().casefold()
        by_id = {i.id: i for i in institutions if status is None or i.status is status}
        courses = []
        for c in found:
            r = rules.get(c.id)
            inst = by_id.get(c.institution_id)
            if r is None or r.status is not PublicationStatus.published or inst is None:
                continue
            if needle and not any(
                needle in x.casefold() for x in (c.name, r.occupation, inst.name)
            ):
                continue
            courses.append(PublicCourse(c, r, inst))
        listed = [i for i in by_id.values() if not needle or needle in i.name.casefold()] + [
            p.institution for p in courses
        ]
        return sorted(set(listed), key=lambda i: i.id), courses

    # -- the catalogue ----------------------------------------------------------------

    async def _course(self, p: Principal, course_id: int, duty: str = "read") -> Course:
        """The course, if the principal may do `duty` with it: "read", "standards" (the
        subsidy and the catalogue: the bureau's) or "register" (enrolments and
        assessment results: the institution's, while it may train)."""
        course = await self.ctx.db(self.registry.get_course, course_id)
        if duty == "standards":
            require_bureau(p)
        elif duty == "register":
            await ensure_may_register(self.ctx, p, course.institution_id)
        elif p.role is not Role.learner:
            can_read_institution(p, course.institution_id)
        return course

    async def set_rules(
        self,
        p: Principal,
        course_id: int,
        occupation: str,
        skill_level: int,
        subsidy_kind: SubsidyKind,
        subsidy_amount: float,
        subsidy_cap: float | None,
        valid_from: datetime | None,
        valid_until: datetime | None,
    ) -> CourseRules:
        course = await self._course(p, course_id, duty="standards")
        current = await self.ctx.db(self.store.course_rules, course_id)
        if current is not None and current.status is not PublicationStatus.draft:
            raise Conflict(f"the rules are {current.status.value}", reason="rules_frozen")
        if subsidy_kind is SubsidyKind.per_hour and subsidy_cap is None:
            raise InvalidInput("a per-hour subsidy needs a cap", reason="cap_required")
        # The rules' occupation is the course's occupation code (2022 classification),
        # and the bureau's rules classify the course: the two never disagree.
        occupation = occupation.strip()
        check_classification(occupation, skill_level)
        await self.records.record_classification(
            p, course, occupation, skill_level, same_is_conflict=False
        )
        try:
            return await self.ctx.db(
                self.store.set_course_rules,
                course_id,
                occupation,
                skill_level,
                subsidy_kind,
                subsidy_amount,
                subsidy_cap,
                valid_from,
                valid_until,
            )
        except Exception as exc:
            from storage.exceptions import InvalidState

            if isinstance(exc, InvalidState):
                raise Conflict(str(exc), reason="rules_frozen") from None
            raise

    async def rules(self, p: Principal, course_id: int) -> tuple[Course, CourseRules | None]:
        course = await self._course(p, course_id)
        return course, await self.ctx.db(self.store.course_rules, course_id)

    async def catalogue(
        self, p: Principal, institution_id: int | None
    ) -> list[tuple[Course, CourseRules | None]]:
        if p.role is Role.operator:
            institution_id = p.institution_id
        elif p.role is Role.learner:
            learner = await self.ctx.db(self.registry.get_learner, p.learner_id or -1)
            institution_id = learner.institution_id
        found = await self.ctx.db(self.registry.list_courses, institution_id)
        rules = await self.ctx.db(self.store.all_course_rules)
        out = [(c, rules.get(c.id)) for c in found]
        if p.role is Role.learner:
            out = [
                (c, r) for c, r in out if r is not None and r.status is PublicationStatus.published
            ]
        return out

    async def publish(self, p: Principal, course_id: int) -> CourseRules:
        course = await self._course(p, course_id, duty="standards")
        rules = await self.ctx.db(self.store.course_rules, course_id)
        if rules is None:
            raise Conflict("the course has no catalogue rules yet", reason="no_rules")
        if rules.status is not PublicationStatus.draft:
            raise Conflict(f"the rules are {rules.status.value}", reason="rules_frozen")
        check_classification(rules.occupation, rules.skill_level)
        classified = await self.ctx.db(self.ctx.storage.records.classification, course_id)
        if classified is None:
            classified = await self.records.record_classification(
                p, course, rules.occupation, rules.skill_level
            )
        if (classified.occupation_code, classified.skill_level) != (
            rules.occupation,
            rules.skill_level,
        ):
            raise Conflict(
                "the course was re-classified after its rules were set: set the rules again",
                reason="classification_mismatch",
                occupation_code=classified.occupation_code,
                skill_level=classified.skill_level,
            )
        now = self.ctx.clock()
        async with self.ctx.lock(se.course_chain(course_id)):
            await self.ctx.append(
                se.course_chain(course_id),
                [
                    codec.encode(
                        se.CourseRulesPublished(
                            course.id,
                            course.institution_id,
                            course.name,
                            course.delivery_mode.value,
                            course.required_hours,
                            rules.occupation,
                            rules.skill_level,
                            rules.subsidy_kind.value,
                            rules.subsidy_amount,
                            rules.subsidy_cap,
                            rules.valid_from,
                            rules.valid_until,
                            p.actor,
                            now,
                        )
                    )
                ],
            )
            return await self.ctx.db(
                self.store.set_course_status, course_id, PublicationStatus.published
            )

    async def withdraw(self, p: Principal, course_id: int) -> CourseRules:
        await self._course(p, course_id, duty="standards")
        rules = await self.ctx.db(self.store.course_rules, course_id)
        if rules is None or rules.status is not PublicationStatus.published:
            raise Conflict("only published rules can be withdrawn", reason="not_published")
        await self.ctx.append(
            se.course_chain(course_id),
            [codec.encode(se.CourseRulesWithdrawn(course_id, p.actor, self.ctx.clock()))],
        )
        return await self.ctx.db(
            self.store.set_course_status, course_id, PublicationStatus.withdrawn
        )

    # -- enrolment and assessment -----------------------------------------------------------

    async def enrol(
        self, p: Principal, course_id: int, learner_ids: list[int]
    ) -> list[CourseEnrolment]:
        """All or none: every learner is checked before anything is recorded."""
        course = await self._course(p, course_id, duty="register")
        if len(set(learner_ids)) != len(learner_ids):
            raise InvalidInput("a learner is listed twice", reason="duplicate_learner")
        done = {e.learner_id for e in await self.ctx.db(self.store.enrolments, course_id)}
        for lid in learner_ids:
            learner = await self.ctx.db(self.registry.get_learner, lid)
            if learner.institution_id != course.institution_id:
                raise Conflict(
                    f"learner {lid} belongs to another institution",
                    reason="learner_other_institution",
                )
            if lid in done:
                raise Conflict(f"learner {lid} is already enrolled", reason="already_enrolled")
        out = []
        for lid in learner_ids:
            now = self.ctx.clock()
            await self.ctx.append(
                ev.learner_chain(lid),
                [
                    codec.encode(
                        se.LearnerEnrolled(lid, course.id, course.institution_id, p.actor, now)
                    )
                ],
            )
            out.append(await self.ctx.db(self.store.enrol, course.id, lid, p.actor, now))
        return out

    async def enrolments(self, p: Principal, course_id: int) -> list[CourseEnrolment]:
        await self._course(p, course_id)
        require_role(p, *READ_ALL, Role.operator)
        return await self.ctx.db(self.store.enrolments, course_id)

    async def record_assessment(
        self,
        p: Principal,
        course_id: int,
        learner_id: int,
        passed: bool,
        score: float | None,
        assessed_at: datetime | None,
    ) -> AssessmentResult:
        course = await self._course(p, course_id, duty="register")
        enrolled = await self.ctx.db(self.store.enrolments, course_id, None, learner_id)
        if not enrolled:
            raise Conflict("the learner is not enrolled in the course", reason="not_enrolled")
        now = self.ctx.clock()
        at = assessed_at or now
        if at > now:
            raise InvalidInput("an assessment cannot be dated in the future", reason="future_date")
        result = await self.ctx.db(
            self.store.record_assessment, course.id, learner_id, passed, score, at, p.actor
        )
        await self.ctx.append(
            ev.learner_chain(learner_id),
            [
                codec.encode(
                    se.AssessmentRecorded(
                        learner_id, course.id, result.id, passed, score, at, p.actor, now
                    )
                )
            ],
        )
        return result

    async def assessments(self, p: Principal, course_id: int) -> list[AssessmentResult]:
        await self._course(p, course_id)
        require_role(p, *READ_ALL, Role.operator)
        return await self.ctx.db(self.store.assessments, course_id)

    # -- eligibility, claims, report ----------------------------------------------------------

    async def eligibility(self, p: Principal, learner_id: int, course_id: int) -> Eligibility:
        learner = await self.ctx.db(self.registry.get_learner, learner_id)
        can_read_learner(p, learner.id, learner.institution_id)
        await self.ctx.db(self.registry.get_course, course_id)
        snap = await self.ctx.db(
            learner_snapshot,
            self.ctx.storage,
            self.ctx.settings,
            learner_id,
            course_id,
            metrics=self.ctx.metrics,
        )
        return snap.eligibility(learner_id, course_id)

    def _scope(self, p: Principal, institution_id: int | None) -> int | None:
        if p.role is Role.operator:
            if institution_id is not None and institution_id != p.institution_id:
                raise Forbidden("this belongs to another institution", reason="other_institution")
            return p.institution_id
        require_role(p, *READ_ALL)
        return institution_id

    async def _snapshot(self, p: Principal, until: datetime | None, recompute: bool) -> Snapshot:
        if recompute:
            require_decider(p)
        return await self.ctx.db(
            scan,
            self.ctx.storage,
            self.ctx.settings,
            until,
            use_summaries=not recompute,
            metrics=self.ctx.metrics,
        )

    async def _maps(self) -> tuple[dict[int, Course], dict[int, Any]]:
        courses = {c.id: c for c in await self.ctx.db(self.registry.list_courses, None)}
        learners = {lr.id: lr for lr in await self.ctx.db(self.registry.list_learners, None)}
        return courses, learners

    async def claims(
        self,
        p: Principal,
        institution_id: int | None,
        start: datetime,
        end: datetime,
        recompute: bool = False,
    ) -> list[ClaimRow]:
        institution_id = self._scope(p, institution_id)
        if end <= start:
            raise InvalidInput("the period must end after it starts", reason="invalid_period")
        courses, learners = await self._maps()
        snap = await self._snapshot(p, end, recompute)
        return claims(snap, courses, learners, institution_id, start, end)

    async def report(
        self, p: Principal, month: str, institution_id: int | None, recompute: bool = False
    ) -> dict[str, Any]:
        institution_id = self._scope(p, institution_id)
        tz = self.ctx.settings.subsidy.timezone
        try:
            start, end = month_bounds(month, tz)
        except ValueError as exc:
            raise InvalidInput(str(exc), reason="invalid_month") from None
        courses = {c.id: c for c in await self.ctx.db(self.registry.list_courses, None)}
        institutions = await self.ctx.db(self.registry.list_institutions)
        snap = await self._snapshot(p, end, recompute)
        return await self.ctx.db(
            monthly_report,
            snap,
            institutions,
            courses,
            month,
            start,
            end,
            tz,
            institution_id,
        )

    # -- flags ------------------------------------------------------------------------

    def _flag_scope(self, p: Principal, flag: Flag) -> None:
        if p.role is Role.learner:
            raise Forbidden("learners cannot read flags", reason="wrong_role")
        if p.role is Role.operator and flag.institution_id != p.institution_id:
            raise Forbidden("this belongs to another institution", reason="other_institution")

    async def _shown(self, p: Principal, flags: list[Flag]) -> list[FlagView]:
        """Flag views as the principal may see them: an operator never sees the ids of
        another institution's learners (a duplicated face enrolled elsewhere)."""
        views = [view(f) for f in flags]
        if p.role is not Role.operator or not any(v.other_learner_ids for v in views):
            return views
        home = await self.ctx.db(self.registry.learner_institutions)
        out = []
        for v in views:
            mine = tuple(i for i in v.other_learner_ids if home.get(i) == p.institution_id)
            elsewhere = len(v.other_learner_ids) - len(mine)
            out.append(replace(v, other_learner_ids=mine, others_elsewhere=elsewhere))
        return out

    async def list_flags(
        self,
        p: Principal,
        status: FlagStatus | None,
        kind: str | None,
        institution_id: int | None,
        learner_id: int | None,
    ) -> list[FlagView]:
        if p.role is Role.learner:
            raise Forbidden("learners cannot read flags", reason="wrong_role")
        institution_id = self._scope(p, institution_id)
        found = await self.ctx.db(self.store.find_flags, status, kind, institution_id, learner_id)
        return await self._shown(p, found)

    async def flag(self, p: Principal, flag_id: int) -> FlagDetail:
        flag = await self.ctx.db(self.store.get_flag, flag_id)
        self._flag_scope(p, flag)
        decisions = (await self.ctx.db(self.store.decisions, [flag_id]))[flag_id]
        head = await self.ctx.db(self.ctx.storage.ledger.read_chain, se.flag_chain(flag_id), 0, 1)
        ref = (head[0].chain_id, head[0].seq, head[0].hash) if head else None
        said = await self.ctx.db(statements, self.ctx.storage, flag_id)
        (shown,) = await self._shown(p, [flag])
        return FlagDetail(shown, tuple(decisions), ref, tuple(said))

    async def decide(
        self,
        p: Principal,
        flag_id: int,
        status: FlagStatus,
        note: str,
        against: list[int] | None = None,
    ) -> FlagDetail:
        """Confirm or dismiss a flag (the bureau, an inspector or an admin: never the
        institution it is about). `against`: the other learners the flag names that a
        confirmation also holds against."""
        require_decider(p)
        if status is FlagStatus.open:
            raise InvalidInput("a decision confirms or dismisses", reason="invalid_status")
        flag = await self.ctx.db(self.store.get_flag, flag_id)
        named = view(flag).other_learner_ids
        against = against or []
        if any(i not in named for i in against):
            raise InvalidInput(
                "a decision can hold only against learners the flag names",
                reason="not_named_by_flag",
            )
        if against and status is not FlagStatus.confirmed:
            raise InvalidInput(
                "only a confirmation holds against learners", reason="invalid_status"
            )
        async with self.ctx.lock(se.flag_chain(flag_id)):
            await self.ctx.db(
                decide,
                self.ctx.storage,
                flag,
                status.value,
                note,
                p.actor,
                self.ctx.clock(),
                against,
            )
        return await self.flag(p, flag_id)

    async def add_statement(self, p: Principal, flag_id: int, statement: str) -> FlagDetail:
        """The institution's statement on a flag about its learner (its operator; bureau
        staff may record one made in person). Recorded in the flag's chain; it decides
        nothing."""
        require_role(p, Role.operator, *BUREAU)
        flag = await self.ctx.db(self.store.get_flag, flag_id)
        self._flag_scope(p, flag)
        text = statement.strip()
        if not text:
            raise InvalidInput("the statement is empty", reason="empty_statement")
        now = self.ctx.clock()
        async with self.ctx.lock(se.flag_chain(flag_id)):
            await self.ctx.db(add_statement, self.ctx.storage, flag, text, p.actor, now)
        return await self.flag(p, flag_id)

    async def scan_fraud(self, p: Principal, month: str | None) -> list[Flag]:
        """Find fraud signals in the ledger (of a month, or all of it) and raise a
        flag for each one not flagged before (admin, bureau or inspector)."""
        require_decider(p)
        return await self.ctx.db(run_fraud_scan, self.ctx, month, self.ctx.clock())


def run_fraud_scan(ctx: Context, month: str | None, now: datetime) -> list[Flag]:
    """Blocking: scan the ledger and raise new flags. Used by the API and the CLI."""
    return fraud_scan(ctx.storage, ctx.settings, month, now)


def fraud_scan(storage: Any, settings: Any, month: str | None, now: datetime) -> list[Flag]:
    until = None
    start = None
    if month is not None:
        start, until = month_bounds(month, settings.subsidy.timezone)
    snap = scan(storage, settings, until)
    sessions = [s for s in snap.all_sessions() if start is None or s.started_at >= start]
    signals = fraud.all_signals(sessions, settings.subsidy, month or "all")
    known = {view(f).key for f in storage.subsidy.find_flags()}
    raised = []
    for s in signals:
        if s.key in known:
            continue
        known.add(s.key)
        raised.append(
            raise_flag(
                storage,
                s.kind,
                s.institution_id,
                s.learner_id,
                s.other_learner_ids,
                s.summary,
                s.evidence,
                now,
                key=s.key,
                scores=s.scores,
            )
        )
    return raised
