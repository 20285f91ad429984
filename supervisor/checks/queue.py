"""The service's side of the check stream: submit jobs, wait for results, see the lag."""

from __future__ import annotations

import asyncio
import contextlib
import time

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from config import WorkerSettings
from supervisor.checks.jobs import CheckJob, CheckResult, dead_letter_stream, job_fields, result_key
from supervisor.metrics import QueueStats


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
        """Queue a job; `QueueFull` past the backlog, `QueueUnavailable` if Redis fails."""
        stream = self.settings.stream
        try:
            if await self.client.xlen(stream) >= self.settings.max_backlog:
                raise QueueFull(f"{self.settings.max_backlog} checks are already waiting")
            await self.client.xadd(
                stream,
                job_fields(job),  # type: ignore[arg-type]
                maxlen=self.settings.stream_maxlen,
                approximate=True,
            )
        except RedisError as exc:
            raise QueueUnavailable(str(exc)) from exc
        # A Redis that restarted empty has lost the group: recreate it for the workers.
        with contextlib.suppress(RedisError):
            await self.ensure_group()

    async def wait_result(self, check_id: str, timeout: float) -> CheckResult | None:
        """The job's result, or None if none came within `timeout` seconds."""
        key = result_key(self.settings.stream, check_id)
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            try:
                # Short slices: BLPOP takes whole seconds on old servers, and redis-py's
                # default socket timeout (5 s) must not cut a blocking call short.
                got = await self.client.blpop([key], timeout=max(1, min(int(remaining), 2)))
            except RedisError:
                await asyncio.sleep(min(1.0, max(remaining, 0)))  # Redis restarting
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
