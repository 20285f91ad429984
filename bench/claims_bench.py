"""A claim submission for about 5,000 learners, against the scan alone, SQLite and
PostgreSQL.

    python bench/claims_bench.py --backend sqlite
    python bench/claims_bench.py --backend both --learners 16800 --institutions 3

A fresh database gets a generated world (tests/ledgergen.py: institutions with two
courses each, learners with consent, a face, an enrolment, three online sessions of
about 30 checks, some class chains, an assessment; planted frauds at the first and the
last institution), written in bulk with valid hash chains. The claim is that of the
middle institution (index `institutions // 2`: neither the night burst nor the low
pass rate), for the two months the generated training spans. With the defaults it has
5,600 learners, about 5,000 of them eligible.

Timed, in order, each as the service runs it (blocking, in one thread):

1. **baseline: first scan** (summaries empty: every chain verified and folded, its
   summary stored) and **baseline: scan, summaries current** (what any claim list or
   report reads first);
2. **baseline: the claims list** (`GET /claims` without the HTTP: registry maps, the
   scan, the eligibility of every claimed learner);
3. **claim submission** (`ClaimService.submit_blocking`, what `POST /submitted-claims`
   runs once the principal is checked): the scan, the lines frozen with their chain
   heads, the overlap check, the claim and its lines stored, `claim_submitted` appended;
4. **re-check of the frozen heads** (`check_lines`, what verification and approval run):
   every chain of every line re-hashed from its first event and compared at its frozen
   seq.

Prints a table; the last line is JSON. Aim (issue 19): the submission under 10 s.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from config import Settings  # noqa: E402
from config.settings import DEV_TEMPLATE_KEY, DatabaseSettings, EvidenceSettings  # noqa: E402
from storage import Storage, open_storage  # noqa: E402
from storage.migrate import upgrade  # noqa: E402
from supervisor.context import Context  # noqa: E402
from supervisor.subsidy.claims import ClaimService, check_lines  # noqa: E402
from supervisor.subsidy.report import claims  # noqa: E402
from supervisor.subsidy.scan import scan  # noqa: E402
from tests import ledgergen as lg  # noqa: E402

T = TypeVar("T")


@dataclass
class Result:
    backend: str
    learners: int
    events: int
    chains: int
    load_s: float
    first_scan_s: float
    scan_s: float
    claims_list_s: float
    claims_listed: int
    submit_s: float
    lines: int
    amount: float
    chain_refs: int
    recheck_s: float
    broken_lines: int


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, round(time.perf_counter() - t0, 2)


def bench(backend: str, url: str, args: argparse.Namespace, folder: Path) -> Result:
    upgrade(url)
    storage: Storage = open_storage(
        DatabaseSettings(url=url), EvidenceSettings(directory=folder / "ev"), DEV_TEMPLATE_KEY
    )
    settings = Settings(database={"url": url}, data_dir=folder)  # type: ignore[arg-type]
    try:
        plan = lg.Plan(
            learners=args.learners,
            institutions=args.institutions,
            checks_per_session=args.checks_per_session,
        )
        world = lg.build_registry(storage, plan)
        _, load_s = timed(lambda: lg.load(storage, world))
        print(f"{backend}: loaded {world.events:,} events in {load_s} s", file=sys.stderr)
        start = plan.month_start
        end = start + timedelta(days=62)
        institution = world.institution_ids[args.institutions // 2]

        _, first_s = timed(lambda: scan(storage, settings, end))
        _, scan_s = timed(lambda: scan(storage, settings, end))

        def listing() -> int:
            courses = {c.id: c for c in storage.registry.list_courses(None)}
            learners = {lr.id: lr for lr in storage.registry.list_learners(None)}
            snap = scan(storage, settings, end)
            return len(claims(snap, courses, learners, institution, start, end))

        listed, list_s = timed(listing)
        # The service's context without a verification pool or check queue: a claim
        # submission uses neither (only storage, settings, metrics and the clock).
        ctx = Context(settings, storage, None, None)  # type: ignore[arg-type]
        service = ClaimService(ctx, clock=lambda: datetime.now(UTC))
        claim_id, submit_s = timed(
            lambda: service.submit_blocking("operator:bench", institution, start, end)
        )
        claim = storage.claims.get_claim(claim_id)
        lines = storage.claims.lines(claim_id)
        broken, recheck_s = timed(lambda: check_lines(storage, lines, datetime.now(UTC)))
        ctx.close()
        return Result(
            backend,
            args.learners,
            world.events,
            world.chains,
            load_s,
            first_s,
            scan_s,
            list_s,
            listed,
            submit_s,
            claim.learners,
            claim.amount,
            sum(len(x.chains) for x in lines),
            recheck_s,
            len(broken),
        )
    finally:
        storage.close()


def run_sqlite(args: argparse.Namespace) -> Result:
    folder = Path(tempfile.mkdtemp(prefix="claims_bench_", dir=args.tmp))
    try:
        return bench("sqlite", f"sqlite:///{folder / 'bench.db'}", args, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run_postgres(args: argparse.Namespace) -> Result:
    import psycopg

    name = f"sv_claims_bench_{uuid.uuid4().hex[:8]}"
    server = args.pg_url.rstrip("/")
    admin_dsn = server.replace("postgresql+psycopg://", "postgresql://") + "/postgres"
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    folder = Path(tempfile.mkdtemp(prefix="claims_bench_", dir=args.tmp))
    try:
        return bench("postgres", f"{server}/{name}", args, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def print_table(results: list[Result]) -> None:
    rows: list[tuple[str, Callable[[Result], Any]]] = [
        ("learners in the ledger", lambda r: f"{r.learners:,}"),
        ("events / chains", lambda r: f"{r.events:,} / {r.chains:,}"),
        ("bulk load (s)", lambda r: r.load_s),
        ("baseline: first scan, storing summaries (s)", lambda r: r.first_scan_s),
        ("baseline: scan, summaries current (s)", lambda r: r.scan_s),
        (
            "baseline: claims list of the institution (s)",
            lambda r: f"{r.claims_list_s} ({r.claims_listed:,} rows)",
        ),
        ("**claim submission (s)**", lambda r: f"**{r.submit_s}**"),
        ("  lines frozen / amount (yuan)", lambda r: f"{r.lines:,} / {r.amount:,.0f}"),
        ("  chain heads frozen", lambda r: f"{r.chain_refs:,}"),
        ("re-check of the frozen heads (s)", lambda r: f"{r.recheck_s} ({r.broken_lines} broken)"),
    ]
    width = max(len(name) for name, _ in rows)
    print()
    print(f"| {'measure'.ljust(width)} | " + " | ".join(r.backend for r in results) + " |")
    print(f"|{'-' * (width + 2)}|" + "|".join("---" for _ in results) + "|")
    for name, cell in rows:
        print(f"| {name.ljust(width)} | " + " | ".join(str(cell(r)) for r in results) + " |")
    print(json.dumps([asdict(r) for r in results]))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--learners", type=int, default=16_800)
    parser.add_argument("--institutions", type=int, default=3)
    parser.add_argument("--checks-per-session", type=int, default=28)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="sqlite")
    parser.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432")
    parser.add_argument("--tmp", default=None, help="Folder for the SQLite database.")
    args = parser.parse_args()
    results = []
    if args.backend in ("sqlite", "both"):
        results.append(run_sqlite(args))
    if args.backend in ("postgres", "both"):
        results.append(run_postgres(args))
    print_table(results)


if __name__ == "__main__":
    main()
