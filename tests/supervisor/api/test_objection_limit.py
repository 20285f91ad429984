"""Objections to claims on public notice take no sign-in: they are limited per client
address, on the real (embedded) Redis and on this process's own counts."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis.asyncio as aioredis

from config.web import WebSettings
from supervisor.api.ratelimit import RateLimiter, TooManyRequests
from supervisor.runtime.redis import EmbeddedRedis, fast_async_retry


async def test_objections_are_limited_per_address(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "redis.db")
    server.start()
    client = aioredis.Redis(unix_socket_path=str(server.socket_path), retry=fast_async_retry())
    limiter = RateLimiter(client, WebSettings())
    try:
        for _ in range(3):
            await limiter.public_post("objection", "10.0.0.5", 3, 3600)
        with pytest.raises(TooManyRequests) as refused:
            await limiter.public_post("objection", "10.0.0.5", 3, 3600)
        assert refused.value.reason == "too_many_posts" and refused.value.status == 429
        assert 1 <= refused.value.retry_after <= 3600
        await limiter.public_post("objection", "10.0.0.6", 3, 3600)  # another address
        # Still refused when Redis forgets (a restart): this process counted too.
        await client.flushall()
        with pytest.raises(TooManyRequests):
            await limiter.public_post("objection", "10.0.0.5", 3, 3600)
    finally:
        await client.aclose()
        server.stop()
