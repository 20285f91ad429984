"""Request and response bodies of the API, apart from storage types and events."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from storage.types import (
    Consent,
    Course,
    DeliveryMode,
    Institution,
    InstitutionStatus,
    Learner,
    LedgerEvent,
    Role,
    StudySession,
    VerifyReport,
)
from supervisor.errors import InvalidInput
from supervisor.i18n import Language, Translator, translator
from supervisor.i18n.advice import advice
from supervisor.ledger.events import CheckRecorded
from supervisor.registry.identity import mask_id_number
from supervisor.rules.crediting import Credit
from supervisor.rules.session_state import SessionState


class In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class InstitutionIn(In):
    name: str = Field(min_length=1, max_length=200, description="Unique, whatever the case.")
    credit_code: str = Field(
        min_length=18,
        max_length=40,
        description="Unified social credit code (GB 32100), validated with its check "
        "character; unique.",
    )


class InstitutionOut(BaseModel):
    id: int
    name: str
    status: InstitutionStatus
    created_at: datetime
    credit_code: str | None = Field(description="Unified social credit code (GB 32100).")

    @classmethod
    def of(cls, i: Institution) -> InstitutionOut:
        return cls(
            id=i.id,
            name=i.name,
            status=i.status,
            created_at=i.created_at,
            credit_code=i.credit_code,
        )


class CourseIn(In):
    institution_id: int = Field(ge=1)
    name: str = Field(min_length=1, max_length=200)
    required_hours: float = Field(gt=0, le=10_000)
    delivery_mode: DeliveryMode
    occupation_code: str | None = Field(
        None,
        max_length=32,
        description="Occupation code of the national occupational classification (2022), "
        "X-XX-XX-XX (422 `invalid_occupation_code` otherwise); with `skill_level`.",
    )
    skill_level: StrictInt | None = Field(
        None, description="1 (一级/高级技师) to 5 (五级/初级工); with `occupation_code`."
    )


class CourseOut(BaseModel):
    id: int
    institution_id: int
    name: str
    required_hours: float
    delivery_mode: DeliveryMode
    created_at: datetime

    @classmethod
    def of(cls, c: Course) -> CourseOut:
        return cls(
            id=c.id,
            institution_id=c.institution_id,
            name=c.name,
            required_hours=c.required_hours,
            delivery_mode=c.delivery_mode,
            created_at=c.created_at,
        )


class LearnerIn(In):
    institution_id: int = Field(ge=1)
    full_name: str = Field(min_length=1, max_length=100, description="Real name as on the ID card.")
    id_number: str = Field(
        min_length=18, max_length=18, description="18-character resident ID number (GB 11643)."
    )


class LearnerOut(BaseModel):
    id: int
    institution_id: int
    full_name: str
    id_number_masked: str = Field(description="The ID number with its middle masked.")
    created_at: datetime

    @classmethod
    def of(cls, lr: Learner) -> LearnerOut:
        return cls(
            id=lr.id,
            institution_id=lr.institution_id,
            full_name=lr.full_name,
            id_number_masked=mask_id_number(lr.id_number),
            created_at=lr.created_at,
        )


class ConsentIn(In):
    text_version: str = Field(min_length=1, max_length=64)
    signed_form_sha256: str | None = Field(
        None,
        pattern=r"^[0-9a-f]{64}$",
        description="Bureau staff only, for consent given in person: the SHA-256 (lowercase "
        "hex) of the scanned form the learner signed.",
    )


class ConsentOut(BaseModel):
    id: int
    learner_id: int
    text_version: str
    given_at: datetime
    withdrawn_at: datetime | None
    active: bool

    @classmethod
    def of(cls, c: Consent) -> ConsentOut:
        return cls(
            id=c.id,
            learner_id=c.learner_id,
            text_version=c.text_version,
            given_at=c.given_at,
            withdrawn_at=c.withdrawn_at,
            active=c.active,
        )


class ConsentStatusOut(BaseModel):
    learner_id: int
    current_text_version: str
    consent: ConsentOut | None


class WithdrawalOut(BaseModel):
    consent: ConsentOut
    templates_deleted: int
    sessions_ended: int


class EnrolmentOut(BaseModel):
    template_id: int
    learner_id: int
    evidence_sha256: str
    face_width_px: int
    created_at: datetime


class TokenOut(BaseModel):
    token_id: int
    role: Role
    institution_id: int | None
    learner_id: int | None
    secret: str = Field(description="Shown once; only its hash is stored.")


class PrincipalOut(BaseModel):
    token_id: int
    role: Role
    institution_id: int | None
    learner_id: int | None
    label: str


class CheckOut(BaseModel):
    check_id: str
    kind: str
    purpose: str
    verdict: str
    passed: bool
    at: datetime
    distance: float | None
    threshold: float | None
    issues: list[str]
    advice: list[str] = Field(description="What the learner can do about each quality issue.")
    faces: int
    evidence_sha256: str | None
    evidence_error: str | None = Field(
        None, description="Why the evidence frame could not be kept (the check still counts)."
    )

    @classmethod
    def of(cls, c: CheckRecorded, t: Translator | None = None) -> CheckOut:
        """`t`: the language of the advice (the route's `TranslatorDep`); English without."""
        return cls(
            check_id=c.check_id,
            kind=c.check_kind,
            purpose=c.purpose,
            verdict=c.verdict,
            passed=c.passed,
            at=c.at,
            distance=c.distance,
            threshold=c.threshold,
            issues=list(c.issues),
            advice=advice(t or translator(Language.en), c.issues),
            faces=c.faces,
            evidence_sha256=c.evidence_sha256,
            evidence_error=c.evidence_error,
        )


class SessionOut(BaseModel):
    session_id: str
    learner_id: int
    course_id: int
    institution_id: int
    mode: str
    state: str
    started_at: datetime
    ended_at: datetime | None
    end_reason: str | None
    checks: int
    credited_seconds: float | None = None

    @classmethod
    def of(cls, s: SessionState, credited: float | None = None) -> SessionOut:
        return cls(
            session_id=s.session_id,
            learner_id=s.learner_id,
            course_id=s.course_id,
            institution_id=s.institution_id,
            mode=s.mode,
            state=s.state,
            started_at=s.started_at,
            ended_at=s.ended_at,
            end_reason=s.end_reason,
            checks=s.checks,
            credited_seconds=credited,
        )


class SessionSummaryOut(BaseModel):
    session_id: str
    learner_id: int
    course_id: int
    institution_id: int
    started_at: datetime
    ended_at: datetime | None

    @classmethod
    def of(cls, s: StudySession) -> SessionSummaryOut:
        return cls(
            session_id=s.id,
            learner_id=s.learner_id,
            course_id=s.course_id,
            institution_id=s.institution_id,
            started_at=s.started_at,
            ended_at=s.ended_at,
        )


class SessionCheckOut(BaseModel):
    session: SessionOut
    check: CheckOut


class EventOut(BaseModel):
    chain_id: str
    seq: int
    recorded_at: datetime
    kind: str
    payload: dict[str, Any]
    payload_canonical: str = Field(description="The payload exactly as hashed.")
    prev_hash: str
    hash: str

    @classmethod
    def of(cls, e: LedgerEvent) -> EventOut:
        return cls(
            chain_id=e.chain_id,
            seq=e.seq,
            recorded_at=e.recorded_at,
            kind=e.kind,
            payload=json.loads(e.payload),
            payload_canonical=e.payload,
            prev_hash=e.prev_hash,
            hash=e.hash,
        )


class ChainBreakOut(BaseModel):
    chain_id: str
    seq: int
    reason: str


class IntegrityOut(BaseModel):
    ok: bool
    chains: int
    events: int
    breaks: list[ChainBreakOut]

    @classmethod
    def of(cls, r: VerifyReport) -> IntegrityOut:
        return cls(
            ok=r.ok,
            chains=r.chains,
            events=r.events,
            breaks=[
                ChainBreakOut(chain_id=b.chain_id, seq=b.seq, reason=b.reason) for b in r.breaks
            ],
        )


class IntervalOut(BaseModel):
    start: datetime
    end: datetime
    seconds: float


class CreditOut(BaseModel):
    session_id: str
    credited_seconds: float
    wall_seconds: float
    max_gap_seconds: int
    passed_checks: int
    failed_checks: int
    missed_checks: int
    intervals: list[IntervalOut]

    @classmethod
    def of(cls, session_id: str, c: Credit, max_gap: int) -> CreditOut:
        return cls(
            session_id=session_id,
            credited_seconds=c.credited_seconds,
            wall_seconds=c.wall_seconds,
            max_gap_seconds=max_gap,
            passed_checks=c.passed_checks,
            failed_checks=c.failed_checks,
            missed_checks=c.missed_checks,
            intervals=[
                IntervalOut(start=i.start, end=i.end, seconds=i.seconds) for i in c.intervals
            ],
        )


def checked_time(at: datetime, name: str) -> datetime:
    """`at` in UTC, or a 422 naming `name`: a time zone is required, and times must
    lie between 1970 and 2200 (outside that range UTC conversion can overflow)."""
    if at.tzinfo is None:
        raise InvalidInput(f"{name} needs a time zone", reason="naive_datetime")
    try:
        utc = at.astimezone(UTC)
    except (OverflowError, ValueError):
        raise InvalidInput(f"{name} is out of range", reason="time_out_of_range") from None
    if not 1970 <= utc.year <= 2200:
        raise InvalidInput(f"{name} is out of range (1970-2200)", reason="time_out_of_range")
    return utc
