"""Institutions, courses, learners, consent, enrolment and learner tokens."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Query, Request, UploadFile, status

from supervisor.api.deps import PrincipalDep, RegistryDep, SessionsDep, read_upload
from supervisor.api.errors import ERRORS
from supervisor.api.schemas.common import (
    ConsentIn,
    ConsentOut,
    ConsentStatusOut,
    CourseIn,
    CourseOut,
    EnrolmentOut,
    InstitutionIn,
    InstitutionOut,
    LearnerIn,
    LearnerOut,
    PrincipalOut,
    TokenOut,
    WithdrawalOut,
)

router = APIRouter(prefix="/api/v1", responses=ERRORS)


@router.get("/me", response_model=PrincipalOut, tags=["auth"])
async def me(p: PrincipalDep) -> PrincipalOut:
    """Who the bearer token belongs to."""
    return PrincipalOut(
        token_id=p.token_id,
        role=p.role,
        institution_id=p.institution_id,
        learner_id=p.learner_id,
        label=p.label,
    )


@router.post(
    "/institutions",
    response_model=InstitutionOut,
    status_code=status.HTTP_201_CREATED,
    tags=["institutions"],
)
async def create_institution(
    body: InstitutionIn, p: PrincipalDep, reg: RegistryDep
) -> InstitutionOut:
    """Register a training institution (admin)."""
    return InstitutionOut.of(await reg.create_institution(p, body.name, body.credit_code))


@router.get("/institutions", response_model=list[InstitutionOut], tags=["institutions"])
async def list_institutions(p: PrincipalDep, reg: RegistryDep) -> list[InstitutionOut]:
    return [InstitutionOut.of(i) for i in await reg.list_institutions(p)]


@router.get("/institutions/{institution_id}", response_model=InstitutionOut, tags=["institutions"])
async def get_institution(institution_id: int, p: PrincipalDep, reg: RegistryDep) -> InstitutionOut:
    return InstitutionOut.of(await reg.get_institution(p, institution_id))


@router.post(
    "/courses", response_model=CourseOut, status_code=status.HTTP_201_CREATED, tags=["courses"]
)
async def create_course(body: CourseIn, p: PrincipalDep, reg: RegistryDep) -> CourseOut:
    """Add a course to an institution's catalogue (admin, or its operator); with its
    occupation code and skill level, classified at once (a ledger event)."""
    course = await reg.create_course(
        p,
        body.institution_id,
        body.name,
        body.required_hours,
        body.delivery_mode,
        body.occupation_code,
        body.skill_level,
    )
    return CourseOut.of(course)


@router.get("/courses", response_model=list[CourseOut], tags=["courses"])
async def list_courses(
    p: PrincipalDep, reg: RegistryDep, institution_id: Annotated[int | None, Query(ge=1)] = None
) -> list[CourseOut]:
    return [CourseOut.of(c) for c in await reg.list_courses(p, institution_id)]


@router.get("/courses/{course_id}", response_model=CourseOut, tags=["courses"])
async def get_course(course_id: int, p: PrincipalDep, reg: RegistryDep) -> CourseOut:
    return CourseOut.of(await reg.get_course(p, course_id))


@router.post(
    "/learners", response_model=LearnerOut, status_code=status.HTTP_201_CREATED, tags=["learners"]
)
async def create_learner(body: LearnerIn, p: PrincipalDep, reg: RegistryDep) -> LearnerOut:
    """Register a learner under their real name and resident ID number (validated, then masked)."""
    learner = await reg.create_learner(p, body.institution_id, body.full_name, body.id_number)
    return LearnerOut.of(learner)


@router.get("/learners", response_model=list[LearnerOut], tags=["learners"])
async def list_learners(
    p: PrincipalDep, reg: RegistryDep, institution_id: Annotated[int | None, Query(ge=1)] = None
) -> list[LearnerOut]:
    return [LearnerOut.of(lr) for lr in await reg.list_learners(p, institution_id)]


@router.get("/learners/{learner_id}", response_model=LearnerOut, tags=["learners"])
async def get_learner(learner_id: int, p: PrincipalDep, reg: RegistryDep) -> LearnerOut:
    return LearnerOut.of(await reg.get_learner(p, learner_id))


@router.get("/learners/{learner_id}/consent", response_model=ConsentStatusOut, tags=["consent"])
async def get_consent(learner_id: int, p: PrincipalDep, reg: RegistryDep) -> ConsentStatusOut:
    consent = await reg.active_consent(p, learner_id)
    return ConsentStatusOut(
        learner_id=learner_id,
        current_text_version=reg.ctx.settings.security.consent_text_version,
        consent=ConsentOut.of(consent) if consent else None,
    )


@router.post(
    "/learners/{learner_id}/consent",
    response_model=ConsentOut,
    status_code=status.HTTP_201_CREATED,
    tags=["consent"],
)
async def give_consent(
    learner_id: int, body: ConsentIn, p: PrincipalDep, reg: RegistryDep
) -> ConsentOut:
    """Record biometric consent to the current consent text version: the learner with their
    own token, or bureau staff from a form signed in person (`signed_form_sha256`). An
    institution's operator cannot (403 `learner_only`)."""
    consent = await reg.give_consent(p, learner_id, body.text_version, body.signed_form_sha256)
    return ConsentOut.of(consent)


@router.delete("/learners/{learner_id}/consent", response_model=WithdrawalOut, tags=["consent"])
async def withdraw_consent(
    learner_id: int, p: PrincipalDep, reg: RegistryDep, sessions: SessionsDep
) -> WithdrawalOut:
    """Withdraw consent: the face templates are deleted and open sessions end."""
    consent, deleted = await reg.withdraw_consent(p, learner_id)
    ended = await sessions.end_open_sessions(learner_id, "consent_withdrawn")
    return WithdrawalOut(
        consent=ConsentOut.of(consent), templates_deleted=deleted, sessions_ended=ended
    )


@router.post(
    "/learners/{learner_id}/templates",
    response_model=EnrolmentOut,
    status_code=status.HTTP_201_CREATED,
    tags=["enrolment"],
)
async def enrol(
    learner_id: int,
    p: PrincipalDep,
    reg: RegistryDep,
    photo: Annotated[UploadFile, File(description="JPEG/PNG/WebP photo with exactly one face.")],
    request: Request,
) -> EnrolmentOut:
    """Enrol a face photo as a template. Needs consent; refused photos change nothing."""
    enrolment = await reg.enrol(p, learner_id, await read_upload(request, photo))
    return EnrolmentOut(
        template_id=enrolment.template.id,
        learner_id=enrolment.template.learner_id,
        evidence_sha256=enrolment.evidence_sha256,
        face_width_px=enrolment.face_width_px,
        created_at=enrolment.template.created_at,
    )


@router.post(
    "/learners/{learner_id}/tokens",
    response_model=TokenOut,
    status_code=status.HTTP_201_CREATED,
    tags=["auth"],
)
async def issue_learner_token(learner_id: int, p: PrincipalDep, reg: RegistryDep) -> TokenOut:
    """Issue a learner's own token (admin, or an operator of the learner's institution)."""
    token, secret = await reg.issue_learner_token(p, learner_id)
    return TokenOut(
        token_id=token.id,
        role=token.role,
        institution_id=token.institution_id,
        learner_id=token.learner_id,
        secret=secret,
    )
