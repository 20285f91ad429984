"""Ledger events of the catalogue, subsidy eligibility and fraud flags.

Chains:

- `course:<id>`: the course's rules as published (or withdrawn): what eligibility
  is computed against, so an inspector needs nothing but the ledger;
- `institution:<id>`: status changes (suspended, expelled with reason and date);
- `learner:<id>` (shared with consent and enrolment of the face): enrolment in a
  course and assessment results;
- `flag:<id>`: a fraud flag as raised, with the SHA-256 of its evidence
  details, then every decision on it (a later decision supersedes an earlier one).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from supervisor.ledger import events as ev


def course_chain(course_id: int) -> str:
    return f"course:{course_id}"


def institution_chain(institution_id: int) -> str:
    return f"institution:{institution_id}"


def flag_chain(flag_id: int) -> str:
    return f"flag:{flag_id}"


@dataclass(frozen=True, slots=True)
class CourseRulesPublished(ev.Event):
    """The rules eligibility is decided against. Amounts in yuan."""

    KIND: ClassVar[str] = "course_rules_published"
    course_id: int
    institution_id: int
    name: str
    delivery_mode: str  # online | classroom | blended
    required_hours: float
    occupation: str
    skill_level: int
    subsidy_kind: str  # per_learner | per_hour
    subsidy_amount: float
    subsidy_cap: float | None
    valid_from: datetime | None
    valid_until: datetime | None
    published_by: str
    at: datetime


@dataclass(frozen=True, slots=True)
class CourseRulesWithdrawn(ev.Event):
    KIND: ClassVar[str] = "course_rules_withdrawn"
    course_id: int
    withdrawn_by: str
    at: datetime


@dataclass(frozen=True, slots=True)
class InstitutionStatusChanged(ev.Event):
    KIND: ClassVar[str] = "institution_status_changed"
    institution_id: int
    status: str  # active | suspended | expelled
    reason: str
    effective_at: datetime
    decided_by: str
    at: datetime


@dataclass(frozen=True, slots=True)
class InstitutionRegistered(ev.Event):
    """The bureau files an institution under its name and unified social credit code."""

    KIND: ClassVar[str] = "institution_registered"
    institution_id: int
    name: str
    credit_code: str
    registered_by: str
    at: datetime


@dataclass(frozen=True, slots=True)
class CreditCodeCorrected(ev.Event):
    """The bureau corrects an institution's credit code, with a reason; the earlier code
    stays in the ledger."""

    KIND: ClassVar[str] = "credit_code_corrected"
    institution_id: int
    previous: str | None
    credit_code: str
    reason: str
    corrected_by: str
    at: datetime


@dataclass(frozen=True, slots=True)
class LearnerEnrolled(ev.Event):
    KIND: ClassVar[str] = "course_enrolled"
    learner_id: int
    course_id: int
    institution_id: int
    enrolled_by: str
    at: datetime


@dataclass(frozen=True, slots=True)
class AssessmentRecorded(ev.Event):
    """An assessment result as entered; the latest for a course counts."""

    KIND: ClassVar[str] = "assessment_recorded"
    learner_id: int
    course_id: int
    result_id: int
    passed: bool
    score: float | None
    assessed_at: datetime
    recorded_by: str
    at: datetime


@dataclass(frozen=True, slots=True)
class FlagRaised(ev.Event):
    """`details_sha256` covers the canonical JSON of the flag's evidence details."""

    KIND: ClassVar[str] = "flag_raised"
    flag_id: int
    flag_kind: str
    institution_id: int | None
    learner_ids: tuple[int, ...]  # the flagged learner first, then any others
    summary: str
    details_sha256: str
    at: datetime


@dataclass(frozen=True, slots=True)
class FlagDecided(ev.Event):
    """A decision by the bureau or an inspector. A confirmation holds against the flagged
    learner (the first of `FlagRaised.learner_ids`) and, only if named in `against`,
    against the others the flag names (the earlier enrolment of a duplicated face, the
    learner an impostor's face matched)."""

    KIND: ClassVar[str] = "flag_decided"
    flag_id: int
    status: str  # confirmed | dismissed
    note: str
    decided_by: str
    supersedes_seq: int | None  # the earlier decision this one replaces
    at: datetime
    against: tuple[int, ...] | None = ev.optional()


@dataclass(frozen=True, slots=True)
class FlagStatement(ev.Event):
    """What the institution says about a flag on its learner: recorded, never a decision."""

    KIND: ClassVar[str] = "flag_statement"
    flag_id: int
    statement: str
    made_by: str
    at: datetime


# The kinds of this module, for `supervisor.ledger.kinds`.
KINDS: tuple[type[ev.Event], ...] = (
    CourseRulesPublished,
    CourseRulesWithdrawn,
    InstitutionStatusChanged,
    InstitutionRegistered,
    CreditCodeCorrected,
    LearnerEnrolled,
    AssessmentRecorded,
    FlagRaised,
    FlagDecided,
    FlagStatement,
)
