"""Read models of a class's supervision, and a learner's presence over time.

Pure functions of the chains' events (`supervisor.ledger.classroom`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from capture.types import SourceStatus
from storage.types import CameraSource, Learner, SupervisionRun, TrainingClass
from supervisor.ledger import classroom as ce
from supervisor.ledger import events as ev
from supervisor.rules.crediting import Credit


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
