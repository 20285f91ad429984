"""The service's side of a check: frames out to the workers, the recorded check back.

Frames leave the main process once: a decoded video frame is encoded as JPEG here
(off the event loop) and that encoding is what the worker verifies and keeps as
evidence; an upload goes as the client sent it, to be decoded only in a worker.
When the queue is full or unreachable, or no result comes in time, the check is
recorded as deferred under its own check id instead: exactly one of the two lands,
and a deferred check never counts against the learner.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from config import Settings
from storage import Storage
from storage.types import LedgerEvent
from supervisor.checks.jobs import CheckJob, Frame, ResultStatus, SessionStart
from supervisor.checks.queue import CheckQueue, QueueFull, QueueUnavailable
from supervisor.errors import CheckRefused, Conflict, InvalidInput, Unavailable
from supervisor.ledger import codec
from supervisor.ledger import events as ev
from supervisor.metrics import Metrics
from verification.imageio import encode_jpeg
from verification.types import CheckKind

T = TypeVar("T")
Db = Callable[..., Awaitable[Any]]

# Video frames go to the workers at this JPEG quality: a check must see the face, and
# the same bytes are the evidence.
FRAME_JPEG_QUALITY = 90


@dataclass(frozen=True, slots=True)
class CheckRequest:
    """One check of one session, as live supervision, the still-frame path, a client or
    a sign-in asks for it."""

    session_id: str
    chain_id: str
    learner_id: int
    kind: CheckKind
    purpose: str  # start | scheduled | retry | resume | challenge | submitted
    frames: tuple[Frame, ...]
    scheduled_at: datetime | None = None
    check_id: str | None = None
    frame_times: tuple[float, ...] = ()  # seconds on one clock (a challenge: from its prompt)
    challenge: str | None = None
    # A later round of challenges: the head's yaw before the first round (the learner
    # facing the camera), which this round's turn is judged against as well.
    reference_yaw_deg: float | None = None
    suspicion: tuple[str, ...] = ()
    start: SessionStart | None = None  # a sign-in: the check opens the session


def _encode(frames: Sequence[Frame]) -> tuple[list[bytes], bool]:
    data = [
        f.image if isinstance(f.image, bytes) else encode_jpeg(f.image, FRAME_JPEG_QUALITY)
        for f in frames
    ]
    return data, all(not isinstance(f.image, bytes) for f in frames)


class CheckDispatcher:
    def __init__(
        self,
        settings: Settings,
        storage: Storage,
        queue: CheckQueue,
        db: Db,
        metrics: Metrics,
        clock: Callable[[], datetime],
    ) -> None:
        self.settings = settings
        self.storage = storage
        self.queue = queue
        self.db = db
        self.metrics = metrics
        self.clock = clock

    async def run(self, request: CheckRequest) -> ev.CheckRecorded | ev.CheckDeferred:
        """Have a worker verify and record the check, and wait for its record.

        Raises `InvalidInput` (415/413) for frames that are not usable images,
        `Conflict` for a learner with no face or a session that ended meanwhile, and,
        for a sign-in, `CheckRefused` when its check did not pass (nothing recorded)
        or `Unavailable` when it could not be verified now."""
        check_id = request.check_id or uuid.uuid4().hex
        data, ready = await asyncio.to_thread(_encode, request.frames)
        job = CheckJob(
            check_id=check_id,
            session_id=request.session_id,
            chain_id=request.chain_id,
            learner_id=request.learner_id,
            kind=request.kind,
            purpose=request.purpose,
            scheduled_at=request.scheduled_at,
            enqueued_at=self.clock(),
            frames=tuple(data),
            frame_times=request.frame_times,
            challenge=request.challenge,
            reference_yaw_deg=request.reference_yaw_deg,
            suspicion=request.suspicion,
            stamps=tuple(f.stamp for f in request.frames),
            evidence_ready=ready,
            start=request.start,
        )
        started = time.monotonic()
        try:
            await self.queue.submit(job)
        except QueueFull:
            return await self._defer(job, "overloaded")
        except QueueUnavailable:
            return await self._defer(job, "queue_unavailable")
        result = await self.queue.wait_result(check_id, self.settings.workers.result_timeout_s, job)
        if result is None:
            return await self._defer(job, "timeout")
        if result.status is ResultStatus.image_error:
            if result.reason in ("not_enrolled", "reenrolment_needed"):
                raise Conflict(result.message or "not enrolled", reason=result.reason)
            err = InvalidInput(result.message or "not an image", reason=result.reason)
            err.status = 413 if result.reason == "image_too_large" else 415
            raise err
        if result.status is ResultStatus.session_ended:
            raise Conflict("the session has already ended", reason="session_ended")
        if result.status is ResultStatus.failed:
            return await self._defer(job, "failed")
        event = codec.decode_payload(result.kind or "", result.payload or "")
        if result.status is ResultStatus.refused and isinstance(event, ev.CheckRecorded):
            self.metrics.checks.labels(event.check_kind, event.verdict).inc()
            raise CheckRefused(
                "the identity check at sign-in did not pass",
                reason=event.verdict,
                distance=event.distance,
                threshold=event.threshold,
                issues=list(event.issues),
                faces=event.faces,
            )
        if not isinstance(event, ev.CheckRecorded | ev.CheckDeferred):
            raise Unavailable("the worker's result could not be read", reason="bad_result")
        if isinstance(event, ev.CheckRecorded):
            self.metrics.checks.labels(event.check_kind, event.verdict).inc()
            self.metrics.latency.observe(time.monotonic() - started)
        return event

    async def _defer(self, job: CheckJob, reason: str) -> ev.CheckRecorded | ev.CheckDeferred:
        """Record the check as deferred unless its real result got there first."""
        deferred = ev.CheckDeferred(job.check_id, job.kind.value, self.clock(), reason)
        stored, created = await self.db(
            self.storage.ledger.append_once, job.chain_id, job.check_id, [codec.encode(deferred)]
        )
        found: ev.Event | None = deferred
        if not created:
            found = codec.decode(await self._check_of(job, stored[0]))
        if isinstance(found, ev.CheckDeferred):
            self.metrics.deferred.labels(found.reason).inc()
            if job.start is not None:
                raise Unavailable(
                    "the sign-in could not be verified now; please try again shortly",
                    reason="check_deferred",
                    deferred_reason=found.reason,
                )
        if not isinstance(found, ev.CheckRecorded | ev.CheckDeferred):
            raise Unavailable("the check's record could not be read", reason="bad_result")
        return found

    async def _check_of(self, job: CheckJob, first: LedgerEvent) -> LedgerEvent:
        """The check event of an append whose first event was `first` (a sign-in's
        append begins with session_started)."""
        if first.kind != "session_started":
            return first
        chain: list[LedgerEvent] = await self.db(self.storage.ledger.read_chain, job.chain_id)
        return next((e for e in chain if e.kind == "check"), first)
