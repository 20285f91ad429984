"""The supervision of one class by this process: a `ClassRun`.

A run:

- opens every camera of the class (`capture.protocols.CameraFeed`, one reader
  thread each) and records every change of a camera's state;
- holds roll calls (`classroom.rollcall`) at the start, at random moments drawn on
  the server (mean interval from the settings, denser in assessments), again as
  soon as a camera that was out comes back, and at the end (a stop, or the end of
  the schedule). The moments are never shown to operators: status reports the
  last roll call, not the next;
- holds a lease on the run in the database, so that a run whose process died is
  resumed by another (or by this one when it restarts); the gap is an outage in
  every learner's chain, so no unobserved time is credited.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

from capture.protocols import CameraFeed
from capture.types import SourceState, SourceStatus
from storage.exceptions import InvalidState, StorageError
from storage.types import CameraSource, ClassMode, SupervisionRun, TrainingClass
from supervisor.classroom.cameras import camera_policy, open_camera
from supervisor.classroom.chains import ClassChains
from supervisor.classroom.rollcall import RollCall, assessment_flags, observe
from supervisor.classroom.timeline import paused_at_end
from supervisor.context import Context
from supervisor.ledger import classroom as ce
from supervisor.ledger import codec
from supervisor.rules.schedule import draw_interval

log = logging.getLogger(__name__)

# How long shutdown waits for a roll call in progress before cancelling it.
INTERRUPT_WAIT_S: Final = 15.0
# A camera that comes back is given this long to settle before the resume roll call.
RESUME_SETTLE_S: Final = 0.3


@dataclass
class ClassRun:
    """The supervision of one class by this process."""

    ctx: Context
    rng: random.Random  # draws the roll-call moments
    owner: str  # this process, as the holder of the run's lease
    cls: TrainingClass
    run: SupervisionRun
    cameras: list[CameraSource]
    roster: tuple[int, ...]
    resumed: bool
    sources: dict[int, CameraFeed] = field(default_factory=dict)
    paused: dict[int, bool] = field(default_factory=dict)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    stop_reason: str | None = None
    stop_by: str | None = None
    interrupting: bool = False
    lost: bool = False  # the lease went to another process, or the run was closed elsewhere
    resume_on: set[int] = field(default_factory=set)  # cameras out at the last roll call
    flagged: set[str] = field(default_factory=set)
    task: asyncio.Task[None] | None = None
    helpers: list[asyncio.Task[None]] = field(default_factory=list)
    statuses: asyncio.Queue[SourceStatus] = field(default_factory=asyncio.Queue)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    chains: ClassChains = field(init=False)

    def __post_init__(self) -> None:
        self.chains = ClassChains(self.ctx, self.cls.id, self.run.id)

    def request_stop(self, reason: str, by: str) -> None:
        if self.stop_reason is None:
            self.stop_reason, self.stop_by = reason, by
        self.wake.set()

    # -- the loop ------------------------------------------------------------------

    async def main(self) -> None:
        try:
            await self._open()
            if self.ctx.clock() >= self.cls.ends_at:
                # Resumed after the schedule ended: nothing left to observe.
                self.request_stop("schedule_end", "schedule")
                await self._finish()
                return
            await self._roll_call("resume" if self.resumed else "start", None)
            while not self._stopping():
                now = self.ctx.clock()
                if now >= self.cls.ends_at:
                    self.request_stop("schedule_end", "schedule")
                    break
                due = now + timedelta(seconds=self._interval())
                final = due >= self.cls.ends_at
                if final:
                    due = self.cls.ends_at
                woke = await self._wait(due)
                if woke == "stop":
                    break
                if woke == "cameras":
                    await asyncio.sleep(RESUME_SETTLE_S)
                    await self._roll_call("resume", None)
                    continue
                if final:
                    self.request_stop("schedule_end", "schedule")
                    break
                await self._roll_call("random", due)
            if self.interrupting or self.lost:
                return
            await self._roll_call("end", None)
            await self._finish()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("supervision of class %s failed", self.cls.id)
            if not (self.interrupting or self.lost):
                with contextlib.suppress(Exception):
                    self.request_stop("supervisor_error", "supervisor")
                    await self._finish()
        finally:
            self.done.set()

    def _stopping(self) -> bool:
        return self.stop_reason is not None or self.interrupting or self.lost

    def _interval(self) -> float:
        s = self.ctx.settings.classroom
        if self.cls.mode is ClassMode.assessment:
            lo, mean, hi = (
                s.assessment_interval_min_s,
                s.assessment_interval_mean_s,
                s.assessment_interval_max_s,
            )
        else:
            lo, mean, hi = s.interval_min_s, s.interval_mean_s, s.interval_max_s
        return draw_interval(self.rng, lo, mean, hi)

    async def _wait(self, due: datetime) -> str:
        """Until `due`; earlier on a stop, or when a camera comes back after an outage."""
        while True:
            if self._stopping():
                return "stop"
            if any(
                self.sources[c].status().state is SourceState.live
                for c in self.resume_on
                if c in self.sources
            ):
                return "cameras"
            remaining = (due - self.ctx.clock()).total_seconds()
            if remaining <= 0:
                return "due"
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), remaining)

    # -- opening and closing -------------------------------------------------------

    async def _open(self) -> None:
        s = self.ctx.settings.classroom
        policy = camera_policy(self.ctx.settings)
        for camera in self.cameras:
            source = open_camera(
                f"class-{self.cls.id}-camera-{camera.id}",
                camera.url,
                s,
                self.ctx.clock,
                self.statuses.put_nowait,
                policy,
            )
            self.sources[camera.id] = source
        self.helpers.append(asyncio.ensure_future(self._record_statuses()))
        self.helpers.append(asyncio.ensure_future(self._keep_lease()))
        for source in self.sources.values():
            await source.start()
        chains = await asyncio.gather(
            *(
                self.ctx.db(
                    self.ctx.storage.ledger.read_chain, ce.learner_class_chain(self.cls.id, lid)
                )
                for lid in self.roster
            )
        )
        for lid, stored in zip(self.roster, chains, strict=True):
            self.paused[lid] = paused_at_end([e for _, e in codec.decode_all(stored)])
        if self.resumed:
            # Nobody observed the class between the last process and this one: stop
            # every learner's clock so that the gap is never credited.
            now = self.ctx.clock()
            await self.chains.append_learners(
                {
                    lid: [self.chains.outage(now, "supervision_resumed", None, ())]
                    for lid in self.roster
                    if not self.paused[lid]
                }
            )
            for lid in self.roster:
                self.paused[lid] = True

    async def _finish(self) -> None:
        now = self.ctx.clock()
        reason = self.stop_reason or "operator"
        by = self.stop_by or "operator"
        await self.chains.append_learners(
            {lid: [ce.ClassLeft(reason, now, self.cls.id, self.run.id)] for lid in self.roster}
        )
        await self.chains.append_class(
            ce.ClassSupervisionStopped(self.cls.id, self.run.id, reason, by, now)
        )
        with contextlib.suppress(InvalidState):
            await self.ctx.db(self.ctx.storage.classroom.stop_run, self.run.id, now, by, reason)

    async def interrupt(self, reason: str) -> None:
        """Stop this process's supervision without ending the run (shutdown): the run
        stays open, every learner's clock stops, and the lease is released."""
        self.interrupting = True
        self.wake.set()
        if self.task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self.done.wait()), INTERRUPT_WAIT_S)
            except TimeoutError:
                self.task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self.task
        if not self.lost:
            now = self.ctx.clock()
            with contextlib.suppress(StorageError):
                await self.chains.append_learners(
                    {
                        lid: [self.chains.outage(now, reason, None, ())]
                        for lid in self.roster
                        if not self.paused.get(lid, False)
                    }
                )
                await self.chains.append_class(
                    ce.ClassSupervisionInterrupted(self.cls.id, self.run.id, reason, now)
                )
                await self.ctx.db(
                    self.ctx.storage.classroom.release_lease, self.run.id, self.owner, now
                )
        await self.close()

    async def close(self) -> None:
        for task in self.helpers:
            task.cancel()
        for task in self.helpers:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.helpers.clear()
        await asyncio.gather(*(s.stop() for s in self.sources.values()), return_exceptions=True)

    async def _keep_lease(self) -> None:
        s = self.ctx.settings.classroom
        store = self.ctx.storage.classroom
        while True:
            await asyncio.sleep(s.lease_s / 3)
            until = self.ctx.clock() + timedelta(seconds=s.lease_s)
            try:
                run = await self.ctx.db(store.renew_lease, self.run.id, self.owner, until)
            except StorageError as exc:
                log.warning("class %s: lease not renewed: %s", self.cls.id, exc)
                continue
            if run is None:
                # Stopped elsewhere, or taken over after this process stalled.
                log.warning("class %s: lease of run %s lost", self.cls.id, self.run.id)
                self.lost = True
                self.wake.set()
                return
            if run.stop_requested_at is not None:
                self.request_stop("operator", run.stopped_by or "operator")

    async def _record_statuses(self) -> None:
        by_source = {src.source_id: cid for cid, src in self.sources.items()}
        while True:
            status = await self.statuses.get()
            camera_id = by_source.get(status.source_id)
            if camera_id is None or status.state is SourceState.stopped:
                continue
            if status.state is SourceState.live and camera_id in self.resume_on:
                self.wake.set()
            try:
                await self.chains.append_class(
                    ce.CameraStatusChanged(
                        self.cls.id,
                        self.run.id,
                        camera_id,
                        status.state.value,
                        status.last_error,
                        status.since,
                    )
                )
            except StorageError as exc:
                log.warning("class %s: camera status not recorded: %s", self.cls.id, exc)

    # -- roll call -----------------------------------------------------------------

    async def _roll_call(self, purpose: str, scheduled_at: datetime | None) -> None:
        call = RollCall(self.chains, self.roster, uuid.uuid4().hex, purpose, scheduled_at)
        obs = await observe(self.ctx, self.cls, self.roster, self.sources)
        findings = call.findings(obs)
        await self.chains.append_learners(call.learner_events(obs, findings, self.paused))
        summary = call.summary(obs, findings)
        stored = await self.chains.append_class(summary)
        # A camera that was out triggers a roll call as soon as it is back; one the
        # pool had no room for waits for the next random moment (no retry storm).
        self.resume_on = set(obs.down)
        if self.cls.mode is ClassMode.assessment and obs.outcomes:
            await assessment_flags(
                self.ctx,
                self.chains,
                self.cls.institution_id,
                self.roster,
                summary,
                stored,
                not obs.unseen_cameras,
                self.flagged,
            )
