"""The main process's writer of session chains: every change goes through the state machine.

A check is recorded by a worker (`supervisor.checks`); what the service itself
decides about a session (a missed check, a pause, the end, a staff attestation)
is recorded here, each step checked by `supervisor.rules.session_state` under a
per-session lock. The live service, the still-frame path and the API all use one
recorder, and read a session's state and credit from its views.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from storage.types import LedgerEvent, StudySession
from supervisor.checks.dispatch import CheckDispatcher, CheckRequest
from supervisor.context import Context
from supervisor.errors import Conflict
from supervisor.ledger import codec
from supervisor.ledger import events as ev
from supervisor.rules import session_state as sm


def ended_conflict() -> Conflict:
    return Conflict("the session has already ended", reason="session_ended")


class SessionRecorder:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.views = sm.SessionViews(
            ctx.storage.ledger.read_chain,
            timedelta(seconds=ctx.settings.policy.max_credited_gap_s),
        )
        self.checks = CheckDispatcher(
            ctx.settings, ctx.storage, ctx.queue, ctx.db, ctx.metrics, ctx.clock
        )

    async def view(self, session: StudySession) -> sm.SessionView:
        """The session's state and credit, up to date with its chain (an incremental read)."""
        return await self.views.refresh_async(session.chain_id, self.ctx.db)

    async def state(self, session: StudySession) -> sm.SessionState:
        return (await self.view(session)).snapshot()

    async def _append(self, session: StudySession, events: list[ev.Event]) -> list[LedgerEvent]:
        return await self.ctx.append(session.chain_id, [codec.encode(e) for e in events])

    async def check(
        self, session: StudySession, request: CheckRequest
    ) -> tuple[sm.SessionState, ev.CheckRecorded | ev.CheckDeferred]:
        """Have a worker verify and record a check of a running session; its record
        (or its deferral) and the session's state after it."""
        if (await self.view(session)).state is sm.State.ended:
            raise ended_conflict()
        event = await self.checks.run(request)
        return await self.state(session), event

    async def missed(self, session: StudySession, missed: ev.CheckMissed) -> sm.SessionState:
        """A check the server asked for that got no usable frames."""
        async with self.ctx.lock(session.chain_id):
            try:
                event = sm.record_missed((await self.view(session)).state, missed)
            except sm.IllegalTransition:
                raise ended_conflict() from None
            await self._append(session, [event])
            return await self.state(session)

    async def mode(self, session: StudySession, mode: str) -> sm.SessionState:
        """The page is supervised over `mode`: recorded when it is not the session's
        mode already (the one named at sign-in, or the last change)."""
        async with self.ctx.lock(session.chain_id):
            view = await self.view(session)
            current = view.snapshot().mode
            try:
                event = sm.change_mode(view.state, current, mode, self.ctx.clock())
            except sm.IllegalTransition:
                raise ended_conflict() from None
            if event is not None:
                await self._append(session, [event])
            return await self.state(session)

    async def pause(self, session: StudySession, reason: str) -> sm.SessionState:
        """Stop the clock (nothing changes for a session already paused)."""
        async with self.ctx.lock(session.chain_id):
            try:
                event = sm.pause((await self.view(session)).state, reason, self.ctx.clock())
            except sm.IllegalTransition:
                raise ended_conflict() from None
            if event is not None:
                await self._append(session, [event])
            return await self.state(session)

    async def attest(self, session: StudySession, check: ev.CheckRecorded) -> sm.SessionState:
        """A check made by a person (the non-face path), recorded as it is."""
        async with self.ctx.lock(session.chain_id):
            state = (await self.view(session)).state
            try:
                change = sm.after_check(state, check)
            except sm.IllegalTransition:
                raise ended_conflict() from None
            await self._append(session, [check] + ([change] if change is not None else []))
            return await self.state(session)

    async def end(
        self, session: StudySession, reason: str, at: datetime | None = None
    ) -> sm.SessionState:
        """Record the end of a session (at `at`, default now) and close its registry row.
        Whoever serves the session live is told by the caller."""
        async with self.ctx.lock(session.chain_id):
            now = at or self.ctx.clock()
            try:
                ended = sm.end((await self.view(session)).state, reason, now)
            except sm.IllegalTransition:
                raise ended_conflict() from None
            await self._append(session, [ended])
            await self.ctx.db(self.ctx.storage.registry.end_session, session.id, now)
            after = await self.state(session)
        self.views.forget(session.chain_id)
        self.ctx.forget_lock(session.chain_id)
        return after
