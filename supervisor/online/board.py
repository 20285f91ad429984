"""What live supervision shares in Redis: the one-live-session lock and the operators' board."""

from __future__ import annotations

import contextlib
import logging
from datetime import datetime

import redis.asyncio as aioredis

from storage.types import StudySession
from supervisor.ledger.events import iso

log = logging.getLogger(__name__)

# -- the one-live-session lock -------------------------------------------------

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""
_REFRESH = """
local v = redis.call('get', KEYS[1])
if v == false then
  redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1
elseif v == ARGV[1] then
  redis.call('pexpire', KEYS[1], ARGV[2]) return 1
end
return 0
"""


class LiveLocks:
    """`sv:live:learner:<id>` = session id, expiring unless refreshed."""

    def __init__(self, client: aioredis.Redis, ttl_s: float) -> None:
        self.client = client
        self.ttl_ms = int(ttl_s * 1000)

    @staticmethod
    def key(learner_id: int) -> str:
        return f"sv:live:learner:{learner_id}"

    # While Redis is unreachable the lock fails open: learners keep studying, and
    # any overlap this lets through stays visible in the ledger (session times).

    async def hold(self, learner_id: int, session_id: str) -> bool:
        """Take or refresh the lock for this session; False if another session holds it."""
        try:
            result = await self.client.eval(
                _REFRESH, 1, self.key(learner_id), session_id, str(self.ttl_ms)
            )
        except aioredis.RedisError:
            log.warning("live lock: redis unavailable; not enforced for learner %s", learner_id)
            return True
        return bool(result)

    async def holder(self, learner_id: int) -> str | None:
        try:
            value = await self.client.get(self.key(learner_id))
        except aioredis.RedisError:
            return None
        return value.decode() if isinstance(value, bytes) else value

    async def release(self, learner_id: int, session_id: str) -> None:
        with contextlib.suppress(aioredis.RedisError):
            await self.client.eval(_RELEASE, 1, self.key(learner_id), session_id)


class LiveBoard:
    """The live state of every supervised session, shared in Redis for operators.

    `sv:live:s:<session_id>` is a hash of the session's latest state; each
    institution's set `sv:live:inst:<id>` lists its sessions. Entries expire
    unless refreshed, so a crashed process leaves nothing stale for long.
    """

    TTL_S = 120

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client

    async def publish(
        self,
        session: StudySession,
        *,
        state: str,
        note: str | None,
        mode: str | None,
        last_verdict: str | None,
        credited_seconds: float,
        at: datetime,
    ) -> None:
        key = f"sv:live:s:{session.id}"
        members = f"sv:live:inst:{session.institution_id}"
        fields = {
            "session_id": session.id,
            "institution_id": str(session.institution_id),
            "learner_id": str(session.learner_id),
            "course_id": str(session.course_id),
            "state": state,
            "note": note or "",
            "mode": mode or "",
            "last_verdict": last_verdict or "",
            "credited_seconds": f"{credited_seconds:.0f}",
            "updated_at": iso(at),
        }
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.hset(key, mapping=fields)  # type: ignore[arg-type]
            pipe.expire(key, self.TTL_S)
            pipe.sadd(members, session.id)
            pipe.expire(members, self.TTL_S * 10)
            await pipe.execute()
        except aioredis.RedisError:
            log.warning("live board: redis unavailable")

    async def remove(self, session: StudySession) -> None:
        with contextlib.suppress(aioredis.RedisError):
            await self.client.delete(f"sv:live:s:{session.id}")
            await self.client.srem(f"sv:live:inst:{session.institution_id}", session.id)

    async def sessions(self, institution_id: int) -> list[dict[str, str]]:
        members = f"sv:live:inst:{institution_id}"
        out: list[dict[str, str]] = []
        for raw in await self.client.smembers(members):
            sid = raw.decode() if isinstance(raw, bytes) else str(raw)
            data = await self.client.hgetall(f"sv:live:s:{sid}")
            if not data:
                await self.client.srem(members, sid)  # expired
                continue
            out.append(
                {
                    (k.decode() if isinstance(k, bytes) else str(k)): (
                        v.decode() if isinstance(v, bytes) else str(v)
                    )
                    for k, v in data.items()
                }
            )
        out.sort(key=lambda d: d.get("session_id", ""))
        return out


# What a learner's page may say on the data channel; anything else is ignored.
