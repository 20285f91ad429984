"""The long-lived parts of one service process, built in the app lifespan."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from config import Settings
from storage import Storage
from storage.types import LedgerEvent, NewEvent
from supervisor.checks.pool import VerificationPool
from supervisor.checks.queue import CheckQueue
from supervisor.metrics import Metrics

T = TypeVar("T")


def utc_now() -> datetime:
    return datetime.now(UTC)


# Blocking storage calls run in their own thread pool. The ledger's group commit
# only pays off when many appends wait at once: with asyncio's default executor
# (a handful of threads) appends on PostgreSQL stall near 2,000/s; with 64
# threads both backends pass 8,000/s (BENCHMARKS.md, ledger).
STORAGE_THREADS = 64


@dataclass
class Context:
    """What every service needs. Storage calls are blocking and run in threads."""

    settings: Settings
    storage: Storage
    pool: VerificationPool
    queue: CheckQueue
    metrics: Metrics = field(default_factory=Metrics)
    clock: Callable[[], datetime] = utc_now
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    _threads: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(STORAGE_THREADS, thread_name_prefix="storage")
    )

    async def db(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking storage call in a storage thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._threads, functools.partial(fn, *args, **kwargs))

    async def append(self, chain_id: str, events: Sequence[NewEvent]) -> list[LedgerEvent]:
        return await self.db(self.storage.ledger.append, chain_id, events)

    def close(self) -> None:
        self._threads.shutdown(wait=True, cancel_futures=False)

    def lock(self, key: str) -> asyncio.Lock:
        """A per-key lock serialising state decisions of one session in this process."""
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    def forget_lock(self, key: str) -> None:
        self._locks.pop(key, None)

    def retain_until(self) -> datetime:
        return self.clock() + timedelta(days=self.settings.evidence.retention_days)
