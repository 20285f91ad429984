"""`supervisor worker`: verification workers fed by a Redis Stream consumer group.

Each worker process builds one face engine, opens the storage, and loops:
reclaim jobs other workers left unacknowledged for `claim_idle_s` (XAUTOCLAIM),
else read new ones (XREADGROUP); verify; store the evidence frame; append the
check to the session's ledger chain with the check id as idempotency key (a job
delivered twice is recorded once); push the result for the waiting session; then
acknowledge and delete the entry. A job that fails `max_deliveries` times goes
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
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import redis

from config import Settings
from storage import Storage, open_storage
from storage.types import LedgerEvent
from supervisor.checks.evidence import keep_frame
from supervisor.checks.impostor import InstitutionTemplates, search_after_check
from supervisor.checks.jobs import (
    CheckJob,
    CheckResult,
    ResultStatus,
    dead_letter_stream,
    parse_job,
    result_key,
    worker_key,
)
from supervisor.checks.liveness import (
    challenge_payload,
    fingerprints_from_json,
    fingerprints_to_json,
    liveness_payload,
)
from supervisor.checks.pool import CheckOutcome, decide_frames, decode_frames
from supervisor.ledger import events as ev
from supervisor.online.sessions import ACTIVE, ENDED, PAUSED, SessionViews, check_event
from verification.dlib_engine import DlibFaceEngine
from verification.exceptions import ImageError
from verification.liveness import DEFAULT_PARAMS, evaluate_challenge, observe, passive_liveness
from verification.matching import as_matrix
from verification.types import (
    Challenge,
    ChallengeKind,
    ChallengeOutcome,
    ChallengeResult,
    CheckKind,
    LivenessResult,
    LivenessVerdict,
    Vector,
)

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


@dataclass
class Worker:
    settings: Settings
    name: str
    client: redis.Redis
    storage: Storage
    engine: DlibFaceEngine
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    processed: int = 0
    templates_cache: InstitutionTemplates | None = None
    views: SessionViews | None = None

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
        storage = self.storage
        # A job delivered again (its worker died after appending) answers with what was
        # recorded under its check id, the key of every append it makes.
        earlier = storage.ledger.find_once(job.chain_id, job.check_id)
        if earlier is not None:
            return self._result_of(job, earlier, ResultStatus.duplicate)
        if self.views is None:
            gap = timedelta(seconds=self.settings.policy.max_credited_gap_s)
            self.views = SessionViews(storage.ledger.read_chain, gap)
        view = self.views.refresh(job.chain_id)
        if view.start is None or view.state == ENDED:
            return CheckResult(job.check_id, ResultStatus.session_ended, self.name)
        templates = None
        if job.kind is CheckKind.identity:
            found = storage.templates.for_learner(job.learner_id)
            if not found:
                return CheckResult(
                    job.check_id,
                    ResultStatus.image_error,
                    self.name,
                    reason="not_enrolled",
                    message="the learner has no enrolled face",
                )
            templates = as_matrix([t.vector for t in found])
        try:
            images = decode_frames(self.settings.images, list(job.frames))
        except ImageError as exc:
            return CheckResult(
                job.check_id,
                ResultStatus.image_error,
                self.name,
                reason=exc.reason,
                message=str(exc),
            )
        outcome = decide_frames(
            self.engine, self.settings.evidence.jpeg_quality, job.kind, images, templates
        )
        liveness, challenge = self._liveness(job, images, outcome)
        now = self.clock()
        retain = now + timedelta(days=self.settings.evidence.retention_days)
        evidence_sha, evidence_error = keep_frame(storage.evidence, outcome.evidence_jpeg, retain)
        check = check_event(
            outcome,
            evidence_sha,
            job.purpose,
            now,
            job.scheduled_at,
            job.check_id,
            evidence_error=evidence_error,
        )
        check = with_liveness(check, liveness, challenge, job.suspicion)
        state = view.state
        new: list[ev.Event] = [check]
        if not check.passed and state == ACTIVE and job.pause_on_failure:
            new.append(ev.StateChanged(ACTIVE, PAUSED, f"check_failed:{check.verdict}", now))
        elif check.passed and state == PAUSED and job.kind is CheckKind.identity:
            new.append(ev.StateChanged(PAUSED, ACTIVE, "identity_check_passed", now))
        appended, created = storage.ledger.append_once(
            job.chain_id, job.check_id, [ev.encode(e) for e in new]
        )
        status = ResultStatus.recorded if created else ResultStatus.duplicate
        first = appended[0]
        if created and job.kind is CheckKind.identity and self.settings.subsidy.impostor_search:
            if self.templates_cache is None:
                self.templates_cache = InstitutionTemplates(self.settings.subsidy.impostor_cache_s)
            search_after_check(
                self.settings,
                storage,
                self.engine,
                self.templates_cache,
                job.learner_id,
                job.session_id,
                images[outcome.result.frame_index],
                first,
                now,
                probe=_decisive_encoding(outcome),
            )
        return CheckResult(job.check_id, status, self.name, kind=first.kind, payload=first.payload)

    def _liveness(
        self, job: CheckJob, images: list[Any], outcome: CheckOutcome
    ) -> tuple[LivenessResult | None, ChallengeResult | None]:
        """Passive liveness over the check's frames and, for a challenge, its outcome.

        Faces are looked for near the one the check found (a few times cheaper than
        the whole frame); fingerprints of the session's earlier checks come from
        Redis, never the ledger.
        """
        cfg = self.settings.liveness
        if not cfg.passive and job.challenge is None:
            return None, None
        times = list(job.frame_times) if len(job.frame_times) == len(images) else []
        if not times or any(b <= a for a, b in zip(times, times[1:], strict=False)):
            times = [float(i) for i in range(len(images))]
        # Every frame's face is found the same way, in one window around the face the
        # check found: boxes from different detections (whole frame, other scale)
        # differ by a few pixels, and so would the landmarks of two identical frames.
        anchor = next((f.box for f in outcome.result.frames if f.faces_found == 1), None)
        frames = [
            observe(self.engine, image, t, near=anchor)
            for image, t in zip(images, times, strict=True)
        ]
        challenge_result = None
        if job.challenge is not None:
            challenge = Challenge(
                ChallengeKind(job.challenge), 0.0, self.settings.liveness.challenge_time_limit_s
            )
            params = replace(DEFAULT_PARAMS, challenge_time_limit_s=challenge.time_limit_s)
            challenge_result = evaluate_challenge(challenge, frames, params)
        passive = None
        if cfg.passive and len(frames) >= 2:
            key = f"{self.stream}:fp:{job.session_id}"
            history = fingerprints_from_json(self.client.lrange(key, 0, -1))
            # The session's fingerprints are on one clock: the enqueue time.
            base = job.enqueued_at.timestamp()
            stamped = [replace(f, t_s=base + f.t_s) for f in frames]
            passive = passive_liveness(stamped, DEFAULT_PARAMS, history)
            if cfg.history_frames and passive.fingerprints:
                pipe = self.client.pipeline(transaction=False)
                pipe.rpush(key, *fingerprints_to_json(passive.fingerprints))
                pipe.ltrim(key, -cfg.history_frames, -1)
                pipe.expire(key, 24 * 3600)
                pipe.execute()
        return passive, challenge_result

    def _result_of(self, job: CheckJob, stored: LedgerEvent, status: ResultStatus) -> CheckResult:
        return CheckResult(
            job.check_id, status, self.name, kind=stored.kind, payload=stored.payload
        )


def _decisive_encoding(outcome: CheckOutcome) -> Vector | None:
    """The encoding the check computed for its decisive frame, if it got that far."""
    result = outcome.result
    if 0 <= result.frame_index < len(result.frames):
        return result.frames[result.frame_index].encoding
    return None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def default_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


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
    client = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5)
    ensure_group(client, settings.workers.stream, settings.workers.group)
    engine = DlibFaceEngine(settings.face)
    storage = open_storage(
        settings.database, settings.evidence, settings.security.template_key.get_secret_value()
    )
    worker = Worker(settings, name or default_name(), client, storage, engine)
    log.info("worker %s started on %s", worker.name, settings.workers.stream)
    try:
        worker.run(lambda: stopping["now"] or (should_stop is not None and should_stop()))
    finally:
        storage.close()
        client.delete(worker_key(settings.workers.stream, worker.name))
        client.close()
    return 0


def embedded_worker_main(settings: Settings, name: str, redis_url: str, stop: Any) -> None:
    """Entry point of a worker process the service starts itself (spawned)."""
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
        prefix = default_name()
        for i in range(self._count):
            proc = self._ctx.Process(
                target=embedded_worker_main,
                args=(self._settings, f"{prefix}-w{i}", self._url, self._stop),
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


def with_liveness(
    check: ev.CheckRecorded,
    liveness: LivenessResult | None,
    challenge: ChallengeResult | None,
    suspicion: tuple[str, ...],
) -> ev.CheckRecorded:
    """The check event with its liveness parts. A spoof verdict or a challenge not
    passed fails a check whose face passed; its verdict then names why."""
    verdict, passed = check.verdict, check.passed
    if passed and liveness is not None and liveness.verdict is LivenessVerdict.spoof:
        verdict, passed = "spoof", False
    if passed and challenge is not None and challenge.outcome is not ChallengeOutcome.passed:
        verdict = (
            "challenge_timed_out"
            if challenge.outcome is ChallengeOutcome.timed_out
            else ("challenge_failed")
        )
        passed = False
    return replace(
        check,
        verdict=verdict,
        passed=passed,
        liveness=liveness_payload(liveness) if liveness is not None else None,
        challenge=challenge_payload(challenge) if challenge is not None else None,
        suspicion=suspicion,
    )
