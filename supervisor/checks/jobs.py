"""Check jobs on a Redis Stream and their results: the contract between the service
that asks for a check and the worker that does it.

A job is one stream entry: field `meta` (JSON) and one field per frame
(`f0`, `f1`, ... as encoded image bytes). A result is a JSON object pushed to a
per-check list (`<stream>:result:<check_id>`, expiring), which the waiting side
pops with BLPOP: unlike pub/sub, a result survives a moment when nobody listens.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from supervisor.ledger.events import iso, parse_iso
from verification.types import CheckKind, Image

MAX_FRAMES = 80  # a challenge sends several seconds of frames


class ResultStatus(StrEnum):
    recorded = "recorded"  # verified and appended to the ledger now
    duplicate = "duplicate"  # this check was already in the ledger (a second delivery)
    image_error = "image_error"  # a frame is not a usable image: nothing recorded
    session_ended = "session_ended"  # the session ended while the check was queued
    failed = "failed"  # the job kept failing: dead-lettered, nothing recorded
    refused = "refused"  # a sign-in whose check did not pass: nothing recorded


@dataclass(frozen=True, slots=True)
class FrameStamp:
    """When a frame was captured: the server's receive time (a decoded video frame's,
    or an upload's), and the source's own timestamp (`pts` in units of `time_base`,
    "num/den" seconds) where it has one."""

    captured_at: datetime
    pts: int | None = None
    time_base: str | None = None


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame for a check, as the main process has it: an upload's bytes (untrusted,
    decoded only in a worker) or a decoded video frame (RGB uint8)."""

    image: bytes | Image
    stamp: FrameStamp


@dataclass(frozen=True, slots=True)
class SessionStart:
    """A sign-in: the check opens this session when it passes (and records nothing when
    it does not)."""

    course_id: int
    institution_id: int
    mode: str


@dataclass(frozen=True, slots=True)
class CheckJob:
    check_id: str
    session_id: str
    chain_id: str
    learner_id: int
    kind: CheckKind
    purpose: str
    scheduled_at: datetime | None
    enqueued_at: datetime
    frames: tuple[bytes, ...]
    # Seconds of each frame on one clock (the capture's); for a challenge, from the
    # moment it was issued. Empty when unknown (frames then count 1 s apart).
    frame_times: tuple[float, ...] = ()
    challenge: str | None = None  # a ChallengeKind these frames answer
    # A later round of challenges: the yaw before the first round, judged against too.
    reference_yaw_deg: float | None = None
    suspicion: tuple[str, ...] = ()  # from the browser's own signals
    stamps: tuple[FrameStamp, ...] = ()  # one per frame (empty in jobs of older versions)
    # The frames were encoded by the service itself (decoded video): the decisive one is
    # kept as evidence as it is, not decoded and encoded once more.
    evidence_ready: bool = False
    start: SessionStart | None = None


@dataclass(frozen=True, slots=True)
class CheckResult:
    check_id: str
    status: ResultStatus
    worker: str
    kind: str | None = None  # ledger event kind when recorded or duplicate
    payload: str | None = None  # the event's canonical payload
    reason: str | None = None  # image_error / failed: machine-readable
    message: str | None = None

    def to_json(self) -> str:
        return json.dumps(
            {
                "check_id": self.check_id,
                "status": self.status.value,
                "worker": self.worker,
                "kind": self.kind,
                "payload": self.payload,
                "reason": self.reason,
                "message": self.message,
            }
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> CheckResult:
        d = json.loads(text)
        return cls(
            check_id=str(d["check_id"]),
            status=ResultStatus(d["status"]),
            worker=str(d.get("worker") or ""),
            kind=d.get("kind"),
            payload=d.get("payload"),
            reason=d.get("reason"),
            message=d.get("message"),
        )


def job_fields(job: CheckJob) -> dict[str, bytes]:
    if not 1 <= len(job.frames) <= MAX_FRAMES:
        raise ValueError(f"a check job carries 1 to {MAX_FRAMES} frames")
    meta = {
        "check_id": job.check_id,
        "session_id": job.session_id,
        "chain_id": job.chain_id,
        "learner_id": job.learner_id,
        "kind": job.kind.value,
        "purpose": job.purpose,
        "scheduled_at": iso(job.scheduled_at) if job.scheduled_at else None,
        "enqueued_at": iso(job.enqueued_at),
        "frames": len(job.frames),
        "frame_times": list(job.frame_times),
        "challenge": job.challenge,
        "reference_yaw_deg": job.reference_yaw_deg,
        "suspicion": list(job.suspicion),
        "stamps": [[iso(s.captured_at), s.pts, s.time_base] for s in job.stamps],
        "evidence_ready": job.evidence_ready,
        "start": (
            [job.start.course_id, job.start.institution_id, job.start.mode] if job.start else None
        ),
    }
    fields: dict[str, bytes] = {"meta": json.dumps(meta).encode()}
    for i, frame in enumerate(job.frames):
        fields[f"f{i}"] = frame
    return fields


def parse_job(fields: dict[Any, Any]) -> CheckJob:
    """A job from its stream fields; raises ValueError if it is malformed."""
    f = {(k.decode() if isinstance(k, bytes) else str(k)): v for k, v in fields.items()}
    try:
        meta = json.loads(f["meta"])
        count = int(meta["frames"])
        if not 1 <= count <= MAX_FRAMES:
            raise ValueError("frame count out of range")
        frames = tuple(bytes(f[f"f{i}"]) for i in range(count))
        return CheckJob(
            check_id=str(meta["check_id"]),
            session_id=str(meta["session_id"]),
            chain_id=str(meta["chain_id"]),
            learner_id=int(meta["learner_id"]),
            kind=CheckKind(meta["kind"]),
            purpose=str(meta["purpose"]),
            scheduled_at=parse_iso(meta["scheduled_at"]) if meta.get("scheduled_at") else None,
            enqueued_at=parse_iso(meta["enqueued_at"]),
            frames=frames,
            frame_times=tuple(float(t) for t in meta.get("frame_times") or ()),
            challenge=str(meta["challenge"]) if meta.get("challenge") else None,
            reference_yaw_deg=(
                float(meta["reference_yaw_deg"])
                if meta.get("reference_yaw_deg") is not None
                else None
            ),
            suspicion=tuple(str(x) for x in meta.get("suspicion") or ()),
            stamps=tuple(
                FrameStamp(parse_iso(at), None if pts is None else int(pts), tb)
                for at, pts, tb in meta.get("stamps") or ()
            ),
            evidence_ready=bool(meta.get("evidence_ready")),
            start=(
                SessionStart(int(start[0]), int(start[1]), str(start[2]))
                if (start := meta.get("start"))
                else None
            ),
        )
    except (KeyError, TypeError, ValueError, json.JSONDecodeError) as exc:
        raise ValueError(f"malformed check job: {exc}") from None


def result_key(stream: str, check_id: str) -> str:
    return f"{stream}:result:{check_id}"


def dead_letter_stream(stream: str) -> str:
    return f"{stream}:dead"


def worker_key(stream: str, name: str) -> str:
    return f"{stream}:worker:{name}"
