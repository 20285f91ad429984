"""Keeps the chain summaries of `supervisor.subsidy.scan` up to date in the background.

Every `subsidy.summary_refresh_s` one process of the service (the holder of a
Redis lease) folds the chains that grew since the last refresh and stores their
summaries, so that a report or a claim list asked for at any moment has only the
last minutes' chains left to fold. Summaries are a cache: a refresh that fails or
is skipped makes the next scan slower, never different.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time

import redis.asyncio as aioredis

from supervisor.context import Context
from supervisor.runtime.tasks import cancel_and_wait
from supervisor.subsidy.scan import refresh_summaries

log = logging.getLogger(__name__)

LEASE_KEY = "sv:summaries:refresh"


class SummaryRefresher:
    def __init__(self, ctx: Context, client: aioredis.Redis) -> None:
        self.ctx = ctx
        self.client = client
        self._task: asyncio.Task[None] | None = None
        self._me = f"{os.getpid()}:{id(self)}"

    async def start(self) -> None:
        if self.ctx.settings.subsidy.summary_refresh_s > 0:
            self._task = asyncio.create_task(self._run(), name="summary-refresh")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _lease(self, seconds: float) -> bool:
        """This process refreshes this period if it takes the lease (others skip it)."""
        try:
            return bool(await self.client.set(LEASE_KEY, self._me, nx=True, px=int(seconds * 1000)))
        except aioredis.RedisError:
            return True  # no Redis: each process refreshes; the stores' upserts agree

    async def _run(self) -> None:
        interval = self.ctx.settings.subsidy.summary_refresh_s
        while True:
            await asyncio.sleep(interval)
            if not await self._lease(interval * 0.9):
                continue
            try:
                started = time.monotonic()
                done = await self.ctx.db(
                    refresh_summaries, self.ctx.storage, self.ctx.settings, self.ctx.metrics
                )
                if done.refolded:
                    log.info(
                        "chain summaries: %d of %d chains refolded (%d events) in %.1f s",
                        done.refolded,
                        done.chains,
                        done.events,
                        time.monotonic() - started,
                    )
            except Exception:  # a cache: the next scan folds what this one did not
                log.exception("refreshing the chain summaries failed")
