"""The classes this process supervises: one `ClassRun` task each, resumed when their
process is gone (by the lease on the run), stopped here or through the holder."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import uuid
from datetime import timedelta
from typing import Final

from storage.exceptions import StorageError
from storage.types import SupervisionRun, TrainingClass
from supervisor.classroom.run import ClassRun
from supervisor.classroom.timeline import CameraView, SupervisionStatus
from supervisor.context import Context
from supervisor.ledger import classroom as ce
from supervisor.ledger import codec
from supervisor.runtime.tasks import cancel_and_wait

log = logging.getLogger(__name__)

# How long a stop waits for the run's end roll call before answering.
STOP_WAIT_S: Final = 120.0


class ClassSupervisor:
    """The classes this process supervises. `start()`/`stop()` from the app lifespan."""

    def __init__(self, ctx: Context, rng: random.Random | None = None) -> None:
        self.ctx = ctx
        # Roll-call moments must not be predictable by the institution: system randomness.
        self.rng = rng or secrets.SystemRandom()
        self.owner = f"sv-{uuid.uuid4().hex[:16]}"
        self.runs: dict[int, ClassRun] = {}
        self._claimer: asyncio.Task[None] | None = None
        self._stopping = False

    async def start(self) -> None:
        """Resume runs whose process is gone, now and every lease period."""
        await self._claim()
        self._claimer = asyncio.ensure_future(self._claim_forever())

    async def stop(self) -> None:
        """Interrupt every run of this process (they stay open, to be resumed)."""
        self._stopping = True
        await cancel_and_wait(self._claimer)
        runs = list(self.runs.values())
        await asyncio.gather(
            *(r.interrupt("service_stopped") for r in runs), return_exceptions=True
        )
        self.runs.clear()

    def local(self, class_id: int) -> ClassRun | None:
        return self.runs.get(class_id)

    async def begin(self, cls: TrainingClass, by: str) -> SupervisionRun:
        """Open a run of the class held by this process and start supervising it."""
        now = self.ctx.clock()
        lease = now + timedelta(seconds=self.ctx.settings.classroom.lease_s)
        store = self.ctx.storage.classroom
        run = await self.ctx.db(store.start_run, cls.id, now, by, self.owner, lease)
        await self._launch(cls, run, resumed=False)
        return run

    async def _launch(self, cls: TrainingClass, run: SupervisionRun, resumed: bool) -> None:
        store = self.ctx.storage.classroom
        cameras = await self.ctx.db(store.cameras, cls.id)
        roster = tuple(sorted(e.learner_id for e in await self.ctx.db(store.roster, cls.id)))
        filing = await self.ctx.db(store.latest_filing, cls.id)
        class_run = ClassRun(self.ctx, self.rng, self.owner, cls, run, cameras, roster, resumed)
        started = ce.ClassSupervisionStarted(
            cls.id,
            run.id,
            cls.mode.value,
            roster,
            tuple(c.id for c in cameras),
            filing.sha256 if filing else "",
            run.started_by,
            resumed,
            self.ctx.clock(),
        )
        await class_run.chains.append_class(started)
        self.runs[cls.id] = class_run
        class_run.task = asyncio.ensure_future(self._supervise(class_run))

    async def _supervise(self, run: ClassRun) -> None:
        try:
            await run.main()
        finally:
            if not run.interrupting:
                await run.close()
                if self.runs.get(run.cls.id) is run:
                    del self.runs[run.cls.id]

    async def end(self, run: SupervisionRun, by: str) -> None:
        """Stop a run: here if this process holds it, else by request to its holder,
        or directly when nobody holds it any more."""
        local = self.runs.get(run.class_id)
        if local is not None and local.run.id == run.id:
            local.request_stop("operator", by)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(local.done.wait()), STOP_WAIT_S)
            return
        store = self.ctx.storage.classroom
        now = self.ctx.clock()
        if run.lease_until is not None and run.lease_until > now:
            await self.ctx.db(store.request_stop, run.id, now, by)
            return
        # Nobody holds the run: close it here, with the same events a holder writes.
        cls = await self.ctx.db(store.get_class, run.class_id)
        roster = tuple(sorted(e.learner_id for e in await self.ctx.db(store.roster, cls.id)))
        orphan = ClassRun(self.ctx, self.rng, self.owner, cls, run, [], roster, resumed=False)
        orphan.request_stop("operator", by)
        await orphan._finish()

    async def status(self, cls: TrainingClass) -> SupervisionStatus:
        store = self.ctx.storage.classroom
        runs = await self.ctx.db(store.list_runs, cls.id)
        run = runs[-1] if runs else None
        roster = tuple(sorted(e.learner_id for e in await self.ctx.db(store.roster, cls.id)))
        cameras = await self.ctx.db(store.cameras, cls.id)
        stored = await self.ctx.db(self.ctx.storage.ledger.read_chain, ce.class_chain(cls.id))
        last: ce.ClassRollCall | None = None
        count = 0
        camera_events: dict[int, ce.CameraStatusChanged] = {}
        for _, e in codec.decode_all(stored):
            if run is None:
                break
            if isinstance(e, ce.ClassRollCall) and e.run_id == run.id:
                last = e
                count += 1
            elif isinstance(e, ce.CameraStatusChanged) and e.run_id == run.id:
                camera_events[e.camera_id] = e
        local = self.runs.get(cls.id)
        here = local is not None and run is not None and local.run.id == run.id
        views: list[CameraView] = []
        for camera in cameras:
            source = local.sources.get(camera.id) if here and local is not None else None
            if source is not None:
                st = source.status()
                views.append(CameraView(camera, st.state.value, st.since, st.last_error, st))
            elif run is not None and run.open and camera.id in camera_events:
                e = camera_events[camera.id]
                views.append(CameraView(camera, e.state, e.at, e.error, None))
            else:
                views.append(CameraView(camera, "idle", None, None, None))
        return SupervisionStatus(cls, run, here, roster, last, count, tuple(views))

    async def _claim(self) -> None:
        store = self.ctx.storage.classroom
        now = self.ctx.clock()
        lease = now + timedelta(seconds=self.ctx.settings.classroom.lease_s)
        try:
            claimed = await self.ctx.db(store.claim_lapsed_runs, self.owner, now, lease)
        except StorageError as exc:
            log.warning("cannot look for classes to resume: %s", exc)
            return
        for run in claimed:
            if self._stopping or run.class_id in self.runs:
                continue
            cls = await self.ctx.db(store.get_class, run.class_id)
            log.info("resuming supervision of class %s (run %s)", cls.id, run.id)
            await self._launch(cls, run, resumed=True)

    async def _claim_forever(self) -> None:
        while True:
            await asyncio.sleep(self.ctx.settings.classroom.lease_s)
            try:
                await self._claim()
            except Exception:  # never let a transient failure end the claimer
                log.exception("resuming lapsed classes failed")
