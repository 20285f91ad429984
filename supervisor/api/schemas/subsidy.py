"""Bodies of the catalogue, subsidy, report and flag endpoints."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, Field

from storage.types import (
    AssessmentResult,
    Course,
    CourseEnrolment,
    CourseRules,
    FlagDecision,
    Institution,
    InstitutionRecord,
    InstitutionStatus,
    PublicationStatus,
    SubsidyKind,
)
from supervisor.api.schemas.common import In
from supervisor.ledger.events import iso
from supervisor.rules.eligibility import Eligibility
from supervisor.rules.flags import FlagView
from supervisor.subsidy.service import PublicCourse


class CreditCodeIn(In):
    credit_code: str = Field(
        min_length=1, max_length=40, description="Unified social credit code (GB 32100)."
    )
    reason: str | None = Field(
        None,
        max_length=2000,
        description="Why a recorded code is corrected (required then); kept in the ledger.",
    )


class StatusIn(In):
    status: InstitutionStatus
    reason: str = Field(min_length=1, max_length=2000)
    effective_at: AwareDatetime | None = Field(None, description="Default: now.")


class InstitutionRecordOut(BaseModel):
    institution_id: int
    credit_code: str | None
    status: InstitutionStatus
    reason: str | None
    effective_at: datetime | None

    @classmethod
    def of(cls, r: InstitutionRecord) -> InstitutionRecordOut:
        return cls(
            institution_id=r.institution_id,
            credit_code=r.credit_code,
            status=r.status,
            reason=r.reason,
            effective_at=r.effective_at,
        )


class PublicInstitutionOut(BaseModel):
    """A publicly listed (expelled) institution."""

    institution_id: int
    name: str
    credit_code: str | None
    status: InstitutionStatus
    reason: str | None
    effective_at: datetime | None

    @classmethod
    def of(cls, i: Institution, r: InstitutionRecord) -> PublicInstitutionOut:
        return cls(
            institution_id=i.id,
            name=i.name,
            credit_code=r.credit_code,
            status=r.status,
            reason=r.reason,
            effective_at=r.effective_at,
        )


class PublicCourseOut(BaseModel):
    course_id: int
    name: str
    delivery_mode: str
    required_hours: float
    occupation: str
    skill_level: int
    subsidy_kind: SubsidyKind
    subsidy_amount: float = Field(description="Yuan per learner or per hour.")
    subsidy_cap: float | None = Field(description="Yuan (per_hour).")
    valid_from: datetime | None
    valid_until: datetime | None
    institution_id: int
    institution_name: str
    institution_status: InstitutionStatus


class PublicInstitutionStatusOut(BaseModel):
    institution_id: int
    name: str
    status: InstitutionStatus


class PublicCatalogueOut(BaseModel):
    """The published catalogue: every course with published rules, and institutions."""

    institutions: list[PublicInstitutionStatusOut]
    courses: list[PublicCourseOut]

    @classmethod
    def of(
        cls, institutions: Sequence[Institution], courses: Sequence[PublicCourse]
    ) -> PublicCatalogueOut:
        return cls(
            institutions=[
                PublicInstitutionStatusOut(institution_id=i.id, name=i.name, status=i.status)
                for i in institutions
            ],
            courses=[
                PublicCourseOut(
                    course_id=p.course.id,
                    name=p.course.name,
                    delivery_mode=p.course.delivery_mode.value,
                    required_hours=p.course.required_hours,
                    occupation=p.rules.occupation,
                    skill_level=p.rules.skill_level,
                    subsidy_kind=p.rules.subsidy_kind,
                    subsidy_amount=p.rules.subsidy_amount,
                    subsidy_cap=p.rules.subsidy_cap,
                    valid_from=p.rules.valid_from,
                    valid_until=p.rules.valid_until,
                    institution_id=p.institution.id,
                    institution_name=p.institution.name,
                    institution_status=p.institution.status,
                )
                for p in courses
            ],
        )


class RulesIn(In):
    occupation: str = Field(min_length=1, max_length=200)
    skill_level: int = Field(ge=1, le=5, description="1 (senior technician) to 5 (beginner).")
    subsidy_kind: SubsidyKind
    subsidy_amount: float = Field(ge=0, le=1_000_000, description="Yuan per learner or per hour.")
    subsidy_cap: float | None = Field(None, ge=0, le=1_000_000, description="Yuan (per_hour).")
    valid_from: AwareDatetime | None = None
    valid_until: AwareDatetime | None = None


class CatalogueEntryOut(BaseModel):
    course_id: int
    institution_id: int
    name: str
    delivery_mode: str
    required_hours: float
    occupation: str | None
    skill_level: int | None
    subsidy_kind: SubsidyKind | None
    subsidy_amount: float | None
    subsidy_cap: float | None
    status: PublicationStatus | None = Field(description="None: no rules yet.")
    valid_from: datetime | None
    valid_until: datetime | None

    @classmethod
    def of(cls, c: Course, r: CourseRules | None) -> CatalogueEntryOut:
        return cls(
            course_id=c.id,
            institution_id=c.institution_id,
            name=c.name,
            delivery_mode=c.delivery_mode.value,
            required_hours=c.required_hours,
            occupation=r.occupation if r else None,
            skill_level=r.skill_level if r else None,
            subsidy_kind=r.subsidy_kind if r else None,
            subsidy_amount=r.subsidy_amount if r else None,
            subsidy_cap=r.subsidy_cap if r else None,
            status=r.status if r else None,
            valid_from=r.valid_from if r else None,
            valid_until=r.valid_until if r else None,
        )


class EnrolIn(In):
    learner_ids: list[int] = Field(min_length=1, max_length=1000)


class EnrolmentOut(BaseModel):
    course_id: int
    learner_id: int
    enrolled_at: datetime

    @classmethod
    def of(cls, e: CourseEnrolment) -> EnrolmentOut:
        return cls(course_id=e.course_id, learner_id=e.learner_id, enrolled_at=e.enrolled_at)


class AssessmentIn(In):
    learner_id: int = Field(ge=1)
    passed: bool
    score: float | None = Field(None, ge=0, le=1000)
    assessed_at: AwareDatetime | None = Field(None, description="Default: now; never later.")


class AssessmentOut(BaseModel):
    id: int
    course_id: int
    learner_id: int
    passed: bool
    score: float | None
    assessed_at: datetime

    @classmethod
    def of(cls, a: AssessmentResult) -> AssessmentOut:
        return cls(
            id=a.id,
            course_id=a.course_id,
            learner_id=a.learner_id,
            passed=a.passed,
            score=a.score,
            assessed_at=a.assessed_at,
        )


class SessionCreditOut(BaseModel):
    chain_id: str
    kind: str
    credited_seconds: float
    start_check_passed: bool


class EligibilityOut(BaseModel):
    learner_id: int
    course_id: int
    eligible: bool
    amount: float = Field(description="Yuan; 0 when not eligible.")
    reasons: list[str] = Field(description="Every reason the learner is not eligible.")
    credited_hours: float
    online_hours: float
    classroom_hours: float
    required_hours: float | None
    assessed_at: datetime | None
    flags: list[int]
    sessions: list[SessionCreditOut]
    broken_chains: list[str] = Field(
        default_factory=list,
        description="Chains this decision reads that are broken (reason `chain_broken`): "
        "nothing of them is counted.",
    )

    @classmethod
    def of(cls, e: Eligibility) -> EligibilityOut:
        return cls(
            learner_id=e.learner_id,
            course_id=e.course_id,
            eligible=e.eligible,
            amount=e.amount,
            reasons=list(e.reasons),
            credited_hours=e.credited_hours,
            online_hours=round(e.online_seconds / 3600, 6),
            classroom_hours=round(e.classroom_seconds / 3600, 6),
            required_hours=e.required_hours,
            assessed_at=e.assessed_at,
            flags=list(e.flags),
            broken_chains=list(e.broken_chains),
            sessions=[
                SessionCreditOut(
                    chain_id=s.chain_id,
                    kind=s.kind,
                    credited_seconds=s.credited_seconds,
                    start_check_passed=s.start_check_passed,
                )
                for s in e.sessions
            ],
        )


class EvidenceOut(BaseModel):
    chain_id: str | None
    seq: int | None
    hash: str | None
    evidence_sha256: str | None
    scores: dict[str, Any]


class DecisionOut(BaseModel):
    id: int
    status: str
    note: str
    decided_by: str
    decided_at: datetime
    chain_id: str
    seq: int
    hash: str

    @classmethod
    def of(cls, d: FlagDecision) -> DecisionOut:
        return cls(
            id=d.id,
            status=d.status.value,
            note=d.note,
            decided_by=d.decided_by,
            decided_at=d.decided_at,
            chain_id=d.chain_id,
            seq=d.seq,
            hash=d.hash,
        )


class FlagOut(BaseModel):
    id: int
    kind: str
    status: str
    institution_id: int | None
    learner_id: int | None
    other_learner_ids: list[int] = Field(
        description="Other learners the flag names (to an operator: only its own learners)."
    )
    others_elsewhere: int = Field(
        0, description="Learners of another institution the flag names, not shown by id."
    )
    raised_at: datetime
    summary: str
    evidence: list[EvidenceOut]

    @classmethod
    def of(cls, v: FlagView) -> FlagOut:
        f = v.flag
        return cls(
            id=f.id,
            kind=f.kind,
            status=f.status.value,
            institution_id=f.institution_id,
            learner_id=f.learner_id,
            other_learner_ids=list(v.other_learner_ids),
            others_elsewhere=v.others_elsewhere,
            raised_at=f.created_at,
            summary=v.summary,
            evidence=[
                EvidenceOut(
                    chain_id=e.chain_id,
                    seq=e.seq,
                    hash=e.hash,
                    evidence_sha256=e.evidence_sha256,
                    scores=e.scores,
                )
                for e in v.evidence
            ],
        )


class StatementOut(BaseModel):
    statement: str
    made_by: str
    at: datetime


class FlagDetailOut(FlagOut):
    raised_event: EvidenceOut | None = Field(
        description="The flag's `flag_raised` event in its ledger chain."
    )
    decisions: list[DecisionOut] = Field(description="Oldest first; the last one is in force.")
    statements: list[StatementOut] = Field(
        default_factory=list, description="The institution's statements, oldest first."
    )


class DecisionIn(In):
    status: Literal["confirmed", "dismissed"]
    note: str = Field("", max_length=4000)
    against: list[int] = Field(
        default_factory=list,
        max_length=100,
        description="Other learners the flag names that a confirmation also holds against "
        "(by default it holds against the flagged learner only).",
    )


class StatementIn(In):
    statement: str = Field(min_length=1, max_length=4000)


def as_json_iso(value: datetime | None) -> str | None:
    return iso(value) if value else None
