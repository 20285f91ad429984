"""Eligibility and the monthly report over a generated ledger, SQLite and PostgreSQL.

    python bench/eligibility_bench.py --learners 100000 --backend both

For each backend, a fresh database gets a generated world (tests/ledgergen.py:
institutions, two courses each, learners with consent, a face, an enrolment, an
assessment, three online sessions of about 30 checks each, some classroom roll
calls, planted frauds), written in bulk with valid hash chains (a sample of chains
is verified with the store's own `verify`). Then, timed, each as a reader would see it:

1. **recomputation** (the baseline of the summaries): every chain folded from its
   events in one streaming pass (`scan(..., use_summaries=False)`, what an inspector's
   `--recompute` runs) and `eligibility.evaluate` for every (learner, course);
2. **first scan**: the same with the chain summaries empty: every chain folded and its
   summary stored (after an upgrade, or a change of the fold's settings);
3. **eligibility, summaries current**: every chain read from its summary;
4. **monthly report, end to end** (registry maps, the month's scan, the aggregation),
   with the summaries current;
5. **after the ledger grew**: 1% of the sessions get two more checks and 1% of the
   learners a new assessment result, through the ledger's real `append`; then the
   background refresh (`refresh_summaries`), eligibility and the report again;
6. **naive baseline** (in the same run): per learner, every chain read with
   `read_chain` and decoded with `events.decode` into the reference functions, on a
   random sample of learners, extrapolated to all of them (labelled as such).

Integrity (issue 21: money only from intact chains, seals vouch for what they
verified). Every scan verifies the chains it folds (incrementally: from the head its
summary covers), so the rows above include that cost. Timed besides, in the same run:
the **full verification** of every event (`LedgerStore.verify()`, what a scan that
re-hashed everything would add), a **seal without verification** (the heads, the
Merkle root and the signature: what a seal cost before), the **first verifying seal**
(no earlier verifying seal: every chain re-hashed from its first event), a seal when
nothing grew (one row read per chain), and a seal after the growth of step 5 (only the
new events re-hashed).

The dispatch report (issue 19), beside the monthly report as the in-run baseline: a
month's report for the busiest province with the summaries current (and compared with
its recomputation from every event, which must be equal), the same nationwide, the
month closed (computed, its SHA-256 appended to the ledger, the copy kept), the closed
copy served from the store (read, checked against its ledger event, parsed: median of
20), and after the growth of step 5 the open report again and the closed copy (which
must not have changed).

Every scan's decisions are compared with the recomputation's (they must be equal).
Aims (issue 6): eligibility under 60 s and the report under 10 s at 100,000 learners
and 10 million events. Prints a table; the last line is JSON.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from config import Settings  # noqa: E402
from config.settings import (  # noqa: E402
    DEV_SEAL_KEY,
    DEV_TEMPLATE_KEY,
    DatabaseSettings,
    EvidenceSettings,
)
from storage import Storage, open_storage  # noqa: E402
from storage.migrate import upgrade  # noqa: E402
from supervisor.inspect import seals as sl  # noqa: E402
from supervisor.inspect.sealing import make_seal  # noqa: E402
from supervisor.ledger import codec  # noqa: E402
from supervisor.ledger import events as ev  # noqa: E402
from supervisor.ledger import subsidy as se  # noqa: E402
from supervisor.rules.dispatch import parse_period  # noqa: E402
from supervisor.rules.eligibility import (  # noqa: E402
    course_terms,
    evaluate,
    summarise_flag,
    summarise_learner,
    summarise_session,
)
from supervisor.rules.months import month_bounds  # noqa: E402
from supervisor.runtime.gc_pause import gc_paused  # noqa: E402
from supervisor.subsidy.dispatch import compute, keep, read_kept  # noqa: E402
from supervisor.subsidy.report import monthly_report  # noqa: E402
from supervisor.subsidy.scan import (  # noqa: E402
    FoldRules,
    Snapshot,
    refresh_summaries,
    scan,
)
from tests import ledgergen as lg  # noqa: E402

MONTH = "2026-10"
PROVINCE = "330000"  # the first of `ledgergen.PROVINCES`: the most institutions
T = TypeVar("T")


@dataclass
class Result:
    backend: str
    learners: int
    events: int
    chains: int
    load_s: float
    migrate_s: float
    sample_verified: str
    recompute_s: float
    first_scan_s: float
    eligibility_s: float
    decisions: int
    eligible: int
    subsidy_total: float
    report_s: float
    report_recompute_s: float
    grown_events: int
    refresh_s: float
    refresh_refolded: int
    grown_eligibility_s: float
    grown_report_s: float
    baseline_sample: int
    baseline_per_learner_ms: float
    baseline_extrapolated_s: float
    full_verify_s: float = 0.0
    unverified_seal_s: float = 0.0
    first_seal_s: float = 0.0
    unchanged_seal_s: float = 0.0
    grown_seal_s: float = 0.0
    broken_found: int = 0
    dispatch_province_s: float = 0.0
    dispatch_recompute_s: float = 0.0
    dispatch_nationwide_s: float = 0.0
    dispatch_close_s: float = 0.0
    dispatch_served_ms: float = 0.0
    grown_dispatch_s: float = 0.0
    grown_served_ms: float = 0.0
    dispatch_regions: str = ""


@gc_paused  # as `report.claims`, which decides every claim of a period, runs
def decide_all(snap: Snapshot) -> tuple[int, int, float, str]:
    """Every (learner, course) decision of a snapshot: counts, the subsidy total, and a
    digest of every decision (to compare two scans)."""
    digest = hashlib.sha256()
    decisions = eligible = 0
    total = 0.0
    for learner_id in sorted(snap.learners):
        for course in sorted(snap.learners[learner_id].courses):
            e = snap.eligibility(learner_id, course)
            decisions += 1
            if e.eligible:
                eligible += 1
                total += e.amount
            digest.update(repr(e).encode())
    return decisions, eligible, round(total, 2), digest.hexdigest()


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def report_end_to_end(storage: Storage, settings: Settings, recompute: bool = False) -> Any:
    """What `GET /reports/monthly` computes: the registry maps, the month's scan and
    the aggregation."""
    courses = {c.id: c for c in storage.registry.list_courses()}
    institutions = storage.registry.list_institutions()
    start, end = month_bounds(MONTH, settings.subsidy.timezone)
    snap = scan(storage, settings, end, use_summaries=not recompute)
    tz = settings.subsidy.timezone
    return monthly_report(snap, institutions, courses, MONTH, start, end, tz)


def served_ms(storage: Storage, sha256: str, runs: int = 20) -> float:
    """The closed month's copy as `GET /reports/dispatch` reads it (the kept row, its
    ledger event, the hash check, the JSON parsed): the median of `runs`, in ms. The
    copy must be the one closed (`sha256`)."""
    times = []
    for _ in range(runs):
        (served, _), s = timed(lambda: read_kept(storage, PROVINCE, MONTH))
        assert served is not None and served.sha256 == sha256, "the closed copy changed"
        times.append(s)
    return round(sorted(times)[len(times) // 2] * 1000, 2)


def dispatch_steps(storage: Storage, settings: Settings) -> dict[str, Any]:
    """The dispatch report of the month: the busiest province from current summaries
    (equal to its recomputation), nationwide, closed, and served from its copy."""
    period = parse_period(MONTH, settings.subsidy.timezone)
    province, province_s = timed(lambda: compute(storage, settings, period, PROVINCE, period.end))
    recomputed, recompute_s = timed(
        lambda: compute(storage, settings, period, PROVINCE, period.end, use_summaries=False)
    )
    assert province == recomputed, "the dispatch report differs from its recomputation"
    country, nationwide_s = timed(lambda: compute(storage, settings, period, None, period.end))
    levels = [r["level"] for r in country["regions"]]
    regions = f"{levels.count('province')} provinces, {levels.count('county')} counties"
    served, _ = read_kept(storage, PROVINCE, MONTH)
    close_s = 0.0
    if served is None:  # a kept world may have been closed by an earlier run

        def close() -> str:
            body = compute(storage, settings, period, PROVINCE, period.end)
            now = datetime.now(UTC)
            record, _ = keep(
                storage, period, PROVINCE, body, period.end, "bench", None, "bench", now
            )
            return record.sha256

        sha256, close_s = timed(close)
    else:
        sha256 = served.sha256
    top = province["regions"][0]["figures"]
    return {
        "province_s": round(province_s, 2),
        "recompute_s": round(recompute_s, 2),
        "nationwide_s": round(nationwide_s, 2),
        "close_s": round(close_s, 2),
        "served_ms": served_ms(storage, sha256),
        "sha256": sha256,
        "regions": f"{regions}; {PROVINCE}: {top['trainings']:,} trainings, "
        f"{top['certificates']:,} certificates",
    }


def dispatch_only(
    storage: Storage,
    settings: Settings,
    args: argparse.Namespace,
    backend: str,
    learners: int,
    load_s: float,
    migrate_s: float,
    verified: str,
) -> Result:
    """`--dispatch-only`: the summaries brought up to date, then the monthly report (the
    in-run baseline) and the dispatch steps, before and after the growth."""
    refreshed, first_s = timed(lambda: refresh_summaries(storage, settings))
    print(f"[{backend}] summaries stored: {first_s:.1f} s", flush=True)
    report_json, report_s = timed(lambda: report_end_to_end(storage, settings))
    print(f"[{backend}] monthly report {report_s:.1f} s", flush=True)
    d = dispatch_steps(storage, settings)
    print(f"[{backend}] dispatch: {d}", flush=True)
    snap = scan(storage, settings)
    grown = grow(storage, snap, args.grow_share)
    again, refresh_s = timed(lambda: refresh_summaries(storage, settings))
    _, grown_report_s = timed(lambda: report_end_to_end(storage, settings))
    period = parse_period(MONTH, settings.subsidy.timezone)
    _, grown_dispatch_s = timed(lambda: compute(storage, settings, period, PROVINCE, period.end))
    grown_served_ms = served_ms(storage, d["sha256"])
    return Result(
        backend, learners, snap.events, snap.chains, round(load_s, 1), round(migrate_s, 1),
        verified, 0.0, round(first_s, 2), 0.0, 0, 0, 0.0, round(report_s, 2), 0.0, grown,
        round(refresh_s, 2), again.refolded, 0.0, round(grown_report_s, 2), 0, 0.0, 0.0,
        dispatch_province_s=d["province_s"], dispatch_recompute_s=d["recompute_s"],
        dispatch_nationwide_s=d["nationwide_s"], dispatch_close_s=d["close_s"],
        dispatch_served_ms=d["served_ms"], grown_dispatch_s=round(grown_dispatch_s, 2),
        grown_served_ms=grown_served_ms, dispatch_regions=d["regions"],
    )  # fmt: skip


def grow(storage: Storage, snap: Snapshot, share: float, seed: int = 7) -> int:
    """Append, through the ledger's own `append` (group commit, 32 threads), two passed
    checks to `share` of the online sessions and a new assessment result to `share` of
    the learners. Returns the number of events appended."""
    rng = random.Random(seed)
    sessions = [s for s in snap.all_sessions() if s.kind == "online"]
    picked = rng.sample(sessions, max(1, int(len(sessions) * share)))
    learners = rng.sample(sorted(snap.learners), max(1, int(len(snap.learners) * share)))
    jobs: list[tuple[str, list[Any]]] = []
    for s in picked:
        checks = [
            ev.CheckRecorded(
                uuid.uuid4().hex,
                "presence",
                "scheduled",
                "present",
                True,
                s.last_at + timedelta(seconds=60 * n),
                None,
                None,
                (),
                1,
                3,
                None,
            )  # fmt: skip
            for n in (1, 2)
        ]
        jobs.append((s.chain_id, [codec.encode(c) for c in checks]))
    for learner_id in learners:
        summary = snap.learners[learner_id]
        if not summary.assessments:
            continue
        course, _, at = summary.assessments[0]
        result = se.AssessmentRecorded(learner_id, course, 9, True, 75.0, at, "bench", at)
        jobs.append((ev.learner_chain(learner_id), [codec.encode(result)]))
    with ThreadPoolExecutor(32) as pool:
        list(pool.map(lambda job: storage.ledger.append(*job), jobs))
    return sum(len(events) for _, events in jobs)


def naive_eligibility(storage: Storage, settings: Settings, learner_id: int, course: int) -> bool:
    """The baseline: every chain of one learner read and decoded the general way."""
    rules = FoldRules.of(settings)
    learner = summarise_learner(
        learner_id,
        [e for _, e in codec.decode_all(storage.ledger.read_chain(f"learner:{learner_id}"))],
    )
    terms = course_terms(
        [e for _, e in codec.decode_all(storage.ledger.read_chain(se.course_chain(course)))]
    )
    sessions = []
    for s in storage.registry.list_sessions(None, learner_id, False):
        stored = storage.ledger.read_chain(s.chain_id)
        events = [e for _, e in codec.decode_all(stored)]
        found = summarise_session(s.chain_id, events, rules.online_gap, rules.tz_name)
        if found is not None:
            sessions.append(found)
    flags = []
    for f in storage.subsidy.find_flags(learner_id=learner_id):
        found_flag = summarise_flag(
            [e for _, e in codec.decode_all(storage.ledger.read_chain(se.flag_chain(f.id)))]
        )
        if found_flag is not None:
            flags.append(found_flag)
    registered = True
    return evaluate(terms, course, registered, learner, sessions, flags).eligible


def bench(backend: str, url: str, args: argparse.Namespace, folder: Path) -> Result:
    _, migrate_s = timed(lambda: upgrade(url))
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
        load_s = 0.0
        if storage.ledger.head(ev.learner_chain(1)) is None:
            t = time.perf_counter()
            world = lg.build_registry(storage, plan)
            lg.load(storage, world)
            load_s = time.perf_counter() - t
            if not storage.db.is_sqlite:
                # A bulk COPY leaves the planner without statistics; autovacuum would
                # analyse later. Without this the per-learner baseline's lookups plan badly.
                with storage.db.write() as conn:
                    conn.exec_driver_sql("ANALYZE")
            print(f"[{backend}] loaded {world.events:,} events in {load_s:.1f} s", flush=True)
        else:
            print(f"[{backend}] reusing the world in {url}; migration {migrate_s:.1f} s")
        learner_ids = [lr.id for lr in storage.registry.list_learners()]
        rng = random.Random(1)
        chains = [f"learner:{i}" for i in rng.sample(learner_ids, min(200, len(learner_ids)))]
        chains += [s.chain_id for s in storage.registry.list_sessions(None, learner_ids[0], False)]
        report = storage.ledger.verify(chains)
        verified = (
            f"{report.chains} chains, {report.events} events: {'ok' if report.ok else 'BROKEN'}"
        )
        print(f"[{backend}] sample verified: {verified}", flush=True)
        if args.dispatch_only:
            return dispatch_only(storage, settings, args, backend, len(learner_ids), load_s,
                                 migrate_s, verified)  # fmt: skip

        def eligibility(use_summaries: bool = True) -> tuple[Snapshot, tuple[Any, ...]]:
            snap = scan(storage, settings, use_summaries=use_summaries)
            return snap, decide_all(snap)

        (truth, want), recompute_s = timed(lambda: eligibility(False))
        print(f"[{backend}] recomputation: {want[0]:,} decisions in {recompute_s:.1f} s")
        storage.summaries.clear()
        (_, got), first_s = timed(eligibility)
        assert got == want, "the first summarised scan differs from the recomputation"
        print(f"[{backend}] first scan (storing summaries): {first_s:.1f} s", flush=True)
        (warm, got), warm_s = timed(eligibility)
        assert got == want, "the scan from summaries differs from the recomputation"
        assert not warm.broken and not truth.broken, "a generated chain does not verify"
        print(f"[{backend}] eligibility from current summaries: {warm_s:.1f} s", flush=True)
        report_json, report_s = timed(lambda: report_end_to_end(storage, settings))
        recomputed_report, report_recompute_s = timed(
            lambda: report_end_to_end(storage, settings, recompute=True)
        )
        assert report_json == recomputed_report, "the report differs from its recomputation"
        print(f"[{backend}] report: {report_s:.1f} s ({report_recompute_s:.1f} s recomputed)")
        d = dispatch_steps(storage, settings)
        print(f"[{backend}] dispatch: {d}", flush=True)

        full, full_verify_s = timed(lambda: storage.ledger.verify())
        assert full.ok, "the generated ledger does not verify"
        key = sl.private_key(DEV_SEAL_KEY)

        def unverified_seal() -> str:
            heads = sl.sorted_heads(storage.ledger.heads())
            root = sl.merkle_root(heads)
            return sl.sign(key, sl.statement(len(heads), root, datetime.now(UTC)))

        _, unverified_s = timed(unverified_seal)
        seal, first_seal_s = timed(lambda: make_seal(storage, DEV_SEAL_KEY, datetime.now(UTC)))
        assert seal is not None and sl.statement_fields(seal.statement)["broken"] == 0
        _, unchanged_seal_s = timed(lambda: make_seal(storage, DEV_SEAL_KEY, datetime.now(UTC)))
        print(
            f"[{backend}] full verify {full_verify_s:.1f} s; seal: unverified "
            f"{unverified_s:.1f} s, first verifying {first_seal_s:.1f} s, "
            f"nothing grown {unchanged_seal_s:.1f} s",
            flush=True,
        )

        grown, _ = timed(lambda: grow(storage, truth, args.grow_share))
        refreshed, refresh_s = timed(lambda: refresh_summaries(storage, settings))
        (_, got), grown_s = timed(eligibility)
        (_, want), _ = timed(lambda: eligibility(False))
        assert got == want, "after growth, the summarised scan differs from the recomputation"
        _, grown_report_s = timed(lambda: report_end_to_end(storage, settings))
        period = parse_period(MONTH, settings.subsidy.timezone)
        _, grown_dispatch_s = timed(
            lambda: compute(storage, settings, period, PROVINCE, period.end)
        )
        grown_served_ms = served_ms(storage, d["sha256"])
        print(f"[{backend}] dispatch after growth {grown_dispatch_s:.1f} s, "
              f"closed copy {grown_served_ms:.1f} ms (unchanged)", flush=True)  # fmt: skip
        seal, grown_seal_s = timed(lambda: make_seal(storage, DEV_SEAL_KEY, datetime.now(UTC)))
        assert seal is not None
        broken_found = int(sl.statement_fields(seal.statement)["broken"])  # type: ignore[call-overload]
        print(f"[{backend}] seal after growth {grown_seal_s:.1f} s, broken {broken_found}")
        print(
            f"[{backend}] +{grown:,} events: refresh {refresh_s:.1f} s "
            f"({refreshed.refolded:,} chains), eligibility {grown_s:.1f} s, "
            f"report {grown_report_s:.1f} s",
            flush=True,
        )

        sample = rng.sample(learner_ids, min(args.baseline_sample, len(learner_ids)))
        t = time.perf_counter()
        for learner_id in sample:
            for course in truth.learners[learner_id].courses:
                naive_eligibility(storage, settings, learner_id, course)
        per_learner = (time.perf_counter() - t) / len(sample)
        return Result(
            backend,
            len(learner_ids),
            truth.events,
            truth.chains,
            round(load_s, 1),
            round(migrate_s, 1),
            verified,
            round(recompute_s, 2),
            round(first_s, 2),
            round(warm_s, 2),
            want[0],
            want[1],
            want[2],
            round(report_s, 2),
            round(report_recompute_s, 2),
            grown,
            round(refresh_s, 2),
            refreshed.refolded,
            round(grown_s, 2),
            round(grown_report_s, 2),
            len(sample),
            round(per_learner * 1000, 2),
            round(per_learner * len(learner_ids), 1),
            round(full_verify_s, 2),
            round(unverified_s, 2),
            round(first_seal_s, 2),
            round(unchanged_seal_s, 2),
            round(grown_seal_s, 2),
            broken_found,
            d["province_s"],
            d["recompute_s"],
            d["nationwide_s"],
            d["close_s"],
            d["served_ms"],
            round(grown_dispatch_s, 2),
            grown_served_ms,
            d["regions"],
        )
    finally:
        storage.close()


def run_sqlite(args: argparse.Namespace) -> Result:
    if args.keep:
        folder = Path(args.tmp or tempfile.gettempdir()) / f"{args.keep}_sqlite"
        folder.mkdir(parents=True, exist_ok=True)
        return bench("sqlite", f"sqlite:///{folder / 'bench.db'}", args, folder)
    folder = Path(tempfile.mkdtemp(prefix="elig_bench_", dir=args.tmp))
    try:
        return bench("sqlite", f"sqlite:///{folder / 'bench.db'}", args, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run_postgres(args: argparse.Namespace) -> Result:
    import psycopg

    name = args.keep or f"sv6_elig_bench_{uuid.uuid4().hex[:8]}"
    server = args.pg_url.rstrip("/")
    admin_dsn = server.replace("postgresql+psycopg://", "postgresql://") + "/postgres"
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            admin.execute(f'CREATE DATABASE "{name}"')
    folder = Path(tempfile.mkdtemp(prefix="elig_bench_", dir=args.tmp))
    try:
        return bench("postgres", f"{server}/{name}", args, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        if not args.keep:
            with psycopg.connect(admin_dsn, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def print_table(results: list[Result]) -> None:
    rows: list[tuple[str, Callable[[Result], str]]] = [
        ("learners", lambda r: f"{r.learners:,}"),
        ("events in ledger", lambda r: f"{r.events:,}"),
        ("chains", lambda r: f"{r.chains:,}"),
        ("bulk load (s)", lambda r: f"{r.load_s}" if r.load_s else "reused"),
        ("migration (s)", lambda r: f"{r.migrate_s}"),
        ("sample verified", lambda r: r.sample_verified),
        ("recomputation, every event (s)", lambda r: f"{r.recompute_s}"),
        ("first scan, storing summaries (s)", lambda r: f"{r.first_scan_s}"),
        ("**eligibility, summaries current (s)**", lambda r: f"**{r.eligibility_s}**"),
        ("  decisions / eligible", lambda r: f"{r.decisions:,} / {r.eligible:,}"),
        ("  subsidy total (yuan)", lambda r: f"{r.subsidy_total:,.0f}"),
        ("**monthly report, end to end (s)**", lambda r: f"**{r.report_s}**"),
        ("monthly report, recomputed (s)", lambda r: f"{r.report_recompute_s}"),
        ("dispatch report: world", lambda r: r.dispatch_regions),
        (
            f"**dispatch report, province {PROVINCE}, summaries current (s)**",
            lambda r: f"**{r.dispatch_province_s}**",
        ),
        ("dispatch report, province, recomputed (s)", lambda r: f"{r.dispatch_recompute_s}"),
        ("dispatch report, nationwide (s)", lambda r: f"{r.dispatch_nationwide_s}"),
        ("dispatch report closed: computed, sealed, kept (s)", lambda r: f"{r.dispatch_close_s}"),
        (
            "**closed month served from its copy (ms, median of 20)**",
            lambda r: f"**{r.dispatch_served_ms}**",
        ),
        ("events appended (1% grown)", lambda r: f"{r.grown_events:,}"),
        (
            "  background refresh (s)",
            lambda r: f"{r.refresh_s} ({r.refresh_refolded:,} chains)",
        ),
        ("  eligibility after it (s)", lambda r: f"{r.grown_eligibility_s}"),
        ("  monthly report after it (s)", lambda r: f"{r.grown_report_s}"),
        ("  dispatch report, province, after it (s)", lambda r: f"{r.grown_dispatch_s}"),
        ("  closed month's copy after it (ms; unchanged)", lambda r: f"{r.grown_served_ms}"),
        ("full verification of every event (s)", lambda r: f"{r.full_verify_s}"),
        ("seal without verification (before; s)", lambda r: f"{r.unverified_seal_s}"),
        ("first verifying seal, every chain (s)", lambda r: f"{r.first_seal_s}"),
        ("verifying seal, nothing grown (s)", lambda r: f"{r.unchanged_seal_s}"),
        (
            "verifying seal after the growth (s)",
            lambda r: f"{r.grown_seal_s} (broken: {r.broken_found})",
        ),
        (
            "baseline: naive per learner (ms)",
            lambda r: f"{r.baseline_per_learner_ms} (sample of {r.baseline_sample})",
        ),
        (
            "baseline extrapolated to all (s)",
            lambda r: f"{r.baseline_extrapolated_s} (extrapolated)",
        ),
    ]
    if all(r.recompute_s == 0.0 for r in results):  # --dispatch-only
        skipped = (
            "recomputation",
            "eligibility",
            "decisions",
            "subsidy total",
            "monthly report, recomputed",
            "full verification",
            "verifying seal",
            "seal without",
            "baseline",
        )
        rows = [(n, c) for n, c in rows if not any(k in n for k in skipped)]
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
    parser.add_argument("--grow-share", type=float, default=0.01)
    parser.add_argument(
        "--dispatch-only",
        action="store_true",
        help="only what the dispatch report needs: summaries, the monthly report as the "
        "baseline, the dispatch steps, the growth (no eligibility, seals or naive baseline)",
    )
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432")
    parser.add_argument("--tmp", default=None, help="folder for the SQLite database")
    parser.add_argument(
        "--keep",
        default=None,
        metavar="NAME",
        help="keep the generated world (SQLite folder NAME_sqlite, PostgreSQL database NAME) "
        "and reuse it when it exists (it keeps what earlier runs appended)",
    )
    args = parser.parse_args()
    results = []
    if args.backend in ("sqlite", "both"):
        results.append(run_sqlite(args))
    if args.backend in ("postgres", "both"):
        results.append(run_postgres(args))
    print_table(results)


if __name__ == "__main__":
    main()
