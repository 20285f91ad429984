"""Eligibility and the monthly report over a generated ledger, SQLite and PostgreSQL.

    python bench/eligibility_bench.py --learners 100000 --backend both

For each backend, a fresh database gets a generated world (tests/ledgergen.py:
institutions, two courses each, learners with consent, a face, an enrolment, an
assessment, three online sessions of about 30 checks each, some classroom roll
calls, planted frauds), written in bulk with valid hash chains (a sample of
chains is verified with the store's own `verify`). Then, timed:

1. **eligibility, all learners**: one streaming pass over every event
   (`subsidy_scan.scan`) and `eligibility.evaluate` for every (learner, course);
2. **monthly report**: the report of the generated month, end to end (its own
   scan of the ledger up to the month's end, then the aggregation), and the
   aggregation alone over the snapshot of step 1;
3. **baseline** (in the same run): the naive way, per learner, every chain read
   with `read_chain` and decoded with `events.decode` into the reference
   functions (`summarise_session`, ...), on a random sample of learners,
   extrapolated to all of them (labelled as such).

Aims (issue 6): eligibility under 60 s and the report under 10 s at 100,000
learners and 10 million events. Prints a table; the last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from config import Settings  # noqa: E402
from config.settings import DEV_TEMPLATE_KEY, DatabaseSettings, EvidenceSettings  # noqa: E402
from storage import Storage, open_storage  # noqa: E402
from storage.migrate import upgrade  # noqa: E402
from supervisor import events as ev  # noqa: E402
from supervisor import subsidy_events as se  # noqa: E402
from supervisor.eligibility import (  # noqa: E402
    course_terms,
    evaluate,
    summarise_flag,
    summarise_learner,
    summarise_session,
)
from supervisor.report import month_bounds, monthly_report  # noqa: E402
from supervisor.subsidy_scan import Gaps, scan  # noqa: E402
from tests import ledgergen as lg  # noqa: E402

MONTH = "2026-10"


@dataclass
class Result:
    backend: str
    learners: int
    events: int
    chains: int
    load_s: float
    sample_verified: str
    eligibility_s: float
    decisions: int
    eligible: int
    subsidy_total: float
    report_s: float
    report_from_snapshot_s: float
    baseline_sample: int
    baseline_per_learner_ms: float
    baseline_extrapolated_s: float


def naive_eligibility(storage: Storage, settings: Settings, learner_id: int, course: int) -> bool:
    """The baseline: every chain of one learner read and decoded the general way."""
    gaps = Gaps.of(settings)
    learner = summarise_learner(
        learner_id,
        [e for _, e in ev.decode_all(storage.ledger.read_chain(f"learner:{learner_id}"))],
    )
    terms = course_terms(
        [e for _, e in ev.decode_all(storage.ledger.read_chain(se.course_chain(course)))]
    )
    sessions = []
    for s in storage.registry.list_sessions(None, learner_id, False):
        stored = storage.ledger.read_chain(s.chain_id)
        found = summarise_session(s.chain_id, [e for _, e in ev.decode_all(stored)], gaps.online)
        if found is not None:
            sessions.append(found)
    flags = []
    for f in storage.subsidy.find_flags(learner_id=learner_id):
        found_flag = summarise_flag(
            [e for _, e in ev.decode_all(storage.ledger.read_chain(se.flag_chain(f.id)))]
        )
        if found_flag is not None:
            flags.append(found_flag)
    registered = True
    return evaluate(terms, course, registered, learner, sessions, flags).eligible


def bench(backend: str, url: str, args: argparse.Namespace, folder: Path) -> Result:
    upgrade(url)
    storage = open_storage(
        DatabaseSettings(url=url), EvidenceSettings(directory=folder / "evidence"), DEV_TEMPLATE_KEY
    )
    settings = Settings(database={"url": url}, data_dir=folder)  # type: ignore[arg-type]
    try:
        plan = lg.Plan(
            learners=args.learners,
            institutions=args.institutions,
            sessions_per_learner=3,
            checks_per_session=args.checks_per_session,
        )
        t = time.perf_counter()
        world = lg.build_registry(storage, plan)
        lg.load(storage, world)
        load_s = time.perf_counter() - t
        if not storage.db.is_sqlite:
            # A bulk COPY leaves the planner without statistics; autovacuum would
            # analyse later. Without this the per-learner baseline's lookups plan badly.
            with storage.db.write() as conn:
                conn.exec_driver_sql("ANALYZE")
        print(
            f"[{backend}] loaded {world.events:,} events in {world.chains:,} chains "
            f"in {load_s:.1f} s",
            flush=True,
        )
        rng = random.Random(1)
        chains = [f"learner:{i}" for i in rng.sample(world.learner_ids, min(200, args.learners))]
        chains += [
            s.chain_id for s in storage.registry.list_sessions(None, world.learner_ids[0], False)
        ]
        report = storage.ledger.verify(chains)
        verified = (
            f"{report.chains} chains, {report.events} events: {'ok' if report.ok else 'BROKEN'}"
        )
        print(f"[{backend}] sample verified: {verified}", flush=True)

        t = time.perf_counter()
        snap = scan(storage, settings)
        decisions = eligible = 0
        total = 0.0
        for learner_id, summary in snap.learners.items():
            for course in summary.courses:
                e = snap.eligibility(learner_id, course)
                decisions += 1
                if e.eligible:
                    eligible += 1
                    total += e.amount
        eligibility_s = time.perf_counter() - t
        print(
            f"[{backend}] eligibility: {decisions:,} decisions in {eligibility_s:.1f} s", flush=True
        )

        courses = {c.id: c for c in storage.registry.list_courses()}
        learners = {lr.id: lr for lr in storage.registry.list_learners()}
        institutions = storage.registry.list_institutions()
        start, end = month_bounds(MONTH, settings.subsidy.timezone)
        t = time.perf_counter()
        month_snap = scan(storage, settings, end)
        monthly_report(
            month_snap,
            institutions,
            courses,
            learners,
            MONTH,
            start,
            end,
            settings.subsidy.timezone,
        )
        report_s = time.perf_counter() - t
        t = time.perf_counter()
        monthly_report(
            snap, institutions, courses, learners, MONTH, start, end, settings.subsidy.timezone
        )
        from_snapshot_s = time.perf_counter() - t
        print(
            f"[{backend}] report: {report_s:.1f} s end to end, "
            f"{from_snapshot_s:.2f} s from the snapshot",
            flush=True,
        )

        sample = rng.sample(world.learner_ids, min(args.baseline_sample, args.learners))
        t = time.perf_counter()
        for learner_id in sample:
            for course in snap.learners[learner_id].courses:
                naive_eligibility(storage, settings, learner_id, course)
        per_learner = (time.perf_counter() - t) / len(sample)
        return Result(
            backend,
            args.learners,
            world.events,
            world.chains,
            round(load_s, 1),
            verified,
            round(eligibility_s, 2),
            decisions,
            eligible,
            round(total, 2),
            round(report_s, 2),
            round(from_snapshot_s, 3),
            len(sample),
            round(per_learner * 1000, 2),
            round(per_learner * args.learners, 1),
        )
    finally:
        storage.close()


def run_sqlite(args: argparse.Namespace) -> Result:
    folder = Path(tempfile.mkdtemp(prefix="elig_bench_", dir=args.tmp))
    try:
        return bench("sqlite", f"sqlite:///{folder / 'bench.db'}", args, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run_postgres(args: argparse.Namespace) -> Result:
    import psycopg

    name = f"sv6_elig_bench_{uuid.uuid4().hex[:8]}"
    server = args.pg_url.rstrip("/")
    admin_dsn = server.replace("postgresql+psycopg://", "postgresql://") + "/postgres"
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    folder = Path(tempfile.mkdtemp(prefix="elig_bench_", dir=args.tmp))
    try:
        return bench("postgres", f"{server}/{name}", args, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def print_table(results: list[Result]) -> None:
    rows = [
        ("learners", lambda r: f"{r.learners:,}"),
        ("events in ledger", lambda r: f"{r.events:,}"),
        ("chains", lambda r: f"{r.chains:,}"),
        ("bulk load (s)", lambda r: f"{r.load_s}"),
        ("sample verified", lambda r: r.sample_verified),
        ("eligibility, all learners (s)", lambda r: f"{r.eligibility_s}"),
        ("  decisions / eligible", lambda r: f"{r.decisions:,} / {r.eligible:,}"),
        ("  events/s", lambda r: f"{r.events / r.eligibility_s:,.0f}"),
        ("monthly report, end to end (s)", lambda r: f"{r.report_s}"),
        ("monthly report from the snapshot (s)", lambda r: f"{r.report_from_snapshot_s}"),
        (
            "baseline: naive per learner (ms)",
            lambda r: f"{r.baseline_per_learner_ms} (sample of {r.baseline_sample})",
        ),
        (
            "baseline extrapolated to all (s)",
            lambda r: f"{r.baseline_extrapolated_s} (extrapolated)",
        ),
        (
            "speed-up over the baseline",
            lambda r: f"{r.baseline_extrapolated_s / r.eligibility_s:.1f}x",
        ),
    ]
    width = max(len(name) for name, _ in rows)
    print()
    print(f"| {'measure'.ljust(width)} | " + " | ".join(r.backend for r in results) + " |")
    print(f"|{'-' * (width + 2)}|" + "|".join("---" for _ in results) + "|")
    for name, cell in rows:
        print(f"| {name.ljust(width)} | " + " | ".join(cell(r) for r in results) + " |")
    print(json.dumps([asdict(r) for r in results]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--learners", type=int, default=100_000)
    parser.add_argument("--institutions", type=int, default=50)
    parser.add_argument("--checks-per-session", type=int, default=30)
    parser.add_argument("--baseline-sample", type=int, default=300)
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432")
    parser.add_argument("--tmp", default=None, help="folder for the SQLite database")
    args = parser.parse_args()
    results = []
    if args.backend in ("sqlite", "both"):
        results.append(run_sqlite(args))
    if args.backend in ("postgres", "both"):
        results.append(run_postgres(args))
    print_table(results)


if __name__ == "__main__":
    main()
