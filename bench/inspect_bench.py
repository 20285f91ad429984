"""Inspector's workspace benchmark: replay page, seals, evidence-pack verification.

    python bench/inspect_bench.py                       # SQLite
    python bench/inspect_bench.py --backend both        # and PostgreSQL (throw-away db)

1. Replay page: an 8-hour session with 500 checks (each with its own stored JPEG
   frame), among other sessions, behind a real service (uvicorn, HTTP); the time to
   open `/inspect/sessions/{id}` as an inspector (first open after a seal, then the
   median of repeats), against the baseline of the session's plain event list
   (`/api/v1/sessions/{id}/events`) in the same run. Frames are not inlined: the
   page's timing does not include them (they load one at a time, by hash).
2. Seal: N chains (one real hash-chained event each, bulk-inserted), then
   `make_seal` (read all heads, Merkle tree, Ed25519 signature, store the leaves),
   against the baseline of only reading the heads (`LedgerStore.heads()`).
3. Evidence pack of that session: build time and offline verification
   (`verify_pack`), against the baseline of only unzipping and hashing its files.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import hashlib  # noqa: E402
import io  # noqa: E402
import zipfile  # noqa: E402

import httpx  # noqa: E402
from sqlalchemy import insert  # noqa: E402

from config.settings import DEV_SEAL_KEY  # noqa: E402
from storage import Storage, open_storage  # noqa: E402
from storage.canonical import GENESIS_HASH, canonical_json, event_hash  # noqa: E402
from storage.migrate import upgrade  # noqa: E402
from storage.models import ledger_events  # noqa: E402
from storage.types import Role  # noqa: E402
from supervisor.inspect.packs import verify_pack  # noqa: E402
from supervisor.inspect.sealing import make_seal  # noqa: E402
from tests import imagegen  # noqa: E402
from tests.supervisor.conftest import ServerThread, make_settings, new_id_number  # noqa: E402
from tests.supervisor.inspect_helpers import record_session  # noqa: E402

T0 = datetime(2026, 6, 1, 8, tzinfo=UTC)


def timed(fn, repeat: int = 1):  # type: ignore[no-untyped-def]
    out = []
    result = None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        out.append(time.perf_counter() - t)
    return out, result


def bulk_chains(store: Storage, n: int, prefix: str) -> float:
    """N chains of one real event each, inserted in bulk; returns seconds."""
    t = time.perf_counter()
    payload = canonical_json({"bench": True})
    chunk = []
    for i in range(n):
        chain = f"{prefix}{i:07d}"
        h = event_hash(GENESIS_HASH, chain, 1, T0, "note", payload)
        chunk.append(
            {
                "chain_id": chain,
                "seq": 1,
                "recorded_at": T0,
                "kind": "note",
                "payload": payload,
                "prev_hash": GENESIS_HASH,
                "hash": h,
            }
        )
        if len(chunk) == 10_000 or i == n - 1:
            with store.db.write() as conn:
                conn.execute(insert(ledger_events), chunk)
            chunk = []
    return time.perf_counter() - t


def run(backend: str, url: str, tmp: Path, args: argparse.Namespace) -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []
    settings = make_settings(tmp, url, inspection={"seal_interval_s": 0})
    upgrade(url)
    store = open_storage(
        settings.database, settings.evidence, settings.security.template_key.get_secret_value()
    )
    try:
        # -- data: one institution, a learner, other sessions, the 8-hour session ----
        inst = store.registry.create_institution("Bench school")
        course = store.registry.create_course(inst.id, "Welding", 40, "online")  # type: ignore[arg-type]
        learner = store.registry.create_learner(inst.id, "Grace Hopper", new_id_number())
        base = imagegen.jpeg_bytes(imagegen.webcam_frame(imagegen.grace_hopper(), face_width=170))
        # 500 distinct frames (a trailer after the JPEG end marker makes each unique).
        frames = [base + i.to_bytes(4, "big") for i in range(args.checks)]
        for k in range(args.other_sessions):
            record_session(
                store,
                inst.id,
                course.id,
                learner.id,
                T0 - timedelta(days=k + 1),
                frames[:3],
                checks=12,
            )
        t, sid = timed(
            lambda: record_session(
                store,
                inst.id,
                course.id,
                learner.id,
                T0,
                frames,
                checks=args.checks,
                every=timedelta(hours=8) / args.checks,
                fail_at=range(100, args.checks, 97),
            )
        )
        events = len(store.ledger.read_chain(f"session:{sid}"))
        print(
            f"[{backend}] 8-hour session: {args.checks} checks, {events} events "
            f"(recorded in {t[0]:.1f} s)",
            flush=True,
        )
        bulk = bulk_chains(store, args.chains, f"bench:{uuid.uuid4().hex[:6]}:")
        print(f"[{backend}] bulk-inserted {args.chains:,} chains in {bulk:.1f} s", flush=True)

        # -- seal over all chains ------------------------------------------------------
        total = sum(1 for _ in store.ledger.heads())
        heads_t, _ = timed(lambda: sum(1 for _ in store.ledger.heads()), repeat=3)
        seal_t, seal = timed(lambda: make_seal(store, DEV_SEAL_KEY, datetime.now(UTC)), repeat=3)
        assert seal is not None
        rows.append(
            (
                backend,
                f"read heads of {total:,} chains (baseline)",
                f"{statistics.median(heads_t):.2f} s",
            )
        )
        rows.append(
            (
                backend,
                f"seal over {total:,} chains (heads, tree, sign, store)",
                f"{statistics.median(seal_t):.2f} s (best {min(seal_t):.2f})",
            )
        )

        # -- replay page behind a real service ------------------------------------------
        _, inspector = store.registry.create_token(Role.inspector, "bench inspector")
        with ServerThread(settings):
            base_url = f"http://127.0.0.1:{settings.server.port}"
            with httpx.Client(base_url=base_url, timeout=120) as client:
                r = client.post("/inspect/login", data={"token": inspector})
                assert r.status_code == 303, r.text
                page = f"/inspect/sessions/{sid}"
                hdr = {"Authorization": f"Bearer {inspector}"}
                _, admin = store.registry.create_token(Role.admin, "bench admin")
                api_seal, r = timed(
                    lambda: client.post(
                        "/api/v1/seals", headers={"Authorization": f"Bearer {admin}"}
                    )
                )
                assert r.status_code == 201, r.text
                rows.append(
                    (
                        backend,
                        "seal through the API (and its tree kept for replays)",
                        f"{api_seal[0]:.2f} s",
                    )
                )
                first, resp = timed(lambda: client.get(page))
                assert resp.status_code == 200 and "Hash chain intact" in resp.text, resp.text[:500]
                assert resp.text.count('class="check ') == args.checks
                warm, _ = timed(lambda: client.get(page), repeat=args.repeat)
                base_t, _ = timed(
                    lambda: client.get(f"/api/v1/sessions/{sid}/events", headers=hdr),
                    repeat=args.repeat,
                )
                rows.append(
                    (
                        backend,
                        f"session events JSON, {events} events (baseline)",
                        f"{statistics.median(base_t) * 1000:.0f} ms",
                    )
                )
                rows.append(
                    (
                        backend,
                        f"replay page, {args.checks} checks: first open after that seal",
                        f"{first[0] * 1000:.0f} ms",
                    )
                )
                rows.append(
                    (
                        backend,
                        f"replay page, {args.checks} checks: median of {args.repeat}",
                        f"{statistics.median(warm) * 1000:.0f} ms (p max "
                        f"{max(warm) * 1000:.0f}; {len(resp.content) / 1024:.0f} KiB)",
                    )
                )
                pack_t, pack = timed(
                    lambda: client.get(f"/api/v1/inspect/evidence/session/{sid}", headers=hdr)
                )
                assert pack.status_code == 200
                data = pack.content
        rows.append(
            (
                backend,
                f"evidence pack build + download ({len(data) / 1e6:.1f} MB)",
                f"{pack_t[0]:.2f} s",
            )
        )

        def unzip_hash() -> int:
            with zipfile.ZipFile(io.BytesIO(data)) as z:
                return sum(len(hashlib.sha256(z.read(i)).digest()) for i in z.infolist())

        base_v, _ = timed(unzip_hash, repeat=3)
        ver_t, report = timed(lambda: verify_pack(data), repeat=3)
        assert report.ok, report.problems
        rows.append(
            (
                backend,
                "unzip + SHA-256 of every pack file (baseline)",
                f"{statistics.median(base_v):.3f} s",
            )
        )
        rows.append(
            (
                backend,
                f"verify pack offline ({report.events} events, {report.frames_retained} frames)",
                f"{statistics.median(ver_t):.3f} s = "
                f"{len(data) / 1e6 / statistics.median(ver_t):.0f} MB/s",
            )
        )
    finally:
        store.close()
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="sqlite")
    ap.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432")
    ap.add_argument("--checks", type=int, default=500)
    ap.add_argument("--chains", type=int, default=100_000)
    ap.add_argument("--other-sessions", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=10)
    args = ap.parse_args()
    rows: list[tuple[str, str, str]] = []
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    for backend in backends:
        tmp = Path(tempfile.mkdtemp(prefix="inspect-bench-"))
        try:
            if backend == "sqlite":
                rows += run(backend, f"sqlite:///{tmp / 'bench.db'}", tmp, args)
            else:
                import psycopg

                name = f"sv_ibench_{uuid.uuid4().hex[:8]}"
                dsn = "host=127.0.0.1 port=5432 user=postgres dbname=test"
                with psycopg.connect(dsn, autocommit=True) as admin:
                    admin.execute(f'CREATE DATABASE "{name}"')
                try:
                    rows += run(backend, f"{args.pg_url}/{name}", tmp, args)
                finally:
                    with psycopg.connect(dsn, autocommit=True) as admin:
                        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    print()
    print("| backend | measure | result |")
    print("|---|---|---|")
    for b, m, r in rows:
        print(f"| {b} | {m} | {r} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
