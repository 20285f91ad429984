"""Supervised study sessions: start on a passed identity check, checks, end.

The ledger chain of a session is its truth; `fold` derives the live state from
it and `credit` the learning time. Decisions for one session are serialised by
a per-session lock, and the storage layer keeps the chain unforked even when
several processes append at once.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from storage.types import LedgerEvent, Role, StudySession, VerifyReport
from supervisor.auth import Principal, can_act_as_learner, can_read_learner, require_role
from supervisor.checks.evidence import keep_frame
from supervisor.checks.jobs import CheckJob, ResultStatus
from supervisor.checks.pool import CheckOutcome, Overloaded
from supervisor.checks.queue import QueueFull, QueueUnavailable
from supervisor.context import Context
from supervisor.errors import CheckRefused, Conflict, InvalidInput, OtherInstitution, Unavailable
from supervisor.ledger import events as ev
from supervisor.registry.status import ensure_active
from supervisor.rules.crediting import Credit, CreditClock, credit
from verification.exceptions import ImageError, ImageTooLarge
from verification.imageio import encode_jpeg
from verification.types import CheckKind, Image

ACTIVE, PAUSED, ENDED = "active", "paused", "ended"


@dataclass(frozen=True, slots=True)
class SessionState:
    session_id: str
    learner_id: int
    course_id: int
    institution_id: int
    mode: str
    state: str
    started_at: datetime
    ended_at: datetime | None
    end_reason: str | None
    checks: int
    last_check: ev.CheckRecorded | None
    consecutive_failures: int


class SessionView:
    """A session's live state and credited time, folded from its chain as it grows.

    `fold` and `crediting.credit` over the whole chain give the same values; the
    live service keeps one view per session and applies only the events appended
    since it last looked (`apply` skips what it has seen, so two overlapping reads
    applied in either order leave the same view)."""

    __slots__ = (
        "seq",
        "start",
        "state",
        "ended_at",
        "end_reason",
        "checks",
        "last",
        "failures",
        "identity_passed_at",
        "clock",
    )

    def __init__(self, max_gap: timedelta) -> None:
        self.seq = 0  # the last seq applied
        self.start: ev.SessionStarted | None = None
        self.state = ACTIVE
        self.ended_at: datetime | None = None
        self.end_reason: str | None = None
        self.checks = 0
        self.last: ev.CheckRecorded | None = None
        self.failures = 0
        self.identity_passed_at: datetime | None = None  # the latest passed identity check
        self.clock = CreditClock(max_gap, keep_intervals=False)

    def feed(self, e: ev.Event) -> None:
        if isinstance(e, ev.SessionStarted):
            if self.start is None:
                self.start = e
        elif isinstance(e, ev.CheckRecorded):
            self.checks += 1
            self.last = e
            self.failures = 0 if e.passed else self.failures + 1
            if e.passed and e.check_kind == CheckKind.identity.value:
                self.identity_passed_at = e.at
        elif isinstance(e, ev.StateChanged):
            self.state = e.to_state
        elif isinstance(e, ev.SessionEnded):
            self.state, self.ended_at, self.end_reason = ENDED, e.at, e.reason
        self.clock.feed(e)

    def apply(self, stored: Sequence[LedgerEvent]) -> None:
        """Feed stored events of the chain that come after `seq`, in seq order."""
        for s in stored:
            if s.seq <= self.seq:
                continue
            if s.seq != self.seq + 1:
                raise ValueError(f"events of {s.chain_id} skip from seq {self.seq} to {s.seq}")
            event = ev.decode(s)
            if event is not None:
                self.feed(event)
            self.seq = s.seq

    def snapshot(self) -> SessionState:
        start = self.start
        if start is None:
            raise ValueError("a session chain must begin with session_started")
        return SessionState(
            start.session_id,
            start.learner_id,
            start.course_id,
            start.institution_id,
            start.mode,
            self.state,
            start.at,
            self.ended_at,
            self.end_reason,
            self.checks,
            self.last,
            self.failures,
        )


def fold(events: Sequence[ev.Event]) -> SessionState:
    """The live state of a session from its events, in ledger order."""
    view = SessionView(timedelta(0))
    for e in events:
        view.feed(e)
    return view.snapshot()


class SessionViews:
    """Views of the sessions a process is working on, least recently used out.

    `refresh` reads only the events appended after a view's last seq (by any
    process), so it stays exact while costing one small indexed read."""

    def __init__(self, read_after: Callable[[str, int], Sequence[LedgerEvent]],
                 max_gap: timedelta, size: int = 10_000) -> None:  # fmt: skip
        self._read_after = read_after
        self._max_gap = max_gap
        self._size = size
        self._views: OrderedDict[str, SessionView] = OrderedDict()

    def _get(self, chain_id: str) -> SessionView:
        view = self._views.pop(chain_id, None) or SessionView(self._max_gap)
        self._views[chain_id] = view
        while len(self._views) > self._size:
            self._views.popitem(last=False)
        return view

    def refresh(self, chain_id: str) -> SessionView:
        """The chain's view, brought up to date (blocking: one database read)."""
        view = self._get(chain_id)
        view.apply(self._read_after(chain_id, view.seq))
        return view

    async def refresh_async(
        self, chain_id: str, run: Callable[..., Awaitable[Sequence[LedgerEvent]]]
    ) -> SessionView:
        """`refresh` with the read run by `run` (off the event loop); applied on the loop."""
        view = self._get(chain_id)
        view.apply(await run(self._read_after, chain_id, view.seq))
        return view

    def forget(self, chain_id: str) -> None:
        self._views.pop(chain_id, None)


def check_event(
    outcome: CheckOutcome,
    evidence_sha256: str | None,
    purpose: str,
    at: datetime,
    scheduled_at: datetime | None = None,
    check_id: str | None = None,
    evidence_error: str | None = None,
) -> ev.CheckRecorded:
    r = outcome.result
    frame = r.decisive
    return ev.CheckRecorded(
        check_id=check_id or uuid.uuid4().hex,
        check_kind=r.kind.value,
        purpose=purpose,
        verdict=r.verdict.value,
        passed=r.passed,
        at=at,
        distance=frame.distance,
        threshold=frame.threshold,
        issues=tuple(i.value for i in frame.issues),
        faces=frame.faces_found,
        frames=len(r.frames),
        evidence_sha256=evidence_sha256,
        scheduled_at=scheduled_at,
        evidence_error=evidence_error,
    )


def image_error(exc: ImageError) -> InvalidInput:
    err = InvalidInput(str(exc), reason=exc.reason)
    if isinstance(exc, ImageTooLarge):
        err.status = 413
    else:
        err.status = 415
    return err


class SessionService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.registry = ctx.storage.registry
        self.views = SessionViews(
            ctx.storage.ledger.read_chain,
            timedelta(seconds=ctx.settings.policy.max_credited_gap_s),
        )
        # Hooks set by live supervision: the learner was active on a session (keeps
        # their one-live-session lock), a session ended (closes its live link), a
        # new session may start (refuses when another is live, ends abandoned ones).
        self.on_activity: Callable[[StudySession], Awaitable[None]] | None = None
        self.on_end: Callable[[StudySession], Awaitable[None]] | None = None
        # (learner_id, open_session_id, commit): commit=False only refuses (a live open
        # session); commit=True, once the new session's check passed, ends the old one.
        self.before_start: Callable[[int, str, bool], Awaitable[None]] | None = None

    # -- reading -------------------------------------------------------------

    async def _session(self, p: Principal, session_id: str, act: bool) -> StudySession:
        session = await self.ctx.db(self.registry.get_session, session_id)
        if act:
            can_act_as_learner(p, session.learner_id, session.institution_id)
        else:
            can_read_learner(p, session.learner_id, session.institution_id)
        return session

    async def chain(self, session: StudySession) -> list[LedgerEvent]:
        return await self.ctx.db(self.ctx.storage.ledger.read_chain, session.chain_id)

    async def state(self, p: Principal, session_id: str) -> SessionState:
        session = await self._session(p, session_id, act=False)
        return fold([e for _, e in ev.decode_all(await self.chain(session))])

    async def events(self, p: Principal, session_id: str) -> list[LedgerEvent]:
        return await self.chain(await self._session(p, session_id, act=False))

    async def integrity(self, p: Principal, session_id: str) -> VerifyReport:
        session = await self._session(p, session_id, act=False)
        return await self.ctx.db(self.ctx.storage.ledger.verify, [session.chain_id])

    async def credited(self, p: Principal, session_id: str) -> Credit:
        session = await self._session(p, session_id, act=False)
        return self.credit_of(await self.chain(session))

    async def view(self, session: StudySession) -> SessionView:
        """The session's state and credit, up to date with its chain (an incremental read)."""
        return await self.views.refresh_async(session.chain_id, self.ctx.db)

    def credit_of(self, stored: Sequence[LedgerEvent]) -> Credit:
        gap = timedelta(seconds=self.ctx.settings.policy.max_credited_gap_s)
        return credit([e for _, e in ev.decode_all(stored)], gap)

    async def list(
        self, p: Principal, learner_id: int | None, open_only: bool
    ) -> list[StudySession]:
        if p.role is Role.learner:
            learner_id = p.learner_id
            institution_id = None
        elif p.role is Role.operator:
            institution_id = p.institution_id
        else:
            require_role(p, Role.admin, Role.inspector)
            institution_id = None
        return await self.ctx.db(self.registry.list_sessions, institution_id, learner_id, open_only)

    # -- acting ------------------------------------------------------------

    async def _verify(
        self, kind: CheckKind, frames: Sequence[bytes | Image], learner_id: int
    ) -> CheckOutcome:
        templates = None
        if kind is CheckKind.identity:
            templates = await self.ctx.db(self.ctx.storage.templates.for_learner, learner_id)
            if not templates:
                raise Conflict("the learner has no enrolled face", reason="not_enrolled")
        try:
            return await self.ctx.pool.check(
                kind, frames, [t.vector for t in templates] if templates else None
            )
        except ImageError as exc:
            raise image_error(exc) from None
        except Overloaded as exc:
            raise Unavailable(
                f"verification is overloaded ({exc}); retry shortly", reason="overloaded"
            ) from None

    async def start(
        self, p: Principal, course_id: int, frames: Sequence[bytes | Image], mode: str = "upload"
    ) -> tuple[SessionState, ev.CheckRecorded]:
        """Open a session after an identity check passes; a refusal changes nothing."""
        require_role(p, Role.learner)
        assert p.learner_id is not None
        learner = await self.ctx.db(self.registry.get_learner, p.learner_id)
        course = await self.ctx.db(self.registry.get_course, course_id)
        if course.institution_id != learner.institution_id:
            raise OtherInstitution("the course belongs to another institution")
        await ensure_active(self.ctx, course.institution_id)
        if await self.ctx.db(self.registry.active_consent, learner.id) is None:
            raise Conflict("biometric consent has not been given", reason="no_consent")
        async with self.ctx.lock(f"learner:{learner.id}"):
            open_now = await self.ctx.db(self.registry.list_sessions, None, learner.id, True)
            for session in open_now:
                if self.before_start is None:
                    raise Conflict(
                        "the learner already has a session open",
                        reason="session_already_open",
                        session_id=session.id,
                    )
                await self.before_start(learner.id, session.id, False)
            outcome = await self._verify(CheckKind.identity, frames, learner.id)
            if not outcome.result.passed:
                frame = outcome.result.decisive
                raise CheckRefused(
                    "the identity check at sign-in did not pass",
                    reason=outcome.result.verdict.value,
                    distance=frame.distance,
                    threshold=frame.threshold,
                    issues=[i.value for i in frame.issues],
                    faces=frame.faces_found,
                )
            # Only now, with the new session's check passed, is the abandoned one ended:
            # a refused start (bad image, failed check) must leave the ledger unchanged.
            for session in open_now:
                assert self.before_start is not None
                await self.before_start(learner.id, session.id, True)
            now = self.ctx.clock()
            evidence_sha, evidence_error = await self.ctx.db(
                keep_frame,
                self.ctx.storage.evidence,
                outcome.evidence_jpeg,
                self.ctx.retain_until(),
            )
            session_id = str(uuid.uuid4())
            chain_id = ev.session_chain(session_id)
            started = ev.SessionStarted(
                session_id, learner.id, course.id, course.institution_id, mode, now
            )
            check = check_event(outcome, evidence_sha, "start", now, evidence_error=evidence_error)
            await self.ctx.append(chain_id, [ev.encode(started), ev.encode(check)])
            created = await self.ctx.db(
                self.registry.create_session,
                session_id,
                chain_id,
                learner.id,
                course.id,
                course.institution_id,
                now,
            )
            if self.on_activity is not None:
                await self.on_activity(created)
        return fold([started, check]), check

    async def submit_check(
        self,
        p: Principal,
        session_id: str,
        kind: CheckKind,
        frames: Sequence[bytes | Image],
    ) -> tuple[SessionState, ev.CheckRecorded]:
        """Verify frames a client submitted and record the check; a failed one pauses.

        A check the service had to defer answers 503 `check_deferred`."""
        session = await self._session(p, session_id, act=True)
        if self.on_activity is not None:
            await self.on_activity(session)
        state, event = await self.record_check(
            session, kind, frames, "submitted", pause_on_failure=True
        )
        if isinstance(event, ev.CheckDeferred):
            raise Unavailable(
                "the check could not be verified now; it is recorded as deferred and does "
                "not count against the learner",
                reason="check_deferred",
                check_id=event.check_id,
                deferred_reason=event.reason,
            )
        return state, event

    async def record_check(
        self,
        session: StudySession,
        kind: CheckKind,
        frames: Sequence[bytes | Image],
        purpose: str,
        *,
        pause_on_failure: bool,
        scheduled_at: datetime | None = None,
        check_id: str | None = None,
        frame_times: Sequence[float] = (),
        challenge: str | None = None,
        suspicion: Sequence[str] = (),
    ) -> tuple[SessionState, ev.CheckRecorded | ev.CheckDeferred]:
        """Have a worker verify the frames and record the check; wait for its result.

        The worker appends the check (and any state change it causes: a passed
        identity check resumes a paused session; with `pause_on_failure` a failed
        one pauses an active session) under the check id as idempotency key. When
        the queue is full, unreachable, or no result comes in time, the check is
        recorded as deferred under the same key instead: exactly one of the two
        lands, and a deferred check never counts against the learner.
        """
        if (await self.view(session)).state == ENDED:
            raise Conflict("the session has already ended", reason="session_ended")
        check_id = check_id or uuid.uuid4().hex
        data = await asyncio.to_thread(_frames_as_jpeg, frames)
        job = CheckJob(
            check_id=check_id,
            session_id=session.id,
            chain_id=session.chain_id,
            learner_id=session.learner_id,
            kind=kind,
            purpose=purpose,
            pause_on_failure=pause_on_failure,
            scheduled_at=scheduled_at,
            enqueued_at=self.ctx.clock(),
            frames=tuple(data),
            frame_times=tuple(frame_times),
            challenge=challenge,
            suspicion=tuple(suspicion),
        )
        started = time.monotonic()
        queue = self.ctx.queue
        try:
            await queue.submit(job)
        except QueueFull:
            return await self._defer(session, check_id, kind, "overloaded")
        except QueueUnavailable:
            return await self._defer(session, check_id, kind, "queue_unavailable")
        result = await queue.wait_result(check_id, self.ctx.settings.workers.result_timeout_s)
        if result is None:
            return await self._defer(session, check_id, kind, "timeout")
        if result.status is ResultStatus.image_error:
            if result.reason == "not_enrolled":
                raise Conflict(result.message or "not enrolled", reason="not_enrolled")
            err = InvalidInput(result.message or "not an image", reason=result.reason)
            err.status = 413 if result.reason == "image_too_large" else 415
            raise err
        if result.status is ResultStatus.session_ended:
            raise Conflict("the session has already ended", reason="session_ended")
        if result.status is ResultStatus.failed:
            return await self._defer(session, check_id, kind, "failed")
        event = ev.decode_payload(result.kind or "", result.payload or "")
        if not isinstance(event, ev.CheckRecorded | ev.CheckDeferred):
            raise Unavailable("the worker's result could not be read", reason="bad_result")
        if isinstance(event, ev.CheckRecorded):
            self.ctx.metrics.checks.labels(event.check_kind, event.verdict).inc()
            self.ctx.metrics.latency.observe(time.monotonic() - started)
        return (await self.view(session)).snapshot(), event

    async def _defer(
        self, session: StudySession, check_id: str, kind: CheckKind, reason: str
    ) -> tuple[SessionState, ev.CheckRecorded | ev.CheckDeferred]:
        """Record the check as deferred unless its real result got there first."""
        deferred = ev.CheckDeferred(check_id, kind.value, self.ctx.clock(), reason)
        stored, created = await self.ctx.db(
            self.ctx.storage.ledger.append_once, session.chain_id, check_id, [ev.encode(deferred)]
        )
        event = deferred
        if not created:
            found = ev.decode(stored[0])
            if isinstance(found, ev.CheckRecorded | ev.CheckDeferred):
                event = found  # type: ignore[assignment]
        if isinstance(event, ev.CheckDeferred):
            self.ctx.metrics.deferred.labels(event.reason).inc()
        return (await self.view(session)).snapshot(), event

    async def record(self, session: StudySession, events: Sequence[ev.Event]) -> SessionState:
        """Append events the supervisor decided (missed checks, pauses) unless ended."""
        async with self.ctx.lock(session.chain_id):
            current = (await self.view(session)).snapshot()
            if current.state == ENDED:
                raise Conflict("the session has already ended", reason="session_ended")
            wanted = list(events)
            for e in events:
                if isinstance(e, ev.StateChanged) and e.from_state != current.state:
                    wanted.remove(e)  # already in that state: nothing to record
            if wanted:
                await self.ctx.append(session.chain_id, [ev.encode(e) for e in wanted])
            return (await self.view(session)).snapshot()

    async def session_for(self, p: Principal, session_id: str) -> StudySession:
        """The session, if the principal may act on it."""
        return await self._session(p, session_id, act=True)

    async def end(self, p: Principal, session_id: str, reason: str = "learner") -> SessionState:
        session = await self._session(p, session_id, act=True)
        return await self.end_session(session, reason)

    async def end_session(self, session: StudySession, reason: str) -> SessionState:
        """Record the end of a session and release everything live that serves it."""
        async with self.ctx.lock(session.chain_id):
            if (await self.view(session)).state == ENDED:
                raise Conflict("the session has already ended", reason="session_ended")
            now = self.ctx.clock()
            ended = ev.SessionEnded(reason, now)
            await self.ctx.append(session.chain_id, [ev.encode(ended)])
            await self.ctx.db(self.registry.end_session, session.id, now)
            after = (await self.view(session)).snapshot()
        self.views.forget(session.chain_id)
        self.ctx.forget_lock(session.chain_id)
        if self.on_end is not None:
            await self.on_end(session)
        return after

    async def end_open_sessions(self, learner_id: int, reason: str) -> int:
        """End every open session of a learner (consent withdrawn, for example)."""
        ended = 0
        for session in await self.ctx.db(self.registry.list_sessions, None, learner_id, True):
            try:
                await self.end_session(session, reason)
                ended += 1
            except Conflict:
                continue
        return ended


def _frames_as_jpeg(frames: Sequence[bytes | Image]) -> list[bytes]:
    """Frames for a job: uploads as they came (the worker decodes them safely),
    decoded video frames re-encoded as JPEG (quality 90: a check must see the face)."""
    return [f if isinstance(f, bytes) else encode_jpeg(f, 90) for f in frames]
