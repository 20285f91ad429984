"""Ledger events of a learner's personal-data rights (PIPL): the non-face path and
data-access requests. They go into the learner's own chain (`learner:<id>`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from supervisor.ledger import events as ev


@dataclass(frozen=True, slots=True)
class AlternativeRequested(ev.Event):
    """The learner asks to be verified without face recognition."""

    KIND: ClassVar[str] = "alternative_requested"
    learner_id: int
    reason: str
    recorded_by: str
    at: datetime


@dataclass(frozen=True, slots=True)
class AlternativeDecided(ev.Event):
    """An operator's decision on the non-face path; the newest decision is in force.

    `method` says how identity is established instead (for example an in-person
    check of the ID card at every session start, by the institution's staff).
    """

    KIND: ClassVar[str] = "alternative_decided"
    learner_id: int
    approved: bool
    method: str
    note: str
    decided_by: str
    at: datetime


@dataclass(frozen=True, slots=True)
class DataExported(ev.Event):
    """A copy of what is held about the learner was given out, and to whom."""

    KIND: ClassVar[str] = "data_exported"
    learner_id: int
    recorded_by: str
    at: datetime


@dataclass(frozen=True, slots=True)
class TemplatesPurged(ev.Event):
    """Face templates deleted by retention (`supervisor purge`), not by the learner."""

    KIND: ClassVar[str] = "templates_purged"
    learner_id: int
    templates_deleted: int
    reason: str
    last_course_end: datetime
    at: datetime
    photos_deleted: int | None = ev.optional()  # the enrolment photos that went with them


# The kinds of this module, for `supervisor.ledger.kinds`.
KINDS: tuple[type[ev.Event], ...] = (
    AlternativeRequested,
    AlternativeDecided,
    DataExported,
    TemplatesPurged,
)
