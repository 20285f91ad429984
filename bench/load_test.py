"""Load test of the sign-in check path (and any GET path, such as the inspector's search)
at a stated rate, on loopback, bounded in time.

    .venv/bin/python bench/load_test.py [--rate 6] [--seconds 60] [--learners 12]
        [--search-rate 5] [--search-path /api/v1/inspect/sessions?q=Learner]

The service is `supervisor serve` in its own process on embedded defaults (SQLite,
embedded Redis, in-process verification workers) in a temporary directory. The load
is open-loop: requests leave on a fixed schedule whatever the service's answers
(the schedule is not slowed down by slow answers, which would hide queueing: the
"coordinated omission" of closed-loop tools); latency is from the scheduled send time.

Phases, each at its own rate, one after the other:
- baseline: GET /health at the check rate (the HTTP floor of this machine);
- sign-ins: a learner's sign-in (the burst of frames the server asks for, an identity
  check with its liveness, recorded with the session's start), then the session's end,
  spread over the learners. Checks during a session are the server's to ask for
  (issue 21): a client can no longer post one when it likes, so the sign-in is the one
  check a client starts, and it is the heaviest (several frames, identity).
- search: GETs of --search-path with an inspector token, if given.

After the run, every 201 answer's check_id must be in the ledger exactly once, no
sign-in check may be in the ledger that was not answered (or was answered with an
error), and every chain must verify. Benchmark-only settings: every learner is enrolled
from the same photo and signs in with the same frames, so the duplicate-identity
search, replay detection and passive liveness (a still photo) are off. The table shows
status counts and latency p50/p99/max.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests import imagegen  # noqa: E402
from tests.supervisor.conftest import new_credit_code, new_id_number  # noqa: E402

FRAME = imagegen.jpeg_bytes(imagegen.webcam_frame(imagegen.grace_hopper(), face_width=170))


def photo(i: int) -> bytes:
    """Learner i's enrolment photo: the same face, a little brighter for each learner
    (one photo enrolled twice is the same template, which the duplicate search refuses
    at any threshold)."""
    image = imagegen.grace_hopper().astype("float32") * (1 + 0.004 * i)
    return imagegen.jpeg_bytes(image.clip(0, 255).astype("uint8"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Phase:
    name: str
    rate: float
    seconds: float
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    answered_ids: list[str] = field(default_factory=list)
    failed_ids: list[str] = field(default_factory=list)
    late_starts: int = 0


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Service:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.env = {
            **os.environ,
            "SUPERVISOR_DATA_DIR": str(tmp),
            "SUPERVISOR_DATABASE__URL": f"sqlite:///{tmp / 'supervisor.db'}",
            "SUPERVISOR_EVIDENCE__DIRECTORY": str(tmp / "evidence"),
            "SUPERVISOR_REDIS__EMBEDDED_PATH": str(tmp / "redis.db"),
            "SUPERVISOR_SERVER__PORT": str(self.port),
            # Benchmark only: every learner is enrolled from the same photo and signs in
            # with the same still frames (see the docstring).
            "SUPERVISOR_FACE__DUPLICATE_THRESHOLD": "0.01",
            "SUPERVISOR_FACE__SFACE__DUPLICATE_THRESHOLD": "0.0001",
            "SUPERVISOR_LIVENESS__REPLAY_CHECK": "false",
            "SUPERVISOR_LIVENESS__PASSIVE": "false",
            # The limiter stays on (its cost is part of the path) but above the test rate.
            "SUPERVISOR_WEB__UPLOADS_PER_WINDOW": "100000",
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"http://127.0.0.1:{self.port}"

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "supervisor.cli", *args],
            env=self.env,
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout

    def start(self) -> None:
        self.cli("migrate")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "supervisor.cli", "serve"],
            env=self.env,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=open(self.tmp / "server.log", "wb"),  # noqa: SIM115
            start_new_session=True,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError("the service did not start; see server.log")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)

    def token(self, role: str, *extra: str) -> str:
        out = self.cli("token", "create", "--role", role, *extra)
        return out.strip().splitlines()[-1].split()[-1]


def setup(svc: Service, learners: int) -> tuple[str, str, int, int, list[str]]:
    """Institution, course and `learners` enrolled, consenting learners (their tokens)."""
    admin = svc.token("admin")
    h = {"Authorization": f"Bearer {admin}"}
    with httpx.Client(base_url=svc.url, timeout=120) as c:
        body = {"name": "Load school", "credit_code": new_credit_code()}
        inst = c.post("/api/v1/institutions", headers=h, json=body).json()["id"]
        course = c.post(
            "/api/v1/courses",
            headers=h,
            json={
                "institution_id": inst,
                "name": "Welder",
                "required_hours": 40,
                "delivery_mode": "online",
            },
        ).json()["id"]
        tokens: list[str] = []
        for i in range(learners):
            lid = c.post(
                "/api/v1/learners",
                headers=h,
                json={
                    "institution_id": inst,
                    "full_name": f"Learner {i}",
                    "id_number": new_id_number(),
                },
            ).json()["id"]
            c.post(
                f"/api/v1/courses/{course}/enrolments",
                headers=h,
                json={"learner_ids": [lid]},
            )
            tok = c.post(f"/api/v1/learners/{lid}/tokens", headers=h).json()["secret"]
            lh = {"Authorization": f"Bearer {tok}"}
            version = c.get("/api/v1/consent-text").json()["version"]
            r = c.post(
                f"/api/v1/learners/{lid}/consent", headers=lh, json={"text_version": version}
            )
            r.raise_for_status()
            r = c.post(
                f"/api/v1/learners/{lid}/templates",
                headers=lh,
                files={"photo": ("me.jpg", photo(i), "image/jpeg")},
            )
            r.raise_for_status()
            tokens.append(tok)
        burst = c.get("/api/v1/sessions/sign-in").json()
    inspector = svc.token("inspector")
    return admin, inspector, course, int(burst["frames"]), tokens


async def run_phase(
    client: httpx.AsyncClient, phase: Phase, make: object, concurrency_cap: int = 512
) -> None:
    """Send `phase.rate` requests per second for `phase.seconds`, open loop."""
    assert callable(make)
    start = time.monotonic() + 0.5
    n = int(phase.rate * phase.seconds)
    sem = asyncio.Semaphore(concurrency_cap)
    tasks = []

    async def one(i: int, at: float) -> None:
        async with sem:
            if time.monotonic() - at > 0.05:
                phase.late_starts += 1
            try:
                r, check_ref = await make(client, i)
            except httpx.HTTPError as exc:
                phase.statuses[type(exc).__name__] += 1
                return
            phase.latencies.append(time.monotonic() - at)
            phase.statuses[str(r.status_code)] += 1
            if check_ref is not None:
                if r.status_code == 201:
                    phase.answered_ids.append(r.json()["check"]["check_id"])
                else:
                    phase.failed_ids.append(check_ref)

    for i in range(n):
        at = start + i / phase.rate
        delay = at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, at)))
    await asyncio.gather(*tasks)


def check_ledger(svc: Service, admin: str) -> dict[str, int]:
    """Sign-in checks (purpose 'start') in the ledger by check id, over every session."""
    h = {"Authorization": f"Bearer {admin}"}
    seen: Counter[str] = Counter()
    with httpx.Client(base_url=svc.url, timeout=120) as c:
        sessions = c.get("/api/v1/sessions", headers=h).json()
        for s in sessions:
            events = c.get(f"/api/v1/sessions/{s['session_id']}/events", headers=h).json()
            for e in events:
                if e["kind"] == "check" and e["payload"]["purpose"] == "start":
                    seen[e["payload"]["check_id"]] += 1
    return dict(seen)


async def main_async(args: argparse.Namespace) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="sv-load-"))
    svc = Service(tmp)
    svc.start()
    try:
        admin, inspector, course, frames, tokens = setup(svc, args.learners)
        phases: list[tuple[Phase, object]] = []
        busy: set[int] = set()  # learners with a sign-in in flight (one session each)

        async def health(client: httpx.AsyncClient, i: int) -> tuple[httpx.Response, None]:
            return await client.get("/health"), None

        async def check(client: httpx.AsyncClient, i: int) -> tuple[httpx.Response, str]:
            k = next((j % len(tokens) for j in range(i, i + len(tokens)) if j % len(tokens)
                      not in busy), i % len(tokens))  # fmt: skip
            busy.add(k)
            h = {"Authorization": f"Bearer {tokens[k]}"}
            try:
                r = await client.post(
                    "/api/v1/sessions",
                    headers=h,
                    data={"course_id": str(course), "mode": "upload"},
                    files=[("frame", (f"f{n}.jpg", FRAME, "image/jpeg")) for n in range(frames)],
                )
                if r.status_code == 201:
                    sid = r.json()["session"]["session_id"]
                    await client.post(f"/api/v1/sessions/{sid}/end", headers=h)
            finally:
                busy.discard(k)
            return r, f"{k}#{i}"

        async def search(client: httpx.AsyncClient, i: int) -> tuple[httpx.Response, None]:
            r = await client.get(args.search_path, headers={"Authorization": f"Bearer {inspector}"})
            return r, None

        phases.append((Phase("baseline: GET /health", args.rate, args.seconds), health))
        phases.append((Phase("sign-in (identity, burst) + end", args.rate, args.seconds), check))
        if args.search_path:
            phases.append(
                (
                    Phase(f"inspector search {args.search_path}", args.search_rate, args.seconds),
                    search,
                )
            )
        before = check_ledger(svc, admin)
        limits = httpx.Limits(max_connections=512, max_keepalive_connections=64)
        async with httpx.AsyncClient(base_url=svc.url, timeout=120, limits=limits) as client:
            for phase, make in phases:
                await run_phase(client, phase, make)
        after = check_ledger(svc, admin)
        with httpx.Client(base_url=svc.url, timeout=300) as c:
            integrity = c.get(
                "/api/v1/ledger/integrity", headers={"Authorization": f"Bearer {admin}"}
            ).json()
    finally:
        svc.stop()

    checks = phases[1][0]
    new_ids = {k: v for k, v in after.items() if k not in before}
    answered = set(checks.answered_ids)
    lost = answered - set(new_ids)
    duplicated = {k for k, v in new_ids.items() if v > 1}
    unanswered_but_stored = set(new_ids) - answered
    print()
    print(
        f"rate {args.rate}/s for {args.seconds:.0f} s, {args.learners} learners, seed {args.seed}"
    )
    print("| phase | rate /s | requests | statuses | p50 ms | p99 ms | max ms | late sends |")
    print("|---|---|---|---|---|---|---|---|")
    for phase, _ in phases:
        lat = phase.latencies
        print(
            f"| {phase.name} | {phase.rate:g} | {sum(phase.statuses.values())} | "
            f"{json.dumps(dict(sorted(phase.statuses.items())))} | {pct(lat, 0.5) * 1000:.0f} | "
            f"{pct(lat, 0.99) * 1000:.0f} | {max(lat, default=float('nan')) * 1000:.0f} | "
            f"{phase.late_starts} |"
        )
    print()
    print(
        f"ledger: {len(answered)} sign-ins acknowledged (201), {len(new_ids)} new sign-in checks "
        f"in the ledger; lost {len(lost)}, duplicated {len(duplicated)}, stored without a 201 "
        f"{len(unanswered_but_stored)}; integrity ok={integrity.get('ok')} "
        f"({integrity.get('chains')} chains, {integrity.get('events')} events)"
    )
    if checks.latencies:
        print(f"check latency mean {statistics.mean(checks.latencies) * 1000:.0f} ms")
    ok = not lost and not duplicated and integrity.get("ok")
    return 0 if ok else 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rate", type=float, default=6.0, help="sign-ins per second")
    p.add_argument("--seconds", type=float, default=60.0, help="length of each phase")
    p.add_argument("--learners", type=int, default=24, help="enrolled learners signing in")
    p.add_argument("--search-path", default="", help="GET path for the inspector phase")
    p.add_argument("--search-rate", type=float, default=5.0, help="searches per second")
    p.add_argument("--seed", type=int, default=7)
    return asyncio.run(main_async(p.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
