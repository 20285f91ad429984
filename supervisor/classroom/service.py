"""Classroom training and assessments: the operators' side.

`ClassroomService` is what the API and the CLI call: classes of a course with a
schedule and a mode (training or assessment), rosters, cameras, the filing
before training, and start, stop and status of a class's supervision (held by
`classroom.supervisor.ClassSupervisor`). Every refusal is a `ServiceError` with a
machine-readable reason, and changes nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from capture.exceptions import CaptureError
from storage.exceptions import Duplicate, InvalidState
from storage.types import (
    CameraSource,
    ClassFiling,
    ClassMode,
    DeliveryMode,
    Learner,
    LedgerEvent,
    Role,
    RosterEntry,
    TrainingClass,
)
from supervisor.auth import Principal, can_read_institution, can_read_learner
from supervisor.classroom.cameras import camera_policy, check_camera_url, open_camera
from supervisor.classroom.supervisor import ClassSupervisor
from supervisor.classroom.timeline import Attendance, SupervisionStatus, timeline
from supervisor.context import Context
from supervisor.errors import Conflict, InvalidInput, UnknownId, WrongRole
from supervisor.ledger import classroom as ce
from supervisor.ledger import codec
from supervisor.registry.status import ensure_active, ensure_may_register
from supervisor.rules.crediting import credit

MAX_SCHEDULE: Final = timedelta(days=366)


@dataclass(frozen=True, slots=True)
class CameraTest:
    """Whether a camera gave a frame when asked (the operator's test-connection)."""

    camera_id: int
    reachable: bool
    width: int | None
    height: int | None
    error: str | None  # the capture layer's last error (URL redacted), when unreachable


class ClassroomService:
    def __init__(self, ctx: Context, supervisor: ClassSupervisor) -> None:
        self.ctx = ctx
        self.supervisor = supervisor
        self.store = ctx.storage.classroom
        self.registry = ctx.storage.registry

    async def _class(self, p: Principal, class_id: int, write: bool) -> TrainingClass:
        cls = await self.ctx.db(self.store.get_class, class_id)
        if write:
            await ensure_may_register(self.ctx, p, cls.institution_id)
        else:
            can_read_institution(p, cls.institution_id)
        return cls

    # -- classes -----------------------------------------------------------------

    async def create_class(
        self,
        p: Principal,
        course_id: int,
        name: str,
        mode: ClassMode,
        starts_at: datetime,
        ends_at: datetime,
    ) -> TrainingClass:
        course = await self.ctx.db(self.registry.get_course, course_id)
        await ensure_may_register(self.ctx, p, course.institution_id)
        if course.delivery_mode is DeliveryMode.online:
            raise InvalidInput(
                "the course is delivered online; classes are for classroom or blended courses",
                reason="course_not_classroom",
            )
        if ends_at <= starts_at:
            raise InvalidInput("a class must end after it starts", reason="invalid_schedule")
        if ends_at - starts_at > MAX_SCHEDULE:
            raise InvalidInput("a class may span at most 366 days", reason="invalid_schedule")
        return await self.ctx.db(self.store.create_class, course_id, name, mode, starts_at, ends_at)

    async def get_class(self, p: Principal, class_id: int) -> TrainingClass:
        return await self._class(p, class_id, write=False)

    async def list_classes(
        self, p: Principal, institution_id: int | None, course_id: int | None
    ) -> list[TrainingClass]:
        if p.role is Role.learner:
            raise WrongRole("learners cannot list classes")
        if p.role is Role.operator:
            institution_id = p.institution_id
        return await self.ctx.db(self.store.list_classes, institution_id, course_id)

    # -- roster ------------------------------------------------------------------

    async def roster(self, p: Principal, class_id: int) -> list[tuple[RosterEntry, Learner]]:
        await self._class(p, class_id, write=False)
        entries = await self.ctx.db(self.store.roster, class_id)
        learners = await asyncio.gather(
            *(self.ctx.db(self.registry.get_learner, e.learner_id) for e in entries)
        )
        return list(zip(entries, learners, strict=True))

    async def add_to_roster(
        self, p: Principal, class_id: int, learner_ids: Sequence[int]
    ) -> list[tuple[RosterEntry, Learner]]:
        cls = await self._class(p, class_id, write=True)
        if len(set(learner_ids)) != len(learner_ids):
            raise InvalidInput("a learner id is repeated", reason="invalid_input")
        await self._roster_open(class_id)
        current = await self.ctx.db(self.store.roster, class_id)
        limit = self.ctx.settings.classroom.max_roster
        if len(current) + len(learner_ids) > limit:
            raise InvalidInput(
                f"a class may have at most {limit} learners", reason="roster_too_large"
            )
        on_roster = {e.learner_id for e in current}
        for learner_id in learner_ids:
            learner = await self.ctx.db(self.registry.get_learner, learner_id)
            if learner.institution_id != cls.institution_id:
                raise InvalidInput(
                    f"learner {learner_id} belongs to another institution than the class",
                    reason="learner_other_institution",
                )
            if learner_id in on_roster:
                raise Conflict(
                    f"learner {learner_id} is already on the roster", reason="already_on_roster"
                )
        try:
            await self.ctx.db(self.store.add_to_roster, class_id, learner_ids, self.ctx.clock())
        except Duplicate as exc:
            raise Conflict(str(exc), reason="already_on_roster") from None
        except InvalidState as exc:
            raise Conflict(str(exc), reason="roster_frozen") from None
        return await self.roster(p, class_id)

    async def roster_room(
        self, p: Principal, class_id: int, registered: Sequence[int], unregistered: int
    ) -> None:
        """Refuse, as `add_to_roster` would, before learners are registered for the
        class (a roster import): the class is writable by `p` and its roster open and
        large enough for the `registered` learners not on it yet and `unregistered`
        learners still to be registered."""
        await self._class(p, class_id, write=True)
        await self._roster_open(class_id)
        current = {e.learner_id for e in await self.ctx.db(self.store.roster, class_id)}
        adding = len({i for i in registered if i not in current}) + unregistered
        limit = self.ctx.settings.classroom.max_roster
        if len(current) + adding > limit:
            raise InvalidInput(
                f"a class may have at most {limit} learners", reason="roster_too_large"
            )

    async def remove_from_roster(
        self, p: Principal, class_id: int, learner_id: int
    ) -> list[tuple[RosterEntry, Learner]]:
        await self._class(p, class_id, write=True)
        await self._roster_open(class_id)
        try:
            await self.ctx.db(self.store.remove_from_roster, class_id, learner_id)
        except InvalidState as exc:
            raise Conflict(str(exc), reason="roster_frozen") from None
        return await self.roster(p, class_id)

    async def _roster_open(self, class_id: int) -> None:
        if await self.ctx.db(self.store.list_runs, class_id):
            raise Conflict(
                "the roster is frozen once supervision of the class has started",
                reason="roster_frozen",
            )

    # -- cameras -------------------------------------------------------------------

    async def cameras(self, p: Principal, class_id: int) -> list[CameraSource]:
        await self._class(p, class_id, write=False)
        return await self.ctx.db(self.store.cameras, class_id)

    async def add_camera(self, p: Principal, class_id: int, url: str, label: str) -> CameraSource:
        await self._class(p, class_id, write=True)
        # Name resolution blocks: never on the event loop.
        url = await asyncio.to_thread(
            check_camera_url, url, self.ctx.settings, may_use_files=p.role is Role.admin
        )
        current = await self.ctx.db(self.store.cameras, class_id)
        limit = self.ctx.settings.classroom.max_cameras
        if len(current) >= limit:
            raise InvalidInput(
                f"a class may have at most {limit} cameras", reason="too_many_cameras"
            )
        if any(c.url == url for c in current):
            raise Conflict(
                "the class already has a camera with this URL", reason="duplicate_camera"
            )
        await self._not_running(class_id, "cameras cannot change while supervision runs")
        try:
            return await self.ctx.db(self.store.add_camera, class_id, url, label, self.ctx.clock())
        except Duplicate as exc:
            raise Conflict(str(exc), reason="duplicate_camera") from None
        except InvalidState as exc:
            raise Conflict(str(exc), reason="class_running") from None

    async def test_camera(self, p: Principal, class_id: int, camera_id: int) -> CameraTest:
        """Open a camera of the class, wait for one frame, close it: nothing is recorded.
        Waits at most `classroom.camera_open_timeout_s` + `frame_timeout_s`."""
        await self._class(p, class_id, write=True)
        found = [c for c in await self.ctx.db(self.store.cameras, class_id) if c.id == camera_id]
        if not found:
            raise UnknownId("the class has no camera with this id")
        s = self.ctx.settings.classroom
        source = open_camera(
            f"test-class-{class_id}-camera-{camera_id}",
            found[0].url,
            s,
            self.ctx.clock,
            lambda _status: None,
            camera_policy(self.ctx.settings),  # the same address checks as supervision
        )
        await source.start()
        try:
            frames = await source.sample(1, 0.0, s.camera_open_timeout_s + s.frame_timeout_s)
        except CaptureError as exc:
            error = source.status().last_error or type(exc).__name__
            return CameraTest(camera_id, False, None, None, error)
        finally:
            await source.stop()
        height, width = frames[0].image.shape[:2]
        return CameraTest(camera_id, True, int(width), int(height), None)

    async def remove_camera(self, p: Principal, class_id: int, camera_id: int) -> None:
        await self._class(p, class_id, write=True)
        await self._not_running(class_id, "cameras cannot change while supervision runs")
        try:
            await self.ctx.db(self.store.remove_camera, class_id, camera_id)
        except InvalidState as exc:
            raise Conflict(str(exc), reason="class_running") from None

    async def _not_running(self, class_id: int, message: str) -> None:
        if await self.ctx.db(self.store.open_run, class_id) is not None:
            raise Conflict(message, reason="class_running")

    # -- filing --------------------------------------------------------------------

    async def file(
        self,
        p: Principal,
        class_id: int,
        teacher: str,
        teaching_plan: str,
        assessment_plan: str,
    ) -> ClassFiling:
        """File the class before training; the filing is also a ledger event."""
        cls = await self._class(p, class_id, write=True)
        if await self.ctx.db(self.store.list_runs, class_id):
            raise Conflict(
                "filing is closed once supervision of the class has started",
                reason="filing_closed",
            )
        if not await self.ctx.db(self.store.roster, class_id):
            raise Conflict("a class cannot be filed with an empty roster", reason="empty_roster")
        async with self.ctx.lock(ce.class_chain(class_id)):
            try:
                filing = await self.ctx.db(
                    self.store.file_class,
                    class_id,
                    teacher,
                    teaching_plan,
                    assessment_plan,
                    p.actor,
                    self.ctx.clock(),
                )
            except InvalidState as exc:
                raise Conflict(str(exc), reason="filing_closed") from None
            filed = ce.ClassFiled(
                class_id,
                cls.course_id,
                cls.institution_id,
                filing.id,
                filing.sha256,
                filing.roster,
                filing.teacher,
                cls.mode.value,
                cls.starts_at,
                cls.ends_at,
                p.actor,
                filing.filed_at,
            )
            await self.ctx.append(ce.class_chain(class_id), [codec.encode(filed)])
        return filing

    async def filing(self, p: Principal, class_id: int) -> ClassFiling:
        await self._class(p, class_id, write=False)
        found = await self.ctx.db(self.store.latest_filing, class_id)
        if found is None:
            raise UnknownId("the class has not been filed", reason="not_filed")
        return found

    # -- supervision ---------------------------------------------------------------

    async def start(self, p: Principal, class_id: int) -> SupervisionStatus:
        """Start supervising the class in this process."""
        cls = await self._class(p, class_id, write=True)
        await ensure_active(self.ctx, cls.institution_id)
        now = self.ctx.clock()
        early = timedelta(seconds=self.ctx.settings.classroom.early_start_s)
        if now >= cls.ends_at:
            raise Conflict("the class's schedule has ended", reason="class_over")
        if now < cls.starts_at - early:
            raise Conflict(
                "supervision can start at most "
                f"{int(early.total_seconds())} s before the scheduled start",
                reason="too_early",
            )
        if await self.ctx.db(self.store.open_run, class_id) is not None:
            raise Conflict("supervision of the class is already running", reason="already_running")
        filing = await self.ctx.db(self.store.latest_filing, class_id)
        if filing is None:
            raise Conflict("the class has not been filed", reason="not_filed")
        roster = tuple(sorted(e.learner_id for e in await self.ctx.db(self.store.roster, class_id)))
        if roster != tuple(sorted(filing.roster)):
            raise Conflict(
                "the roster changed since the filing; file the class again",
                reason="filing_outdated",
            )
        if not await self.ctx.db(self.store.cameras, class_id):
            raise Conflict("the class has no camera", reason="no_cameras")
        try:
            await self.supervisor.begin(cls, p.actor)
        except InvalidState as exc:
            raise Conflict(str(exc), reason="already_running") from None
        return await self.status(p, class_id)

    async def stop(self, p: Principal, class_id: int) -> SupervisionStatus:
        """Stop supervising: the end roll call is held, then the run closes."""
        await self._class(p, class_id, write=True)
        run = await self.ctx.db(self.store.open_run, class_id)
        if run is None:
            raise Conflict("supervision of the class is not running", reason="not_running")
        await self.supervisor.end(run, p.actor)
        return await self.status(p, class_id)

    async def status(self, p: Principal, class_id: int) -> SupervisionStatus:
        cls = await self._class(p, class_id, write=False)
        return await self.supervisor.status(cls)

    async def class_events(self, p: Principal, class_id: int) -> list[LedgerEvent]:
        await self._class(p, class_id, write=False)
        return await self.ctx.db(self.ctx.storage.ledger.read_chain, ce.class_chain(class_id))

    async def learner_events(
        self, p: Principal, class_id: int, learner_id: int
    ) -> list[LedgerEvent]:
        cls = await self.ctx.db(self.store.get_class, class_id)
        can_read_learner(p, learner_id, cls.institution_id)
        return await self.ctx.db(
            self.ctx.storage.ledger.read_chain, ce.learner_class_chain(class_id, learner_id)
        )

    async def attendance(
        self, p: Principal, class_id: int, learner_id: int | None = None
    ) -> list[Attendance]:
        """Credited classroom time and presence timeline of each learner (or one)."""
        cls = await self.ctx.db(self.store.get_class, class_id)
        if learner_id is not None:
            can_read_learner(p, learner_id, cls.institution_id)
            ids = [e.learner_id for e in await self.ctx.db(self.store.roster, class_id)]
            if learner_id not in ids:
                raise UnknownId(f"learner {learner_id} is not on the roster", reason="unknown_id")
            ids = [learner_id]
        else:
            can_read_institution(p, cls.institution_id)
            ids = [e.learner_id for e in await self.ctx.db(self.store.roster, class_id)]
        gap = timedelta(seconds=self.ctx.settings.classroom.max_credited_gap_s)

        async def one(lid: int) -> Attendance:
            learner = await self.ctx.db(self.registry.get_learner, lid)
            stored = await self.ctx.db(
                self.ctx.storage.ledger.read_chain, ce.learner_class_chain(class_id, lid)
            )
            events = [e for _, e in codec.decode_all(stored)]
            return Attendance(learner, credit(events, gap), tuple(timeline(events)))

        return list(await asyncio.gather(*(one(i) for i in ids)))
