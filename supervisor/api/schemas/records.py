"""Bodies of the records the bureau's statistics need: institutions' profiles, courses'
classification, learners' key groups and skill-level certificates.

Codes (division, occupation) are taken as text and checked by the service, so that a
wrong one is refused with its own stable reason (`invalid_division_code`,
`invalid_occupation_code`), not a generic validation error."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field, StrictInt

from storage.types import Certificate, CourseClassification, LearnerGroup
from supervisor.api.schemas.common import In
from supervisor.registry.records import ProfileView


class ProfileIn(In):
    division_code: str = Field(
        max_length=32, description="GB/T 2260 administrative-division code, six digits."
    )
    licence_number: str = Field(max_length=100, description="办学许可证号.")
    legal_representative: str = Field(max_length=100)
    address: str = Field(max_length=500)
    reason: str | None = Field(
        None, max_length=2000, description="Required for a correction of a recorded profile."
    )


class DivisionOut(BaseModel):
    code: str
    level: str = Field(description="province | city | county")
    province_code: str
    province_name: str
    city_code: str | None
    county_code: str | None


class ProfileOut(BaseModel):
    institution_id: int
    division: DivisionOut
    licence_number: str
    legal_representative: str
    address: str
    reason: str = Field(description='"registered" for the first record, else the correction\'s.')
    recorded_by: str
    recorded_at: datetime

    @classmethod
    def of(cls, v: ProfileView) -> ProfileOut:
        d = v.division
        return cls(
            institution_id=v.profile.institution_id,
            division=DivisionOut(
                code=d.code,
                level=d.level,
                province_code=d.province_code,
                province_name=d.province_name,
                city_code=d.city_code,
                county_code=d.county_code,
            ),
            licence_number=v.profile.licence_number,
            legal_representative=v.profile.legal_representative,
            address=v.profile.address,
            reason=v.profile.reason,
            recorded_by=v.profile.recorded_by,
            recorded_at=v.profile.recorded_at,
        )


class ClassificationIn(In):
    occupation_code: str = Field(max_length=32, description="X-XX-XX-XX (2022 classification).")
    skill_level: StrictInt = Field(description="1 (一级/高级技师) to 5 (五级/初级工).")


class ClassificationOut(BaseModel):
    course_id: int
    occupation_code: str
    skill_level: int
    recorded_by: str
    recorded_at: datetime

    @classmethod
    def of(cls, c: CourseClassification) -> ClassificationOut:
        return cls(
            course_id=c.course_id,
            occupation_code=c.occupation_code,
            skill_level=c.skill_level,
            recorded_by=c.recorded_by,
            recorded_at=c.recorded_at,
        )


class GroupIn(In):
    group: str = Field(max_length=64, description="One of the key groups of the policy.")
    since: str = Field(max_length=32, description="Local date YYYY-MM-DD, not in the future.")
    source: str = Field(max_length=200, description="Who attests it (e.g. the register).")


class GroupOut(BaseModel):
    group: str
    since: str
    source: str
    recorded_by: str
    recorded_at: datetime

    @classmethod
    def of(cls, g: LearnerGroup) -> GroupOut:
        return cls(
            group=g.group,
            since=g.since,
            source=g.source,
            recorded_by=g.recorded_by,
            recorded_at=g.recorded_at,
        )


class GroupsOut(BaseModel):
    learner_id: int
    groups: list[GroupOut]


class CertificateIn(In):
    course_id: int = Field(ge=1)
    number: str = Field(max_length=64, description="The certificate's number, unique.")
    skill_level: StrictInt = Field(description="Must equal the course's skill level.")
    issued_on: str = Field(max_length=32, description="Local date YYYY-MM-DD.")
    issuing_body: str = Field(max_length=200)


class CertificateOut(BaseModel):
    id: int
    number: str
    learner_id: int
    course_id: int
    result_id: int
    skill_level: int
    occupation_code: str
    issued_on: str
    issuing_body: str
    recorded_by: str
    recorded_at: datetime

    @classmethod
    def of(cls, c: Certificate) -> CertificateOut:
        return cls(
            id=c.id,
            number=c.number,
            learner_id=c.learner_id,
            course_id=c.course_id,
            result_id=c.result_id,
            skill_level=c.skill_level,
            occupation_code=c.occupation_code,
            issued_on=c.issued_on,
            issuing_body=c.issuing_body,
            recorded_by=c.recorded_by,
            recorded_at=c.recorded_at,
        )
