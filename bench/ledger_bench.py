"""Ledger benchmark: durable appends/s, verification events/s, timeline latency.

    python bench/ledger_bench.py --events 1000000 --backend both

For each backend it builds a fresh ledger of N events, appended one event per call
by many threads, each thread round-robining over its own sessions (chains), so
every session's events are interleaved in time with others, as in production:

1. baseline: every append its own transaction (group_commit=False), on a sample
   of `--baseline-events` (PostgreSQL: concurrent connections, one COMMIT each);
2. group commit: the rest of the N events through the store's single writer thread;
3. verification of the whole ledger (every hash recomputed), timed several times
   (median and best of `--verify-runs`: the machine may be shared);
4. p50/p99 of fetching one session's timeline (`read_chain`) at that size, and
   the time to list the heads of all chains (what a seal covers).

Appends are durable when they return: SQLite in WAL mode with synchronous=FULL,
PostgreSQL with synchronous_commit=on (both printed). PostgreSQL runs in a
throw-away database created on the server given by --pg-url.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from config.settings import DEV_TEMPLATE_KEY, DatabaseSettings, EvidenceSettings  # noqa: E402
from storage import Storage, open_storage  # noqa: E402
from storage.canonical import canonical_json  # noqa: E402
from storage.migrate import upgrade  # noqa: E402
from storage.types import NewEvent  # noqa: E402


@dataclass
class Result:
    backend: str
    events: int
    sessions: int
    threads: int
    baseline_events: int
    baseline_rate: float
    group_rate: float
    verify_rate: float
    verify_best: float
    timeline_events: float
    timeline_p50_ms: float
    timeline_p99_ms: float
    heads_s: float
    durability: str
    db_size: str


def payloads(n: int, seed: int) -> list[str]:
    """Realistic check events (~190 bytes): verdict, distance, evidence hash."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        out.append(
            canonical_json(
                {
                    "check": rng.choice(["identity", "presence"]),
                    "distance": round(rng.uniform(0.2, 0.7), 4),
                    "evidence": uuid.UUID(int=rng.getrandbits(128)).hex * 2,
                    "frames": 3,
                    "n": i,
                    "verdict": rng.choice(["pass", "pass", "pass", "mismatch"]),
                }
            )
        )
    return out


def run_appends(
    store: Storage, prefix: str, sessions: int, threads: int, total: int, progress_s: float = 20.0
) -> float:
    """Append `total` single-event appends; returns elapsed seconds."""
    pool = payloads(1024, seed=len(prefix))
    per_thread = [total // threads + (1 if i < total % threads else 0) for i in range(threads)]
    errors: list[BaseException] = []
    start = threading.Barrier(threads + 1)
    done = [0] * threads  # appends finished per thread (one writer per slot)
    finished = threading.Event()

    def work(t: int) -> None:
        own = [f"{prefix}{s:07d}" for s in range(t, sessions, threads)] or [f"{prefix}x{t}"]
        start.wait()
        try:
            for i in range(per_thread[t]):
                event = NewEvent("check.passed", pool[(t * 7919 + i) % len(pool)])
                store.ledger.append(own[i % len(own)], [event])
                done[t] += 1
        except BaseException as exc:  # reported after the run
            errors.append(exc)

    def report() -> None:
        last, last_t = 0, time.perf_counter()
        while not finished.wait(progress_s):
            now, now_t = sum(done), time.perf_counter()
            print(
                f"    {now:>10,} appended, {(now - last) / (now_t - last_t):>8,.0f}/s", flush=True
            )
            last, last_t = now, now_t

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    reporter = threading.Thread(target=report, daemon=True)
    start.wait()
    began = time.perf_counter()
    reporter.start()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - began
    finished.set()
    if errors:
        raise RuntimeError(f"{len(errors)} appends failed; first: {errors[0]!r}")
    return elapsed


def durability(store: Storage) -> str:
    with store.db.read() as conn:
        if store.db.is_sqlite:
            mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
            sync = conn.exec_driver_sql("PRAGMA synchronous").scalar()
            return f"journal_mode={mode}, synchronous={ {2: 'FULL', 3: 'EXTRA'}.get(sync, sync) }"
        sc = conn.exec_driver_sql("SHOW synchronous_commit").scalar()
        fs = conn.exec_driver_sql("SHOW fsync").scalar()
        return f"synchronous_commit={sc}, fsync={fs}"


def bench(backend: str, url: str, args: argparse.Namespace, size_of: Path | None) -> Result:
    n = args.events
    sessions = max(1, n // args.events_per_session)
    baseline_n = min(args.baseline_events, n)
    upgrade(url)
    evidence = EvidenceSettings(directory=Path(tempfile.mkdtemp(prefix="bench-evidence-")))
    db_settings = DatabaseSettings(url=url)
    try:
        print(f"[{backend}] baseline: {baseline_n:,} appends, one transaction each", flush=True)
        with open_storage(db_settings, evidence, DEV_TEMPLATE_KEY, group_commit=False) as store:
            mode = durability(store)
            took = run_appends(store, "b", sessions, args.threads, baseline_n)
        baseline_rate = baseline_n / took

        rest = n - baseline_n
        print(f"[{backend}] group commit: {rest:,} appends over {sessions:,} sessions", flush=True)
        with open_storage(db_settings, evidence, DEV_TEMPLATE_KEY) as store:
            took = run_appends(store, "s", sessions, args.threads, rest)
            group_rate = rest / took if rest else float("nan")

            verify_rates = []
            for run in range(args.verify_runs):
                print(f"[{backend}] verify {run + 1}/{args.verify_runs}", flush=True)
                began = time.perf_counter()
                report = store.ledger.verify()
                verify_rates.append(report.events / (time.perf_counter() - began))
                if not report.ok or report.events != n:
                    raise RuntimeError(f"verification failed: {report}")

            began = time.perf_counter()
            heads = list(store.ledger.heads())
            heads_s = time.perf_counter() - began
            if len(heads) != sessions + min(sessions, baseline_n):
                print(f"[{backend}] note: {len(heads):,} chain heads", flush=True)

            rng = random.Random(1)
            samples = [f"s{rng.randrange(sessions):07d}" for _ in range(args.timeline_samples)]
            store.ledger.read_chain(samples[0])  # warm the pool
            times, lengths = [], []
            for chain_id in samples:
                began = time.perf_counter()
                events = store.ledger.read_chain(chain_id)
                times.append((time.perf_counter() - began) * 1000)
                lengths.append(len(events))
            size = _db_size(store, size_of)
    finally:
        shutil.rmtree(evidence.directory, ignore_errors=True)
    times.sort()
    return Result(
        backend=backend,
        events=n,
        sessions=sessions,
        threads=args.threads,
        baseline_events=baseline_n,
        baseline_rate=baseline_rate,
        group_rate=group_rate,
        verify_rate=statistics.median(verify_rates),
        verify_best=max(verify_rates),
        timeline_events=statistics.mean(lengths),
        timeline_p50_ms=statistics.median(times),
        timeline_p99_ms=times[min(len(times) - 1, int(len(times) * 0.99))],
        heads_s=heads_s,
        durability=mode,
        db_size=size,
    )


def _db_size(store: Storage, path: Path | None) -> str:
    if path is not None:
        total = sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
        return f"{total / 1e6:.0f} MB"
    with store.db.read() as conn:
        size = conn.exec_driver_sql("SELECT pg_database_size(current_database())").scalar()
    return f"{int(size or 0) / 1e6:.0f} MB"


def run_sqlite(args: argparse.Namespace) -> Result:
    folder = Path(tempfile.mkdtemp(prefix="ledger-bench-", dir=args.sqlite_dir))
    path = folder / "ledger.db"
    try:
        return bench("sqlite", f"sqlite:///{path}", args, path)
    finally:
        if args.keep:
            print(f"[sqlite] kept {path}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


def run_postgres(args: argparse.Namespace) -> Result:
    import psycopg

    name = f"ledger_bench_{uuid.uuid4().hex[:8]}"
    server = args.pg_url.rstrip("/")
    admin_dsn = server.replace("postgresql+psycopg://", "postgresql://") + f"/{args.pg_admin_db}"
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        return bench("postgres", f"{server}/{name}", args, None)
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def print_table(results: list[Result]) -> None:
    rows = [
        ("events in ledger", lambda r: f"{r.events:,}"),
        ("sessions (chains)", lambda r: f"{r.sessions:,}"),
        ("appending threads", lambda r: f"{r.threads}"),
        ("durability", lambda r: r.durability),
        (
            "baseline: 1 tx per append (appends/s)",
            lambda r: f"{r.baseline_rate:,.0f} (sample of {r.baseline_events:,})",
        ),
        ("group commit (durable appends/s)", lambda r: f"{r.group_rate:,.0f}"),
        ("speed-up over baseline", lambda r: f"{r.group_rate / r.baseline_rate:.1f}x"),
        (
            "verification, whole ledger (events/s)",
            lambda r: f"{r.verify_rate:,.0f} median, {r.verify_best:,.0f} best",
        ),
        ("timeline: events per session", lambda r: f"{r.timeline_events:.0f}"),
        ("timeline fetch p50 (ms)", lambda r: f"{r.timeline_p50_ms:.2f}"),
        ("timeline fetch p99 (ms)", lambda r: f"{r.timeline_p99_ms:.2f}"),
        ("heads of all chains (s)", lambda r: f"{r.heads_s:.2f}"),
        ("database size", lambda r: r.db_size),
    ]
    headers = ["measure", *[r.backend for r in results]]
    table = [[label, *[fmt(r) for r in results]] for label, fmt in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *table, strict=False)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"
    print(line)
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in table:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=1_000_000, help="ledger size N")
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="sqlite")
    parser.add_argument("--threads", type=int, default=64, help="concurrent appending threads")
    parser.add_argument(
        "--events-per-session", type=int, default=250, help="average events per session"
    )
    parser.add_argument(
        "--baseline-events", type=int, default=10_000, help="sample size of the baseline"
    )
    parser.add_argument("--timeline-samples", type=int, default=500)
    parser.add_argument("--verify-runs", type=int, default=3, help="full verifications to time")
    parser.add_argument("--sqlite-dir", default=None, help="folder for the SQLite file")
    parser.add_argument("--keep", action="store_true", help="keep the SQLite database file")
    parser.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432")
    parser.add_argument("--pg-admin-db", default="test", help="database to connect to for DDL")
    args = parser.parse_args(argv)
    if args.events < 1 or args.threads < 1:
        parser.error("--events and --threads must be positive")

    results = []
    began = time.perf_counter()
    if args.backend in ("sqlite", "both"):
        results.append(run_sqlite(args))
    if args.backend in ("postgres", "both"):
        results.append(run_postgres(args))
    print(f"\ntotal wall time {time.perf_counter() - began:.0f} s\n")
    print_table(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
