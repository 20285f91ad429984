"""Ledger events of classroom training and assessments, and their chains.

Two kinds of chain:

- `class:<class_id>`: the class's own record: its filing, each supervision run,
  every roll call (faces, who was present, absent or not seen because a camera
  was out, unknown faces, the evidence hashes of the frames, their timestamps),
  every change of a camera's state, and flags raised;
- `class:<class_id>:learner:<learner_id>`: one learner's presence in that class,
  which is what their classroom hours are credited from.

Crediting uses `supervisor.rules.crediting.credit`, unchanged, because the learner's
events are subclasses of the events it already knows, with their own kinds:

- `class_presence` is a `check` (`CheckRecorded`): present = a passed check,
  absent (or not enrolled) = a failed one, so time between two roll calls that
  both found the learner is credited (up to `classroom.max_credited_gap_s`), and
  an absence stops the clock until the learner is found again;
- `class_outage` is a `state_changed` to "outage": when a roll call could not see
  the learner because a camera was out (or the service stopped, or resumed after
  a crash), the clock stops without a failed check being counted against the
  learner; `class_resumed` (a `state_changed` to "active") is recorded together
  with the next roll call that sees the room again, at the same instant, so no
  unobserved time is credited;
- `class_supervision_ended` is a `session_ended`: nothing is credited across the
  break between two supervision runs.

An inspector recomputing hours from an export applies `credit` to these events
read as their base kinds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from supervisor.ledger import events as ev


def class_chain(class_id: int) -> str:
    return f"class:{class_id}"


def learner_class_chain(class_id: int, learner_id: int) -> str:
    return f"class:{class_id}:learner:{learner_id}"


# -- the class chain -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClassFiled(ev.Event):
    """The filing before training; `filing_sha256` covers its text (storage.classroom_sql)."""

    KIND: ClassVar[str] = "class_filed"
    class_id: int
    course_id: int
    institution_id: int
    filing_id: int
    filing_sha256: str
    roster: tuple[int, ...]
    teacher: str
    mode: str
    starts_at: datetime
    ends_at: datetime
    filed_by: str
    at: datetime


@dataclass(frozen=True, slots=True)
class ClassSupervisionStarted(ev.Event):
    KIND: ClassVar[str] = "class_supervision_started"
    class_id: int
    run_id: int
    mode: str
    roster: tuple[int, ...]
    cameras: tuple[int, ...]
    filing_sha256: str
    started_by: str
    resumed: bool  # a run taken over after its process stopped or crashed
    at: datetime


@dataclass(frozen=True, slots=True)
class CameraStatusChanged(ev.Event):
    """A camera's state changed (live, reconnecting, unreachable, not_a_video, ended)."""

    KIND: ClassVar[str] = "camera_status"
    class_id: int
    run_id: int
    camera_id: int
    state: str
    error: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class ClassRollCall(ev.Event):
    """One roll call over every camera of the class.

    `outcome`: "done" (at least one camera delivered frames), "outage" (none
    did) or "deferred" (the service was overloaded). Face counts add up each
    camera's largest count over its frames. The `frames_*` tuples describe each
    frame examined, in the same order: camera, when it was decoded, its
    presentation timestamp and time base ("num/den") on the camera's clock, and
    the SHA-256 of the stored frame (None when it was not kept).
    """

    KIND: ClassVar[str] = "class_roll_call"
    class_id: int
    run_id: int
    roll_call_id: str
    purpose: str  # start | random | resume | end
    outcome: str
    scheduled_at: datetime | None
    at: datetime
    cameras_live: tuple[int, ...]
    cameras_down: tuple[int, ...]
    faces: int
    present: tuple[int, ...]
    absent: tuple[int, ...]
    unseen: tuple[int, ...]  # not found while a camera was out: neither present nor absent
    not_enrolled: tuple[int, ...]
    unknown_faces: int
    ambiguous_faces: int
    unusable_faces: int
    frames_camera: tuple[int, ...]
    frames_captured_at: tuple[datetime, ...]
    frames_pts: tuple[int | None, ...]
    frames_time_base: tuple[str | None, ...]
    frames_evidence: tuple[str | None, ...]
    frames_faces: tuple[int, ...]
    frames_unknown: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ClassFlagRaised(ev.Event):
    KIND: ClassVar[str] = "class_flag_raised"
    class_id: int
    run_id: int
    flag_id: int
    flag_kind: str
    roll_call_id: str
    at: datetime


@dataclass(frozen=True, slots=True)
class ClassSupervisionInterrupted(ev.Event):
    """The process supervising the class stopped; the run stays open to be resumed."""

    KIND: ClassVar[str] = "class_supervision_interrupted"
    class_id: int
    run_id: int
    reason: str
    at: datetime


@dataclass(frozen=True, slots=True)
class ClassSupervisionStopped(ev.Event):
    KIND: ClassVar[str] = "class_supervision_stopped"
    class_id: int
    run_id: int
    reason: str  # operator | schedule_end
    stopped_by: str
    at: datetime


# -- a learner's chain in a class (read by `credit` as their base kinds) ----------


@dataclass(frozen=True, slots=True)
class ClassPresence(ev.CheckRecorded):
    """A roll call's finding about one learner. `check_id` is the roll call's id,
    `check_kind` "roll_call", `verdict` present | absent | not_enrolled, `faces` the
    faces the roll call saw, `evidence_sha256` the frame the learner was found in
    (or, when absent, the first frame examined)."""

    KIND: ClassVar[str] = "class_presence"
    class_id: int = 0
    learner_id: int = 0
    run_id: int = 0
    camera_id: int | None = None
    captured_at: datetime | None = None
    pts: int | None = None
    time_base: str | None = None
    box: tuple[int, ...] = ()  # left, top, right, bottom in the camera frame


@dataclass(frozen=True, slots=True)
class ClassOutage(ev.StateChanged):
    """The learner could not be observed (a camera out, the service stopped): the
    clock stops, and nothing is counted against the learner."""

    KIND: ClassVar[str] = "class_outage"
    class_id: int = 0
    run_id: int = 0
    roll_call_id: str | None = None
    cameras_down: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class ClassResumed(ev.StateChanged):
    """Observation resumed; recorded with the roll call that sees the room again."""

    KIND: ClassVar[str] = "class_resumed"
    class_id: int = 0
    run_id: int = 0
    roll_call_id: str | None = None


@dataclass(frozen=True, slots=True)
class ClassLeft(ev.SessionEnded):
    """A supervision run ended: nothing is credited across the break to the next one."""

    KIND: ClassVar[str] = "class_supervision_ended"
    class_id: int = 0
    run_id: int = 0


OBSERVED, OUTAGE = "active", "outage"

# The kinds of this module, for `supervisor.ledger.kinds`.
KINDS: tuple[type[ev.Event], ...] = (
    ClassFiled,
    ClassSupervisionStarted,
    CameraStatusChanged,
    ClassRollCall,
    ClassFlagRaised,
    ClassSupervisionInterrupted,
    ClassSupervisionStopped,
    ClassPresence,
    ClassOutage,
    ClassResumed,
    ClassLeft,
)
