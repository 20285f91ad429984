"""Classroom training and assessments: the operators' side and the supervision loop.

`ClassroomService` is what the API and the CLI call: classes of a course with a
schedule and a mode (training or assessment), rosters, cameras, the filing
before training, and start, stop and status of a class's supervision. Every
refusal is a `ServiceError` with a machine-readable reason, and changes nothing.

`ClassSupervisor` runs the supervision of the classes this process holds (one
`ClassRun` task each). A run:

- opens every camera of the class (`capture.stream.StreamSource`, one reader
  thread each) and records every change of a camera's state;
- holds roll calls at the start, at random moments drawn on the server
  (`secrets.SystemRandom`; mean interval from the settings, denser in
  assessments), again as soon as a camera that was out comes back, and at the
  end (a stop, or the end of the schedule). The moments are never shown to
  operators: status reports the last roll call, not the next;
- in a roll call, samples a few frames from every camera, identifies the faces
  against the roster in the verification pool, stores the frames kept as
  evidence, and appends one event per learner to the learner's chain of the
  class (present, absent, or an outage when a camera was out: never absence)
  and a summary to the class's chain (`supervisor.ledger.classroom`);
- in an assessment, raises a flag the first time the number of faces differs
  from the number of candidates and the first time a face matches nobody on
  the roster, with the evidence of that roll call;
- holds a lease on the run in the database, so that a run whose process died is
  resumed by another (or by this one when it restarts); the gap is an outage in
  every learner's chain, so no unobserved time is credited.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

import numpy as np

from capture.exceptions import SourceDown
from capture.stream import StreamSource, redact_url
from capture.types import FrameSample, SourceState, SourceStatus
from storage.canonical import canonical_json
from storage.exceptions import Duplicate, InvalidState, StorageError
from storage.types import (
    CameraSource,
    ClassFiling,
    ClassMode,
    DeliveryMode,
    Learner,
    LedgerEvent,
    Role,
    RosterEntry,
    SupervisionRun,
    TrainingClass,
)
from supervisor.auth import Principal, can_read_institution, can_read_learner, can_write_institution
from supervisor.checks.evidence import keep_frame
from supervisor.checks.pool import Overloaded
from supervisor.checks.rollcall import KEEP_ALL, KEEP_REFERENCED, RollCallOutcome, roll_call
from supervisor.context import Context
from supervisor.errors import Conflict, InvalidInput, UnknownId, WrongRole
from supervisor.ledger import classroom as ce
from supervisor.ledger import codec
from supervisor.ledger import events as ev
from supervisor.registry.status import ensure_active
from supervisor.rules.crediting import Credit, credit
from supervisor.rules.schedule import draw_interval
from supervisor.runtime.tasks import cancel_and_wait
from verification.types import FaceStatus, RollCallParams

log = logging.getLogger(__name__)

FLAG_HEADCOUNT: Final = "assessment_headcount"
FLAG_UNKNOWN_FACE: Final = "assessment_unknown_face"
CAMERA_SCHEMES: Final = frozenset({"rtsp", "rtsps", "http", "https", "file"})
MAX_SCHEDULE: Final = timedelta(days=366)
# How long a stop waits for the run's end roll call before answering.
STOP_WAIT_S: Final = 120.0
# How long shutdown waits for a roll call in progress before cancelling it.
INTERRUPT_WAIT_S: Final = 15.0
# A camera that comes back is given this long to settle before the resume roll call.
RESUME_SETTLE_S: Final = 0.3


# -- read models -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CameraView:
    camera: CameraSource
    state: str  # a SourceState value, or "idle" when nobody supervises the class
    since: datetime | None
    last_error: str | None
    status: SourceStatus | None  # live figures when this process supervises the class


@dataclass(frozen=True, slots=True)
class SupervisionStatus:
    cls: TrainingClass
    run: SupervisionRun | None  # the open run, else the last one
    supervised_here: bool
    roster: tuple[int, ...]
    last_roll_call: ce.ClassRollCall | None
    roll_calls: int
    cameras: tuple[CameraView, ...]

    @property
    def running(self) -> bool:
        return self.run is not None and self.run.open

    @property
    def headcount(self) -> int | None:
        return None if self.last_roll_call is None else len(self.last_roll_call.present)


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One fact of a learner's chain in a class, for reading."""

    at: datetime
    status: str  # present | absent | not_enrolled | outage | resumed | ended
    reason: str | None
    roll_call_id: str | None
    purpose: str | None
    distance: float | None
    camera_id: int | None
    captured_at: datetime | None
    pts: int | None
    time_base: str | None
    evidence_sha256: str | None


@dataclass(frozen=True, slots=True)
class Attendance:
    learner: Learner
    credit: Credit
    timeline: tuple[TimelineEntry, ...]


def timeline(events: Sequence[ev.Event]) -> list[TimelineEntry]:
    """A learner's presence over time in a class, from their chain's events."""
    out: list[TimelineEntry] = []
    for e in events:
        if isinstance(e, ce.ClassPresence):
            out.append(
                TimelineEntry(
                    e.at,
                    e.verdict,
                    None,
                    e.check_id,
                    e.purpose,
                    e.distance,
                    e.camera_id,
                    e.captured_at,
                    e.pts,
                    e.time_base,
                    e.evidence_sha256,
                )
            )
        elif isinstance(e, ce.ClassOutage | ce.ClassResumed):
            status = "outage" if isinstance(e, ce.ClassOutage) else "resumed"
            out.append(
                TimelineEntry(
                    e.at, status, e.reason, e.roll_call_id, None, None, None, None, None, None, None
                )
            )
        elif isinstance(e, ce.ClassLeft):
            out.append(
                TimelineEntry(
                    e.at, "ended", e.reason, None, None, None, None, None, None, None, None
                )
            )
    return out


def paused_at_end(events: Sequence[ev.Event]) -> bool:
    """Is the learner's class clock stopped by an outage (as `credit` reads the chain)?"""
    paused = False
    for e in events:
        if isinstance(e, ev.StateChanged):
            paused = e.to_state != ce.OBSERVED
    return paused


def check_camera_url(url: str, file_sources_dir: Path | None) -> str:
    """The URL if it is an acceptable camera source; `InvalidInput` says why not."""
    url = url.strip()
    if not url or any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise InvalidInput(
            "the camera URL is empty or contains spaces", reason="invalid_camera_url"
        )
    try:
        parts = urlsplit(url)
    except ValueError:
        raise InvalidInput("the camera URL cannot be parsed", reason="invalid_camera_url") from None
    scheme = parts.scheme.lower()
    if scheme not in CAMERA_SCHEMES:
        raise InvalidInput(
            "a camera URL must be rtsp://, rtsps://, http://, https:// or file://",
            reason="invalid_camera_url",
        )
    if scheme != "file":
        try:
            host = parts.hostname
        except ValueError:
            host = None
        if not host:
            raise InvalidInput("the camera URL has no host", reason="invalid_camera_url")
        return url
    if file_sources_dir is None:
        raise InvalidInput(
            "video files are not accepted as camera sources on this server "
            "(classroom.file_sources_dir is not set)",
            reason="file_source_refused",
        )
    if parts.netloc not in ("", "localhost"):
        raise InvalidInput("a file URL must name a local file", reason="invalid_camera_url")
    base = file_sources_dir.expanduser().resolve()
    path = Path(parts.path).resolve()
    if not path.is_relative_to(base) or not path.is_file():
        raise InvalidInput(
            "the file is not a video file inside the folder of file sources",
            reason="file_source_refused",
        )
    return url


# -- the operators' side -----------------------------------------------------------


class ClassroomService:
    def __init__(self, ctx: Context, supervisor: ClassSupervisor) -> None:
        self.ctx = ctx
        self.supervisor = supervisor
        self.store = ctx.storage.classroom
        self.registry = ctx.storage.registry

    async def _class(self, p: Principal, class_id: int, write: bool) -> TrainingClass:
        cls = await self.ctx.db(self.store.get_class, class_id)
        if write:
            can_write_institution(p, cls.institution_id)
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
        can_write_institution(p, course.institution_id)
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
        url = check_camera_url(url, self.ctx.settings.classroom.file_sources_dir)
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


# -- supervision of running classes ----------------------------------------------


@dataclass
class _Finding:
    """What one roll call found about one learner."""

    verdict: str  # present | absent | not_enrolled | unseen
    camera_id: int | None = None
    sample: FrameSample | None = None
    evidence: str | None = None
    distance: float | None = None
    box: tuple[int, ...] = ()


@dataclass
class ClassRun:
    """The supervision of one class by this process."""

    sup: ClassSupervisor
    cls: TrainingClass
    run: SupervisionRun
    cameras: list[CameraSource]
    roster: tuple[int, ...]
    resumed: bool
    sources: dict[int, StreamSource] = field(default_factory=dict)
    paused: dict[int, bool] = field(default_factory=dict)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    stop_reason: str | None = None
    stop_by: str | None = None
    interrupting: bool = False
    lost: bool = False  # the lease went to another process, or the run was closed elsewhere
    resume_on: set[int] = field(default_factory=set)  # cameras out at the last roll call
    flagged: set[str] = field(default_factory=set)
    task: asyncio.Task[None] | None = None
    helpers: list[asyncio.Task[None]] = field(default_factory=list)
    statuses: asyncio.Queue[SourceStatus] = field(default_factory=asyncio.Queue)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def ctx(self) -> Context:
        return self.sup.ctx

    @property
    def chain(self) -> str:
        return ce.class_chain(self.cls.id)

    def request_stop(self, reason: str, by: str) -> None:
        if self.stop_reason is None:
            self.stop_reason, self.stop_by = reason, by
        self.wake.set()

    # -- the loop ------------------------------------------------------------------

    async def main(self) -> None:
        try:
            await self._open()
            if self.ctx.clock() >= self.cls.ends_at:
                # Resumed after the schedule ended: nothing left to observe.
                self.request_stop("schedule_end", "schedule")
                await self._finish()
                return
            await self._roll_call("resume" if self.resumed else "start", None)
            while not self._stopping():
                now = self.ctx.clock()
                if now >= self.cls.ends_at:
                    self.request_stop("schedule_end", "schedule")
                    break
                due = now + timedelta(seconds=self._interval())
                final = due >= self.cls.ends_at
                if final:
                    due = self.cls.ends_at
                woke = await self._wait(due)
                if woke == "stop":
                    break
                if woke == "cameras":
                    await asyncio.sleep(RESUME_SETTLE_S)
                    await self._roll_call("resume", None)
                    continue
                if final:
                    self.request_stop("schedule_end", "schedule")
                    break
                await self._roll_call("random", due)
            if self.interrupting or self.lost:
                return
            await self._roll_call("end", None)
            await self._finish()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("supervision of class %s failed", self.cls.id)
            if not (self.interrupting or self.lost):
                with contextlib.suppress(Exception):
                    self.request_stop("supervisor_error", "supervisor")
                    await self._finish()
        finally:
            self.done.set()

    def _stopping(self) -> bool:
        return self.stop_reason is not None or self.interrupting or self.lost

    def _interval(self) -> float:
        s = self.ctx.settings.classroom
        if self.cls.mode is ClassMode.assessment:
            lo, mean, hi = (
                s.assessment_interval_min_s,
                s.assessment_interval_mean_s,
                s.assessment_interval_max_s,
            )
        else:
            lo, mean, hi = s.interval_min_s, s.interval_mean_s, s.interval_max_s
        return draw_interval(self.sup.rng, lo, mean, hi)

    async def _wait(self, due: datetime) -> str:
        """Until `due`; earlier on a stop, or when a camera comes back after an outage."""
        while True:
            if self._stopping():
                return "stop"
            if any(
                self.sources[c].status().state is SourceState.live
                for c in self.resume_on
                if c in self.sources
            ):
                return "cameras"
            remaining = (due - self.ctx.clock()).total_seconds()
            if remaining <= 0:
                return "due"
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), remaining)

    # -- opening and closing -------------------------------------------------------

    async def _open(self) -> None:
        s = self.ctx.settings.classroom
        for camera in self.cameras:
            source = StreamSource(
                f"class-{self.cls.id}-camera-{camera.id}",
                camera.url,
                s,
                self.ctx.clock,
                self.statuses.put_nowait,
            )
            self.sources[camera.id] = source
        self.helpers.append(asyncio.ensure_future(self._record_statuses()))
        self.helpers.append(asyncio.ensure_future(self._keep_lease()))
        for source in self.sources.values():
            await source.start()
        chains = await asyncio.gather(
            *(
                self.ctx.db(
                    self.ctx.storage.ledger.read_chain, ce.learner_class_chain(self.cls.id, lid)
                )
                for lid in self.roster
            )
        )
        for lid, stored in zip(self.roster, chains, strict=True):
            self.paused[lid] = paused_at_end([e for _, e in codec.decode_all(stored)])
        if self.resumed:
            # Nobody observed the class between the last process and this one: stop
            # every learner's clock so that the gap is never credited.
            now = self.ctx.clock()
            await self._append_learners(
                {
                    lid: [self._outage(now, "supervision_resumed", None, ())]
                    for lid in self.roster
                    if not self.paused[lid]
                }
            )
            for lid in self.roster:
                self.paused[lid] = True

    async def _finish(self) -> None:
        now = self.ctx.clock()
        reason = self.stop_reason or "operator"
        by = self.stop_by or "operator"
        await self._append_learners(
            {lid: [ce.ClassLeft(reason, now, self.cls.id, self.run.id)] for lid in self.roster}
        )
        await self._append_class(
            ce.ClassSupervisionStopped(self.cls.id, self.run.id, reason, by, now)
        )
        with contextlib.suppress(InvalidState):
            await self.ctx.db(self.ctx.storage.classroom.stop_run, self.run.id, now, by, reason)

    async def interrupt(self, reason: str) -> None:
        """Stop this process's supervision without ending the run (shutdown): the run
        stays open, every learner's clock stops, and the lease is released."""
        self.interrupting = True
        self.wake.set()
        if self.task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self.done.wait()), INTERRUPT_WAIT_S)
            except TimeoutError:
                self.task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self.task
        if not self.lost:
            now = self.ctx.clock()
            with contextlib.suppress(StorageError):
                await self._append_learners(
                    {
                        lid: [self._outage(now, reason, None, ())]
                        for lid in self.roster
                        if not self.paused.get(lid, False)
                    }
                )
                await self._append_class(
                    ce.ClassSupervisionInterrupted(self.cls.id, self.run.id, reason, now)
                )
                await self.ctx.db(
                    self.ctx.storage.classroom.release_lease, self.run.id, self.sup.owner, now
                )
        await self.close()

    async def close(self) -> None:
        for task in self.helpers:
            task.cancel()
        for task in self.helpers:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.helpers.clear()
        await asyncio.gather(*(s.stop() for s in self.sources.values()), return_exceptions=True)

    async def _keep_lease(self) -> None:
        s = self.ctx.settings.classroom
        store = self.ctx.storage.classroom
        while True:
            await asyncio.sleep(s.lease_s / 3)
            until = self.ctx.clock() + timedelta(seconds=s.lease_s)
            try:
                run = await self.ctx.db(store.renew_lease, self.run.id, self.sup.owner, until)
            except StorageError as exc:
                log.warning("class %s: lease not renewed: %s", self.cls.id, exc)
                continue
            if run is None:
                # Stopped elsewhere, or taken over after this process stalled.
                log.warning("class %s: lease of run %s lost", self.cls.id, self.run.id)
                self.lost = True
                self.wake.set()
                return
            if run.stop_requested_at is not None:
                self.request_stop("operator", run.stopped_by or "operator")

    async def _record_statuses(self) -> None:
        by_source = {src.source_id: cid for cid, src in self.sources.items()}
        while True:
            status = await self.statuses.get()
            camera_id = by_source.get(status.source_id)
            if camera_id is None or status.state is SourceState.stopped:
                continue
            if status.state is SourceState.live and camera_id in self.resume_on:
                self.wake.set()
            try:
                await self._append_class(
                    ce.CameraStatusChanged(
                        self.cls.id,
                        self.run.id,
                        camera_id,
                        status.state.value,
                        status.last_error,
                        status.since,
                    )
                )
            except StorageError as exc:
                log.warning("class %s: camera status not recorded: %s", self.cls.id, exc)

    # -- roll call -----------------------------------------------------------------

    async def _roll_call(self, purpose: str, scheduled_at: datetime | None) -> None:
        ctx = self.ctx
        s = ctx.settings
        roll_call_id = uuid.uuid4().hex
        params = RollCallParams(
            s.face.match_threshold,
            s.face.identify_margin,
            s.classroom.min_face_px,
            s.face.detection_score_min,
        )
        templates = await asyncio.gather(
            *(ctx.db(ctx.storage.templates.for_learner, lid) for lid in self.roster)
        )
        labels: list[int] = []
        rows: list[np.ndarray] = []
        not_enrolled: list[int] = []
        for lid, enrolled in zip(self.roster, templates, strict=True):
            if not enrolled:
                not_enrolled.append(lid)
            for t in enrolled:
                labels.append(lid)
                rows.append(t.vector)
        matrix = np.asarray(rows, dtype=np.float64).reshape(len(rows), 128)
        # Every camera at once: the frames of a roll call are about simultaneous.
        camera_ids = list(self.sources)
        sampled = await asyncio.gather(
            *(
                self.sources[cid].sample(
                    s.classroom.frames_per_roll_call,
                    s.classroom.frame_spacing_s,
                    s.classroom.frame_timeout_s,
                )
                for cid in camera_ids
            ),
            return_exceptions=True,
        )
        frames: dict[int, list[FrameSample]] = {}
        down: list[int] = []
        for cid, got in zip(camera_ids, sampled, strict=True):
            if isinstance(got, BaseException):
                if not isinstance(got, SourceDown):
                    log.error("class %s camera %s: %r", self.cls.id, cid, got)
                down.append(cid)
            else:
                frames[cid] = got
        keep = KEEP_ALL if self.cls.mode is ClassMode.assessment else KEEP_REFERENCED
        outcomes: dict[int, RollCallOutcome] = {}
        deferred: list[int] = []
        if frames:
            results = await asyncio.gather(
                *(
                    roll_call(
                        ctx.pool, [f.image for f in frames[cid]], matrix, labels, params, keep
                    )
                    for cid in frames
                ),
                return_exceptions=True,
            )
            for cid, result in zip(list(frames), results, strict=True):
                if isinstance(result, RollCallOutcome):
                    outcomes[cid] = result
                else:
                    if not isinstance(result, Overloaded):
                        log.error("class %s roll call on camera %s: %r", self.cls.id, cid, result)
                    deferred.append(cid)
        now = ctx.clock()
        # Evidence first: the events carry the hashes of stored frames.
        hashes: dict[tuple[int, int], str] = {}
        puts = [
            (cid, i, jpeg)
            for cid, outcome in outcomes.items()
            for i, jpeg in enumerate(outcome.jpegs)
            if jpeg is not None
        ]
        # A full evidence disk costs the frames, never the roll call.
        kept = await asyncio.gather(
            *(
                ctx.db(keep_frame, ctx.storage.evidence, jpeg, ctx.retain_until())
                for _, _, jpeg in puts
            )
        )
        for (cid, i, _), (sha, _why) in zip(puts, kept, strict=True):
            if sha is not None:
                hashes[(cid, i)] = sha
        unseen_cameras = tuple(sorted(down + deferred))
        outcome_kind = "done" if outcomes else ("deferred" if deferred else "outage")
        findings = self._findings(outcomes, frames, hashes, not_enrolled, unseen_cameras)
        frames_examined = sum(len(frames[c]) for c in outcomes)
        faces = sum(o.result.faces for o in outcomes.values())
        unknown = sum(o.result.most(FaceStatus.unknown) for o in outcomes.values())
        ambiguous = sum(o.result.most(FaceStatus.ambiguous) for o in outcomes.values())
        unusable = sum(o.result.most(FaceStatus.unusable) for o in outcomes.values())
        per_learner: dict[int, list[ev.Event]] = {}
        for lid in self.roster:
            found = findings[lid]
            if found.verdict == "unseen":
                if not self.paused[lid]:
                    per_learner[lid] = [
                        self._outage(now, "camera_outage", roll_call_id, unseen_cameras)
                    ]
                    self.paused[lid] = True
                continue
            events: list[ev.Event] = []
            if self.paused[lid]:
                events.append(
                    ce.ClassResumed(
                        ce.OUTAGE,
                        ce.OBSERVED,
                        "observed_again",
                        now,
                        self.cls.id,
                        self.run.id,
                        roll_call_id,
                    )  # fmt: skip
                )
                self.paused[lid] = False
            sample = found.sample
            events.append(
                ce.ClassPresence(
                    check_id=roll_call_id,
                    check_kind="roll_call",
                    purpose=purpose,
                    verdict=found.verdict,
                    passed=found.verdict == "present",
                    at=now,
                    distance=found.distance,
                    threshold=params.threshold,
                    issues=(),
                    faces=faces,
                    frames=frames_examined,
                    evidence_sha256=found.evidence,
                    scheduled_at=scheduled_at,
                    class_id=self.cls.id,
                    learner_id=lid,
                    run_id=self.run.id,
                    camera_id=found.camera_id,
                    captured_at=sample.captured_at if sample else None,
                    pts=sample.pts if sample else None,
                    time_base=_fraction(sample.time_base) if sample else None,
                    box=found.box,
                )
            )
            per_learner[lid] = events
        await self._append_learners(per_learner)
        ordered = [(cid, i, f) for cid in outcomes for i, f in enumerate(frames[cid])]
        summary = ce.ClassRollCall(
            class_id=self.cls.id,
            run_id=self.run.id,
            roll_call_id=roll_call_id,
            purpose=purpose,
            outcome=outcome_kind,
            scheduled_at=scheduled_at,
            at=now,
            cameras_live=tuple(sorted(outcomes)),
            cameras_down=unseen_cameras,
            faces=faces,
            present=tuple(lid for lid in self.roster if findings[lid].verdict == "present"),
            absent=tuple(lid for lid in self.roster if findings[lid].verdict == "absent"),
            unseen=tuple(lid for lid in self.roster if findings[lid].verdict == "unseen"),
            not_enrolled=tuple(
                lid for lid in self.roster if findings[lid].verdict == "not_enrolled"
            ),
            unknown_faces=unknown,
            ambiguous_faces=ambiguous,
            unusable_faces=unusable,
            frames_camera=tuple(cid for cid, _, _ in ordered),
            frames_captured_at=tuple(f.captured_at for _, _, f in ordered),
            frames_pts=tuple(f.pts for _, _, f in ordered),
            frames_time_base=tuple(_fraction(f.time_base) for _, _, f in ordered),
            frames_evidence=tuple(hashes.get((cid, i)) for cid, i, _ in ordered),
            frames_faces=tuple(len(outcomes[cid].result.frames[i].faces) for cid, i, _ in ordered),
            frames_unknown=tuple(
                outcomes[cid].result.frames[i].count(FaceStatus.unknown) for cid, i, _ in ordered
            ),
        )
        await self._append_class(summary)
        # A camera that was out triggers a roll call as soon as it is back; one the
        # pool had no room for waits for the next random moment (no retry storm).
        self.resume_on = set(down)
        if self.cls.mode is ClassMode.assessment and outcomes:
            await self._assessment_flags(summary, complete=not unseen_cameras)

    def _findings(
        self,
        outcomes: dict[int, RollCallOutcome],
        frames: dict[int, list[FrameSample]],
        hashes: dict[tuple[int, int], str],
        not_enrolled: list[int],
        unseen_cameras: tuple[int, ...],
    ) -> dict[int, _Finding]:
        best: dict[int, _Finding] = {}
        for cid, outcome in outcomes.items():
            for sighting in outcome.result.present:
                current = best.get(sighting.label)
                if current is not None and (current.distance or 0.0) <= sighting.distance:
                    continue
                face = outcome.result.frames[sighting.frame_index].faces[sighting.face_index]
                box = face.box
                best[sighting.label] = _Finding(
                    "present",
                    cid,
                    frames[cid][sighting.frame_index],
                    hashes.get((cid, sighting.frame_index)),
                    round(sighting.distance, 6),
                    (box.left, box.top, box.right, box.bottom),
                )
        first = next(iter(outcomes), None)
        out: dict[int, _Finding] = {}
        for lid in self.roster:
            if lid in best:
                out[lid] = best[lid]
            elif first is None:
                out[lid] = _Finding("unseen")
            elif lid in not_enrolled:
                out[lid] = _Finding("not_enrolled", first, frames[first][0], hashes.get((first, 0)))
            elif unseen_cameras:
                out[lid] = _Finding("unseen")  # maybe in the view of a camera that is out
            else:
                out[lid] = _Finding("absent", first, frames[first][0], hashes.get((first, 0)))
        return out

    async def _assessment_flags(self, summary: ce.ClassRollCall, complete: bool) -> None:
        candidates = len(self.roster)
        wanted: list[str] = []
        if complete and summary.faces != candidates:
            wanted.append(FLAG_HEADCOUNT)
        if summary.unknown_faces > 0:
            wanted.append(FLAG_UNKNOWN_FACE)
        for kind in wanted:
            if kind in self.flagged:
                continue  # one flag per kind and run; later roll calls are in the chain
            self.flagged.add(kind)
            details = canonical_json(
                {
                    "class_id": self.cls.id,
                    "run_id": self.run.id,
                    "roll_call_id": summary.roll_call_id,
                    "at": ev.iso(summary.at),
                    "faces": summary.faces,
                    "candidates": candidates,
                    "present": list(summary.present),
                    "unknown_faces": summary.unknown_faces,
                    "evidence": [h for h in summary.frames_evidence if h is not None],
                }
            )
            flag = await self.ctx.db(
                self.ctx.storage.registry.raise_flag, kind, details, self.cls.institution_id, None
            )
            await self._append_class(
                ce.ClassFlagRaised(
                    self.cls.id, self.run.id, flag.id, kind, summary.roll_call_id, summary.at
                )
            )

    # -- appending -----------------------------------------------------------------

    def _outage(
        self, at: datetime, reason: str, roll_call_id: str | None, cameras: tuple[int, ...]
    ) -> ce.ClassOutage:
        return ce.ClassOutage(
            ce.OBSERVED, ce.OUTAGE, reason, at, self.cls.id, self.run.id, roll_call_id, cameras
        )

    async def _append_learners(self, events: dict[int, list[ev.Event]]) -> None:
        await asyncio.gather(
            *(
                self.ctx.append(
                    ce.learner_class_chain(self.cls.id, lid), [codec.encode(e) for e in evs]
                )
                for lid, evs in events.items()
                if evs
            )
        )

    async def _append_class(self, event: ev.Event) -> None:
        async with self.ctx.lock(self.chain):
            await self.ctx.append(self.chain, [codec.encode(event)])


def _fraction(value: Fraction | None) -> str | None:
    return None if value is None else f"{value.numerator}/{value.denominator}"


class ClassSupervisor:
    """The classes this process supervises. `start()`/`stop()` from the app lifespan."""

    def __init__(self, ctx: Context, rng: random.Random | None = None) -> None:
        self.ctx = ctx
        # Roll-call moments must not be predictable by the institution: system randomness.
        self.rng = rng or secrets.SystemRandom()
        self.owner = f"sv-{uuid.uuid4().hex[:16]}"
        self.runs: dict[int, ClassRun] = {}
        self._claimer: asyncio.Task[None] | None = None
        self._stopping = False

    async def start(self) -> None:
        """Resume runs whose process is gone, now and every lease period."""
        await self._claim()
        self._claimer = asyncio.ensure_future(self._claim_forever())

    async def stop(self) -> None:
        """Interrupt every run of this process (they stay open, to be resumed)."""
        self._stopping = True
        await cancel_and_wait(self._claimer)
        runs = list(self.runs.values())
        await asyncio.gather(
            *(r.interrupt("service_stopped") for r in runs), return_exceptions=True
        )
        self.runs.clear()

    def local(self, class_id: int) -> ClassRun | None:
        return self.runs.get(class_id)

    async def begin(self, cls: TrainingClass, by: str) -> SupervisionRun:
        """Open a run of the class held by this process and start supervising it."""
        now = self.ctx.clock()
        lease = now + timedelta(seconds=self.ctx.settings.classroom.lease_s)
        store = self.ctx.storage.classroom
        run = await self.ctx.db(store.start_run, cls.id, now, by, self.owner, lease)
        await self._launch(cls, run, resumed=False)
        return run

    async def _launch(self, cls: TrainingClass, run: SupervisionRun, resumed: bool) -> None:
        store = self.ctx.storage.classroom
        cameras = await self.ctx.db(store.cameras, cls.id)
        roster = tuple(sorted(e.learner_id for e in await self.ctx.db(store.roster, cls.id)))
        filing = await self.ctx.db(store.latest_filing, cls.id)
        class_run = ClassRun(self, cls, run, cameras, roster, resumed)
        started = ce.ClassSupervisionStarted(
            cls.id,
            run.id,
            cls.mode.value,
            roster,
            tuple(c.id for c in cameras),
            filing.sha256 if filing else "",
            run.started_by,
            resumed,
            self.ctx.clock(),
        )
        await class_run._append_class(started)
        self.runs[cls.id] = class_run
        class_run.task = asyncio.ensure_future(self._supervise(class_run))

    async def _supervise(self, run: ClassRun) -> None:
        try:
            await run.main()
        finally:
            if not run.interrupting:
                await run.close()
                if self.runs.get(run.cls.id) is run:
                    del self.runs[run.cls.id]

    async def end(self, run: SupervisionRun, by: str) -> None:
        """Stop a run: here if this process holds it, else by request to its holder,
        or directly when nobody holds it any more."""
        local = self.runs.get(run.class_id)
        if local is not None and local.run.id == run.id:
            local.request_stop("operator", by)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(local.done.wait()), STOP_WAIT_S)
            return
        store = self.ctx.storage.classroom
        now = self.ctx.clock()
        if run.lease_until is not None and run.lease_until > now:
            await self.ctx.db(store.request_stop, run.id, now, by)
            return
        # Nobody holds the run: close it here, with the same events a holder writes.
        cls = await self.ctx.db(store.get_class, run.class_id)
        roster = tuple(sorted(e.learner_id for e in await self.ctx.db(store.roster, cls.id)))
        orphan = ClassRun(self, cls, run, [], roster, resumed=False)
        orphan.request_stop("operator", by)
        await orphan._finish()

    async def status(self, cls: TrainingClass) -> SupervisionStatus:
        store = self.ctx.storage.classroom
        runs = await self.ctx.db(store.list_runs, cls.id)
        run = runs[-1] if runs else None
        roster = tuple(sorted(e.learner_id for e in await self.ctx.db(store.roster, cls.id)))
        cameras = await self.ctx.db(store.cameras, cls.id)
        stored = await self.ctx.db(self.ctx.storage.ledger.read_chain, ce.class_chain(cls.id))
        last: ce.ClassRollCall | None = None
        count = 0
        camera_events: dict[int, ce.CameraStatusChanged] = {}
        for _, e in codec.decode_all(stored):
            if run is None:
                break
            if isinstance(e, ce.ClassRollCall) and e.run_id == run.id:
                last = e
                count += 1
            elif isinstance(e, ce.CameraStatusChanged) and e.run_id == run.id:
                camera_events[e.camera_id] = e
        local = self.runs.get(cls.id)
        here = local is not None and run is not None and local.run.id == run.id
        views: list[CameraView] = []
        for camera in cameras:
            source = local.sources.get(camera.id) if here and local is not None else None
            if source is not None:
                st = source.status()
                views.append(CameraView(camera, st.state.value, st.since, st.last_error, st))
            elif run is not None and run.open and camera.id in camera_events:
                e = camera_events[camera.id]
                views.append(CameraView(camera, e.state, e.at, e.error, None))
            else:
                views.append(CameraView(camera, "idle", None, None, None))
        return SupervisionStatus(cls, run, here, roster, last, count, tuple(views))

    async def _claim(self) -> None:
        store = self.ctx.storage.classroom
        now = self.ctx.clock()
        lease = now + timedelta(seconds=self.ctx.settings.classroom.lease_s)
        try:
            claimed = await self.ctx.db(store.claim_lapsed_runs, self.owner, now, lease)
        except StorageError as exc:
            log.warning("cannot look for classes to resume: %s", exc)
            return
        for run in claimed:
            if self._stopping or run.class_id in self.runs:
                continue
            cls = await self.ctx.db(store.get_class, run.class_id)
            log.info("resuming supervision of class %s (run %s)", cls.id, run.id)
            await self._launch(cls, run, resumed=True)

    async def _claim_forever(self) -> None:
        while True:
            await asyncio.sleep(self.ctx.settings.classroom.lease_s)
            try:
                await self._claim()
            except Exception:  # never let a transient failure end the claimer
                log.exception("resuming lapsed classes failed")


def masked_url(camera: CameraSource) -> str:
    """The camera's URL as shown to people: without credentials or query."""
    return redact_url(camera.url)
