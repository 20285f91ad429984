"""Classes (training cohorts and assessments): schedule, roster, cameras, filing, supervision.

Writes: admins, and operators of the class's institution. Reads: also inspectors;
a learner reads only their own attendance and events. The router's lifespan
starts the supervision of classes with the app (after storage and the
verification pool) and interrupts it before they stop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response, status

from supervisor.api.deps import PrincipalDep
from supervisor.api.errors import ERRORS
from supervisor.api.schemas.classes import (
    AttendanceOut,
    CameraIn,
    CameraOut,
    CameraTestOut,
    ClassIn,
    ClassOut,
    FilingIn,
    FilingOut,
    LearnerAttendanceOut,
    RosterEntryOut,
    RosterIn,
    SupervisionOut,
)
from supervisor.api.schemas.common import EventOut
from supervisor.classroom.service import ClassroomService
from supervisor.classroom.supervisor import ClassSupervisor
from supervisor.context import Context


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    ctx: Context = app.state.ctx
    supervisor = ClassSupervisor(ctx)
    app.state.classroom = ClassroomService(ctx, supervisor)
    await supervisor.start()
    try:
        yield
    finally:
        await supervisor.stop()


router = APIRouter(prefix="/api/v1", responses=ERRORS, tags=["classes"], lifespan=lifespan)


def get_classroom(request: Request) -> ClassroomService:
    service: ClassroomService = request.app.state.classroom
    return service


ClassesDep = Annotated[ClassroomService, Depends(get_classroom)]


@router.post("/classes", response_model=ClassOut, status_code=status.HTTP_201_CREATED)
async def create_class(body: ClassIn, p: PrincipalDep, classes: ClassesDep) -> ClassOut:
    """Create a class of a classroom or blended course, with its schedule and mode."""
    cls = await classes.create_class(
        p, body.course_id, body.name, body.mode, body.starts_at, body.ends_at
    )
    return ClassOut.of(cls)


@router.get("/classes", response_model=list[ClassOut])
async def list_classes(
    p: PrincipalDep,
    classes: ClassesDep,
    institution_id: Annotated[int | None, Query(ge=1)] = None,
    course_id: Annotated[int | None, Query(ge=1)] = None,
) -> list[ClassOut]:
    return [ClassOut.of(c) for c in await classes.list_classes(p, institution_id, course_id)]


@router.get("/classes/{class_id}", response_model=ClassOut)
async def get_class(class_id: int, p: PrincipalDep, classes: ClassesDep) -> ClassOut:
    return ClassOut.of(await classes.get_class(p, class_id))


@router.get("/classes/{class_id}/roster", response_model=list[RosterEntryOut])
async def get_roster(class_id: int, p: PrincipalDep, classes: ClassesDep) -> list[RosterEntryOut]:
    return [RosterEntryOut.of(e, lr) for e, lr in await classes.roster(p, class_id)]


@router.post("/classes/{class_id}/roster", response_model=list[RosterEntryOut])
async def add_to_roster(
    class_id: int, body: RosterIn, p: PrincipalDep, classes: ClassesDep
) -> list[RosterEntryOut]:
    """Enrol learners of the class's institution (all or none); returns the roster.
    The roster is frozen once supervision has started."""
    roster = await classes.add_to_roster(p, class_id, body.learner_ids)
    return [RosterEntryOut.of(e, lr) for e, lr in roster]


@router.delete("/classes/{class_id}/roster/{learner_id}", response_model=list[RosterEntryOut])
async def remove_from_roster(
    class_id: int, learner_id: int, p: PrincipalDep, classes: ClassesDep
) -> list[RosterEntryOut]:
    roster = await classes.remove_from_roster(p, class_id, learner_id)
    return [RosterEntryOut.of(e, lr) for e, lr in roster]


@router.get("/classes/{class_id}/cameras", response_model=list[CameraOut])
async def list_cameras(class_id: int, p: PrincipalDep, classes: ClassesDep) -> list[CameraOut]:
    return [CameraOut.of(c) for c in await classes.cameras(p, class_id)]


@router.post(
    "/classes/{class_id}/cameras", response_model=CameraOut, status_code=status.HTTP_201_CREATED
)
async def add_camera(
    class_id: int, body: CameraIn, p: PrincipalDep, classes: ClassesDep
) -> CameraOut:
    """Add a camera (RTSP, HTTP(S) MJPEG, or an allowed video file). Its URL is never
    shown again with its credentials."""
    return CameraOut.of(await classes.add_camera(p, class_id, body.url, body.label))


@router.post("/classes/{class_id}/cameras/{camera_id}/test", response_model=CameraTestOut)
async def test_camera(
    class_id: int, camera_id: int, p: PrincipalDep, classes: ClassesDep
) -> CameraTestOut:
    """Test the connection: open the camera, wait for one frame, close it (admin, or the
    institution's operator). Records nothing; an unreachable camera is a 200 with
    `reachable: false` and the reason."""
    t = await classes.test_camera(p, class_id, camera_id)
    return CameraTestOut(
        camera_id=t.camera_id, reachable=t.reachable, width=t.width, height=t.height, error=t.error
    )


@router.delete("/classes/{class_id}/cameras/{camera_id}", status_code=204)
async def remove_camera(
    class_id: int, camera_id: int, p: PrincipalDep, classes: ClassesDep
) -> Response:
    await classes.remove_camera(p, class_id, camera_id)
    return Response(status_code=204)


@router.post(
    "/classes/{class_id}/filing", response_model=FilingOut, status_code=status.HTTP_201_CREATED
)
async def file_class(
    class_id: int, body: FilingIn, p: PrincipalDep, classes: ClassesDep
) -> FilingOut:
    """File the class before training: teacher, teaching plan, assessment plan and the
    roster as it stands. A class cannot start without it; a later filing supersedes
    an earlier one until supervision starts."""
    filing = await classes.file(p, class_id, body.teacher, body.teaching_plan, body.assessment_plan)
    return FilingOut.of(filing)


@router.get("/classes/{class_id}/filing", response_model=FilingOut)
async def get_filing(class_id: int, p: PrincipalDep, classes: ClassesDep) -> FilingOut:
    return FilingOut.of(await classes.filing(p, class_id))


@router.post("/classes/{class_id}/supervision/start", response_model=SupervisionOut)
async def start_supervision(class_id: int, p: PrincipalDep, classes: ClassesDep) -> SupervisionOut:
    """Start supervising the class: cameras open and roll calls begin (one at once)."""
    return SupervisionOut.of(await classes.start(p, class_id))


@router.post("/classes/{class_id}/supervision/stop", response_model=SupervisionOut)
async def stop_supervision(class_id: int, p: PrincipalDep, classes: ClassesDep) -> SupervisionOut:
    """Stop supervising: a last roll call is held, then every learner's clock stops."""
    return SupervisionOut.of(await classes.stop(p, class_id))


@router.get("/classes/{class_id}/supervision", response_model=SupervisionOut)
async def supervision_status(class_id: int, p: PrincipalDep, classes: ClassesDep) -> SupervisionOut:
    """Running or not, headcount against the roster at the last roll call, and each
    camera's state with its last error."""
    return SupervisionOut.of(await classes.status(p, class_id))


@router.get("/classes/{class_id}/attendance", response_model=AttendanceOut)
async def attendance(class_id: int, p: PrincipalDep, classes: ClassesDep) -> AttendanceOut:
    """Credited classroom time and presence timeline of every learner, recomputed from
    the ledger."""
    found = await classes.attendance(p, class_id)
    return AttendanceOut(
        class_id=class_id,
        max_gap_seconds=classes.ctx.settings.classroom.max_credited_gap_s,
        learners=[LearnerAttendanceOut.of(a) for a in found],
    )


@router.get(
    "/classes/{class_id}/learners/{learner_id}/attendance", response_model=LearnerAttendanceOut
)
async def learner_attendance(
    class_id: int, learner_id: int, p: PrincipalDep, classes: ClassesDep
) -> LearnerAttendanceOut:
    (found,) = await classes.attendance(p, class_id, learner_id)
    return LearnerAttendanceOut.of(found)


@router.get("/classes/{class_id}/events", response_model=list[EventOut])
async def class_events(class_id: int, p: PrincipalDep, classes: ClassesDep) -> list[EventOut]:
    """The class's ledger chain: filing, runs, roll calls, camera states, flags."""
    return [EventOut.of(e) for e in await classes.class_events(p, class_id)]


@router.get("/classes/{class_id}/learners/{learner_id}/events", response_model=list[EventOut])
async def learner_events(
    class_id: int, learner_id: int, p: PrincipalDep, classes: ClassesDep
) -> list[EventOut]:
    """One learner's ledger chain in the class (what their hours are credited from)."""
    return [EventOut.of(e) for e in await classes.learner_events(p, class_id, learner_id)]
