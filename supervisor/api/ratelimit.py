"""Rate limits on failed token use (per client address) and on uploads (per token),
counted in Redis so every API process shares them.

Fixed windows: a counter per key expires `window` seconds after its first hit.
A refused request gets 429 with `Retry-After` (the counter's remaining life).
If Redis cannot be reached the limits fail open (logged): an outage of the
live-state store must not lock every learner out of their study.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

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


@dataclass
class RateLimiter:
    client: aioredis.Redis
    settings: WebSettings

    def _key(self, kind: str, who: str) -> str:
        return f"{self.settings.redis_prefix}{kind}:{who}"

    async def _count(self, key: str, window: int) -> tuple[int, int] | None:
        """(hits so far, seconds left in the window), or None when Redis is down."""
        try:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.incr(key)
                pipe.ttl(key)
                hits, ttl = await pipe.execute()
            if ttl < 0:  # first hit of a window (or a key that lost its expiry)
                await self.client.expire(key, window)
                ttl = window
            return int(hits), int(ttl)
        except RedisError as exc:
            log.warning("rate limit not enforced, Redis unavailable: %s", exc)
            return None

    async def _peek(self, key: str) -> tuple[int, int] | None:
        try:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.get(key)
                pipe.ttl(key)
                hits, ttl = await pipe.execute()
        except RedisError as exc:
            log.warning("rate limit not enforced, Redis unavailable: %s", exc)
            return None
        return int(hits or 0), max(int(ttl), 1)

    async def check_auth_allowed(self, client: str) -> None:
        """Refuse every bearer token from a client address that has failed too often."""
        if not self.settings.rate_limits:
            return
        seen = await self._peek(self._key("auth", client))
        if seen is not None and seen[0] >= self.settings.auth_failures_per_window:
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
        if counted is not None and counted[0] > self.settings.uploads_per_window:
            raise TooManyRequests(
                f"at most {self.settings.uploads_per_window} uploads per "
                f"{self.settings.upload_window_s} s per token",
                counted[1],
                reason="too_many_uploads",
            )
