"""Workspace sign-in per page: what a server-side session costs against the token it
replaced (issue 22).

    python bench/workspace_session_bench.py                   # SQLite
    python bench/workspace_session_bench.py --backend both    # and PostgreSQL (throw-away db)

Each workspace page (and each call of its script) signs in from the cookie. Before,
the cookie held the API token: one indexed read (`RegistryStore.resolve_token`, the
baseline). Now it holds a session id: one UPDATE ... RETURNING that checks the
session is live and marks it used, and one read of its token
(`WorkspaceSessionStore.resolve`); a session marked used less than a minute ago is
answered by one read instead. All are timed in the same run, on the same database,
`--calls` times each, with `--sessions` other live sessions in the table.
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from config.security import DEV_TEMPLATE_KEY  # noqa: E402
from config.settings import DatabaseSettings, EvidenceSettings  # noqa: E402
from storage import open_storage  # noqa: E402
from storage.migrate import upgrade  # noqa: E402
from storage.types import Role  # noqa: E402


def _times(call: Callable[[], object], n: int) -> list[float]:
    out = []
    for _ in range(n):
        started = time.perf_counter()
        call()
        out.append((time.perf_counter() - started) * 1000)
    return out


def _row(backend: str, what: str, ms: list[float]) -> tuple[str, str, str, str]:
    ms = sorted(ms)
    p95 = ms[int(len(ms) * 0.95) - 1]
    return backend, what, f"{statistics.median(ms):.3f}", f"{p95:.3f}"


def run(backend: str, url: str, tmp: Path, args: argparse.Namespace) -> list[tuple[str, ...]]:
    upgrade(url)
    store = open_storage(
        DatabaseSettings(url=url), EvidenceSettings(directory=tmp / "evidence"), DEV_TEMPLATE_KEY
    )
    try:
        token, secret = store.registry.create_token(Role.inspector, "bench inspector")
        now = datetime.now(UTC)
        for _ in range(args.sessions):
            store.workspace_sessions.open(
                secrets.token_urlsafe(32), token.id, now, now + timedelta(hours=8)
            )
        session = secrets.token_urlsafe(32)
        store.workspace_sessions.open(session, token.id, now, now + timedelta(hours=8))
        for _ in range(50):  # warm the connection pool and the caches
            store.registry.resolve_token(secret)
            store.workspace_sessions.resolve(session, datetime.now(UTC), 1800)
        base = _times(lambda: store.registry.resolve_token(secret), args.calls)
        new = _times(
            lambda: store.workspace_sessions.resolve(session, datetime.now(UTC), 1800), args.calls
        )
        assert store.workspace_sessions.resolve(session, datetime.now(UTC), 1800) is not None
        # Every call a minute after the last: each one marks the session used (a write).
        spaced = secrets.token_urlsafe(32)
        store.workspace_sessions.open(spaced, token.id, now, now + timedelta(days=365))
        moments = iter(now + timedelta(seconds=61 * (i + 1)) for i in range(args.calls))
        marked = _times(
            lambda: store.workspace_sessions.resolve(spaced, next(moments), 1800), args.calls
        )
        return [
            _row(backend, "token in the cookie (baseline): resolve_token", base),
            _row(backend, "session, pages in quick succession (a read)", new),
            _row(backend, "session, each page a minute after the last (a write)", marked),
        ]
    finally:
        store.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="sqlite")
    ap.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432")
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--sessions", type=int, default=1000)
    args = ap.parse_args()
    rows: list[tuple[str, ...]] = []
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    for backend in backends:
        tmp = Path(tempfile.mkdtemp(prefix="session-bench-"))
        try:
            if backend == "sqlite":
                rows += run(backend, f"sqlite:///{tmp / 'bench.db'}", tmp, args)
            else:
                import psycopg

                name = f"sv_sbench_{uuid.uuid4().hex[:8]}"
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
    print(f"{args.calls} calls each, {args.sessions + 1} live sessions in the table")
    print()
    print("| backend | sign-in per page | median ms | p95 ms |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
