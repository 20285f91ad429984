"""A learner's data rights: the data held, the non-face path, the processing record."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request, status
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from supervisor.api.deps import PrincipalDep, SessionsDep
from supervisor.api.errors import ERRORS
from supervisor.api.schemas.common import CheckOut, In, SessionCheckOut, SessionOut
from supervisor.privacy.record import record_html
from supervisor.privacy.service import AlternativeState, PrivacyService

router = APIRouter(prefix="/api/v1", responses=ERRORS, tags=["privacy"])
pages = APIRouter(include_in_schema=False)


def get_privacy(request: Request) -> PrivacyService:
    service: PrivacyService = request.app.state.privacy
    return service


PrivacyDep = Annotated[PrivacyService, Depends(get_privacy)]


class InstitutionRef(BaseModel):
    id: int
    name: str


class LearnerIdentityOut(BaseModel):
    id: int
    full_name: str
    id_number_masked: str
    institution: InstitutionRef
    registered_at: datetime


class ConsentEventOut(BaseModel):
    event: str
    text_version: str | None
    templates_deleted: int | None
    photos_deleted: int | None = Field(
        None, description="Enrolment photos deleted at withdrawal (with the templates)."
    )
    at: datetime


class TemplateRefOut(BaseModel):
    id: int
    created_at: datetime
    evidence_sha256: str | None


class SessionDataOut(BaseModel):
    session_id: str
    course_id: int
    started_at: datetime
    ended_at: datetime | None
    checks: int
    credited_seconds: float


class EvidenceDataOut(BaseModel):
    sha256: str
    what: str = Field(description="What the frame is, for a person (its first kind).")
    kinds: list[Literal["enrolment", "check", "roll_call", "flag"]] = Field(
        description="Every kind the frame is of: a learner's enrolment photo, a check's "
        "frame, a classroom roll-call frame, or evidence a flag rests on."
    )
    concerns: list[str] = Field(description="Where it is used, one line per kind.")
    after_withdrawal: Literal["deleted", "kept_until_retention"] = Field(
        description="What withdrawal of consent does to it: enrolment photos are deleted "
        "with the templates; any other frame is kept until `retain_until` (proof of "
        "credited hours or of a flag)."
    )
    retain_until: datetime | None
    deleted_at: datetime | None


class FlagDataOut(BaseModel):
    id: int
    kind: str
    status: str
    raised_at: datetime


class AlternativeSummaryOut(BaseModel):
    status: str
    method: str | None
    decided_at: datetime | None


class ReadOut(BaseModel):
    at: datetime
    who: str = Field(description="The token that read (role and token id), never a secret.")
    role: str
    what: str


class LearnerDataOut(BaseModel):
    """Everything held about a learner. Face vectors are never given out."""

    learner: LearnerIdentityOut
    consents: list[ConsentEventOut]
    face_templates: list[TemplateRefOut]
    sessions: list[SessionDataOut]
    evidence_frames: list[EvidenceDataOut]
    flags: list[FlagDataOut]
    alternative_path: AlternativeSummaryOut
    read_by: list[ReadOut] = Field(description="Staff reads of this learner's data, newest first.")
    ledger_chain: str
    processing_record: str
    exported_at: datetime


class AlternativeOut(BaseModel):
    status: str = Field(description="none, requested, approved or refused")
    reason: str | None
    method: str | None
    note: str | None
    decided_by: str | None
    at: datetime | None

    @classmethod
    def of(cls, s: AlternativeState) -> AlternativeOut:
        return cls(
            status=s.status,
            reason=s.reason,
            method=s.method,
            note=s.note,
            decided_by=s.decided_by,
            at=s.at,
        )


class AlternativeRequestIn(In):
    reason: str = Field(min_length=1, max_length=1000, description="Why, in the learner's words.")


class AlternativeDecisionIn(In):
    approved: bool
    method: str = Field(
        "in_person_id_check",
        min_length=1,
        max_length=100,
        description="How identity is established instead.",
    )
    note: str = Field("", max_length=1000)


class InPersonStartIn(In):
    learner_id: int = Field(ge=1)
    course_id: int = Field(ge=1)
    note: str = Field("", max_length=500, description="What was checked, e.g. 'ID card seen'.")


class AttestIn(In):
    note: str = Field("", max_length=500)


@router.get("/learners/{learner_id}/data", response_model=LearnerDataOut)
async def learner_data(learner_id: int, p: PrincipalDep, privacy: PrivacyDep) -> LearnerDataOut:
    """What the service holds about the learner (the learner, or staff in scope). The
    export itself is recorded in the learner's ledger chain."""
    return LearnerDataOut.model_validate(await privacy.learner_data(p, learner_id))


@router.get("/learners/{learner_id}/alternative", response_model=AlternativeOut)
async def get_alternative(learner_id: int, p: PrincipalDep, privacy: PrivacyDep) -> AlternativeOut:
    return AlternativeOut.of(await privacy.alternative(p, learner_id))


@router.post(
    "/learners/{learner_id}/alternative",
    response_model=AlternativeOut,
    status_code=status.HTTP_201_CREATED,
)
async def request_alternative(
    learner_id: int, body: AlternativeRequestIn, p: PrincipalDep, privacy: PrivacyDep
) -> AlternativeOut:
    """Ask to be verified without face recognition (the learner)."""
    return AlternativeOut.of(await privacy.request_alternative(p, learner_id, body.reason))


@router.post("/learners/{learner_id}/alternative/decision", response_model=AlternativeOut)
async def decide_alternative(
    learner_id: int, body: AlternativeDecisionIn, p: PrincipalDep, privacy: PrivacyDep
) -> AlternativeOut:
    """Approve or refuse the non-face path (an operator of the learner's institution)."""
    state = await privacy.decide_alternative(p, learner_id, body.approved, body.method, body.note)
    return AlternativeOut.of(state)


@router.post(
    "/sessions/in-person",
    response_model=SessionCheckOut,
    status_code=status.HTTP_201_CREATED,
    tags=["sessions"],
)
async def start_in_person(
    body: InPersonStartIn, p: PrincipalDep, privacy: PrivacyDep
) -> SessionCheckOut:
    """Open a session on the non-face path after staff checked the ID card in person."""
    state, check = await privacy.start_in_person(p, body.learner_id, body.course_id, body.note)
    return SessionCheckOut(session=SessionOut.of(state, 0.0), check=CheckOut.of(check))


@router.post(
    "/sessions/{session_id}/attestations",
    response_model=SessionCheckOut,
    status_code=status.HTTP_201_CREATED,
    tags=["sessions"],
)
async def attest(
    session_id: uuid.UUID,
    body: AttestIn,
    p: PrincipalDep,
    privacy: PrivacyDep,
    sessions: SessionsDep,
) -> SessionCheckOut:
    """Staff attest in person that the learner is there (non-face sessions only)."""
    state, check = await privacy.attest(p, str(session_id), body.note)
    credit = await sessions.credited(p, str(session_id))
    return SessionCheckOut(
        session=SessionOut.of(state, credit.credited_seconds), check=CheckOut.of(check)
    )


@pages.get("/privacy", response_class=HTMLResponse)
async def privacy_page(request: Request) -> HTMLResponse:
    """The data-processing record, generated from the settings in force."""
    return HTMLResponse(record_html(request.app.state.ctx.settings))
