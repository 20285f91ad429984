"""`RecordsStore` on SQLAlchemy Core: institutions' profiles, courses' classification,
learners' key groups and skill-level certificates.

Every table is insert-only: a correction, a re-classification or a removal from a
group is a new row, and the latest row counts. The service appends the matching
ledger event; these tables are projections for queries. Values arrive validated by
the service (`supervisor.rules.divisions`, `supervisor.rules.occupations`); the
checks here only keep bad types and lengths out of SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, func, insert, select

from storage.engine import Database
from storage.exceptions import Duplicate, InvalidInput
from storage.models import (
    assessment_results,
    certificates,
    course_classifications,
    courses,
    institution_profiles,
    institutions,
    learner_group_changes,
    learners,
)
from storage.registry_sql import _get
from storage.types import (
    Certificate,
    CourseClassification,
    InstitutionProfile,
    LearnerGroup,
)
from storage.validate import aware, text

_DATE_LEN = 10  # YYYY-MM-DD


def _date(value: Any, what: str) -> str:
    value = text(value, what, _DATE_LEN)
    if len(value) != _DATE_LEN:
        raise InvalidInput(f"{what} must be a date YYYY-MM-DD")
    return value


def _level(value: Any) -> int:
    if type(value) is not int or not 1 <= value <= 5:
        raise InvalidInput("skill level must be an int from 1 to 5")
    return value


class SqlRecordsStore:
    """Thread-safe; every method is one transaction."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- institutions' profiles -------------------------------------------------------

    def record_profile(
        self,
        institution_id: int,
        division_code: str,
        licence_number: str,
        legal_representative: str,
        address: str,
        reason: str,
        recorded_by: str,
        at: datetime,
    ) -> InstitutionProfile:
        values = {
            "institution_id": institution_id,
            "division_code": text(division_code, "division code", 6),
            "licence_number": text(licence_number, "licence number", 100),
            "legal_representative": text(legal_representative, "legal representative", 100),
            "address": text(address, "address", 500),
            "reason": text(reason, "reason", 2000),
            "recorded_by": text(recorded_by, "recorded_by", 200),
            "recorded_at": aware(at, "recorded_at"),
        }
        with self._db.write() as conn:
            _get(conn, institutions, institution_id, "institution", for_update=True)
            new_id = conn.execute(
                insert(institution_profiles).values(**values).returning(institution_profiles.c.id)
            ).scalar_one()
            row = conn.execute(
                select(institution_profiles).where(institution_profiles.c.id == new_id)
            ).one()
            return _profile(row)

    def profile(self, institution_id: int) -> InstitutionProfile | None:
        """The latest profile of the institution, or None if none was recorded."""
        p = institution_profiles
        with self._db.read() as conn:
            row = conn.execute(
                select(p).where(p.c.institution_id == institution_id).order_by(p.c.id.desc())
            ).first()
        return None if row is None else _profile(row)

    def profiles(self) -> dict[int, InstitutionProfile]:
        """The latest profile of every institution that has one."""
        p = institution_profiles
        latest = select(func.max(p.c.id).label("id")).group_by(p.c.institution_id).subquery()
        with self._db.read() as conn:
            rows = conn.execute(select(p).join(latest, latest.c.id == p.c.id)).all()
        return {r.institution_id: _profile(r) for r in rows}

    def profile_history(self, institution_id: int) -> list[InstitutionProfile]:
        p = institution_profiles
        with self._db.read() as conn:
            rows = conn.execute(
                select(p).where(p.c.institution_id == institution_id).order_by(p.c.id)
            ).all()
        return [_profile(r) for r in rows]

    # -- courses' classification ------------------------------------------------------

    def classify_course(
        self, course_id: int, occupation_code: str, skill_level: int, by: str, at: datetime
    ) -> CourseClassification:
        values = {
            "course_id": course_id,
            "occupation_code": text(occupation_code, "occupation code", 10),
            "skill_level": _level(skill_level),
            "recorded_by": text(by, "recorded_by", 200),
            "recorded_at": aware(at, "recorded_at"),
        }
        c = course_classifications
        with self._db.write() as conn:
            _get(conn, courses, course_id, "course", for_update=True)
            new_id = conn.execute(insert(c).values(**values).returning(c.c.id)).scalar_one()
            return _classification(conn.execute(select(c).where(c.c.id == new_id)).one())

    def classification(self, course_id: int) -> CourseClassification | None:
        c = course_classifications
        with self._db.read() as conn:
            row = conn.execute(
                select(c).where(c.c.course_id == course_id).order_by(c.c.id.desc())
            ).first()
        return None if row is None else _classification(row)

    def classifications(self) -> dict[int, CourseClassification]:
        """The latest classification of every classified course."""
        c = course_classifications
        latest = select(func.max(c.c.id).label("id")).group_by(c.c.course_id).subquery()
        with self._db.read() as conn:
            rows = conn.execute(select(c).join(latest, latest.c.id == c.c.id)).all()
        return {r.course_id: _classification(r) for r in rows}

    # -- learners' key groups ----------------------------------------------------------

    def change_group(
        self,
        learner_id: int,
        group: str,
        added: bool,
        since: str | None,
        source: str | None,
        reason: str | None,
        by: str,
        at: datetime,
    ) -> None:
        """Record an addition (`since`, `source`) or a removal (`reason`)."""
        values = {
            "learner_id": learner_id,
            "group_name": text(group, "group", 32),
            "added": bool(added),
            "since": _date(since, "since") if added else None,
            "source": text(source, "source", 200) if added else None,
            "reason": None if added else text(reason, "reason", 2000),
            "recorded_by": text(by, "recorded_by", 200),
            "recorded_at": aware(at, "recorded_at"),
        }
        with self._db.write() as conn:
            _get(conn, learners, learner_id, "learner", for_update=True)
            conn.execute(insert(learner_group_changes).values(**values))

    def groups(self, learner_ids: Sequence[int] | None = None) -> dict[int, list[LearnerGroup]]:
        """The key groups each learner is in now (the latest change per group is an
        addition), by learner, in order of group name."""
        g = learner_group_changes
        latest = select(func.max(g.c.id).label("id")).group_by(g.c.learner_id, g.c.group_name)
        if learner_ids is not None:
            latest = latest.where(g.c.learner_id.in_(list(learner_ids)))
        sub = latest.subquery()
        stmt = (
            select(g)
            .join(sub, sub.c.id == g.c.id)
            .where(g.c.added.is_(True))
            .order_by(g.c.learner_id, g.c.group_name)
        )
        out: dict[int, list[LearnerGroup]] = {}
        with self._db.read() as conn:
            for r in conn.execute(stmt):
                out.setdefault(r.learner_id, []).append(
                    LearnerGroup(
                        r.learner_id, r.group_name, r.since, r.source, r.recorded_by, r.recorded_at
                    )
                )
        return out

    # -- certificates ------------------------------------------------------------------

    def add_certificate(
        self,
        number: str,
        result_id: int,
        skill_level: int,
        occupation_code: str,
        issued_on: str,
        issuing_body: str,
        by: str,
        at: datetime,
    ) -> Certificate:
        """A certificate for the assessment result `result_id` (its learner and course).
        Raises `Duplicate` when the number is taken or the result already has one."""
        values = {
            "number": text(number, "certificate number", 64),
            "result_id": result_id,
            "skill_level": _level(skill_level),
            "occupation_code": text(occupation_code, "occupation code", 10),
            "issued_on": _date(issued_on, "issued_on"),
            "issuing_body": text(issuing_body, "issuing body", 200),
            "recorded_by": text(by, "recorded_by", 200),
            "recorded_at": aware(at, "recorded_at"),
        }
        c = certificates
        # A concurrent insert of the same number or result fails on the unique
        # constraints, which the engine turns into `Duplicate` too.
        with self._db.write() as conn:
            result = _get(conn, assessment_results, result_id, "assessment result")
            for column, what in ((c.c.number, "number"), (c.c.result_id, "result")):
                taken = conn.execute(select(c.c.id).where(column == values[column.name])).first()
                if taken is not None:
                    raise Duplicate(f"a certificate with this {what} exists already")
            new_id = conn.execute(
                insert(c)
                .values(learner_id=result.learner_id, course_id=result.course_id, **values)
                .returning(c.c.id)
            ).scalar_one()
            return _certificate(conn.execute(select(c).where(c.c.id == new_id)).one())

    def certificates(
        self, learner_id: int | None = None, course_id: int | None = None
    ) -> list[Certificate]:
        c = certificates
        stmt = select(c).order_by(c.c.id)
        if learner_id is not None:
            stmt = stmt.where(c.c.learner_id == learner_id)
        if course_id is not None:
            stmt = stmt.where(c.c.course_id == course_id)
        with self._db.read() as conn:
            return [_certificate(r) for r in conn.execute(stmt)]


def _profile(r: Row[Any]) -> InstitutionProfile:
    return InstitutionProfile(
        r.id,
        r.institution_id,
        r.division_code,
        r.licence_number,
        r.legal_representative,
        r.address,
        r.reason,
        r.recorded_by,
        r.recorded_at,
    )


def _classification(r: Row[Any]) -> CourseClassification:
    return CourseClassification(
        r.id, r.course_id, r.occupation_code, r.skill_level, r.recorded_by, r.recorded_at
    )


def _certificate(r: Row[Any]) -> Certificate:
    return Certificate(
        r.id,
        r.number,
        r.learner_id,
        r.course_id,
        r.result_id,
        r.skill_level,
        r.occupation_code,
        r.issued_on,
        r.issuing_body,
        r.recorded_by,
        r.recorded_at,
    )
