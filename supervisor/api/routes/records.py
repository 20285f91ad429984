"""The records the bureau's statistics need (`/api/v1/...`): an institution's profile
(GB/T 2260 division, licence, legal representative, address), a course's
classification (occupation code, skill level), a learner's key groups and skill-level
certificates. Every change is a ledger event; a refusal changes nothing."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, status

from supervisor.api.deps import PrincipalDep
from supervisor.api.errors import ERRORS
from supervisor.api.schemas.records import (
    CertificateIn,
    CertificateOut,
    ClassificationIn,
    ClassificationOut,
    GroupIn,
    GroupOut,
    GroupsOut,
    ProfileIn,
    ProfileOut,
)
from supervisor.registry.records import RecordsService

router = APIRouter(prefix="/api/v1", responses=ERRORS)


def get_records(request: Request) -> RecordsService:
    service: RecordsService = request.app.state.records
    return service


RecordsDep = Annotated[RecordsService, Depends(get_records)]


@router.put(
    "/institutions/{institution_id}/profile", response_model=ProfileOut, tags=["institutions"]
)
async def record_profile(
    institution_id: int, body: ProfileIn, p: PrincipalDep, svc: RecordsDep
) -> ProfileOut:
    """Record the institution's division code (GB/T 2260), licence number, legal
    representative and address (the bureau); a correction of a recorded profile needs a
    `reason`. 422 `invalid_division_code` for a code that is not six digits, names no
    province, or is a province's code with a county part."""
    view = await svc.record_profile(
        p,
        institution_id,
        body.division_code,
        body.licence_number,
        body.legal_representative,
        body.address,
        body.reason,
    )
    return ProfileOut.of(view)


@router.get(
    "/institutions/{institution_id}/profile", response_model=ProfileOut, tags=["institutions"]
)
async def get_profile(institution_id: int, p: PrincipalDep, svc: RecordsDep) -> ProfileOut:
    """The latest profile, with the province, city and county derived from the code
    (404 `no_profile` when none is recorded)."""
    return ProfileOut.of(await svc.profile(p, institution_id))


@router.put(
    "/courses/{course_id}/classification", response_model=ClassificationOut, tags=["courses"]
)
async def classify(
    course_id: int, body: ClassificationIn, p: PrincipalDep, svc: RecordsDep
) -> ClassificationOut:
    """Classify the course: occupation code (2022 classification, `X-XX-XX-XX`) and skill
    level. Its institution's operator while the rules are unpublished (403
    `rules_published` after); the bureau at any time."""
    found = await svc.classify(p, course_id, body.occupation_code, body.skill_level)
    return ClassificationOut.of(found)


@router.get(
    "/courses/{course_id}/classification", response_model=ClassificationOut, tags=["courses"]
)
async def get_classification(course_id: int, p: PrincipalDep, svc: RecordsDep) -> ClassificationOut:
    return ClassificationOut.of(await svc.classification(p, course_id))


@router.get("/learners/{learner_id}/groups", response_model=GroupsOut, tags=["learners"])
async def get_groups(learner_id: int, p: PrincipalDep, svc: RecordsDep) -> GroupsOut:
    """The key groups the learner is in now."""
    found = await svc.groups(p, learner_id)
    return GroupsOut(learner_id=learner_id, groups=[GroupOut.of(g) for g in found])


@router.post(
    "/learners/{learner_id}/groups",
    response_model=GroupsOut,
    status_code=status.HTTP_201_CREATED,
    tags=["learners"],
)
async def add_group(learner_id: int, body: GroupIn, p: PrincipalDep, svc: RecordsDep) -> GroupsOut:
    """Add a key group with its date and source (the learner's institution's operator,
    or the bureau). 422 `invalid_group` for a group not of the policy."""
    found = await svc.add_group(p, learner_id, body.group, body.since, body.source)
    return GroupsOut(learner_id=learner_id, groups=[GroupOut.of(g) for g in found])


@router.delete("/learners/{learner_id}/groups/{group}", response_model=GroupsOut, tags=["learners"])
async def remove_group(
    learner_id: int,
    group: str,
    p: PrincipalDep,
    svc: RecordsDep,
    reason: Annotated[str, Query(max_length=2000, description="Why the learner leaves it.")],
) -> GroupsOut:
    found = await svc.remove_group(p, learner_id, group, reason)
    return GroupsOut(learner_id=learner_id, groups=[GroupOut.of(g) for g in found])


@router.get(
    "/learners/{learner_id}/certificates",
    response_model=list[CertificateOut],
    tags=["learners"],
)
async def list_certificates(
    learner_id: int, p: PrincipalDep, svc: RecordsDep
) -> list[CertificateOut]:
    return [CertificateOut.of(c) for c in await svc.certificates(p, learner_id)]


@router.post(
    "/learners/{learner_id}/certificates",
    response_model=CertificateOut,
    status_code=status.HTTP_201_CREATED,
    tags=["learners"],
)
async def issue_certificate(
    learner_id: int, body: CertificateIn, p: PrincipalDep, svc: RecordsDep
) -> CertificateOut:
    """Record a skill-level certificate (the bureau only) after the learner's latest
    assessment of the course passed (409 `assessment_not_passed` otherwise), at the
    course's skill level (422 `level_mismatch`)."""
    cert = await svc.issue_certificate(
        p,
        learner_id,
        body.course_id,
        body.number,
        body.skill_level,
        body.issued_on,
        body.issuing_body,
    )
    return CertificateOut.of(cert)
