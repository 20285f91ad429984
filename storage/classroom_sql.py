"""`ClassroomStore` on SQLAlchemy Core: classes, rosters, cameras, filings, supervision runs.

Rules kept here, inside one transaction each, so that no interleaving of callers
can break them (the supervisor checks them first only to give better reasons):

- a roster holds learners of the course's institution, and is frozen once
  supervision of the class has started (the filing covers it);
- a filing snapshots the roster and is closed once supervision has started;
- a run starts only when the class is filed, the latest filing's roster is the
  current roster, it has a camera, and no other run is open (a partial unique
  index backs the last rule);
- cameras change only while no run is open.

The filing's `sha256` is SHA-256 of the UTF-8 canonical JSON (storage.canonical) of
``{"assessment_plan", "class_id", "filed_at" (format_timestamp), "roster" (sorted
ids), "teacher", "teaching_plan"}``; ledger events carry it, so the chain covers
the filed text.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import Row, Table, delete, func, insert, select, update
from sqlalchemy.engine import Connection

from storage.canonical import canonical_json, format_timestamp
from storage.engine import Database
from storage.exceptions import Duplicate, InvalidInput, InvalidState, NotFound
from storage.models import (
    class_cameras,
    class_filings,
    class_roster,
    class_runs,
    courses,
    learners,
    training_classes,
)
from storage.types import (
    CameraSource,
    ClassFiling,
    ClassMode,
    RosterEntry,
    SupervisionRun,
    TrainingClass,
)
from storage.validate import aware, enum_value, ident, text

PLAN_MAX_CHARS: Final = 20_000
URL_MAX_CHARS: Final = 2_000
MAX_ROSTER_CHANGE: Final = 10_000  # learners in one roster call


class SqlClassroomStore:
    """Classroom rows. Thread-safe; each method is one transaction."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- classes ------------------------------------------------------------------

    def create_class(
        self,
        course_id: int,
        name: str,
        mode: ClassMode,
        starts_at: datetime,
        ends_at: datetime,
    ) -> TrainingClass:
        """A class of a course; its institution is the course's.

        Raises `NotFound` for an unknown course, `InvalidInput` for a bad name,
        mode or schedule (naive times, end not after start).
        """
        name = text(name, "class name", 200)
        class_mode = enum_value(ClassMode, mode, "class mode")
        aware(starts_at, "starts_at")
        aware(ends_at, "ends_at")
        if ends_at <= starts_at:
            raise InvalidInput("a class must end after it starts")
        with self._db.write() as conn:
            course = _get(conn, courses, course_id, "course")
            row = conn.execute(
                insert(training_classes)
                .values(
                    course_id=course.id,
                    institution_id=course.institution_id,
                    name=name,
                    mode=class_mode.value,
                    starts_at=starts_at,
                    ends_at=ends_at,
                    created_at=_now(),
                )
                .returning(*training_classes.c)
            ).one()
        return _class(row)

    def get_class(self, class_id: int) -> TrainingClass:
        with self._db.read() as conn:
            return _class(_get(conn, training_classes, class_id, "class"))

    def list_classes(
        self, institution_id: int | None = None, course_id: int | None = None
    ) -> list[TrainingClass]:
        stmt = select(training_classes).order_by(training_classes.c.id)
        if institution_id is not None:
            stmt = stmt.where(training_classes.c.institution_id == institution_id)
        if course_id is not None:
            stmt = stmt.where(training_classes.c.course_id == course_id)
        with self._db.read() as conn:
            return [_class(r) for r in conn.execute(stmt)]

    # -- roster -------------------------------------------------------------------

    def add_to_roster(
        self, class_id: int, learner_ids: Sequence[int], at: datetime
    ) -> list[RosterEntry]:
        """Enrol learners in the class, all or none; returns the whole roster.

        Raises `NotFound` (class or learner), `InvalidInput` (a learner of another
        institution, a repeated id), `Duplicate` (already on the roster) and
        `InvalidState` once supervision of the class has started.
        """
        ids = _learner_ids(learner_ids)
        aware(at, "at")
        with self._db.write() as conn:
            cls = _get(conn, training_classes, class_id, "class", for_update=True)
            _roster_open(conn, class_id)
            for learner_id in ids:
                learner = _get(conn, learners, learner_id, "learner")
                if learner.institution_id != cls.institution_id:
                    raise InvalidInput(
                        f"learner {learner_id} belongs to another institution than the class"
                    )
            present = set(_roster_ids(conn, class_id))
            again = sorted(present.intersection(ids))
            if again:
                raise Duplicate(f"already on the roster of class {class_id}: {again}")
            conn.execute(
                insert(class_roster),
                [{"class_id": class_id, "learner_id": i, "added_at": at} for i in ids],
            )
            return _roster(conn, class_id)

    def remove_from_roster(self, class_id: int, learner_id: int) -> list[RosterEntry]:
        """Take a learner off the roster; returns the roster. `NotFound` if not on it."""
        with self._db.write() as conn:
            _get(conn, training_classes, class_id, "class", for_update=True)
            _roster_open(conn, class_id)
            gone = conn.execute(
                delete(class_roster).where(
                    class_roster.c.class_id == class_id, class_roster.c.learner_id == learner_id
                )
            ).rowcount
            if not gone:
                raise NotFound(f"learner {learner_id} is not on the roster of class {class_id}")
            return _roster(conn, class_id)

    def roster(self, class_id: int) -> list[RosterEntry]:
        with self._db.read() as conn:
            _get(conn, training_classes, class_id, "class")
            return _roster(conn, class_id)

    # -- cameras ------------------------------------------------------------------

    def add_camera(self, class_id: int, url: str, label: str, at: datetime) -> CameraSource:
        """Add a camera source. `Duplicate` for a URL the class already has,
        `InvalidState` while a run is open."""
        url = text(url, "camera URL", URL_MAX_CHARS)
        label = text(label, "camera label", 200)
        aware(at, "at")
        try:
            with self._db.write() as conn:
                _get(conn, training_classes, class_id, "class", for_update=True)
                _no_open_run(conn, class_id, "cameras cannot change while supervision runs")
                row = conn.execute(
                    insert(class_cameras)
                    .values(class_id=class_id, url=url, label=label, created_at=at)
                    .returning(*class_cameras.c)
                ).one()
        except Duplicate:
            # Never echo the URL: it may carry the camera's credentials.
            raise Duplicate(f"class {class_id} already has a camera with this URL") from None
        return _camera(row)

    def remove_camera(self, class_id: int, camera_id: int) -> None:
        with self._db.write() as conn:
            _get(conn, training_classes, class_id, "class", for_update=True)
            _no_open_run(conn, class_id, "cameras cannot change while supervision runs")
            gone = conn.execute(
                delete(class_cameras).where(
                    class_cameras.c.class_id == class_id, class_cameras.c.id == camera_id
                )
            ).rowcount
            if not gone:
                raise NotFound(f"camera {camera_id} not found in class {class_id}")

    def cameras(self, class_id: int) -> list[CameraSource]:
        with self._db.read() as conn:
            _get(conn, training_classes, class_id, "class")
            rows = conn.execute(
                select(class_cameras)
                .where(class_cameras.c.class_id == class_id)
                .order_by(class_cameras.c.id)
            )
            return [_camera(r) for r in rows]

    # -- filing -------------------------------------------------------------------

    def file_class(
        self,
        class_id: int,
        teacher: str,
        teaching_plan: str,
        assessment_plan: str,
        filed_by: str,
        at: datetime,
    ) -> ClassFiling:
        """File the class before training: teacher, plans and the roster as it stands.

        A later filing before the first run supersedes an earlier one. Raises
        `InvalidState` for an empty roster or once supervision has started.
        """
        teacher = text(teacher, "teacher", 200)
        teaching_plan = text(teaching_plan, "teaching plan", PLAN_MAX_CHARS)
        assessment_plan = text(assessment_plan, "assessment plan", PLAN_MAX_CHARS)
        filed_by = text(filed_by, "filed_by", 200)
        aware(at, "at")
        with self._db.write() as conn:
            _get(conn, training_classes, class_id, "class", for_update=True)
            if _has_runs(conn, class_id):
                raise InvalidState("filing is closed once supervision of the class has started")
            roster = sorted(_roster_ids(conn, class_id))
            if not roster:
                raise InvalidState("a class cannot be filed with an empty roster")
            digest = filing_sha256(class_id, teacher, teaching_plan, assessment_plan, roster, at)
            row = conn.execute(
                insert(class_filings)
                .values(
                    class_id=class_id,
                    teacher=teacher,
                    teaching_plan=teaching_plan,
                    assessment_plan=assessment_plan,
                    roster=canonical_json(roster),
                    filed_by=filed_by,
                    filed_at=at,
                    sha256=digest,
                )
                .returning(*class_filings.c)
            ).one()
        return _filing(row)

    def latest_filing(self, class_id: int) -> ClassFiling | None:
        with self._db.read() as conn:
            _get(conn, training_classes, class_id, "class")
            row = _latest_filing(conn, class_id)
        return None if row is None else _filing(row)

    # -- supervision runs ---------------------------------------------------------

    def start_run(
        self, class_id: int, at: datetime, by: str, owner: str, lease_until: datetime
    ) -> SupervisionRun:
        """Open a supervision run held by `owner` until `lease_until`.

        Raises `InvalidState` when the class is not filed, its roster changed since
        the filing, it has no camera, or a run is already open.
        """
        by = text(by, "started_by", 200)
        ident(owner, "lease owner")
        aware(at, "at")
        aware(lease_until, "lease_until")
        try:
            with self._db.write() as conn:
                _get(conn, training_classes, class_id, "class", for_update=True)
                filing = _latest_filing(conn, class_id)
                if filing is None:
                    raise InvalidState("the class has not been filed")
                if sorted(_roster_ids(conn, class_id)) != json.loads(filing.roster):
                    raise InvalidState("the roster changed since the filing; file the class again")
                cameras = conn.execute(
                    select(func.count())
                    .select_from(class_cameras)
                    .where(class_cameras.c.class_id == class_id)
                ).scalar_one()
                if not cameras:
                    raise InvalidState("the class has no camera")
                _no_open_run(conn, class_id, "supervision of the class is already running")
                row = conn.execute(
                    insert(class_runs)
                    .values(
                        class_id=class_id,
                        started_at=at,
                        started_by=by,
                        lease_owner=owner,
                        lease_until=lease_until,
                    )
                    .returning(*class_runs.c)
                ).one()
        except Duplicate:
            raise InvalidState("supervision of the class is already running") from None
        return _run(row)

    def get_run(self, run_id: int) -> SupervisionRun:
        with self._db.read() as conn:
            return _run(_get(conn, class_runs, run_id, "supervision run"))

    def open_run(self, class_id: int) -> SupervisionRun | None:
        with self._db.read() as conn:
            row = conn.execute(
                select(class_runs).where(
                    class_runs.c.class_id == class_id, class_runs.c.stopped_at.is_(None)
                )
            ).first()
        return None if row is None else _run(row)

    def list_runs(self, class_id: int) -> list[SupervisionRun]:
        with self._db.read() as conn:
            rows = conn.execute(
                select(class_runs)
                .where(class_runs.c.class_id == class_id)
                .order_by(class_runs.c.id)
            )
            return [_run(r) for r in rows]

    def renew_lease(self, run_id: int, owner: str, until: datetime) -> SupervisionRun | None:
        """Extend the lease of an open run held by `owner`; None if it is stopped or
        held by another process (this process must stop supervising it)."""
        aware(until, "until")
        with self._db.write() as conn:
            row = conn.execute(
                update(class_runs)
                .where(
                    class_runs.c.id == run_id,
                    class_runs.c.stopped_at.is_(None),
                    class_runs.c.lease_owner == owner,
                )
                .values(lease_until=until)
                .returning(*class_runs.c)
            ).first()
        return None if row is None else _run(row)

    def release_lease(self, run_id: int, owner: str, at: datetime) -> None:
        """Let the lease lapse now (orderly shutdown), so another process may resume."""
        aware(at, "at")
        with self._db.write() as conn:
            conn.execute(
                update(class_runs)
                .where(class_runs.c.id == run_id, class_runs.c.lease_owner == owner)
                .values(lease_until=at)
            )

    def claim_lapsed_runs(self, owner: str, now: datetime, until: datetime) -> list[SupervisionRun]:
        """Take over every open run whose lease has lapsed; each is claimed by one caller."""
        ident(owner, "lease owner")
        aware(now, "now")
        aware(until, "until")
        with self._db.write() as conn:
            rows = conn.execute(
                update(class_runs)
                .where(
                    class_runs.c.stopped_at.is_(None),
                    (class_runs.c.lease_until.is_(None)) | (class_runs.c.lease_until < now),
                )
                .values(lease_owner=owner, lease_until=until)
                .returning(*class_runs.c)
            ).all()
        return sorted((_run(r) for r in rows), key=lambda r: r.id)

    def request_stop(self, run_id: int, at: datetime, by: str) -> SupervisionRun:
        """Ask the process that runs it to stop the run (it notices at its next lease
        renewal); `stopped_by` names the requester from now on. The first request is
        kept. `InvalidState` if the run already stopped."""
        by = text(by, "stopped_by", 200)
        aware(at, "at")
        with self._db.write() as conn:
            current = _get(conn, class_runs, run_id, "supervision run", for_update=True)
            if current.stopped_at is not None:
                raise InvalidState(f"supervision run {run_id} has already stopped")
            if current.stop_requested_at is not None:
                return _run(current)
            row = conn.execute(
                update(class_runs)
                .where(class_runs.c.id == run_id)
                .values(stop_requested_at=at, stopped_by=by)
                .returning(*class_runs.c)
            ).one()
        return _run(row)

    def stop_run(self, run_id: int, at: datetime, by: str, reason: str) -> SupervisionRun:
        """Close a run. `InvalidState` if it already stopped."""
        by = text(by, "stopped_by", 200)
        ident(reason, "stop reason")
        aware(at, "at")
        with self._db.write() as conn:
            current = _get(conn, class_runs, run_id, "supervision run", for_update=True)
            if current.stopped_at is not None:
                raise InvalidState(f"supervision run {run_id} has already stopped")
            if at < current.started_at:
                raise InvalidInput("a run cannot stop before it started")
            row = conn.execute(
                update(class_runs)
                .where(class_runs.c.id == run_id)
                .values(stopped_at=at, stopped_by=by, stop_reason=reason)
                .returning(*class_runs.c)
            ).one()
        return _run(row)


def filing_sha256(
    class_id: int,
    teacher: str,
    teaching_plan: str,
    assessment_plan: str,
    roster: Sequence[int],
    filed_at: datetime,
) -> str:
    """The filing's content hash, as specified in the module docstring."""
    body = canonical_json(
        {
            "assessment_plan": assessment_plan,
            "class_id": class_id,
            "filed_at": format_timestamp(filed_at),
            "roster": sorted(roster),
            "teacher": teacher,
            "teaching_plan": teaching_plan,
        }
    )
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


# -- helpers -------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


def _get(
    conn: Connection, table: Table, key: Any, what: str, *, for_update: bool = False
) -> Row[Any]:
    if type(key) is not int:
        raise InvalidInput(f"{what} id must be an int (got {type(key).__name__})")
    pk = next(iter(table.primary_key.columns))
    stmt = select(table).where(pk == key)
    if for_update:
        stmt = stmt.with_for_update()  # PostgreSQL row lock; SQLite holds the write lock
    row = conn.execute(stmt).first()
    if row is None:
        raise NotFound(f"{what} {key} not found")
    return row


def _learner_ids(values: Sequence[int]) -> list[int]:
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        raise InvalidInput("learner ids must be a list of integers")
    ids = list(values)
    if not ids:
        raise InvalidInput("give at least one learner id")
    if len(ids) > MAX_ROSTER_CHANGE:
        raise InvalidInput(f"at most {MAX_ROSTER_CHANGE} learners per call")
    if any(type(i) is not int for i in ids):
        raise InvalidInput("learner ids must be integers")
    if len(set(ids)) != len(ids):
        raise InvalidInput("a learner id is repeated")
    return ids


def _has_runs(conn: Connection, class_id: int) -> bool:
    found = conn.execute(
        select(class_runs.c.id).where(class_runs.c.class_id == class_id).limit(1)
    ).first()
    return found is not None


def _roster_open(conn: Connection, class_id: int) -> None:
    if _has_runs(conn, class_id):
        raise InvalidState("the roster is frozen once supervision of the class has started")


def _no_open_run(conn: Connection, class_id: int, message: str) -> None:
    found = conn.execute(
        select(class_runs.c.id).where(
            class_runs.c.class_id == class_id, class_runs.c.stopped_at.is_(None)
        )
    ).first()
    if found is not None:
        raise InvalidState(message)


def _roster_ids(conn: Connection, class_id: int) -> list[int]:
    rows = conn.execute(
        select(class_roster.c.learner_id).where(class_roster.c.class_id == class_id)
    )
    return [int(r[0]) for r in rows]


def _roster(conn: Connection, class_id: int) -> list[RosterEntry]:
    rows = conn.execute(
        select(class_roster)
        .where(class_roster.c.class_id == class_id)
        .order_by(class_roster.c.learner_id)
    )
    return [RosterEntry(r.class_id, r.learner_id, r.added_at) for r in rows]


def _latest_filing(conn: Connection, class_id: int) -> Row[Any] | None:
    return conn.execute(
        select(class_filings)
        .where(class_filings.c.class_id == class_id)
        .order_by(class_filings.c.id.desc())
        .limit(1)
    ).first()


def _class(r: Row[Any]) -> TrainingClass:
    return TrainingClass(
        r.id,
        r.course_id,
        r.institution_id,
        r.name,
        ClassMode(r.mode),
        r.starts_at,
        r.ends_at,
        r.created_at,
    )


def _camera(r: Row[Any]) -> CameraSource:
    return CameraSource(r.id, r.class_id, r.url, r.label, r.created_at)


def _filing(r: Row[Any]) -> ClassFiling:
    return ClassFiling(
        r.id,
        r.class_id,
        r.teacher,
        r.teaching_plan,
        r.assessment_plan,
        tuple(int(i) for i in json.loads(r.roster)),
        r.filed_by,
        r.filed_at,
        r.sha256,
    )


def _run(r: Row[Any]) -> SupervisionRun:
    return SupervisionRun(
        r.id,
        r.class_id,
        r.started_at,
        r.started_by,
        r.stopped_at,
        r.stopped_by,
        r.stop_reason,
        r.stop_requested_at,
        r.lease_owner,
        r.lease_until,
    )
