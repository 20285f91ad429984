"""`SubsidyStore` on SQLAlchemy Core: institutions' credit codes and status history,
the course catalogue's rules, course enrolments, assessment results, and the
decisions on fraud flags.

History tables (status changes, assessment results, flag decisions) are only ever
inserted into; the latest row counts. Two projections are kept equal to the
latest history row in the same transaction, for the stores that already read
them: `institutions.status` and the decision columns of `flags`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row, delete, func, insert, or_, select, update

from storage.engine import Database
from storage.exceptions import Duplicate, InvalidInput, InvalidState, NotFound
from storage.models import (
    assessment_results,
    course_enrolments,
    course_rules,
    courses,
    flag_decisions,
    flags,
    institution_codes,
    institution_status_changes,
    institutions,
    learners,
)
from storage.registry_sql import _flag, _get, _institution
from storage.types import (
    AssessmentResult,
    CourseEnrolment,
    CourseRules,
    Flag,
    FlagDecision,
    FlagStatus,
    Institution,
    InstitutionRecord,
    InstitutionStatus,
    PublicationStatus,
    SubsidyKind,
)
from storage.validate import aware, enum_value, ident, text


def _now() -> datetime:
    return datetime.now(UTC)


class SqlSubsidyStore:
    """Thread-safe; every method is one transaction."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- institutions ------------------------------------------------------------------

    def set_credit_code(self, institution_id: int, credit_code: str) -> InstitutionRecord:
        """Record the institution's code once; raises `Duplicate` when the code is
        another institution's and `InvalidState` when this one already has a code."""
        code = text(credit_code, "credit code", 18)
        with self._db.write() as conn:
            _get(conn, institutions, institution_id, "institution")
            found = conn.execute(
                select(institution_codes.c.credit_code).where(
                    institution_codes.c.institution_id == institution_id
                )
            ).first()
            if found is not None:
                raise InvalidState(f"institution {institution_id} already has a credit code")
            taken = conn.execute(
                select(institution_codes.c.institution_id).where(
                    institution_codes.c.credit_code == code
                )
            ).first()
            if taken is not None:
                raise Duplicate("this credit code belongs to another institution")
            conn.execute(
                insert(institution_codes).values(institution_id=institution_id, credit_code=code)
            )
            return _record(conn, institution_id)

    def correct_credit_code(self, institution_id: int, credit_code: str) -> InstitutionRecord:
        """Replace the institution's code (the bureau's correction, recorded in the ledger
        by the caller); `Duplicate` when the code is another institution's."""
        code = text(credit_code, "credit code", 18)
        with self._db.write() as conn:
            _get(conn, institutions, institution_id, "institution")
            taken = conn.execute(
                select(institution_codes.c.institution_id).where(
                    institution_codes.c.credit_code == code
                )
            ).first()
            if taken is not None and taken.institution_id != institution_id:
                raise Duplicate("this credit code belongs to another institution")
            conn.execute(
                delete(institution_codes).where(
                    institution_codes.c.institution_id == institution_id
                )
            )
            conn.execute(
                insert(institution_codes).values(institution_id=institution_id, credit_code=code)
            )
            return _record(conn, institution_id)

    def institution_record(self, institution_id: int) -> InstitutionRecord:
        with self._db.read() as conn:
            _get(conn, institutions, institution_id, "institution")
            return _record(conn, institution_id)

    def change_status(
        self,
        institution_id: int,
        status: InstitutionStatus,
        reason: str,
        effective_at: datetime,
        decided_by: str,
    ) -> InstitutionRecord:
        status = enum_value(InstitutionStatus, status, "institution status")
        reason = text(reason, "reason", 2000)
        aware(effective_at, "effective_at")
        by = text(decided_by, "decided_by", 200)
        with self._db.write() as conn:
            _get(conn, institutions, institution_id, "institution", for_update=True)
            conn.execute(
                insert(institution_status_changes).values(
                    institution_id=institution_id,
                    status=status.value,
                    reason=reason,
                    effective_at=effective_at,
                    decided_by=by,
                    recorded_at=_now(),
                )
            )
            conn.execute(
                update(institutions)
                .where(institutions.c.id == institution_id)
                .values(status=status.value)
            )
            return _record(conn, institution_id)

    def institutions_with_status(
        self, status: InstitutionStatus
    ) -> list[tuple[Institution, InstitutionRecord]]:
        status = enum_value(InstitutionStatus, status, "institution status")
        with self._db.read() as conn:
            rows = conn.execute(
                select(institutions)
                .where(institutions.c.status == status.value)
                .order_by(institutions.c.id)
            ).all()
            return [(_institution(r), _record(conn, r.id)) for r in rows]

    # -- the catalogue -----------------------------------------------------------------

    def set_course_rules(
        self,
        course_id: int,
        occupation: str,
        skill_level: int,
        subsidy_kind: SubsidyKind,
        subsidy_amount: float,
        subsidy_cap: float | None,
        valid_from: datetime | None,
        valid_until: datetime | None,
    ) -> CourseRules:
        """Create or replace a draft's rules; published or withdrawn rules are frozen."""
        occupation = text(occupation, "occupation", 200)
        kind = enum_value(SubsidyKind, subsidy_kind, "subsidy kind")
        if type(skill_level) is not int or not 1 <= skill_level <= 5:
            raise InvalidInput("skill level must be an int from 1 to 5")
        if subsidy_amount < 0 or (subsidy_cap is not None and subsidy_cap < 0):
            raise InvalidInput("subsidy amounts must be >= 0")
        for value, what in ((valid_from, "valid_from"), (valid_until, "valid_until")):
            if value is not None:
                aware(value, what)
        if valid_from and valid_until and valid_until <= valid_from:
            raise InvalidInput("valid_until must be after valid_from")
        values = {
            "occupation": occupation,
            "skill_level": skill_level,
            "subsidy_kind": kind.value,
            "subsidy_amount": float(subsidy_amount),
            "subsidy_cap": None if subsidy_cap is None else float(subsidy_cap),
            "valid_from": valid_from,
            "valid_until": valid_until,
            "updated_at": _now(),
        }
        with self._db.write() as conn:
            _get(conn, courses, course_id, "course", for_update=True)
            current = conn.execute(
                select(course_rules).where(course_rules.c.course_id == course_id)
            ).first()
            if current is None:
                conn.execute(
                    insert(course_rules).values(
                        course_id=course_id, status=PublicationStatus.draft.value, **values
                    )
                )
            elif current.status != PublicationStatus.draft.value:
                raise InvalidState(f"the rules of course {course_id} are {current.status}")
            else:
                conn.execute(
                    update(course_rules)
                    .where(course_rules.c.course_id == course_id)
                    .values(**values)
                )
            return _rules(_one_rules(conn, course_id))

    def set_course_status(self, course_id: int, status: PublicationStatus) -> CourseRules:
        """draft -> published -> withdrawn, never back."""
        status = enum_value(PublicationStatus, status, "publication status")
        order = [PublicationStatus.draft, PublicationStatus.published, PublicationStatus.withdrawn]
        with self._db.write() as conn:
            row = _one_rules(conn, course_id)
            current = PublicationStatus(row.status)
            if order.index(status) != order.index(current) + 1:
                raise InvalidState(f"the rules of course {course_id} are {current.value}")
            conn.execute(
                update(course_rules)
                .where(course_rules.c.course_id == course_id)
                .values(status=status.value, updated_at=_now())
            )
            return _rules(_one_rules(conn, course_id))

    def course_rules(self, course_id: int) -> CourseRules | None:
        with self._db.read() as conn:
            row = conn.execute(
                select(course_rules).where(course_rules.c.course_id == course_id)
            ).first()
        return None if row is None else _rules(row)

    def all_course_rules(self) -> dict[int, CourseRules]:
        with self._db.read() as conn:
            return {r.course_id: _rules(r) for r in conn.execute(select(course_rules))}

    # -- enrolments and assessments ----------------------------------------------------

    def enrol(self, course_id: int, learner_id: int, by: str, at: datetime) -> CourseEnrolment:
        """Raises `Duplicate` when enrolled already, `InvalidInput` for a learner of
        another institution."""
        by = text(by, "enrolled_by", 200)
        aware(at, "enrolled_at")
        with self._db.write() as conn:
            course = _get(conn, courses, course_id, "course")
            learner = _get(conn, learners, learner_id, "learner")
            if course.institution_id != learner.institution_id:
                raise InvalidInput("the learner belongs to another institution than the course")
            found = conn.execute(
                select(course_enrolments).where(
                    course_enrolments.c.course_id == course_id,
                    course_enrolments.c.learner_id == learner_id,
                )
            ).first()
            if found is not None:
                raise Duplicate(f"learner {learner_id} is already enrolled in course {course_id}")
            conn.execute(
                insert(course_enrolments).values(
                    course_id=course_id, learner_id=learner_id, enrolled_at=at, enrolled_by=by
                )
            )
        return CourseEnrolment(course_id, learner_id, at, by)

    def enrolments(
        self,
        course_id: int | None = None,
        institution_id: int | None = None,
        learner_id: int | None = None,
    ) -> list[CourseEnrolment]:
        e = course_enrolments
        stmt = select(e).order_by(e.c.course_id, e.c.learner_id)
        if course_id is not None:
            stmt = stmt.where(e.c.course_id == course_id)
        if learner_id is not None:
            stmt = stmt.where(e.c.learner_id == learner_id)
        if institution_id is not None:
            stmt = stmt.join(courses, courses.c.id == e.c.course_id).where(
                courses.c.institution_id == institution_id
            )
        with self._db.read() as conn:
            return [
                CourseEnrolment(r.course_id, r.learner_id, r.enrolled_at, r.enrolled_by)
                for r in conn.execute(stmt)
            ]

    def record_assessment(
        self,
        course_id: int,
        learner_id: int,
        passed: bool,
        score: float | None,
        assessed_at: datetime,
        by: str,
    ) -> AssessmentResult:
        """Only for an enrolled learner (`InvalidState` otherwise)."""
        by = text(by, "recorded_by", 200)
        aware(assessed_at, "assessed_at")
        if type(passed) is not bool:
            raise InvalidInput("passed must be a bool")
        with self._db.write() as conn:
            found = conn.execute(
                select(course_enrolments).where(
                    course_enrolments.c.course_id == course_id,
                    course_enrolments.c.learner_id == learner_id,
                )
            ).first()
            if found is None:
                raise InvalidState(f"learner {learner_id} is not enrolled in course {course_id}")
            row = conn.execute(
                insert(assessment_results)
                .values(
                    course_id=course_id,
                    learner_id=learner_id,
                    passed=passed,
                    score=score,
                    assessed_at=assessed_at,
                    recorded_by=by,
                )
                .returning(*assessment_results.c)
            ).one()
        return _assessment(row)

    def assessments(
        self, course_id: int | None = None, learner_id: int | None = None
    ) -> list[AssessmentResult]:
        a = assessment_results
        stmt = select(a).order_by(a.c.id)
        if course_id is not None:
            stmt = stmt.where(a.c.course_id == course_id)
        if learner_id is not None:
            stmt = stmt.where(a.c.learner_id == learner_id)
        with self._db.read() as conn:
            return [_assessment(r) for r in conn.execute(stmt)]

    # -- flags ---------------------------------------------------------------------------

    def get_flag(self, flag_id: int) -> Flag:
        with self._db.read() as conn:
            return _flag(_get(conn, flags, flag_id, "flag"))

    def find_flags(
        self,
        status: FlagStatus | None = None,
        kind: str | None = None,
        institution_id: int | None = None,
        learner_id: int | None = None,
    ) -> list[Flag]:
        """Flags by status, kind, institution and learner (as the flagged learner or
        the other one)."""
        stmt = select(flags).order_by(flags.c.id)
        if status is not None:
            stmt = stmt.where(flags.c.status == enum_value(FlagStatus, status, "flag status").value)
        if kind is not None:
            stmt = stmt.where(flags.c.kind == ident(kind, "flag kind"))
        if institution_id is not None:
            stmt = stmt.where(flags.c.institution_id == institution_id)
        if learner_id is not None:
            stmt = stmt.where(
                or_(flags.c.learner_id == learner_id, flags.c.other_learner_id == learner_id)
            )
        with self._db.read() as conn:
            return [_flag(r) for r in conn.execute(stmt)]

    def record_decision(
        self,
        flag_id: int,
        status: FlagStatus,
        note: str,
        decided_by: str,
        decided_at: datetime,
        ledger_ref: tuple[str, int, str],
    ) -> FlagDecision:
        """Record a decision already appended to the ledger at `ledger_ref` (chain,
        seq, hash); it supersedes any earlier one."""
        status = enum_value(FlagStatus, status, "flag status")
        if status is FlagStatus.open:
            raise InvalidInput("a decision must confirm or dismiss the flag")
        by = text(decided_by, "decided_by", 200)
        if not isinstance(note, str):
            raise InvalidInput("decision note must be a string")
        aware(decided_at, "decided_at")
        chain_id, seq, hash_ = ledger_ref
        with self._db.write() as conn:
            _get(conn, flags, flag_id, "flag", for_update=True)
            row = conn.execute(
                insert(flag_decisions)
                .values(
                    flag_id=flag_id,
                    status=status.value,
                    note=note,
                    decided_by=by,
                    decided_at=decided_at,
                    chain_id=chain_id,
                    seq=seq,
                    hash=hash_,
                )
                .returning(*flag_decisions.c)
            ).one()
            conn.execute(
                update(flags)
                .where(flags.c.id == flag_id)
                .values(
                    status=status.value, decided_at=decided_at, decided_by=by, decision_note=note
                )
            )
        return _decision(row)

    def decisions(self, flag_ids: Sequence[int]) -> dict[int, list[FlagDecision]]:
        out: dict[int, list[FlagDecision]] = {i: [] for i in flag_ids}
        ids = list(flag_ids)
        with self._db.read() as conn:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                stmt = (
                    select(flag_decisions)
                    .where(flag_decisions.c.flag_id.in_(chunk))
                    .order_by(flag_decisions.c.id)
                )
                for r in conn.execute(stmt):
                    out[r.flag_id].append(_decision(r))
        return out

    def flag_counts(self) -> int:
        with self._db.read() as conn:
            return int(conn.execute(select(func.count()).select_from(flags)).scalar_one())


# -- helpers --------------------------------------------------------------------------


def _record(conn: Any, institution_id: int) -> InstitutionRecord:
    code = conn.execute(
        select(institution_codes.c.credit_code).where(
            institution_codes.c.institution_id == institution_id
        )
    ).scalar()
    last = conn.execute(
        select(institution_status_changes)
        .where(institution_status_changes.c.institution_id == institution_id)
        .order_by(institution_status_changes.c.id.desc())
        .limit(1)
    ).first()
    if last is None:
        status = conn.execute(
            select(institutions.c.status).where(institutions.c.id == institution_id)
        ).scalar_one()
        return InstitutionRecord(institution_id, code, InstitutionStatus(status), None, None, None)
    return InstitutionRecord(
        institution_id,
        code,
        InstitutionStatus(last.status),
        last.reason,
        last.effective_at,
        last.decided_by,
    )


def _one_rules(conn: Any, course_id: int) -> Row[Any]:
    row = conn.execute(select(course_rules).where(course_rules.c.course_id == course_id)).first()
    if row is None:
        raise NotFound(f"course {course_id} has no catalogue rules")
    return row


def _rules(r: Row[Any]) -> CourseRules:
    return CourseRules(
        r.course_id,
        r.occupation,
        r.skill_level,
        SubsidyKind(r.subsidy_kind),
        r.subsidy_amount,
        r.subsidy_cap,
        PublicationStatus(r.status),
        r.valid_from,
        r.valid_until,
        r.updated_at,
    )


def _assessment(r: Row[Any]) -> AssessmentResult:
    return AssessmentResult(
        r.id, r.course_id, r.learner_id, bool(r.passed), r.score, r.assessed_at, r.recorded_by
    )


def _decision(r: Row[Any]) -> FlagDecision:
    return FlagDecision(
        r.id,
        r.flag_id,
        FlagStatus(r.status),
        r.note,
        r.decided_by,
        r.decided_at,
        r.chain_id,
        r.seq,
        r.hash,
    )
