"""The service under faults of its queue: Redis restarted mid-session, and overload."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from supervisor.checks.jobs import worker_key
from supervisor.checks.worker import embedded_worker_main
from tests.supervisor.checks.test_workers import RedisServer
from tests.supervisor.conftest import HOPPER_FRAME, Service, StillFrames, _service, free_port

pytestmark = pytest.mark.slow


def _start(svc: Service):  # type: ignore[no-untyped-def]
    w = svc.world()
    r = svc.sign_in(w.learner, w.course_id, HOPPER_FRAME)
    assert r.status_code == 201, r.text
    return w, r.json()["session"]["session_id"]


def _wait_for_worker(svc: Service, name: str, timeout: float = 120.0) -> None:
    """Until the worker has loaded its models and beats (its key is set after that)."""
    client = redis.Redis.from_url(svc.live_redis_url())
    try:
        deadline = time.monotonic() + timeout
        while not client.exists(worker_key(svc.settings.workers.stream, name)):
            assert time.monotonic() < deadline, f"worker {name} never started"
            time.sleep(0.2)
    finally:
        client.close()


def _kinds(svc: Service, token: str, sid: str) -> list[tuple[str, dict]]:  # type: ignore[type-arg]
    events = svc.call("GET", f"/api/v1/sessions/{sid}/events", token).json()
    return [(e["kind"], e["payload"]) for e in events]


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer(free_port())
    server.start()
    try:
        yield server
    finally:
        server.kill()


def test_redis_restarted_during_a_session_loses_no_check(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    gen = _service(
        tmp_path,
        f"sqlite:///{tmp_path / 's.db'}",
        "sqlite",
        redis={"url": redis_server.url},
        workers={"embedded": 2, "result_timeout_s": 20, "claim_idle_s": 3},
    )
    svc = next(gen)
    try:
        w, sid = _start(svc)
        page = StillFrames(svc, w.learner, sid).attach()
        first = page.check(HOPPER_FRAME)
        assert first["passed"], first

        redis_server.kill()
        during = page.check(HOPPER_FRAME, timeout=60)
        # Told to the page as deferred: never counted against the learner.
        assert during["verdict"] == "deferred", during

        redis_server.start()  # empty: streams, groups and locks are gone
        deadline = time.monotonic() + 60
        while True:
            after = page.check(HOPPER_FRAME, timeout=60)
            if after["verdict"] != "deferred" or time.monotonic() > deadline:
                break
        assert after["passed"], after
        page.end()

        kinds = _kinds(svc, w.learner, sid)
        checks = [p for k, p in kinds if k == "check"]
        deferred = [p for k, p in kinds if k == "check_deferred"]
        assert all(c["passed"] for c in checks) and len(checks) >= 3
        assert deferred[0]["reason"] == "queue_unavailable"
        assert deferred[0]["check_id"] == during["check_id"]
        ids = [p["check_id"] for k, p in kinds if k in ("check", "check_deferred")]
        assert len(ids) == len(set(ids))
        assert svc.call("GET", f"/api/v1/sessions/{sid}/integrity", w.learner).json()["ok"]
    finally:
        for _ in gen:
            pass


def test_overload_defers_checks_and_records_them_once(tmp_path: Path) -> None:
    gen = _service(
        tmp_path,
        f"sqlite:///{tmp_path / 's.db'}",
        "sqlite",
        workers={"embedded": 0, "max_backlog": 1, "result_timeout_s": 2},
    )
    svc = next(gen)
    ctx = multiprocessing.get_context("spawn")
    stop = ctx.Event()
    worker = None
    try:
        # The sign-in is a check like the others: a worker records it, then goes away.
        first = ctx.Event()
        signin = ctx.Process(
            target=embedded_worker_main,
            args=(svc.settings, "signin", svc.live_redis_url(), first),
            daemon=True,
        )
        signin.start()
        try:
            _wait_for_worker(svc, "signin")
            w, sid = _start(svc)
        finally:
            first.set()
            signin.join(30)
        page = StillFrames(svc, w.learner, sid).attach()
        timed_out = page.check(HOPPER_FRAME)  # queued, but no worker runs
        full = page.check(HOPPER_FRAME)  # the backlog (1) is full
        assert timed_out["verdict"] == full["verdict"] == "deferred"
        kinds = _kinds(svc, w.learner, sid)
        reasons = [p["reason"] for k, p in kinds if k == "check_deferred"]
        assert reasons[:2] == ["timeout", "overloaded"], reasons
        credit = svc.call("GET", f"/api/v1/sessions/{sid}/credited", w.learner).json()
        assert credit["failed_checks"] == 0 and credit["missed_checks"] == 0

        # A worker finally takes the stale job: it finds the check already recorded
        # (as deferred) and does not record it a second time.
        redis_url = svc.live_redis_url()
        worker = ctx.Process(
            target=embedded_worker_main, args=(svc.settings, "late", redis_url, stop), daemon=True
        )
        worker.start()
        deadline = time.monotonic() + 60
        while svc.live_stats_queue()["length"] > 0:
            assert time.monotonic() < deadline, "the late worker never drained the queue"
            time.sleep(0.3)
        kinds = _kinds(svc, w.learner, sid)
        ids = [p["check_id"] for k, p in kinds if k in ("check", "check_deferred")]
        assert len(ids) == len(set(ids))
        assert timed_out["check_id"] in ids
        after = page.check(HOPPER_FRAME, timeout=60)
        while after["verdict"] == "deferred":  # deferred while the stale jobs drained
            after = page.check(HOPPER_FRAME, timeout=60)
        assert after["passed"], after
        page.end()
    finally:
        stop.set()
        if worker is not None:
            worker.join(10)
        for _ in gen:
            pass
