"""The service's side of the check stream: submit jobs, wait for results, see the lag."""

from __future__ import annotations

import asyncio
import contextlib
import time

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError

from config import WorkerSettings
from supervisor.checks.jobs import CheckJob, CheckResult, dead_letter_stream, job_fields, result_key
from supervisor.metrics import QueueStats

# How long a check waits for an unreachable Redis before it is deferred, and how
# often it tries meanwhile.
RIDE_OUT_S = 3.0
RIDE_OUT_STEP_S = 0.2


class QueueFull(Exception):
    """The backlog is at `workers.max_backlog`: the check is deferred, not queued."""


class QueueUnavailable(Exception):
    """Redis could not take the job."""


class CheckQueue:
    def __init__(self, client: aioredis.Redis, settings: WorkerSettings) -> None:
        self.client = client
        self.settings = settings

    async def ensure_group(self) -> None:
        try:
            await self.client.xgroup_create(
                self.settings.stream, self.settings.group, id="0", mkstream=True
            )
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def submit(self, job: CheckJob) -> None:
        """Queue a job; `QueueFull` past the backlog, `QueueUnavailable` if Redis fails.

        A Redis that cannot be reached is waited for up to `RIDE_OUT_S` (an embedded
        one is back well within that after a crash), so a short outage costs the
        check a little time instead of a deferral."""
        deadline = time.monotonic() + RIDE_OUT_S
        while True:
            try:
                await self._add(job)
                break
            except RedisConnectionError as exc:
                if time.monotonic() >= deadline:
                    raise QueueUnavailable(str(exc)) from exc
                await asyncio.sleep(RIDE_OUT_STEP_S)
            except RedisError as exc:
                raise QueueUnavailable(str(exc)) from exc
        # A Redis that restarted empty has lost the group: recreate it for the workers.
        with contextlib.suppress(RedisError):
            await self.ensure_group()

    async def _add(self, job: CheckJob) -> None:
        stream = self.settings.stream
        if await self.client.xlen(stream) >= self.settings.max_backlog:
            raise QueueFull(f"{self.settings.max_backlog} checks are already waiting")
        await self.client.xadd(
            stream,
            job_fields(job),  # type: ignore[arg-type]
            maxlen=self.settings.stream_maxlen,
            approximate=True,
        )

    async def wait_result(
        self, check_id: str, timeout: float, job: CheckJob | None = None
    ) -> CheckResult | None:
        """The job's result, or None if none came within `timeout` seconds.

        If Redis failed meanwhile (a restart loses the stream and the results list
        since its last save), `job` is queued again once Redis answers: the worker
        records a check once under its id, so a job that did run answers with its
        record."""
        key = result_key(self.settings.stream, check_id)
        deadline = time.monotonic() + timeout
        lost = False
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            try:
                if lost and job is not None:
                    await self._add(job)
                    lost = False
                # Short slices: BLPOP takes whole seconds on old servers, and redis-py's
                # default socket timeout (5 s) must not cut a blocking call short.
                got = await self.client.blpop([key], timeout=max(1, min(int(remaining), 2)))
            except QueueFull:
                lost = False  # the backlog will reach it, or the wait times out
                continue
            except RedisError:
                lost = True
                await asyncio.sleep(min(RIDE_OUT_STEP_S, max(remaining, 0)))  # restarting
                continue
            if got:
                return CheckResult.from_json(got[1])

    async def stats(self) -> QueueStats:
        stream = self.settings.stream
        length = await self.client.xlen(stream)
        pending = 0
        with contextlib.suppress(ResponseError):
            summary = await self.client.xpending(stream, self.settings.group)
            pending = int(summary.get("pending", 0)) if isinstance(summary, dict) else 0
        oldest = 0.0
        first = await self.client.xrange(stream, count=1)
        if first:
            raw = first[0][0]
            entry_id = raw.decode() if isinstance(raw, bytes) else str(raw)
            ms = int(entry_id.split("-")[0])
            oldest = max(time.time() - ms / 1000, 0.0)
        workers = 0
        async for _ in self.client.scan_iter(match=f"{stream}:worker:*", count=100):
            workers += 1
        dead = await self.client.xlen(dead_letter_stream(stream))
        return QueueStats(int(length), pending, round(oldest, 3), workers, int(dead))
