"""Rate limits on failed token use (per client address) and on uploads (per token),
counted in Redis so every API process shares them.

Fixed windows: a counter per key expires `window` seconds after its first hit.
A refused request gets 429 with `Retry-After` (the counter's remaining life).

Every hit is also counted in this process (`LocalWindows`), and a limit is decided
on the larger of the two counts. So the limits hold while Redis cannot be reached
(each process then enforces them on what it saw itself), and a Redis that restarted
empty does not wipe out the failures this process already saw.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from config.web import WebSettings
from supervisor.errors import ServiceError

log = logging.getLogger(__name__)


class TooManyRequests(ServiceError):
    status = 429
    reason = "rate_limited"

    def __init__(self, message: str, retry_after: int, reason: str = "rate_limited") -> None:
        super().__init__(message, reason=reason, retry_after_s=retry_after)
        self.retry_after = retry_after


class LocalWindows:
    """Fixed-window counters of this process (monotonic clock), bounded in size."""

    MAX_KEYS = 100_000

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._windows: dict[str, tuple[int, float]] = {}  # key -> (hits, ends at)

    def count(self, key: str, window: int) -> tuple[int, int]:
        """Count one hit; (hits so far, whole seconds left in the window)."""
        now = self.clock()
        hits, ends = self._windows.get(key, (0, 0.0))
        if ends <= now:
            hits, ends = 0, now + window
            if len(self._windows) >= self.MAX_KEYS:
                self._prune(now)
        self._windows[key] = (hits + 1, ends)
        return hits + 1, max(int(ends - now + 0.999), 1)

    def peek(self, key: str) -> tuple[int, int]:
        now = self.clock()
        hits, ends = self._windows.get(key, (0, 0.0))
        if ends <= now:
            return 0, 1
        return hits, max(int(ends - now + 0.999), 1)

    def forget(self, prefix: str) -> int:
        """Drop the counts of keys that start with `prefix` (an address unblocked, as
        deleting its shared key does); returns how many."""
        gone = [k for k in self._windows if k.startswith(prefix)]
        for k in gone:
            del self._windows[k]
        return len(gone)

    def _prune(self, now: float) -> None:
        self._windows = {k: v for k, v in self._windows.items() if v[1] > now}
        if len(self._windows) >= self.MAX_KEYS:  # still full: forget the oldest half
            keep = sorted(self._windows.items(), key=lambda kv: kv[1][1])
            self._windows = dict(keep[len(keep) // 2 :])


def _larger(shared: tuple[int, int] | None, local: tuple[int, int]) -> tuple[int, int]:
    if shared is None or local[0] > shared[0]:
        return local
    return shared


@dataclass
class RateLimiter:
    client: aioredis.Redis
    settings: WebSettings
    local: LocalWindows = field(default_factory=LocalWindows)

    def _key(self, kind: str, who: str) -> str:
        return f"{self.settings.redis_prefix}{kind}:{who}"

    async def _count(self, key: str, window: int) -> tuple[int, int]:
        """(hits so far, seconds left in the window): the larger of the shared count
        (Redis) and this process's own."""
        local = self.local.count(key, window)
        try:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.incr(key)
                pipe.ttl(key)
                hits, ttl = await pipe.execute()
            if ttl < 0:  # first hit of a window (or a key that lost its expiry)
                await self.client.expire(key, window)
                ttl = window
        except RedisError as exc:
            log.warning("rate limit on this process's counts only, Redis unavailable: %s", exc)
            return local
        return _larger((int(hits), int(ttl)), local)

    async def _peek(self, key: str) -> tuple[int, int]:
        local = self.local.peek(key)
        try:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.get(key)
                pipe.ttl(key)
                hits, ttl = await pipe.execute()
        except RedisError as exc:
            log.warning("rate limit on this process's counts only, Redis unavailable: %s", exc)
            return local
        return _larger((int(hits or 0), max(int(ttl), 1)), local)

    async def check_auth_allowed(self, client: str) -> None:
        """Refuse every bearer token from a client address that has failed too often."""
        if not self.settings.rate_limits:
            return
        seen = await self._peek(self._key("auth", client))
        if seen[0] >= self.settings.auth_failures_per_window:
            raise TooManyRequests(
                "too many failed token attempts from this address; try again later",
                seen[1],
                reason="too_many_auth_failures",
            )

    async def auth_failed(self, client: str) -> None:
        if self.settings.rate_limits:
            await self._count(self._key("auth", client), self.settings.auth_failure_window_s)

    async def upload(self, token_id: int) -> None:
        """Count one upload request of a token; refuse it past the limit."""
        if not self.settings.rate_limits:
            return
        counted = await self._count(
            self._key("upload", str(token_id)), self.settings.upload_window_s
        )
        if counted[0] > self.settings.uploads_per_window:
            raise TooManyRequests(
                f"at most {self.settings.uploads_per_window} uploads per "
                f"{self.settings.upload_window_s} s per token",
                counted[1],
                reason="too_many_uploads",
            )

    async def public_post(self, kind: str, client: str, limit: int, window_s: int) -> None:
        """Count one anonymous post (an objection to a claim on notice) of a client
        address; refuse it past `limit` per `window_s`."""
        if not self.settings.rate_limits:
            return
        counted = await self._count(self._key(f"public:{kind}", client), window_s)
        if counted[0] > limit:
            raise TooManyRequests(
                f"at most {limit} posts per {window_s} s from one address",
                counted[1],
                reason="too_many_posts",
            )
