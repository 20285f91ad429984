"""Supervised study sessions as the API offers them: sign-in, checks, the end, reading.

A session opens only when its sign-in check passes (the check pipeline records the
start and the check together; a refused sign-in records nothing). What happens to
a running session is recorded by `supervisor.online.recorder` through the state
machine; the ledger chain is its truth, and its state and credited time are
folded from it. One live session per learner is held by live supervision
(`supervisor.online.live`), which is told when a session ends.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from storage.types import LedgerEvent, Role, StudySession, VerifyReport
from supervisor.auth import (
    Principal,
    can_act_as_learner,
    can_act_for_learner_in_person,
    can_read_learner,
    require_role,
)
from supervisor.checks.dispatch import CheckRequest
from supervisor.checks.jobs import Frame, FrameStamp, SessionStart
from supervisor.context import Context
from supervisor.errors import Conflict, OtherInstitution, Unavailable
from supervisor.ledger import codec
from supervisor.ledger import events as ev
from supervisor.online.clients import Client, record_client
from supervisor.online.live import LiveManager
from supervisor.online.recorder import SessionRecorder
from supervisor.registry.status import ensure_active
from supervisor.rules import session_state as sm
from supervisor.rules.crediting import Credit, credit
from verification.types import CheckKind


class SessionService:
    def __init__(self, ctx: Context, recorder: SessionRecorder, live: LiveManager) -> None:
        self.ctx = ctx
        self.registry = ctx.storage.registry
        self.recorder = recorder
        self.live = live

    # -- reading -------------------------------------------------------------

    async def _session(self, p: Principal, session_id: str, act: bool) -> StudySession:
        session = await self.ctx.db(self.registry.get_session, session_id)
        if act:
            can_act_as_learner(p, session.learner_id)
        else:
            can_read_learner(p, session.learner_id, session.institution_id)
        return session

    async def chain(self, session: StudySession) -> list[LedgerEvent]:
        return await self.ctx.db(self.ctx.storage.ledger.read_chain, session.chain_id)

    async def state(self, p: Principal, session_id: str) -> sm.SessionState:
        session = await self._session(p, session_id, act=False)
        return sm.fold([e for _, e in codec.decode_all(await self.chain(session))])

    async def events(self, p: Principal, session_id: str) -> list[LedgerEvent]:
        return await self.chain(await self._session(p, session_id, act=False))

    async def integrity(self, p: Principal, session_id: str) -> VerifyReport:
        session = await self._session(p, session_id, act=False)
        return await self.ctx.db(self.ctx.storage.ledger.verify, [session.chain_id])

    async def credited(self, p: Principal, session_id: str) -> Credit:
        session = await self._session(p, session_id, act=False)
        return self.credit_of(await self.chain(session))

    def credit_of(self, stored: Sequence[LedgerEvent]) -> Credit:
        gap = timedelta(seconds=self.ctx.settings.policy.max_credited_gap_s)
        return credit([e for _, e in codec.decode_all(stored)], gap)

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

    def _uploaded(self, frames: Sequence[bytes]) -> tuple[Frame, ...]:
        stamp = FrameStamp(self.ctx.clock())
        return tuple(Frame(f, stamp) for f in frames)

    async def start(
        self,
        p: Principal,
        course_id: int,
        frames: Sequence[bytes],
        mode: str = "upload",
        client: Client | None = None,
    ) -> tuple[sm.SessionState, ev.CheckRecorded]:
        """Open a session after its sign-in check passes; a refusal changes nothing.
        `client` (where the sign-in came from) is kept with the session and watched for
        a device or an address shared by many learners (`supervisor.online.clients`)."""
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
                # An open session still live elsewhere keeps the new one out; one whose
                # page is gone (its live lock expired) is ended once this one opens.
                await self.live.refuse_if_live(learner.id, session.id)
            session_id = str(uuid.uuid4())
            chain_id = ev.session_chain(session_id)
            spacing = self.ctx.settings.policy.signin_frame_spacing_s
            recorded = await self.recorder.checks.run(
                CheckRequest(
                    session_id=session_id,
                    chain_id=chain_id,
                    learner_id=learner.id,
                    kind=CheckKind.identity,
                    purpose="start",
                    frames=self._uploaded(frames),
                    frame_times=tuple(i * spacing for i in range(len(frames))),
                    start=SessionStart(course.id, course.institution_id, mode),
                )
            )
            if not isinstance(recorded, ev.CheckRecorded):
                raise Unavailable("the sign-in could not be verified now", reason="check_deferred")
            # Only now, with the new session open, are abandoned ones ended, at the moment
            # the new one began: a refused sign-in leaves the ledger unchanged.
            for session in open_now:
                await self._end(session, "abandoned", at=recorded.at)
            created = await self.ctx.db(
                self.registry.create_session,
                session_id,
                chain_id,
                learner.id,
                course.id,
                course.institution_id,
                recorded.at,
            )
            await self.live.hold(created)
        if client is not None:
            await self.ctx.db(
                record_client, self.ctx.storage, self.ctx.settings, created, client, recorded.at
            )
        return await self.recorder.state(created), recorded

    async def session_for(self, p: Principal, session_id: str) -> StudySession:
        """The session, if the principal may act on it."""
        return await self._session(p, session_id, act=True)

    async def end(self, p: Principal, session_id: str) -> sm.SessionState:
        """The learner ends their session; bureau staff may end one for them."""
        session = await self.ctx.db(self.registry.get_session, session_id)
        can_act_for_learner_in_person(p, session.learner_id)
        reason = "learner" if p.role is Role.learner else "staff"
        return await self._end(session, reason)

    async def _end(
        self, session: StudySession, reason: str, at: datetime | None = None
    ) -> sm.SessionState:
        after = await self.recorder.end(session, reason, at)
        await self.live.ended(session, reason)
        return after

    async def end_open_sessions(self, learner_id: int, reason: str) -> int:
        """End every open session of a learner (consent withdrawn, for example)."""
        ended = 0
        for session in await self.ctx.db(self.registry.list_sessions, None, learner_id, True):
            try:
                await self._end(session, reason)
                ended += 1
            except Conflict:
                continue
        return ended
