"""Faults injected into real parts: the ledger stays complete and verifiable after each.

- The database unreachable for a while (PostgreSQL behind a TCP relay the test cuts):
  checks fail visibly with 503 and nothing is acknowledged that was not stored.
- The process killed with SIGKILL during appends: the chains verify after restart and
  every acknowledged append is there.
- The evidence disk full (a 1 MiB tmpfs): the check is recorded without evidence, and
  says why, instead of being lost.
Redis restarted and a worker killed are in test_scaleout_api.py and test_workers.py.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from storage.canonical import canonical_json
from storage.migrate import upgrade
from storage.types import NewEvent
from tests import imagegen
from tests.conftest import unavailable
from tests.supervisor.conftest import HOPPER_FRAME, Service, StillFrames, _service

ROOT = Path(__file__).resolve().parents[2]


class Relay:
    """A TCP relay to a real server that the test can cut and restore.

    Cut: every relayed connection is closed and new ones are refused (the port stops
    listening), as when the database host drops off the network.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._open()

    def _open(self) -> None:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(64)
        self.port = s.getsockname()[1]
        self._listener = s
        threading.Thread(target=self._accept, args=(s,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        assert self._listener is not None
        # shutdown() wakes the thread blocked in accept(); close() alone would not,
        # and that thread would go on accepting connections.
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._listener = None
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def restore(self) -> None:
        self._open()

    def close(self) -> None:
        if self._listener is not None:
            self.cut()


OTHER_FRAME = imagegen.jpeg_bytes(imagegen.webcam_frame(imagegen.grace_hopper(), face_width=150))


@pytest.fixture
def relayed_postgres(postgres_url: str, tmp_path: Path) -> Iterator[tuple[Service, Relay]]:
    from sqlalchemy.engine import make_url

    url = make_url(postgres_url)
    relay = Relay((url.host or "127.0.0.1", url.port or 5432))
    relayed = url.set(host="127.0.0.1", port=relay.port).render_as_string(hide_password=False)
    upgrade(relayed)
    try:
        # The test's own storage handle goes straight to the server, not through the relay.
        gen = _service(tmp_path, relayed, "postgres")
        svc = next(gen)
        try:
            yield svc, relay
        finally:
            if relay._listener is None:
                relay.restore()
            with contextlib.suppress(StopIteration):
                next(gen)
    finally:
        relay.close()


@pytest.mark.postgres
def test_database_outage_fails_checks_visibly_and_acknowledges_only_what_is_stored(
    relayed_postgres: tuple[Service, Relay],
) -> None:
    svc, relay = relayed_postgres
    w = svc.world()
    r = svc.sign_in(w.learner, w.course_id, HOPPER_FRAME)
    assert r.status_code == 201, r.text
    sid = r.json()["session"]["session_id"]
    acknowledged = [r.json()["check"]["check_id"]]
    page = StillFrames(svc, w.learner, sid).attach()
    first = page.check(HOPPER_FRAME)
    assert first["passed"], first
    acknowledged.append(first["check_id"])

    relay.cut()
    # The service cannot even authenticate the page: it says so (503 with a reason),
    # and so does its health, instead of pretending.
    r = svc.call("GET", f"/api/v1/sessions/{sid}/messages?wait=0", w.learner)
    assert r.status_code == 503 and r.json()["reason"] == "storage_unavailable", r.text
    assert svc.client.get("/health").status_code == 503
    time.sleep(10)  # supervision goes on meanwhile, asking for frames nobody can send

    relay.restore()
    deadline = time.monotonic() + 90
    while True:
        after = page.check(HOPPER_FRAME, timeout=90)
        if after["verdict"] != "deferred" or time.monotonic() > deadline:
            break
    assert after["passed"], after
    acknowledged.append(after["check_id"])
    assert svc.client.get("/health").status_code == 200
    page.end()

    events = svc.call("GET", f"/api/v1/sessions/{sid}/events", w.learner).json()
    stored = {e["payload"]["check_id"] for e in events if e["kind"] == "check"}
    assert set(acknowledged) <= stored
    assert svc.storage.ledger.verify([f"session:{sid}"]).ok


_APPENDER = r"""
import sys
from config.settings import DatabaseSettings, EvidenceSettings
from storage import open_storage
from storage.canonical import canonical_json
from storage.types import NewEvent
from tests.storage.helpers import TEMPLATE_KEY

url, evidence = sys.argv[1], sys.argv[2]
store = open_storage(DatabaseSettings(url=url), EvidenceSettings(directory=evidence), TEMPLATE_KEY)
n = 0
while True:
    chain = f"crash:{n % 4}"
    [e] = store.ledger.append(chain, [NewEvent("tick", canonical_json({"n": n}))])
    print(chain, e.seq, flush=True)  # printed only after the append is durable
    n += 1
"""


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_a_process_killed_during_appends_leaves_valid_chains(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = (
        f"sqlite:///{tmp_path / 'db.sqlite'}"
        if backend == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    upgrade(url)
    acknowledged: dict[str, int] = {}
    for _round in range(3):
        child = subprocess.Popen(
            [sys.executable, "-c", _APPENDER, url, str(tmp_path / "ev")],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        lines = 0
        for line in child.stdout:
            chain, seq = line.split()
            acknowledged[chain] = int(seq)
            lines += 1
            if lines >= 150:
                break
        os.kill(child.pid, signal.SIGKILL)  # in the middle of the next appends
        child.wait()
        child.stdout.close()

        from config.settings import DatabaseSettings, EvidenceSettings
        from storage import open_storage
        from tests.storage.helpers import TEMPLATE_KEY

        with open_storage(
            DatabaseSettings(url=url), EvidenceSettings(directory=tmp_path / "ev"), TEMPLATE_KEY
        ) as store:
            report = store.ledger.verify()
            assert report.ok, report.breaks
            heads = {h.chain_id: h.seq for h in store.ledger.heads()}
            for chain, seq in acknowledged.items():
                assert heads[chain] >= seq, (chain, seq, heads[chain])
            # Appends go on where the chain stopped, without a fork or a gap.
            for chain in acknowledged:
                [e] = store.ledger.append(chain, [NewEvent("after", canonical_json({}))])
                assert e.seq == heads[chain] + 1
            assert store.ledger.verify().ok
            events = list(store.ledger.read_chain("crash:0"))
            assert [e.seq for e in events] == list(range(1, len(events) + 1))


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs for the evidence store; filled by the test."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        unavailable(f"cannot mount a small tmpfs to fill (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_evidence_disk_full_records_the_check_without_evidence(
    full_disk: Path, tmp_path: Path
) -> None:
    gen = _service(
        tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", "sqlite",
        evidence={"directory": str(full_disk / "evidence")},
    )  # fmt: skip
    svc = next(gen)
    try:
        w = svc.world()
        r = svc.sign_in(w.learner, w.course_id, HOPPER_FRAME)
        assert r.status_code == 201, r.text
        sid = r.json()["session"]["session_id"]
        # Fill the disk to the last byte.
        with open(full_disk / "filler", "wb") as f, contextlib.suppress(OSError):
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        # A frame unlike the start's, so its evidence is a new file to write.
        page = StillFrames(svc, w.learner, sid).attach()
        result = page.check(OTHER_FRAME)
        assert result["passed"], result
        events = svc.call("GET", f"/api/v1/sessions/{sid}/events", w.learner).json()
        stored = [e["payload"] for e in events if e["kind"] == "check"]
        assert stored[-1]["check_id"] == result["check_id"]
        assert stored[-1]["evidence_sha256"] is None
        assert "evidence_store_full" in stored[-1]["evidence_error"]
        # The check counts: the session stays active and the clock runs.
        state = svc.call("GET", f"/api/v1/sessions/{sid}", w.learner).json()
        assert state["state"] == "active"
        assert svc.storage.ledger.verify([f"session:{sid}"]).ok
        # Space comes back: evidence is stored again.
        (full_disk / "filler").unlink()
        again = page.check(HOPPER_FRAME)
        events = svc.call("GET", f"/api/v1/sessions/{sid}/events", w.learner).json()
        last = next(e["payload"] for e in reversed(events) if e["kind"] == "check")
        assert last["check_id"] == again["check_id"] and last["evidence_sha256"]
        page.end()
    finally:
        with contextlib.suppress(StopIteration):
            next(gen)
