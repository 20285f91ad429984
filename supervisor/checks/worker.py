"""`supervisor worker`: verification workers fed by a Redis Stream consumer group.

Each worker process builds one face engine, opens the storage, and loops:
reclaim jobs other workers left unacknowledged for `claim_idle_s` (XAUTOCLAIM),
else read new ones (XREADGROUP); run the job through the check pipeline
(`supervisor.checks.pipeline`: verify, liveness, the event, the append under the
check id, so a job delivered twice is recorded once); push the result for the
waiting side; then acknowledge and delete the entry. A job that fails `max_deliveries` times goes
to the dead-letter stream with its reason. Workers are plain synchronous
processes: any number, on any machine that reaches Redis, the database and the
evidence store.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import redis

from config import Settings
from storage import Storage, open_storage
from supervisor.checks.jobs import (
    CheckJob,
    CheckResult,
    ResultStatus,
    dead_letter_stream,
    parse_job,
    result_key,
    worker_key,
)
from supervisor.checks.liveness import fingerprints_from_json, fingerprints_to_json
from supervisor.checks.pipeline import CheckPipeline
from supervisor.runtime.lifeline import die_with_parent
from supervisor.runtime.redis import fast_retry
from verification.engines import make_engine
from verification.types import FrameFingerprint

log = logging.getLogger(__name__)

RESULT_TTL_S = 600
READ_BLOCK_MS = 1000


def ensure_group(client: redis.Redis, stream: str, group: str) -> None:
    """Create the stream and its consumer group if missing (after a Redis restart, too)."""
    try:
        client.xgroup_create(stream, group, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


class RedisFingerprints:
    """A session's frame fingerprints between its checks: a capped, expiring Redis list
    (`<stream>:fp:<session_id>`), never the ledger."""

    def __init__(self, client: redis.Redis, stream: str, keep: int) -> None:
        self.client = client
        self.stream = stream
        self.keep = keep

    def _key(self, session_id: str) -> str:
        return f"{self.stream}:fp:{session_id}"

    def load(self, session_id: str) -> list[FrameFingerprint]:
        return fingerprints_from_json(self.client.lrange(self._key(session_id), 0, -1))

    def save(self, session_id: str, fingerprints: Sequence[FrameFingerprint]) -> None:
        if not self.keep or not fingerprints:
            return
        key = self._key(session_id)
        pipe = self.client.pipeline(transaction=False)
        pipe.rpush(key, *fingerprints_to_json(fingerprints))
        pipe.ltrim(key, -self.keep, -1)
        pipe.expire(key, 24 * 3600)
        pipe.execute()


@dataclass
class Worker:
    """A Redis Stream consumer that runs each job through the check pipeline."""

    settings: Settings
    name: str
    client: redis.Redis
    pipeline: CheckPipeline
    processed: int = 0

    @property
    def stream(self) -> str:
        return self.settings.workers.stream

    @property
    def group(self) -> str:
        return self.settings.workers.group

    # -- the loop ------------------------------------------------------------

    def run(self, should_stop: Callable[[], bool]) -> None:
        last_beat = 0.0
        while not should_stop():
            try:
                now = time.monotonic()
                if now - last_beat >= self.settings.workers.heartbeat_s:
                    self.beat()
                    last_beat = now
                self.step()
            except redis.ConnectionError as exc:
                log.warning("worker %s: redis unavailable (%s); retrying", self.name, exc)
                time.sleep(1.0)
            except redis.ResponseError as exc:
                if "NOGROUP" in str(exc):  # Redis restarted empty: recreate and go on
                    ensure_group(self.client, self.stream, self.group)
                else:
                    log.exception("worker %s: redis error", self.name)
                    time.sleep(1.0)

    def beat(self) -> None:
        ttl = max(int(self.settings.workers.heartbeat_s * 3), 2)
        self.client.set(worker_key(self.stream, self.name), str(self.processed), ex=ttl)

    def step(self) -> int:
        """Handle reclaimed or new entries; returns how many were handled."""
        entries = self._reclaim()
        if not entries:
            got: Any = self.client.xreadgroup(
                self.group, self.name, {self.stream: ">"}, count=1, block=READ_BLOCK_MS
            )
            entries = got[0][1] if got else []
        for entry_id, fields in entries:
            if fields:  # a deleted entry comes back from XAUTOCLAIM as (id, None)
                self.handle(entry_id, fields)
        return len(entries)

    def _reclaim(self) -> list[tuple[Any, Any]]:
        idle_ms = int(self.settings.workers.claim_idle_s * 1000)
        reply = self.client.xautoclaim(
            self.stream, self.group, self.name, min_idle_time=idle_ms, start_id="0-0", count=1
        )
        claimed: list[tuple[Any, Any]] = reply[1] if reply else []
        return claimed

    def _deliveries(self, entry_id: Any) -> int:
        info = self.client.xpending_range(self.stream, self.group, entry_id, entry_id, 1)
        return int(info[0]["times_delivered"]) if info else 1

    def _finish(self, entry_id: Any) -> None:
        pipe = self.client.pipeline(transaction=True)
        pipe.xack(self.stream, self.group, entry_id)
        pipe.xdel(self.stream, entry_id)
        pipe.execute()

    def _reply(self, result: CheckResult) -> None:
        key = result_key(self.stream, result.check_id)
        pipe = self.client.pipeline(transaction=True)
        pipe.rpush(key, result.to_json())
        pipe.expire(key, RESULT_TTL_S)
        pipe.execute()

    # -- one job -------------------------------------------------------------

    def handle(self, entry_id: Any, fields: dict[Any, Any]) -> None:
        try:
            job = parse_job(fields)
        except ValueError as exc:
            self._dead(entry_id, fields, f"malformed: {exc}", None)
            return
        if self._deliveries(entry_id) > self.settings.workers.max_deliveries:
            reason = self.client.hget(f"{self.stream}:errors", entry_id) or b"unknown"
            self._dead(entry_id, fields, _text(reason), job)
            return
        try:
            result = self.process(job)
        except Exception as exc:  # left pending: retried, then dead-lettered
            log.exception("worker %s: job %s failed", self.name, job.check_id)
            self.client.hset(f"{self.stream}:errors", entry_id, f"{type(exc).__name__}: {exc}")
            return
        # Acknowledge first: if this worker dies before replying, the waiting side
        # times out and finds the check in the ledger (its deferral is refused by
        # the same idempotency key), so nothing is recorded twice or lost.
        self._finish(entry_id)
        self.client.hdel(f"{self.stream}:errors", entry_id)
        self._reply(result)
        self.processed += 1

    def _dead(
        self, entry_id: Any, fields: dict[Any, Any], reason: str, job: CheckJob | None
    ) -> None:
        meta = fields.get(b"meta") or fields.get("meta") or b"{}"
        # One transaction: the entry is never in both streams, nor in neither.
        pipe = self.client.pipeline(transaction=True)
        pipe.xadd(
            dead_letter_stream(self.stream),
            {"meta": meta, "reason": reason, "worker": self.name, "entry": _text(entry_id)},
            maxlen=10_000,
            approximate=True,
        )
        pipe.xack(self.stream, self.group, entry_id)
        pipe.xdel(self.stream, entry_id)
        pipe.hdel(f"{self.stream}:errors", entry_id)
        pipe.execute()
        if job is not None:
            self._reply(
                CheckResult(
                    job.check_id, ResultStatus.failed, self.name, reason="failed", message=reason
                )
            )
        log.error("worker %s: job dead-lettered: %s", self.name, reason)

    def process(self, job: CheckJob) -> CheckResult:
        """Verify and record one check (idempotently). Raises on infrastructure faults."""
        return self.pipeline.run(job)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def default_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def make_worker(settings: Settings, name: str, client: redis.Redis, storage: Storage) -> Worker:
    """A worker with its own face engine (models load here, once per process)."""
    history = RedisFingerprints(client, settings.workers.stream, settings.liveness.history_frames)
    pipeline = CheckPipeline(settings, storage, make_engine(settings.face), history, worker=name)
    return Worker(settings, name, client, pipeline)


def run_worker(
    settings: Settings,
    name: str | None = None,
    redis_url: str | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> int:
    """Run one worker until stopped (SIGTERM/SIGINT, or `should_stop`)."""
    url = redis_url or settings.redis.url
    if not url:
        raise SystemExit(
            "error: a worker needs redis.url (SUPERVISOR_REDIS__URL) or the service's "
            "embedded Redis socket"
        )
    stopping = {"now": False}

    def _stop(*_: object) -> None:
        stopping["now"] = True

    if should_stop is None:
        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
    # Fail fast while Redis is away (the loop above retries every second), rather
    # than redis-py's default of three retries over several seconds.
    client = redis.Redis.from_url(
        url, socket_timeout=10, socket_connect_timeout=5, retry=fast_retry()
    )
    ensure_group(client, settings.workers.stream, settings.workers.group)
    storage = open_storage(
        settings.database, settings.evidence, settings.security.template_key.get_secret_value()
    )
    worker = make_worker(settings, name or default_name(), client, storage)
    log.info("worker %s started on %s", worker.name, settings.workers.stream)
    try:
        worker.run(lambda: stopping["now"] or (should_stop is not None and should_stop()))
    finally:
        storage.close()
        client.delete(worker_key(settings.workers.stream, worker.name))
        client.close()
    return 0


def embedded_worker_main(
    settings: Settings, name: str, redis_url: str, stop: Any, parent_pid: int | None = None
) -> None:
    """Entry point of a worker process the service starts itself (spawned). The worker
    ends with its parent (`parent_pid`, default: the process that spawned it), however
    the parent ends: it never outlives the service to take jobs on its own."""
    die_with_parent(parent_pid or os.getppid(), signal.SIGTERM)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us through `stop`
    run_worker(settings, name, redis_url, should_stop=stop.is_set)


class EmbeddedWorkers:
    """Worker processes the service starts itself (single-machine mode)."""

    def __init__(self, settings: Settings, redis_url: str, count: int) -> None:
        import multiprocessing

        self._ctx = multiprocessing.get_context("spawn")
        self._stop = self._ctx.Event()
        self._settings = settings
        self._url = redis_url
        self._count = count
        self.processes: list[Any] = []

    def start(self) -> None:
        """Start the workers. Call it from a thread that lives as long as they should
        (the event loop's): each worker ends when that thread's process ends."""
        prefix = default_name()
        for i in range(self._count):
            proc = self._ctx.Process(
                target=embedded_worker_main,
                args=(self._settings, f"{prefix}-w{i}", self._url, self._stop, os.getpid()),
                name=f"supervisor-worker-{i}",
                daemon=True,
            )
            proc.start()
            self.processes.append(proc)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        deadline = time.monotonic() + timeout
        for proc in self.processes:
            proc.join(max(deadline - time.monotonic(), 0.1))
            if proc.is_alive():
                proc.terminate()
                proc.join(2)
        self.processes.clear()

    def alive(self) -> int:
        return sum(1 for p in self.processes if p.is_alive())
