"""The service while its Redis cannot be reached: requests are answered, never with a
5xx; the operators' board shows this process's sessions; the one-live-session lock
holds within the process; the failed-token limit holds on this process's counts;
/health says "degraded". (The embedded Redis is also restarted by the service:
tests/supervisor/runtime/test_redis.py; here Redis is an external server, stopped
for as long as the test needs.)"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.supervisor.checks.test_workers import RedisServer
from tests.supervisor.conftest import HOPPER_FRAME, Service, StillFrames, _service, free_port

pytestmark = pytest.mark.slow

AUTH_FAILURES = 5


def _workers_alive(svc: Service) -> int:
    text = svc.client.get("/metrics").text
    match = re.search(r"^supervisor_workers_alive (\S+)$", text, re.MULTILINE)
    return int(float(match.group(1))) if match else 0


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer(free_port())
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def svc(tmp_path: Path, redis_server: RedisServer) -> Iterator[Service]:
    gen = _service(
        tmp_path,
        f"sqlite:///{tmp_path / 's.db'}",
        "sqlite",
        redis={"url": redis_server.url},
        workers={"embedded": 1, "result_timeout_s": 30, "heartbeat_s": 1},
        web={"auth_failures_per_window": AUTH_FAILURES, "auth_failure_window_s": 60},
    )
    service = next(gen)
    try:
        deadline = time.monotonic() + 180
        while _workers_alive(service) < 1:
            assert time.monotonic() < deadline, "the embedded worker never started"
            time.sleep(0.5)
        yield service
    finally:
        for _ in gen:
            pass


def test_requests_are_answered_without_5xx_while_redis_is_away(
    svc: Service, redis_server: RedisServer
) -> None:
    w = svc.world()
    r = svc.sign_in(w.learner, w.course_id, HOPPER_FRAME)
    assert r.status_code == 201, r.text
    sid = r.json()["session"]["session_id"]
    page = StillFrames(svc, w.learner, sid).attach()
    board = f"/api/v1/live/sessions?institution_id={w.institution_id}"
    r = svc.call("GET", board, w.operator)
    assert r.status_code == 200 and r.json()["board"] == "shared", r.text
    assert [s["session_id"] for s in r.json()["sessions"]] == [sid]

    redis_server.kill()
    seen: list[tuple[str, httpx.Response]] = []

    def call(what: str, method: str, path: str, token: str | None, **kw: object) -> httpx.Response:
        started = time.monotonic()
        r = svc.call(method, path, token, **kw)
        seen.append((what, r))
        # Not redis-py's default retries on every Redis call (4-8 s per request).
        assert time.monotonic() - started < 10, (what, time.monotonic() - started)
        return r

    health = svc.client.get("/health")
    seen.append(("health", health))
    assert health.status_code == 200, health.text
    assert health.json()["status"] == "degraded" and "redis" in health.json()["problems"]

    # The operators' board: the sessions this process supervises, said to be only that.
    r = call("board", "GET", board, w.operator)
    assert r.status_code == 200, r.text
    assert r.json()["board"] == "this_process"
    assert [s["session_id"] for s in r.json()["sessions"]] == [sid]
    assert r.json()["queue"] == {"error": "redis unavailable"}
    call("stats", "GET", "/api/v1/live/stats", svc.admin)
    call("messages", "GET", f"/api/v1/sessions/{sid}/messages?wait=0", w.learner)
    seen.append(("metrics", svc.client.get("/metrics")))

    # The one-live-session lock: the learner's live session keeps a second one out.
    r = call("second sign-in", "POST", "/api/v1/sessions", w.learner, data={
        "course_id": str(w.course_id), "mode": "upload"}, files=[
        ("frame", (f"f{i}.jpg", HOPPER_FRAME, "image/jpeg"))
        for i in range(svc.settings.policy.signin_frames)])  # fmt: skip
    assert r.status_code == 409 and r.json()["reason"] == "session_already_open", r.text

    # The failed-token limit on this process's own count (it used to switch off).
    for _ in range(AUTH_FAILURES):
        assert call("bad token", "GET", "/api/v1/me", "not-a-token").status_code == 401
    r = call("bad token", "GET", "/api/v1/me", "not-a-token")
    assert r.status_code == 429 and r.json()["reason"] == "too_many_auth_failures", r.text

    server_errors = [(what, r.status_code, r.text[:200]) for what, r in seen if r.status_code > 499]
    assert not server_errors

    redis_server.start()
    deadline = time.monotonic() + 10
    while svc.client.get("/health").json()["status"] != "ok":
        assert time.monotonic() < deadline, "health did not recover with Redis"
        time.sleep(0.2)
    assert page.sid == sid
