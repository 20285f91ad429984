"""`supervisor serve` leaves nothing behind, however it ends.

The real command runs as a subprocess with an embedded Redis, one verification
worker and one pool process. The test waits until every child is up (the worker
beats), stops the service with SIGTERM or SIGKILL, and asserts that every process it
had started (workers, pool, resource tracker, redis-server) is gone within a few
seconds, and that no redis-server of its data folder runs.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from tests.supervisor.conftest import free_port

pytestmark = pytest.mark.slow

GONE_WITHIN_S = 5.0
# `supervisor serve`, as the installed command runs it.
SERVE = "import sys; from supervisor.cli import main; sys.exit(main())"


def _service_env(tmp: Path, port: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "SUPERVISOR_ENVIRONMENT": "development",
            "SUPERVISOR_DATA_DIR": str(tmp),
            "SUPERVISOR_DATABASE__URL": f"sqlite:///{tmp / 'supervisor.db'}",
            "SUPERVISOR_EVIDENCE__DIRECTORY": str(tmp / "evidence"),
            "SUPERVISOR_REDIS__EMBEDDED_PATH": str(tmp / "redis" / "redis.db"),
            "SUPERVISOR_REDIS__URL": "",
            "SUPERVISOR_SERVER__PORT": str(port),
            "SUPERVISOR_SERVER__VERIFY_PROCESSES": "1",
            "SUPERVISOR_WORKERS__EMBEDDED": "1",
            "SUPERVISOR_WORKERS__HEARTBEAT_S": "1",
        }
    )
    return env


def redis_servers_of(folder: Path) -> list[psutil.Process]:
    """redis-server processes working in `folder` (redis-server changes into the folder
    of its data file), the folder removed or not."""
    found = []
    for proc in psutil.process_iter(["name", "cwd"]):
        cwd = proc.info.get("cwd") or ""
        if proc.info.get("name") == "redis-server" and cwd.startswith(str(folder)):
            found.append(proc)
    return found


def _workers_alive(base: str) -> int:
    text = httpx.get(f"{base}/metrics", timeout=10).text
    match = re.search(r"^supervisor_workers_alive (\S+)$", text, re.MULTILINE)
    return int(float(match.group(1))) if match else 0


@pytest.fixture
def serving(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], list[psutil.Process]]]:
    """The service up with its worker beating; (the process, every descendant)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = open(tmp_path / "serve.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVE, "serve"],
        env=_service_env(tmp_path, port),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        deadline = time.monotonic() + 240
        while True:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the service did not start with its worker"
            try:
                if _workers_alive(base) >= 1:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        children = psutil.Process(proc.pid).children(recursive=True)
        children += [r for r in redis_servers_of(tmp_path) if r not in children]
        names = " ".join(sorted(c.name() for c in children))
        assert "redis-server" in names, names
        # The worker, the pool process and multiprocessing's resource tracker.
        assert sum(1 for c in children if "python" in c.name()) >= 3, names
        yield proc, children
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
        # Whatever a failed run left (orphans of this test work in its folder), so
        # that it does not outlive the test.
        for left in psutil.process_iter(["cwd"]):
            if (left.info.get("cwd") or "").startswith(str(tmp_path)):
                with contextlib.suppress(psutil.Error):
                    left.kill()
        log.close()


def _cmdline(proc: psutil.Process) -> list[str]:
    try:
        return proc.cmdline()
    except psutil.Error:
        return []


def _assert_all_gone(children: list[psutil.Process], tmp_path: Path) -> None:
    _, alive = psutil.wait_procs(children, timeout=GONE_WITHIN_S)
    left = [f"{p.pid} {_cmdline(p)[:3]}" for p in alive]
    assert not left, f"left behind after {GONE_WITHIN_S} s: {left}"
    assert not redis_servers_of(tmp_path)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_nothing_outlives_the_service(
    serving: tuple[subprocess.Popen[bytes], list[psutil.Process]],
    tmp_path: Path,
    sig: signal.Signals,
) -> None:
    proc, children = serving
    proc.send_signal(sig)
    proc.wait(30)
    _assert_all_gone(children, tmp_path)
