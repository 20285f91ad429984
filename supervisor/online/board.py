"""What live supervision shares in Redis: the one-live-session lock and the operators' board."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
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
    """`sv:live:learner:<id>` = session id, expiring unless refreshed.

    This process also keeps the locks it took or saw, with the same expiry. While Redis
    cannot be reached, they decide: a learner's second session is refused by the
    process that supervises the first, as before the outage. Processes cannot see each
    other's locks then, so behind several API processes two sessions of one learner
    could overlap until Redis is back; the first refresh after that (a third of the
    TTL) takes the lock in Redis again, and the session that finds the other holding it
    stops being supervised. Any overlap stays visible in the ledger (session times).
    """

    def __init__(
        self, client: aioredis.Redis, ttl_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.client = client
        self.ttl_ms = int(ttl_s * 1000)
        self.clock = clock
        self._local: dict[int, tuple[str, float]] = {}  # learner -> (session, expires at)

    @staticmethod
    def key(learner_id: int) -> str:
        return f"sv:live:learner:{learner_id}"

    def _local_holder(self, learner_id: int) -> str | None:
        held = self._local.get(learner_id)
        if held is None:
            return None
        if held[1] <= self.clock():
            del self._local[learner_id]
            return None
        return held[0]

    def _remember(self, learner_id: int, session_id: str) -> None:
        self._local[learner_id] = (session_id, self.clock() + self.ttl_ms / 1000)

    async def hold(self, learner_id: int, session_id: str) -> bool:
        """Take or refresh the lock for this session; False if another session holds it."""
        try:
            result = await self.client.eval(
                _REFRESH, 1, self.key(learner_id), session_id, str(self.ttl_ms)
            )
        except aioredis.RedisError:
            log.warning("live lock: redis unavailable; this process's locks decide")
            holder = self._local_holder(learner_id)
            if holder is not None and holder != session_id:
                return False
            self._remember(learner_id, session_id)
            return True
        if result:
            self._remember(learner_id, session_id)
        return bool(result)

    async def holder(self, learner_id: int) -> str | None:
        try:
            value = await self.client.get(self.key(learner_id))
        except aioredis.RedisError:
            return self._local_holder(learner_id)
        return value.decode() if isinstance(value, bytes) else value

    async def release(self, learner_id: int, session_id: str) -> None:
        if self._local_holder(learner_id) == session_id:
            del self._local[learner_id]
        with contextlib.suppress(aioredis.RedisError):
            await self.client.eval(_RELEASE, 1, self.key(learner_id), session_id)


class LiveBoard:
    """The live state of every supervised session, shared in Redis for operators.

    `sv:live:s:<session_id>` is a hash of the session's latest state; each
    institution's set `sv:live:inst:<id>` lists its sessions. Entries expire
    unless refreshed, so a crashed process leaves nothing stale for long.
    """

    TTL_S = 120

    def __init__(self, client: aioredis.Redis, clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.clock = clock
        # What this process published (session id -> (fields, expires at)): the board
        # of its own sessions while Redis cannot be reached.
        self._local: dict[str, tuple[dict[str, str], float]] = {}

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
        self._local[session.id] = (fields, self.clock() + self.TTL_S)
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
        self._local.pop(session.id, None)
        with contextlib.suppress(aioredis.RedisError):
            await self.client.delete(f"sv:live:s:{session.id}")
            await self.client.srem(f"sv:live:inst:{session.institution_id}", session.id)

    async def sessions(self, institution_id: int) -> tuple[list[dict[str, str]], bool]:
        """The institution's live sessions, and whether that is the shared board (True)
        or, with Redis unreachable, only this process's own sessions (False)."""
        try:
            out = await self._shared(institution_id)
            shared = True
        except aioredis.RedisError:
            log.warning("live board: redis unavailable; showing this process's sessions")
            out, shared = self._own(institution_id), False
        out.sort(key=lambda d: d.get("session_id", ""))
        return out, shared

    def _own(self, institution_id: int) -> list[dict[str, str]]:
        now = self.clock()
        for sid in [sid for sid, (_, ends) in self._local.items() if ends <= now]:
            del self._local[sid]
        wanted = str(institution_id)
        return [dict(f) for f, _ in self._local.values() if f["institution_id"] == wanted]

    async def _shared(self, institution_id: int) -> list[dict[str, str]]:
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
        return out


# What a learner's page may say on the data channel; anything else is ignored.
