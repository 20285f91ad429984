"""Ledger events of the records the bureau's statistics need (issue "The bureau's month").

Chains (shared with other wings):

- `institution:<id>`: `institution_profile_recorded`, the institution's administrative
  division (GB/T 2260), licence, legal representative and address; a later one is a
  correction and names its reason;
- `course:<id>`: `course_classified`, the occupation code of the national occupational
  classification (2022 edition, `X-XX-XX-XX`) and the skill level;
- `learner:<id>`: `learner_group_added` / `learner_group_removed`, the key groups of the
  policy a learner belongs to, each with its date and source; `certificate_issued`,
  a skill-level certificate after a passed assessment.

Skill levels follow the national scheme: 5 = 五级/初级工, 4 = 四级/中级工,
3 = 三级/高级工, 2 = 二级/技师, 1 = 一级/高级技师. "High skill" is level 3 and above,
that is `skill_level <= 3`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from supervisor.ledger import events as ev

# The key groups of the policy (二(五)), as stable identifiers; a learner may hold several.
KEY_GROUPS: tuple[str, ...] = (
    "rural_migrant_worker",  # 农民工
    "school_leaver",  # 两后生 (junior and senior school leavers not going on)
    "unemployed",  # 下岗失业人员
    "veteran",  # 退役军人
    "employment_difficulty",  # 就业困难人员
    "poverty_risk",  # 脱贫人口 / 防止返贫监测对象
    "enterprise_staff",  # 企业职工
)

SKILL_LEVELS: tuple[int, ...] = (1, 2, 3, 4, 5)
HIGH_SKILL_MAX_LEVEL = 3  # level 3 (三级/高级工) and above, numerically <= 3


@dataclass(frozen=True, slots=True)
class InstitutionProfileRecorded(ev.Event):
    """The institution's place and papers. `division_code` is a validated six-digit GB/T
    2260 code (province, city and county are derived from it, never stored apart).
    The first one has `reason` "registered"; a later one is a correction with its reason."""

    KIND: ClassVar[str] = "institution_profile_recorded"
    institution_id: int
    division_code: str
    licence_number: str
    legal_representative: str
    address: str
    reason: str
    recorded_by: str
    at: datetime


@dataclass(frozen=True, slots=True)
class CourseClassified(ev.Event):
    """A course's occupation code (national occupational classification) and skill level
    (1..5, see the module's note)."""

    KIND: ClassVar[str] = "course_classified"
    course_id: int
    institution_id: int
    occupation_code: str
    skill_level: int
    recorded_by: str
    at: datetime


@dataclass(frozen=True, slots=True)
class LearnerGroupAdded(ev.Event):
    """`since` is the local date (YYYY-MM-DD) from which the learner belongs to `group`
    (one of `KEY_GROUPS`); `source` says who attests it (e.g. the register it came from)."""

    KIND: ClassVar[str] = "learner_group_added"
    learner_id: int
    group: str
    since: str
    source: str
    recorded_by: str
    at: datetime


@dataclass(frozen=True, slots=True)
class LearnerGroupRemoved(ev.Event):
    KIND: ClassVar[str] = "learner_group_removed"
    learner_id: int
    group: str
    reason: str
    recorded_by: str
    at: datetime


@dataclass(frozen=True, slots=True)
class CertificateIssued(ev.Event):
    """A skill-level certificate, issued only for a passed assessment (`result_id`).
    `issued_on` is the local date (YYYY-MM-DD) printed on it."""

    KIND: ClassVar[str] = "certificate_issued"
    certificate_id: int
    learner_id: int
    course_id: int
    result_id: int
    number: str
    skill_level: int
    occupation_code: str
    issued_on: str
    issuing_body: str
    recorded_by: str
    at: datetime


# The kinds of this module, for `supervisor.ledger.kinds`.
KINDS: tuple[type[ev.Event], ...] = (
    InstitutionProfileRecorded,
    CourseClassified,
    LearnerGroupAdded,
    LearnerGroupRemoved,
    CertificateIssued,
)
