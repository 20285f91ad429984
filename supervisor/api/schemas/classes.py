"""Request and response bodies of the classroom API (apart from storage types and events)."""

from __future__ import annotations

from datetime import datetime

from pydantic import AwareDatetime, BaseModel, Field

from storage.types import CameraSource, ClassFiling, ClassMode, Learner, RosterEntry, TrainingClass
from supervisor.api.schemas.common import In, IntervalOut
from supervisor.classroom.cameras import masked_url
from supervisor.classroom.timeline import Attendance, CameraView, SupervisionStatus, TimelineEntry
from supervisor.registry.identity import mask_id_number


class ClassIn(In):
    course_id: int = Field(ge=1)
    name: str = Field(min_length=1, max_length=200)
    mode: ClassMode = Field(
        ClassMode.training, description="training, or assessment (denser roll calls, flags)."
    )
    starts_at: AwareDatetime = Field(description="Scheduled start, with a time zone.")
    ends_at: AwareDatetime = Field(description="Scheduled end; supervision stops by itself here.")


class ClassOut(BaseModel):
    id: int
    course_id: int
    institution_id: int
    name: str
    mode: ClassMode
    starts_at: datetime
    ends_at: datetime
    created_at: datetime

    @classmethod
    def of(cls, c: TrainingClass) -> ClassOut:
        return cls(
            id=c.id,
            course_id=c.course_id,
            institution_id=c.institution_id,
            name=c.name,
            mode=c.mode,
            starts_at=c.starts_at,
            ends_at=c.ends_at,
            created_at=c.created_at,
        )


class RosterIn(In):
    learner_ids: list[int] = Field(min_length=1, max_length=10_000)


class RosterEntryOut(BaseModel):
    learner_id: int
    full_name: str
    id_number_masked: str
    added_at: datetime

    @classmethod
    def of(cls, entry: RosterEntry, learner: Learner) -> RosterEntryOut:
        return cls(
            learner_id=entry.learner_id,
            full_name=learner.full_name,
            id_number_masked=mask_id_number(learner.id_number),
            added_at=entry.added_at,
        )


class CameraIn(In):
    url: str = Field(
        min_length=1,
        max_length=2000,
        description="rtsp://, rtsps://, http(s):// (MJPEG) or, where the server allows it, "
        "file:// of a video file in its folder of file sources.",
    )
    label: str = Field(min_length=1, max_length=200, description="Where the camera is.")


class CameraOut(BaseModel):
    id: int
    class_id: int
    url: str = Field(description="Without user name, password or query.")
    label: str
    created_at: datetime

    @classmethod
    def of(cls, c: CameraSource) -> CameraOut:
        return cls(
            id=c.id, class_id=c.class_id, url=masked_url(c), label=c.label, created_at=c.created_at
        )


class CameraTestOut(BaseModel):
    camera_id: int
    reachable: bool = Field(description="A frame arrived within the open and frame timeouts.")
    width: int | None = None
    height: int | None = None
    error: str | None = Field(None, description="Why not, when unreachable (URL redacted).")


class FilingIn(In):
    teacher: str = Field(min_length=1, max_length=200)
    teaching_plan: str = Field(min_length=1, max_length=20_000)
    assessment_plan: str = Field(min_length=1, max_length=20_000)


class FilingOut(BaseModel):
    id: int
    class_id: int
    teacher: str
    teaching_plan: str
    assessment_plan: str
    roster: list[int] = Field(description="The roster as filed.")
    filed_by: str
    filed_at: datetime
    sha256: str = Field(description="SHA-256 of the filed content; the class chain carries it.")

    @classmethod
    def of(cls, f: ClassFiling) -> FilingOut:
        return cls(
            id=f.id,
            class_id=f.class_id,
            teacher=f.teacher,
            teaching_plan=f.teaching_plan,
            assessment_plan=f.assessment_plan,
            roster=list(f.roster),
            filed_by=f.filed_by,
            filed_at=f.filed_at,
            sha256=f.sha256,
        )


class CameraStatusOut(BaseModel):
    camera_id: int
    label: str
    url: str
    state: str = Field(
        description="live, connecting, reconnecting, unreachable, not_a_video, ended, or idle "
        "when the class is not supervised."
    )
    since: datetime | None
    last_error: str | None
    frames_received: int | None = None
    frames_sampled: int | None = None
    frames_dropped: int | None = None
    reconnects: int | None = None

    @classmethod
    def of(cls, v: CameraView) -> CameraStatusOut:
        st = v.status
        return cls(
            camera_id=v.camera.id,
            label=v.camera.label,
            url=masked_url(v.camera),
            state=v.state,
            since=v.since,
            last_error=v.last_error,
            frames_received=st.stats.received if st else None,
            frames_sampled=st.stats.sampled if st else None,
            frames_dropped=st.stats.dropped if st else None,
            reconnects=st.stats.reconnects if st else None,
        )


class SupervisionOut(BaseModel):
    """A class's supervision. The time of the next roll call is never shown."""

    class_id: int
    mode: ClassMode
    running: bool
    run_id: int | None
    started_at: datetime | None
    stopped_at: datetime | None
    stop_reason: str | None
    supervised_here: bool = Field(description="This server process runs the supervision.")
    roster_size: int
    headcount: int | None = Field(description="Learners present at the last roll call.")
    present: list[int]
    absent: list[int]
    unseen: list[int] = Field(description="Not seen because a camera was out (not absent).")
    not_enrolled: list[int]
    faces: int | None
    unknown_faces: int | None
    last_roll_call_at: datetime | None
    last_roll_call_purpose: str | None
    last_roll_call_outcome: str | None
    roll_calls: int
    cameras: list[CameraStatusOut]

    @classmethod
    def of(cls, s: SupervisionStatus) -> SupervisionOut:
        last = s.last_roll_call
        run = s.run
        return cls(
            class_id=s.cls.id,
            mode=s.cls.mode,
            running=s.running,
            run_id=run.id if run else None,
            started_at=run.started_at if run else None,
            stopped_at=run.stopped_at if run else None,
            stop_reason=run.stop_reason if run else None,
            supervised_here=s.supervised_here,
            roster_size=len(s.roster),
            headcount=s.headcount,
            present=list(last.present) if last else [],
            absent=list(last.absent) if last else [],
            unseen=list(last.unseen) if last else [],
            not_enrolled=list(last.not_enrolled) if last else [],
            faces=last.faces if last else None,
            unknown_faces=last.unknown_faces if last else None,
            last_roll_call_at=last.at if last else None,
            last_roll_call_purpose=last.purpose if last else None,
            last_roll_call_outcome=last.outcome if last else None,
            roll_calls=s.roll_calls,
            cameras=[CameraStatusOut.of(v) for v in s.cameras],
        )


class TimelineEntryOut(BaseModel):
    at: datetime
    status: str = Field(description="present, absent, not_enrolled, outage, resumed or ended.")
    reason: str | None
    roll_call_id: str | None
    purpose: str | None
    distance: float | None
    camera_id: int | None
    captured_at: datetime | None
    source_time_s: float | None = Field(description="pts x time_base of the frame, if known.")
    evidence_sha256: str | None

    @classmethod
    def of(cls, e: TimelineEntry) -> TimelineEntryOut:
        source_time = None
        if e.pts is not None and e.time_base is not None:
            num, den = (int(x) for x in e.time_base.split("/"))
            source_time = round(e.pts * num / den, 6)
        return cls(
            at=e.at,
            status=e.status,
            reason=e.reason,
            roll_call_id=e.roll_call_id,
            purpose=e.purpose,
            distance=e.distance,
            camera_id=e.camera_id,
            captured_at=e.captured_at,
            source_time_s=source_time,
            evidence_sha256=e.evidence_sha256,
        )


class LearnerAttendanceOut(BaseModel):
    learner_id: int
    full_name: str
    credited_seconds: float
    present: int = Field(description="Roll calls that found the learner.")
    absent: int = Field(description="Roll calls that did not (with every camera live).")
    intervals: list[IntervalOut]
    timeline: list[TimelineEntryOut]

    @classmethod
    def of(cls, a: Attendance) -> LearnerAttendanceOut:
        c = a.credit
        return cls(
            learner_id=a.learner.id,
            full_name=a.learner.full_name,
            credited_seconds=c.credited_seconds,
            present=c.passed_checks,
            absent=c.failed_checks,
            intervals=[
                IntervalOut(start=i.start, end=i.end, seconds=i.seconds) for i in c.intervals
            ],
            timeline=[TimelineEntryOut.of(e) for e in a.timeline],
        )


class AttendanceOut(BaseModel):
    class_id: int
    max_gap_seconds: float
    learners: list[LearnerAttendanceOut]
