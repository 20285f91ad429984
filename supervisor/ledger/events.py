"""Ledger event kinds of online study and of a learner's identity, and their payloads.

Each kind is a frozen dataclass; `supervisor.ledger.codec` turns one into its
canonical stored form and back, and `supervisor.ledger.kinds` lists every kind of
every wing. Times inside payloads are ISO 8601 UTC strings with microseconds and a
trailing Z; they are set by the server, never by a client. Values nested in an
event (liveness, a challenge) are frozen dataclasses too, stored as JSON objects.
A field made with `optional()` is left out of the payload while it is None, so a
field added later leaves the bytes of earlier events unchanged.

Chains: one per study session (`session:<uuid>`), one per learner for identity
and consent facts (`learner:<id>`), and one per learner per class (classroom).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar


def iso(at: datetime) -> str:
    if at.tzinfo is None:
        raise ValueError("naive datetime refused; use timezone-aware UTC")
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def session_chain(session_id: str) -> str:
    return f"session:{session_id}"


def learner_chain(learner_id: int) -> str:
    return f"learner:{learner_id}"


OMIT_IF_NONE = "omit_if_none"


def optional() -> Any:
    """A field that defaults to None and is left out of the payload while None."""
    return field(default=None, metadata={OMIT_IF_NONE: True})


@dataclass(frozen=True, slots=True)
class Event:
    KIND: ClassVar[str] = ""


# -- values nested in a check ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LivenessMeasuresRecord:
    """What passive liveness measured (verification.types.LivenessMeasures, rounded to
    5 decimals). Lengths are fractions of the inter-ocular distance unless named."""

    frames: int | None = None
    face_frames: int | None = None
    span_s: float | None = None
    iod_px: float | None = None
    sharpness_min: float | None = None
    motion: float | None = None
    nonrigid: float | None = None
    tracked_points: int | None = None
    glare_moved: float | None = None
    pixel_change_max: float | None = None
    repeat_mad: float | None = None
    repeat_gap_s: float | None = None
    history_matches: int | None = None
    ear_min: float | None = None
    ear_max: float | None = None
    elapsed_ms: float | None = None


@dataclass(frozen=True, slots=True)
class LivenessRecord:
    """Passive liveness over a check's frames: live | spoof | inconclusive, and why."""

    verdict: str
    reasons: tuple[str, ...] = ()
    measures: LivenessMeasuresRecord = field(default_factory=LivenessMeasuresRecord)


@dataclass(frozen=True, slots=True)
class ReplayRecord:
    """A check frame found to be a kept frame posted again (`verification.replay`):
    how closely it registers onto the kept frame (0 = the same pixels), the threshold,
    and the kept frame's evidence hash."""

    score: float
    threshold: float
    copied_evidence_sha256: str


@dataclass(frozen=True, slots=True)
class ChallengeRecord:
    """An active challenge answered in a check's frames (verification.types.ChallengeResult,
    rounded to 5 decimals). Angles in degrees, relative to the pose at the prompt."""

    kind: str
    outcome: str  # passed | failed | timed_out
    reasons: tuple[str, ...] = ()
    response_s: float | None = None
    frames: int | None = None
    face_frames: int | None = None
    baseline_yaw_deg: float | None = None
    baseline_pitch_deg: float | None = None
    baseline_ear: float | None = None
    peak_yaw_change_deg: float | None = None
    trough_yaw_change_deg: float | None = None
    peak_pitch_change_deg: float | None = None
    min_ear_ratio: float | None = None


# -- session chain -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionStarted(Event):
    KIND: ClassVar[str] = "session_started"
    session_id: str
    learner_id: int
    course_id: int
    institution_id: int
    mode: str  # "upload" or "webrtc"
    at: datetime


@dataclass(frozen=True, slots=True)
class SupervisionModeChanged(Event):
    """The page is supervised another way than the session's last recorded mode: the
    mode named at sign-in was not the one used (WebRTC could not connect, so the page
    fell back to still frames), or the page moved between the two later."""

    KIND: ClassVar[str] = "supervision_mode_changed"
    from_mode: str  # "upload" or "webrtc"
    to_mode: str
    at: datetime


@dataclass(frozen=True, slots=True)
class CheckRecorded(Event):
    """One check and its verdict. `passed` drives crediting."""

    KIND: ClassVar[str] = "check"
    check_id: str
    check_kind: str  # presence | identity
    purpose: str  # start | scheduled | retry | submitted
    verdict: str
    passed: bool
    at: datetime  # when the frame reached the server
    distance: float | None
    threshold: float | None
    issues: tuple[str, ...]
    faces: int
    frames: int
    evidence_sha256: str | None
    scheduled_at: datetime | None = None
    # Passive liveness over the check's frames: verdict, reasons, measures.
    liveness: LivenessRecord | None = None
    # An active challenge answered in these frames: kind, outcome, measures.
    challenge: ChallengeRecord | None = None
    # What the browser reported that raised suspicion (it never clears any).
    suspicion: tuple[str, ...] = ()
    # Why the evidence frame could not be kept (the check counts all the same).
    evidence_error: str | None = None
    # When the decisive frame was captured (the server's receive time of a video frame
    # or an upload) and its timestamp in the source's own clock: `pts` in units of
    # `time_base` ("num/den" seconds). Absent from checks recorded before they were kept.
    captured_at: datetime | None = optional()
    pts: int | None = optional()
    time_base: str | None = optional()
    # The frame is a kept frame posted again (verdict `replayed_frame`).
    replay: ReplayRecord | None = optional()


@dataclass(frozen=True, slots=True)
class CheckMissed(Event):
    """A check the server asked for got no frame within its window."""

    KIND: ClassVar[str] = "check_missed"
    check_id: str
    check_kind: str
    scheduled_at: datetime
    at: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class CheckDeferred(Event):
    """A check the service could not run (overload): never counted against the learner."""

    KIND: ClassVar[str] = "check_deferred"
    check_id: str
    check_kind: str
    at: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class StateChanged(Event):
    KIND: ClassVar[str] = "state_changed"
    from_state: str
    to_state: str
    reason: str
    at: datetime


@dataclass(frozen=True, slots=True)
class SessionEnded(Event):
    KIND: ClassVar[str] = "session_ended"
    reason: str  # learner | failed_windows | consent_withdrawn | operator | expired
    at: datetime


# -- learner chain -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConsentGiven(Event):
    """Biometric consent, given by the learner with their own token, or in person at the
    bureau on a signed form whose SHA-256 is `form_sha256`."""

    KIND: ClassVar[str] = "consent_given"
    learner_id: int
    consent_id: int
    text_version: str
    recorded_by: str
    at: datetime
    form_sha256: str | None = optional()


@dataclass(frozen=True, slots=True)
class ConsentWithdrawn(Event):
    KIND: ClassVar[str] = "consent_withdrawn"
    learner_id: int
    consent_id: int
    templates_deleted: int
    recorded_by: str
    at: datetime
    # Enrolment photos deleted with the templates (absent in events from before
    # photos were deleted at withdrawal).
    photos_deleted: int | None = optional()


@dataclass(frozen=True, slots=True)
class TemplateEnrolled(Event):
    KIND: ClassVar[str] = "template_enrolled"
    learner_id: int
    template_id: int
    evidence_sha256: str
    face_width_px: int
    recorded_by: str
    at: datetime


# The kinds of this module, for `supervisor.ledger.kinds`.
KINDS: tuple[type[Event], ...] = (
    SessionStarted,
    SupervisionModeChanged,
    CheckRecorded,
    CheckMissed,
    CheckDeferred,
    StateChanged,
    SessionEnded,
    ConsentGiven,
    ConsentWithdrawn,
    TemplateEnrolled,
)
