"""Faults under load: the embedded Redis killed while learners are supervised, then the
service itself killed.

    .venv/bin/python bench/fault_bench.py [--learners 3] [--rate 4] [--seconds 40]
        [--kill-redis-at 15] [--stop kill|term]

`supervisor serve` runs in its own process on embedded defaults (SQLite, embedded
Redis, one worker, one pool process) in a temporary folder, with checks a second or
two apart. Each learner's page is driven over the still-frame path as `learner.js`
does (long-poll the server's messages, answer each capture request with frames). Beside
them, an open-loop mix of GETs at `--rate` per second: /health, the operators' board
(GET /api/v1/live/sessions), a page's messages and /api/v1/me. At `--kill-redis-at`
seconds the embedded redis-server gets SIGKILL.

The table compares the window before the kill (the baseline of this run) with the one
after it: requests and their statuses (any 5xx is a failure), latency p50/p99/max
(the pages' 2 s long-polls left out), and the check results the pages received.
Then: how long until /health said "ok" again and the first check passed after the
kill. Finally the service is stopped with `--stop` (SIGKILL by default) and every
process it had started must be gone within 5 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests import imagegen  # noqa: E402
from tests.supervisor.conftest import institution_body, new_id_number  # noqa: E402

# The two people of the packaged photos: one learner each (a face enrolled twice is
# refused as a duplicate identity).
FACES = [
    (imagegen.jpeg_bytes(face), imagegen.jpeg_bytes(imagegen.webcam_frame(face, face_width=170)))
    for face in (imagegen.grace_hopper(), imagegen.astronaut())
]
SERVE = "import sys; from supervisor.cli import main; sys.exit(main())"
SIGNIN_FRAMES = 3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Window:
    name: str
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    results: Counter[str] = field(default_factory=Counter)


class Service:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        fast = {
            "PRESENCE_INTERVAL_MIN_S": "1", "PRESENCE_INTERVAL_MEAN_S": "1.5",
            "PRESENCE_INTERVAL_MAX_S": "2", "IDENTITY_INTERVAL_MIN_S": "2",
            "IDENTITY_INTERVAL_MEAN_S": "3", "IDENTITY_INTERVAL_MAX_S": "4",
            "RESPONSE_WINDOW_S": "8", "RETRY_INTERVAL_S": "1", "CAPTURE_TIMEOUT_S": "6",
            "LIVE_LOCK_TTL_S": "6",
        }  # fmt: skip
        self.env = {
            **os.environ,
            "SUPERVISOR_ENVIRONMENT": "development",
            "SUPERVISOR_DATA_DIR": str(tmp),
            "SUPERVISOR_DATABASE__URL": f"sqlite:///{tmp / 'supervisor.db'}",
            "SUPERVISOR_EVIDENCE__DIRECTORY": str(tmp / "evidence"),
            "SUPERVISOR_REDIS__EMBEDDED_PATH": str(tmp / "redis" / "redis.db"),
            "SUPERVISOR_REDIS__URL": "",
            "SUPERVISOR_SERVER__PORT": str(self.port),
            "SUPERVISOR_SERVER__VERIFY_PROCESSES": "1",
            "SUPERVISOR_WORKERS__EMBEDDED": "1",
            "SUPERVISOR_WORKERS__HEARTBEAT_S": "1",
            "SUPERVISOR_POLICY__SIGNIN_FRAMES": str(SIGNIN_FRAMES),
            # The packaged portrait is a still photo answering every check: liveness and
            # replay detection would (rightly) refuse it.
            "SUPERVISOR_LIVENESS__PASSIVE": "false",
            "SUPERVISOR_LIVENESS__CHALLENGE_PROBABILITY": "0",
            "SUPERVISOR_LIVENESS__CHALLENGE_WHEN_DOUBTFUL": "false",
            "SUPERVISOR_LIVENESS__CHALLENGE_FIRST_CHECK": "false",
            "SUPERVISOR_LIVENESS__REPLAY_CHECK": "false",
            # Every learner studies from 127.0.0.1.
            "SUPERVISOR_SUBSIDY__MAX_LEARNERS_PER_ADDRESS": "10000",
            **{f"SUPERVISOR_POLICY__{k}": v for k, v in fast.items()},
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = open(tmp / "server.log", "wb")  # noqa: SIM115

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", SERVE, *args],
            env=self.env, cwd=self.tmp, capture_output=True, text=True, check=True,
        )  # fmt: skip
        return done.stdout

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SERVE, "serve"],
            env=self.env, cwd=self.tmp, stdout=subprocess.DEVNULL, stderr=self.log,
        )  # fmt: skip
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "the service exited; see server.log"
            try:
                text = httpx.get(f"{self.url}/metrics", timeout=2).text
                if "supervisor_workers_alive 1" in text:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError("the service did not start with its worker; see server.log")

    def token(self, role: str, *extra: str) -> str:
        out = self.cli("token", "create", "--role", role, *extra)
        return out.strip().splitlines()[-1].split()[-1]

    def descendants(self) -> list[psutil.Process]:
        assert self.proc is not None
        return psutil.Process(self.proc.pid).children(recursive=True)

    def redis_server(self) -> psutil.Process:
        return next(p for p in self.descendants() if p.name() == "redis-server")


@dataclass
class Learner:
    frame: bytes
    token: str
    session_id: str
    operator: str
    institution_id: int


def setup(svc: Service, learners: int) -> tuple[str, list[Learner]]:
    admin, bureau = svc.token("admin"), svc.token("bureau")
    out = []
    with httpx.Client(base_url=svc.url, timeout=120) as c:

        def post(path: str, token: str, **kw: object) -> dict[str, object]:
            r = c.post(path, headers={"Authorization": f"Bearer {token}"}, **kw)  # type: ignore[arg-type]
            r.raise_for_status()
            body: dict[str, object] = r.json()
            return body

        version = c.get("/api/v1/consent-text").json()["version"]
        for i in range(learners):
            photo, frame = FACES[i]
            body = institution_body("Fault school")
            inst = int(post("/api/v1/institutions", admin, json=body)["id"])  # type: ignore[call-overload]
            operator = svc.token("operator", "--institution", str(inst))
            course = post("/api/v1/courses", operator, json={
                "institution_id": inst, "name": "Welder", "required_hours": 40,
                "delivery_mode": "online"})["id"]  # fmt: skip
            lid = post("/api/v1/learners", operator, json={
                "institution_id": inst, "full_name": f"Learner {i}",
                "id_number": new_id_number()})["id"]  # fmt: skip
            tok = str(post(f"/api/v1/learners/{lid}/tokens", bureau)["secret"])
            post(f"/api/v1/learners/{lid}/consent", tok, json={"text_version": version})
            post(f"/api/v1/learners/{lid}/templates", tok,
                 files={"photo": ("me.jpg", photo, "image/jpeg")})  # fmt: skip
            files = [("frame", (f"f{k}.jpg", frame, "image/jpeg")) for k in range(SIGNIN_FRAMES)]
            started = post("/api/v1/sessions", tok, data={"course_id": str(course)}, files=files)
            sid = str(started["session"]["session_id"])  # type: ignore[index]
            post(f"/api/v1/sessions/{sid}/live", tok, json={"mode": "upload"})
            out.append(Learner(frame, tok, sid, operator, inst))
    return admin, out


class Run:
    def __init__(self, kill_at: float) -> None:
        self.t0 = time.monotonic()
        self.kill_at = kill_at
        self.before = Window("before the kill (baseline)")
        self.after = Window("after the kill")
        self.first_pass_after: float | None = None

    def window(self) -> Window:
        return self.before if time.monotonic() - self.t0 < self.kill_at else self.after

    def note(self, started: float, r: httpx.Response | Exception, timed: bool = True) -> None:
        """Count an answer; its latency too unless it is a long-poll (`timed=False`)."""
        w = self.window()
        if isinstance(r, Exception):
            w.statuses[type(r).__name__] += 1
            return
        if timed:
            w.latencies.append(time.monotonic() - started)
        w.statuses[str(r.status_code)] += 1


async def drive_page(c: httpx.AsyncClient, run: Run, who: Learner, until: float) -> None:
    """A learner's page on the still-frame path."""
    h = {"Authorization": f"Bearer {who.token}"}
    while time.monotonic() < until:
        started = time.monotonic()
        try:
            r = await c.get(f"/api/v1/sessions/{who.session_id}/messages?wait=2", headers=h)
        except httpx.HTTPError as exc:
            run.note(started, exc)
            await asyncio.sleep(1)
            continue
        run.note(started, r, timed=False)
        if r.status_code != 200:
            await asyncio.sleep(1)
            continue
        for m in r.json():
            if m.get("type") == "capture":
                files = [
                    ("frames", (f"f{k}.jpg", who.frame, "image/jpeg"))
                    for k in range(int(m.get("count") or 1))
                ]
                data = {"check_id": m["check_id"], "nonce": m["nonce"]}
                started = time.monotonic()
                try:
                    a = await c.post(f"/api/v1/sessions/{who.session_id}/frames", headers=h,
                                     data=data, files=files)  # fmt: skip
                    run.note(started, a)
                except httpx.HTTPError as exc:
                    run.note(started, exc)
            elif m.get("type") == "result":
                w = run.window()
                w.results[str(m.get("verdict"))] += 1
                after = time.monotonic() - run.t0 - run.kill_at
                if w is run.after and m.get("passed") and m.get("verdict") != "deferred":
                    if run.first_pass_after is None:
                        run.first_pass_after = after


async def mix(c: httpx.AsyncClient, run: Run, people: list[Learner], rate: float,
              until: float, rng: random.Random) -> None:  # fmt: skip
    """Open-loop GETs at `rate` per second, from their scheduled times."""
    tasks = []
    i = 0
    start = time.monotonic()

    async def one(path: str, token: str | None) -> None:
        started = time.monotonic()
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            run.note(started, await c.get(path, headers=headers))
        except httpx.HTTPError as exc:
            run.note(started, exc)

    while True:
        at = start + i / rate
        if at >= until:
            break
        await asyncio.sleep(max(at - time.monotonic(), 0))
        who = people[i % len(people)]
        path, token = rng.choice([
            ("/health", None),
            (f"/api/v1/live/sessions?institution_id={who.institution_id}", who.operator),
            (f"/api/v1/sessions/{who.session_id}/messages?wait=0", who.token),
            ("/api/v1/me", who.operator),
        ])  # fmt: skip
        tasks.append(asyncio.create_task(one(path, token)))
        i += 1
    await asyncio.gather(*tasks)


async def kill_redis(svc: Service, run: Run) -> dict[str, float | int | None]:
    await asyncio.sleep(run.kill_at)
    victim = svc.redis_server()
    victim.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    back: float | None = None
    restarts = 0
    async with httpx.AsyncClient(base_url=svc.url, timeout=10) as c:
        while time.monotonic() - killed < 30:
            try:
                body = (await c.get("/health")).json()
            except (httpx.HTTPError, ValueError):
                body = {}
            if body.get("status") == "ok" and body.get("redis_restarts", 0) >= 1:
                back, restarts = time.monotonic() - killed, int(body["redis_restarts"])
                break
            await asyncio.sleep(0.05)
    return {"killed_pid": victim.pid, "health_ok_after_s": back, "redis_restarts": restarts}


def stop_service(svc: Service, how: str) -> tuple[int, list[str]]:
    """Stop the service; (processes it had started, those alive 5 s later)."""
    assert svc.proc is not None
    children = svc.descendants()
    svc.proc.send_signal(signal.SIGKILL if how == "kill" else signal.SIGTERM)
    svc.proc.wait(60)
    _, alive = psutil.wait_procs(children, timeout=5)
    left = []
    for p in alive:
        try:
            left.append(f"{p.pid} {p.name()}")
            p.kill()
        except psutil.Error:
            pass
    return len(children), left


async def main_async(args: argparse.Namespace) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="sv-fault-"))
    svc = Service(tmp)
    svc.start()
    try:
        admin, people = setup(svc, args.learners)
        run = Run(args.kill_redis_at)
        until = run.t0 + args.seconds
        limits = httpx.Limits(max_connections=256, max_keepalive_connections=64)
        async with httpx.AsyncClient(base_url=svc.url, timeout=60, limits=limits) as c:
            outcome, *_ = await asyncio.gather(
                kill_redis(svc, run),
                mix(c, run, people, args.rate, until, random.Random(args.seed)),
                *(drive_page(c, run, who, until) for who in people),
            )
    finally:
        started_count, left = stop_service(svc, args.stop)
        svc.log.close()

    print()
    print(f"{args.learners} learners supervised, GET mix at {args.rate:g}/s for "
          f"{args.seconds:g} s, redis-server killed at {args.kill_redis_at:g} s")  # fmt: skip
    print("| window | requests | statuses | 5xx | p50 ms | p99 ms | max ms | check results |")
    print("|---|---|---|---|---|---|---|---|")
    failed = False
    for w in (run.before, run.after):
        fives = sum(n for s, n in w.statuses.items() if s.startswith("5"))
        failed |= fives > 0
        lat = w.latencies
        print(
            f"| {w.name} | {sum(w.statuses.values())} | "
            f"{json.dumps(dict(sorted(w.statuses.items())))} | {fives} | "
            f"{pct(lat, 0.5) * 1000:.0f} | {pct(lat, 0.99) * 1000:.0f} | "
            f"{max(lat, default=float('nan')) * 1000:.0f} | "
            f"{json.dumps(dict(sorted(w.results.items())))} |"
        )
    print()
    back = outcome["health_ok_after_s"]
    first = run.first_pass_after
    print(f"redis: /health ok again {back if back is None else f'{back:.2f} s'} after the kill "
          f"(redis_restarts {outcome['redis_restarts']}); first passed check "
          f"{first if first is None else f'{first:.1f} s'} after it")  # fmt: skip
    print(f"service stopped with SIG{args.stop.upper()}: {started_count} processes it had "
          f"started, {len(left)} left after 5 s {left}")  # fmt: skip
    failed |= back is None or first is None or bool(left)
    return 1 if failed else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--learners", type=int, default=2, choices=(1, 2),
                   help="learners supervised live (one per packaged face)")  # fmt: skip
    p.add_argument("--rate", type=float, default=4.0, help="GETs per second beside the pages")
    p.add_argument("--seconds", type=float, default=40.0, help="length of the run")
    p.add_argument("--kill-redis-at", type=float, default=15.0, help="seconds into the run")
    p.add_argument("--stop", choices=("kill", "term"), default="kill",
                   help="how the service is stopped at the end")  # fmt: skip
    p.add_argument("--seed", type=int, default=7)
    return asyncio.run(main_async(p.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
