"""Server CPU per supervised learner-hour over WebRTC, with every scheduled check accounted for.

    .venv/bin/python bench/webrtc_load.py                         # 100 sessions, 5-minute window
    .venv/bin/python bench/webrtc_load.py --sessions 20 --minutes 2 --modes webrtc

The real service runs as its own process (`supervisor serve`) on a free port with a
temporary data directory (SQLite + the embedded Redis) and the default supervision
policy. Institutions, courses and learners are created through the API. Simulated
learners' pages run in separate client processes (asyncio + aiortc inside each) and
behave like supervisor/web/static/learner.js: sign-in frame, send-only video transceiver
that starts paused, a "supervision" data channel with heartbeats as often as the server's
hello asks (a third of its timeout), video only
at the rate the server asks for ({"type": "capture", "on": ..., "fps": ...}), and the
still-frame fallback (long-poll, then post the frames a check asks for).

Measured on the server alone: CPU time of its process tree (/proc/<pid>/stat utime +
stime of the server, its verification pool workers and the embedded redis-server) over
a steady window with every session connected. Afterwards the ledger of every session is
read through the API to count the scheduled checks done (against the number the policy
predicts for the elapsed time), missed, deferred or lost, and the latency from each
check's `scheduled_at` to its ledger `recorded_at`.

Modes (--modes, comma-separated):
  webrtc    the service as shipped: the page sends video only while a check samples
  fallback  the still-frame fallback over HTTP
  idle15    the service asking for 15 fps between checks (SUPERVISOR_WEBRTC__IDLE_FPS=15),
            to isolate what pausing between checks saves
  baseline  no service: a bare aiortc receiver in this script that decodes every frame of
            a continuous 15 fps stream and runs DlibFaceEngine.presence on each
  chromium  (only with --chromium N) N real headless Chromium tabs on the learner page
            (the page's own JavaScript), to confirm the per-stream cost of a real browser

Benchmark-only setting: every learner is enrolled from the same person's face (each from
a different frame of ../shared/faces/video/2.mp4, the talking head the clients play), so
the service runs with SUPERVISOR_FACE__DUPLICATE_THRESHOLD=0.01 (dlib) and
SUPERVISOR_FACE__SFACE__DUPLICATE_THRESHOLD=0.0001 (SFace); otherwise the
duplicate-identity search at enrolment would refuse the second learner. It plays no part
in the checks measured. The clients replay one 8-second clip, which is a looped video: the
service's comparison of each check's frames with the session's earlier ones (passive
liveness, `liveness.history_frames`) would catch it more and more often as a session ages,
and the challenges that follow cannot be answered by a clip. The benchmark turns that
comparison off (SUPERVISOR_LIVENESS__HISTORY_FRAMES=0); it costs the workers two Redis
round trips and a comparison of a few fingerprints per check.

Every process the script starts is stopped by its own id at the end, on error and on
Ctrl-C. Results go to stdout and into BENCHMARKS.md (--out) between result markers;
text outside the markers is kept. Not run in CI.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import queue
import random
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
from aiortc import MediaStreamTrack

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DEFAULT_VIDEO = REPO.parent / "shared" / "faces" / "video" / "2.mp4"
DEFAULT_OUT = REPO / "BENCHMARKS.md"
W, H = 640, 480
SOURCE_FPS = 30.0  # the camera's own rate; the sender caps it at what the server asks for
HEARTBEAT_S = 10.0  # learner.js: a heartbeat on the data channel until the hello says
CONNECT_TIMEOUT_S = 10.0  # learner.js: WebRTC must connect within 10 s, else fallback
BENCH_ENV = {
    # All learners are enrolled from one face: the duplicate-identity search would refuse.
    "SUPERVISOR_FACE__DUPLICATE_THRESHOLD": "0.01",
    "SUPERVISOR_FACE__SFACE__DUPLICATE_THRESHOLD": "0.0001",
    # The simulated cameras replay an 8-second clip, which is exactly the looped video
    # that comparing a check's frames with the session's earlier ones catches: with it
    # on, a growing share of the checks of each session is (rightly) a spoof and is
    # followed by challenges the clip cannot answer. Honest cameras never repeat.
    "SUPERVISOR_LIVENESS__HISTORY_FRAMES": "0",
    # For the same reason, the clip's frames recur exactly every 8 s: replay detection
    # (a check frame that registers onto a kept one) would refuse them, and the first
    # check's challenge cannot be answered by a clip. Both are measured on their own
    # (bench/replay_eval.py, bench/pad_eval.py); here they would only end the sessions.
    "SUPERVISOR_LIVENESS__REPLAY_CHECK": "false",
    "SUPERVISOR_LIVENESS__CHALLENGE_FIRST_CHECK": "false",
}
CHROMIUM = "/usr/lib/chromium/chromium"
CHROMIUM_FLAGS = [
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
RESULTS_BEGIN = "<!-- webrtc-results:{tag}:begin -->"
RESULTS_END = "<!-- webrtc-results:{tag}:end -->"
TICK = os.sysconf("SC_CLK_TCK")


def log(message: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


# -- the face video --------------------------------------------------------------


def fit(image: np.ndarray) -> np.ndarray:
    """Scale and centre-crop to fill 640x480, as a webcam frame."""
    h, w = image.shape[:2]
    s = max(W / w, H / h)
    r = cv2.resize(image, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
    y0, x0 = (r.shape[0] - H) // 2, (r.shape[1] - W) // 2
    return np.ascontiguousarray(r[y0 : y0 + H, x0 : x0 + W])


def load_frames(video: Path | None, limit: int = 250) -> list[np.ndarray]:
    """RGB 640x480 frames of a talking-head clip; without one, a real photo that sways."""
    if video is not None and video.is_file():
        out: list[np.ndarray] = []
        with av.open(str(video)) as container:
            for frame in container.decode(video=0):
                out.append(fit(frame.to_ndarray(format="rgb24")))
                if len(out) >= limit:
                    break
        if out:
            return out
    from tests import imagegen

    base = imagegen.grace_hopper()
    return [
        imagegen.webcam_frame(base, 170, (0.5 + 0.03 * math.sin(i / 8), 0.45)) for i in range(120)
    ]


def jpeg(rgb: np.ndarray, quality: int = 85) -> bytes:
    """As the page's canvas.toBlob('image/jpeg', 0.85)."""
    ok, buf = cv2.imencode(
        ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    if not ok:
        raise BenchError("JPEG encoding failed")
    return bytes(buf.tobytes())


def write_y4m(path: Path, frames: Sequence[np.ndarray], fps: int = int(SOURCE_FPS)) -> Path:
    """A yuv420p .y4m for Chromium's fake camera (it loops the file at its own rate)."""
    with path.open("wb") as fh:
        fh.write(f"YUV4MPEG2 W{W} H{H} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for rgb in frames:
            fh.write(b"FRAME\n")
            fh.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420).tobytes())
    return path


# -- processes ---------------------------------------------------------------------


class Procs:
    """Every process this script starts; each is stopped, then killed, by its own id.

    Children start in their own session (process group), so a Ctrl-C at the terminal
    reaches only this script, which then stops them in order; killing the group also
    takes the server's pool workers (they share its group).
    """

    def __init__(self) -> None:
        self.items: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.extra: list[int] = []  # daemonised children (the embedded redis-server)

    def start(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        pipes: bool = False,
    ) -> subprocess.Popen[bytes]:
        with log_path.open("ab") as log_fh:
            proc = subprocess.Popen(
                list(argv),
                env=env,
                cwd=cwd,
                stdin=subprocess.PIPE if pipes else subprocess.DEVNULL,
                stdout=subprocess.PIPE if pipes else log_fh,
                stderr=log_fh,
                start_new_session=True,
            )
        self.items.append((name, proc))
        return proc

    def stop(self, proc: subprocess.Popen[bytes], sig: int = signal.SIGINT, wait: float = 30.0):
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(wait)
        # Whatever is left of its group (pool workers of a killed server, say).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()

    def stop_extra(self) -> None:
        for pid in self.extra:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        for pid in self.extra:
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self.extra.clear()

    def close_all(self) -> None:
        for _, proc in reversed(self.items):
            self.stop(proc, signal.SIGTERM, 10)
        self.stop_extra()
        self.items.clear()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


class Child:
    """A client/receiver process speaking JSON lines: events on stdout, commands on stdin."""

    def __init__(self, name: str, proc: subprocess.Popen[bytes], events: queue.Queue[Any]):
        self.name = name
        self.proc = proc
        self._events = events
        self.eof = False  # its stdout closed: it exited (or is about to)
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with contextlib.suppress(ValueError):
                self._events.put((self.name, json.loads(line)))
        self.eof = True
        self._events.put((self.name, {"ev": "exit"}))

    def send(self, command: str) -> None:
        if self.proc.stdin is None:
            return
        with contextlib.suppress(OSError):
            self.proc.stdin.write(command.encode() + b"\n")
            self.proc.stdin.flush()


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


# -- CPU accounting from /proc ---------------------------------------------------------


def _stat(pid: int) -> tuple[int, float] | None:
    """(ppid, CPU seconds utime + stime) of a live process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    rest = text.rsplit(")", 1)[1].split()
    if rest[0] == "Z":
        return None
    return int(rest[1]), (int(rest[11]) + int(rest[12])) / TICK


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _role(pid: int, root: int) -> str:
    if pid == root:
        return "main"
    cmd = _cmdline(pid)
    if "redis-server" in cmd:
        return "redis"
    if "multiprocessing.spawn" in cmd or "multiprocessing-fork" in cmd:
        return "workers"  # the verification pool and the check workers (spawned children)
    if "resource_tracker" in cmd:
        return "tracker"
    return "other"


def tree_cpu(root: int, extra: Sequence[int] = ()) -> dict[int, tuple[str, float]]:
    """CPU seconds of a process, all its descendants, and `extra` processes, by pid."""
    parent: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            st = _stat(int(entry.name))
            if st is not None:
                parent[int(entry.name)], cpu[int(entry.name)] = st
    members = {root} if root in cpu else set()
    grew = True
    while grew:
        grew = False
        for pid, ppid in parent.items():
            if ppid in members and pid not in members:
                members.add(pid)
                grew = True
    members.update(p for p in extra if p in cpu)
    return {pid: (_role(pid, root), cpu[pid]) for pid in members}


def cpu_delta(
    before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]
) -> dict[str, float]:
    """CPU seconds spent between two snapshots, by role (a process born meanwhile counts whole)."""
    out: Counter[str] = Counter()
    for pid, (role, seconds) in after.items():
        out[role] += seconds - (before[pid][1] if pid in before else 0.0)
    out["total"] = sum(v for k, v in out.items() if k != "total")
    return dict(out)


def machine_busy() -> float:
    """Busy CPU seconds of the whole machine so far (all cores)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / TICK


def code_digest() -> str:
    """What the service runs: a digest of the packages' sources and the newest file.

    Other people edit the tree while benchmarks run; this tells which code each mode saw.
    """
    import hashlib

    h = hashlib.sha256()
    newest: tuple[float, str] = (0.0, "")
    for pkg in ("supervisor", "capture", "verification", "storage", "config"):
        for f in sorted((REPO / pkg).rglob("*")):
            if f.suffix in (".py", ".js", ".html") and f.is_file():
                h.update(str(f.relative_to(REPO)).encode() + b"\0" + f.read_bytes())
                newest = max(newest, (f.stat().st_mtime, str(f.relative_to(REPO))))
    when = datetime.fromtimestamp(newest[0]).strftime("%H:%M:%S")
    return f"sources sha256 {h.hexdigest()[:12]}, newest file {newest[1]} ({when})"


def find_redis(directory: Path) -> list[int]:
    """The service's embedded redis-server for this data dir (its cwd)."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        if "redis-server" not in _cmdline(pid):
            continue
        with contextlib.suppress(OSError):
            if Path(os.readlink(f"/proc/{pid}/cwd")).resolve() == directory.resolve():
                found.append(pid)
    return found


def rss_mb(pid: int) -> float:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


# -- the simulated learner's page (runs in client processes) -------------------------------


class CameraTrack(MediaStreamTrack):
    """The page's camera behind its sender: paused until asked, then at the asked frame rate.

    aiortc has no sender.setParameters(), so pausing lives in the track: recv() waits
    while the encoding is inactive and paces frames at `fps` (capped at the camera's
    rate) while it is active, as Chromium does with `active` and `maxFramerate`.
    """

    kind = "video"

    def __init__(self, frames: list[np.ndarray], offset: float) -> None:
        super().__init__()
        self._frames = frames  # yuv420p planes of 640x480 frames
        self._offset = offset
        self._fps = 0.0
        self._on = asyncio.Event()
        self._next = 0.0
        self._t0 = time.monotonic()
        self.sent = 0

    def set_sending(self, on: bool, fps: float | None) -> None:
        if fps:
            self._fps = min(float(fps), SOURCE_FPS)
        if on and self._fps > 0:
            if not self._on.is_set():
                self._next = time.monotonic()  # the first frame goes at once
            self._on.set()
        else:
            self._on.clear()

    async def recv(self) -> av.VideoFrame:
        while True:
            await self._on.wait()
            now = time.monotonic()
            if now >= self._next:
                break
            await asyncio.sleep(self._next - now)
        now = time.monotonic()
        interval = 1.0 / self._fps
        self._next = now + interval if now - self._next > interval else self._next + interval
        n = int((now - self._t0 + self._offset) * SOURCE_FPS) % len(self._frames)
        frame = av.VideoFrame.from_ndarray(self._frames[n], format="yuv420p")
        frame.pts = int((now - self._t0) * 90_000)
        frame.time_base = Fraction(1, 90_000)
        self.sent += 1
        return frame


@dataclass
class LearnerRecord:
    index: int
    learner_id: int
    session_id: str | None = None
    mode: str | None = None
    up_at: float | None = None
    error: str | None = None
    retries_503: int = 0
    fell_back: bool = False
    asked: dict[str, float] = field(default_factory=dict)  # check_id -> unix time announced
    verdicts: Counter[str] = field(default_factory=Counter)
    frames_sent: int = 0
    frame_posts: int = 0
    frame_post_errors: int = 0
    heartbeats: int = 0
    streaming: bool = False
    ended_by_server: str | None = None
    disconnected: str | None = None
    end_status: int | None = None


class Page:
    """One simulated learner's page (learner.js), in a client process."""

    def __init__(self, cfg: dict[str, Any], learner: dict[str, Any], shared: dict[str, Any]):
        self.cfg = cfg
        self.learner = learner
        self.http = shared["http"]
        self.frames_yuv: list[np.ndarray] = shared["yuv"]
        self.jpegs: list[bytes] = shared["jpegs"]
        self.stop: asyncio.Event = shared["stop"]
        self.rec = LearnerRecord(learner["index"], learner["learner_id"])
        self.headers = {"Authorization": f"Bearer {learner.get('token', '')}"}
        self.heartbeat_s = HEARTBEAT_S
        self.offset = random.uniform(0, 60)
        self.pc: Any = None
        self.track: CameraTrack | None = None
        self.channel: Any = None
        self.tasks: set[asyncio.Task[Any]] = set()
        self._t0 = time.monotonic()

    def current_jpeg(self) -> bytes:
        n = int((time.monotonic() - self._t0 + self.offset) * SOURCE_FPS) % len(self.jpegs)
        return self.jpegs[n]

    # -- learner.js: start(), connect() ---------------------------------------------

    async def run(self) -> dict[str, Any]:
        try:
            await asyncio.sleep(self.learner["delay"])
            if self.stop.is_set():
                return self.report()
            if self.cfg["mode"] == "baseline":
                await self.connect_webrtc(baseline=True)
                await self.hold()
                return self.report()
            await self.start_session()
            if self.cfg["mode"] == "upload":
                await self.connect_fallback()
            else:
                try:
                    await self.connect_webrtc()
                except BenchError as exc:
                    if "session_ended" in str(exc) or "session_already_open" in str(exc):
                        raise
                    self.rec.fell_back = True
                    self.rec.error = f"webrtc: {exc}"
                    await self.close_peer()
                    await self.connect_fallback()
            await self.hold()
        except Exception as exc:  # recorded and reported; one page never stops the others
            self.rec.error = f"{type(exc).__name__}: {exc}"
            emit({"ev": "fail", "index": self.rec.index, "error": self.rec.error})
        finally:
            await self.finish()
        return self.report()

    async def start_session(self) -> None:
        # learner.js: the server says how many frames the sign-in burst has, and their spacing.
        burst = (await self.http.get("/api/v1/sessions/sign-in", headers=self.headers)).json()
        mode = "upload" if self.cfg["mode"] == "upload" else "webrtc"
        for _ in range(30):
            files = []
            for i in range(int(burst["frames"])):
                if i:
                    await asyncio.sleep(float(burst["spacing_s"]))
                files.append(("frame", (f"frame{i}.jpg", self.current_jpeg(), "image/jpeg")))
            r = await self.http.post(
                "/api/v1/sessions",
                headers=self.headers,
                data={
                    "course_id": str(self.learner["course_id"]),
                    "mode": mode,
                    "device": f"bench-client|{self.rec.index}",
                },
                files=files,
            )
            if r.status_code == 503:  # verification overloaded at the sign-in burst
                self.rec.retries_503 += 1
                await asyncio.sleep(1 + random.random())
                continue
            if r.status_code != 201:
                raise BenchError(f"POST /sessions: {r.status_code} {r.text[:200]}")
            self.rec.session_id = r.json()["session"]["session_id"]
            return
        raise BenchError("POST /sessions: still overloaded after 30 tries")

    def up(self, mode: str) -> None:
        self.rec.mode = mode
        self.rec.up_at = time.time()
        emit({"ev": "up", "index": self.rec.index, "session_id": self.rec.session_id, "mode": mode})

    async def connect_webrtc(self, baseline: bool = False) -> None:
        from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc = pc
        self.track = CameraTrack(self.frames_yuv, self.offset)
        pc.addTransceiver(self.track, direction="sendonly")
        channel = pc.createDataChannel("supervision")
        self.channel = channel
        connected = asyncio.Event()

        @channel.on("open")
        def _open() -> None:
            channel.send(json.dumps({"type": "hello"}))

        @channel.on("message")
        def _message(text: Any) -> None:
            with contextlib.suppress(ValueError, TypeError):
                self.handle(json.loads(text))

        @pc.on("connectionstatechange")
        def _state() -> None:
            if pc.connectionState == "connected":
                connected.set()
            elif pc.connectionState in ("failed", "closed", "disconnected"):
                if self.rec.disconnected is None and not self.stop.is_set():
                    self.rec.disconnected = f"{pc.connectionState} at {time.time():.0f}"
                    emit({"ev": "disconnected", "index": self.rec.index})
                connected.set()

        await pc.setLocalDescription(await pc.createOffer())  # aiortc gathers ICE here
        offer = {"sdp": pc.localDescription.sdp, "type": "offer"}
        if baseline:
            self.track.set_sending(True, self.cfg["fps"])  # the browser's default: always on
            reader, writer = await asyncio.open_connection("127.0.0.1", self.cfg["receiver_port"])
            writer.write(json.dumps(offer).encode() + b"\n")
            await writer.drain()
            answer = json.loads(await reader.readline())
            writer.close()
        else:
            r = await self.http.post(
                f"/api/v1/sessions/{self.rec.session_id}/webrtc", headers=self.headers, json=offer
            )
            if r.status_code != 200:
                raise BenchError(f"POST /webrtc: {r.status_code} {r.text[:200]}")
            answer = r.json()
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(connected.wait(), CONNECT_TIMEOUT_S)
        if pc.connectionState != "connected":
            raise BenchError(f"WebRTC did not connect ({pc.connectionState})")
        self.up("webrtc")

    async def connect_fallback(self) -> None:
        r = await self.http.post(
            f"/api/v1/sessions/{self.rec.session_id}/live",
            headers=self.headers,
            json={"mode": "upload"},
        )
        if r.status_code != 200:
            raise BenchError(f"POST /live: {r.status_code} {r.text[:200]}")
        self.up("upload")
        self.tasks.add(asyncio.ensure_future(self.poll_loop()))

    # -- learner.js: handle(), the heartbeat, pollLoop(), sendFrames() ----------------------

    def handle(self, m: dict[str, Any]) -> None:
        kind = m.get("type")
        if kind == "hello" and isinstance(m.get("heartbeat_s"), int | float):
            self.heartbeat_s = max(float(m["heartbeat_s"]), 0.5)
        elif kind == "capture":
            if self.rec.mode == "upload":
                if m.get("on") and m.get("check_id"):
                    task = asyncio.ensure_future(self.send_frames(m))
                    self.tasks.add(task)
                    task.add_done_callback(self.tasks.discard)
            elif self.track is not None:
                self.track.set_sending(bool(m.get("on")), m.get("fps"))
                if m.get("on") and not m.get("check_id") and not self.rec.streaming:
                    self.rec.streaming = True
                    emit({"ev": "streaming", "index": self.rec.index})
        elif kind == "checking":
            self.rec.asked[str(m.get("check_id"))] = time.time()
        elif kind == "result":
            self.rec.verdicts[str(m.get("verdict"))] += 1
        elif kind == "state" and m.get("state") == "ended":
            if not self.stop.is_set() and self.rec.ended_by_server is None:
                self.rec.ended_by_server = f"ended at {time.time():.0f}"
                emit({"ev": "ended", "index": self.rec.index})

    async def poll_loop(self) -> None:
        path = f"/api/v1/sessions/{self.rec.session_id}/messages"
        stop = asyncio.ensure_future(self.stop.wait())
        try:
            while not self.stop.is_set():
                poll = asyncio.ensure_future(
                    self.http.get(path, headers=self.headers, params={"wait": 20})
                )
                await asyncio.wait({poll, stop}, return_when=asyncio.FIRST_COMPLETED)
                if not poll.done():
                    poll.cancel()
                    with contextlib.suppress(BaseException):
                        await poll
                    break
                try:
                    r = poll.result()
                except Exception:
                    await asyncio.sleep(2)
                    continue
                if r.status_code in (403, 409):
                    if not self.stop.is_set():
                        self.rec.ended_by_server = f"poll {r.status_code} at {time.time():.0f}"
                    break
                if r.status_code != 200:
                    await asyncio.sleep(2)
                    continue
                for m in r.json():
                    self.handle(m)
        finally:
            stop.cancel()

    async def send_frames(self, m: dict[str, Any]) -> None:
        count = int(m.get("count") or 1)
        spacing = float(m.get("spacing") or 0.5)
        files = []
        for i in range(count):
            files.append(("frames", (f"f{i}.jpg", self.current_jpeg(), "image/jpeg")))
            if i + 1 < count:
                await asyncio.sleep(spacing)
        self.rec.frames_sent += count
        try:
            r = await self.http.post(
                f"/api/v1/sessions/{self.rec.session_id}/frames",
                headers=self.headers,
                data={"check_id": str(m["check_id"]), "nonce": str(m.get("nonce", ""))},
                files=files,
            )
            self.rec.frame_posts += 1
            if r.status_code != 202:
                self.rec.frame_post_errors += 1
        except Exception:
            self.rec.frame_post_errors += 1

    async def hold(self) -> None:
        """Study until told to stop, sending heartbeats on the data channel as often as
        the server's hello asks."""
        while not self.stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), self.heartbeat_s)
            channel = self.channel
            if not self.stop.is_set() and self.rec.mode == "webrtc" and channel is not None:
                if channel.readyState == "open":
                    channel.send(json.dumps({"type": "heartbeat"}))
                    self.rec.heartbeats += 1

    # -- learner.js: end(), closePeer() ------------------------------------------------

    async def close_peer(self) -> None:
        if self.track is not None:
            self.rec.frames_sent += self.track.sent
            self.track = None
        if self.pc is not None:
            with contextlib.suppress(Exception):
                await self.pc.close()
            self.pc = None

    async def finish(self) -> None:
        if self.rec.session_id is not None and self.cfg["mode"] != "baseline":
            with contextlib.suppress(Exception):
                r = await self.http.post(
                    f"/api/v1/sessions/{self.rec.session_id}/end", headers=self.headers
                )
                self.rec.end_status = r.status_code
        for task in list(self.tasks):
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        await self.close_peer()

    def report(self) -> dict[str, Any]:
        out = asdict(self.rec)
        out["verdicts"] = dict(self.rec.verdicts)
        return out


def _stdin_watch(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """A daemon thread: 'stop' (or the orchestrator's death: EOF) stops the client."""
    for line in sys.stdin:
        if line.strip() == "stop":
            break
    loop.call_soon_threadsafe(stop.set)


async def client_async(cfg: dict[str, Any]) -> None:
    import httpx

    frames = load_frames(Path(cfg["video"]) if cfg.get("video") else None)
    shared: dict[str, Any] = {
        "yuv": [cv2.cvtColor(f, cv2.COLOR_RGB2YUV_I420) for f in frames],
        "jpegs": [jpeg(f) for f in frames] if cfg["mode"] != "baseline" else [b""],
        "stop": asyncio.Event(),
    }
    loop = asyncio.get_running_loop()
    threading.Thread(target=_stdin_watch, args=(loop, shared["stop"]), daemon=True).start()
    n = len(cfg["learners"])
    limits = httpx.Limits(max_connections=3 * n + 10, max_keepalive_connections=3 * n + 10)
    async with httpx.AsyncClient(
        base_url=cfg.get("url") or "http://127.0.0.1", timeout=60, limits=limits
    ) as http:
        shared["http"] = http
        emit({"ev": "loaded", "learners": n})
        pages = [Page(cfg, learner, shared) for learner in cfg["learners"]]
        reports = await asyncio.gather(*(p.run() for p in pages))
    st = _stat(os.getpid())
    emit({"ev": "report", "learners": reports, "cpu_s": st[1] if st else None})


# -- the baseline receiver (its own process): every frame decoded and checked -------------

_engine: Any = None


def _receiver_init() -> None:
    global _engine
    from config import FaceSettings
    from verification.dlib_engine import DlibFaceEngine

    _engine = DlibFaceEngine(FaceSettings())


def _receiver_presence(image: np.ndarray) -> str:
    assert _engine is not None
    return str(_engine.presence(image).verdict.value)


def _receiver_ping() -> bool:
    return _engine is not None


async def receiver_async(cfg: dict[str, Any]) -> None:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
    from aiortc.mediastreams import MediaStreamError

    loop = asyncio.get_running_loop()
    pool = ProcessPoolExecutor(
        cfg["processes"],
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_receiver_init,
    )
    await asyncio.gather(
        *(loop.run_in_executor(pool, _receiver_ping) for _ in range(cfg["processes"]))
    )
    peers: set[Any] = set()
    counts: Counter[str] = Counter()
    latencies: list[float] = []

    async def consume(track: Any) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                t = time.monotonic()
                counts["received"] += 1
                image = await asyncio.to_thread(frame.to_ndarray, format="rgb24")
                verdict = await loop.run_in_executor(pool, _receiver_presence, image)
                counts["processed"] += 1
                counts[f"verdict:{verdict}"] += 1
                latencies.append(time.monotonic() - t)

    async def on_offer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        offer = json.loads(await reader.readline())
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        peers.add(pc)

        @pc.on("track")
        def _track(track: Any) -> None:
            if track.kind == "video":
                asyncio.ensure_future(consume(track))

        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer["sdp"], type="offer"))
        for t in pc.getTransceivers():
            t.direction = "recvonly" if t.kind == "video" else "inactive"
        await pc.setLocalDescription(await pc.createAnswer())
        writer.write(json.dumps({"sdp": pc.localDescription.sdp, "type": "answer"}).encode())
        writer.write(b"\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(on_offer, "127.0.0.1", 0)
    emit({"ev": "listening", "port": server.sockets[0].getsockname()[1]})
    commands: asyncio.Queue[str] = asyncio.Queue()

    def watch() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(commands.put_nowait, line.strip())
        loop.call_soon_threadsafe(commands.put_nowait, "stop")

    threading.Thread(target=watch, daemon=True).start()
    while True:
        command = await commands.get()
        if command == "stats":
            emit({"ev": "stats", "counts": dict(counts), "latencies": latencies[-20000:]})
            latencies.clear()
        elif command == "stop":
            break
    server.close()
    await asyncio.gather(*(pc.close() for pc in peers), return_exceptions=True)
    pool.shutdown(wait=True, cancel_futures=True)
    emit({"ev": "report", "counts": dict(counts)})


# -- real Chromium tabs on the learner page (its own process) -----------------------------


async def chromium_async(cfg: dict[str, Any]) -> None:
    from playwright.async_api import async_playwright

    stop = asyncio.Event()
    threading.Thread(
        target=_stdin_watch, args=(asyncio.get_running_loop(), stop), daemon=True
    ).start()
    reports = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=cfg["chromium"],
            headless=True,
            args=[*CHROMIUM_FLAGS, f"--use-file-for-fake-video-capture={cfg['y4m']}"],
        )
        emit({"ev": "loaded", "learners": len(cfg["learners"])})
        pages = []
        for learner in cfg["learners"]:
            rec: dict[str, Any] = {"index": learner["index"], "learner_id": learner["learner_id"]}
            reports.append(rec)
            try:
                context = await browser.new_context(viewport={"width": 1000, "height": 800})
                page = await context.new_page()
                pages.append(page)
                await page.goto(f"{cfg['url']}/learn#token={learner['token']}")
                await page.wait_for_selector("body[data-ready='1']", timeout=30_000)
                await page.click("#start-button")
                await page.wait_for_selector("body[data-mode='webrtc']", timeout=30_000)
                rec["session_id"] = await page.evaluate("document.body.dataset.session")
                rec["mode"] = "webrtc"
                rec["up_at"] = time.time()
                emit({"ev": "up", "index": learner["index"], "session_id": rec["session_id"]})
            except Exception as exc:
                rec["error"] = f"{type(exc).__name__}: {exc}"
                emit({"ev": "fail", "index": learner["index"], "error": rec["error"]})
        await stop.wait()
        for page in pages:
            with contextlib.suppress(Exception):
                if await page.is_visible("#end-button"):
                    await page.click("#end-button")
        await asyncio.sleep(1)
        await browser.close()
    emit({"ev": "report", "learners": reports, "cpu_s": None})


def child_main(role: str, config_path: str) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the orchestrator stops us, in order
    cfg = json.loads(Path(config_path).read_text())
    runner: Callable[[dict[str, Any]], Any] = {
        "client": client_async,
        "receiver": receiver_async,
        "chromium": chromium_async,
    }[role]
    asyncio.run(runner(cfg))
    return 0


# -- the service under test --------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def supervisor_argv() -> list[str]:
    script = Path(sys.executable).parent / "supervisor"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "supervisor.cli"]


def service_env(data: Path, port: int, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPERVISOR_")}
    env.update(
        {
            "SUPERVISOR_ENVIRONMENT": "development",
            "SUPERVISOR_DATA_DIR": str(data),
            "SUPERVISOR_DATABASE__URL": f"sqlite:///{data / 'supervisor.db'}",
            "SUPERVISOR_EVIDENCE__DIRECTORY": str(data / "evidence"),
            "SUPERVISOR_REDIS__EMBEDDED_PATH": str(data / "redis" / "redis.db"),
            "SUPERVISOR_SERVER__PORT": str(port),
        }
    )
    env.update(BENCH_ENV)
    env.update(extra)
    return env


class Service:
    """`supervisor serve` in its own process on a free port."""

    def __init__(self, procs: Procs, data: Path, logs: Path, extra_env: dict[str, str]):
        self.procs = procs
        self.data = data
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = service_env(data, self.port, extra_env)
        self.logs = logs
        self.proc: subprocess.Popen[bytes] | None = None
        self.redis: list[int] = []
        self.code = ""

    def cli(self, *args: str) -> str:
        out = subprocess.run(
            [*supervisor_argv(), *args],
            env=self.env,
            cwd=self.data,
            capture_output=True,
            text=True,
            timeout=180,
        )
        if out.returncode != 0:
            raise BenchError(f"supervisor {' '.join(args)} failed: {out.stderr.strip()[-500:]}")
        return out.stdout

    def start(self, name: str) -> None:
        self.code = code_digest()
        self.proc = self.procs.start(
            f"service-{name}",
            [*supervisor_argv(), "serve"],
            self.logs / f"service-{name}.log",
            env=self.env,
            cwd=self.data,
        )
        import httpx

        deadline = time.monotonic() + 120
        while True:
            if self.proc.poll() is not None:
                raise BenchError(f"the service exited ({self.proc.returncode}); see its log")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise BenchError("the service did not come up within 120 s")
            time.sleep(0.3)
        self.redis = find_redis(self.data / "redis")
        self.procs.extra.extend(self.redis)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def cpu(self) -> dict[int, tuple[str, float]]:
        return tree_cpu(self.pid, self.redis)

    def stop(self) -> None:
        if self.proc is not None:
            self.procs.stop(self.proc, signal.SIGINT, 40)
            self.proc = None
        self.procs.stop_extra()


def _call(api: Any, method: str, path: str, token: str, expect: int, **kw: Any) -> Any:
    for _ in range(60):
        r = api.request(method, path, headers={"Authorization": f"Bearer {token}"}, **kw)
        if r.status_code == 503:  # verification overloaded: the service sheds, we retry
            time.sleep(0.5 + random.random())
            continue
        if r.status_code != expect:
            raise BenchError(f"{method} {path}: {r.status_code} {r.text[:300]}")
        return r.json() if r.content else None
    raise BenchError(f"{method} {path}: still overloaded")


def id_number(i: int) -> str:
    from supervisor.registry.identity import id_check_character

    birth = (date(1990, 3, 7) + timedelta(days=i // 1000)).strftime("%Y%m%d")
    body = f"110101{birth}{i % 1000:03d}"
    return body + id_check_character(body)


def credit_code(k: int) -> str:
    """Institution k's unified social credit code (valid, with its check character)."""
    from supervisor.registry.credit_code import check_character

    body = f"91110000MA{k:07d}"
    return body + check_character(body)


def enrolment_photo(frames: Sequence[np.ndarray], i: int) -> bytes:
    """Learner i's enrolment photo: a distinct frame of the same person's clip.

    dlib's jitter is deterministic, so one photo enrolled twice gives the same template
    (distance 0) and trips any duplicate threshold; every other frame of the clip is at
    least 0.02 from its neighbours, and past one pass the frames are brightened a little.
    """
    k = 2 * i
    rgb = frames[k % len(frames)]
    level = k // len(frames)
    if level:
        rgb = cv2.convertScaleAbs(rgb, alpha=1 + 0.06 * level)
    return jpeg(rgb, 95)


def make_learners(
    api: Any, admin: str, n: int, frames: Sequence[np.ndarray]
) -> list[dict[str, Any]]:
    """Institutions with an online course each, and `n` consenting, enrolled learners."""
    version = api.get("/api/v1/consent-text").json()["version"]
    courses = []
    for k in range(min(4, n)):
        body = {"name": f"School {k}", "credit_code": credit_code(k)}
        inst = _call(api, "POST", "/api/v1/institutions", admin, 201, json=body)
        course = _call(
            api,
            "POST",
            "/api/v1/courses",
            admin,
            201,
            json={
                "institution_id": inst["id"],
                "name": "Electrician, level 4",
                "required_hours": 40,
                "delivery_mode": "online",
            },
        )
        courses.append((inst["id"], course["id"]))

    def one(i: int) -> dict[str, Any]:
        inst, course = courses[i % len(courses)]
        learner = _call(
            api,
            "POST",
            "/api/v1/learners",
            admin,
            201,
            json={
                "institution_id": inst,
                "full_name": f"Bench Learner {i + 1}",
                "id_number": id_number(i),
            },
        )
        lid = learner["id"]
        secret = _call(api, "POST", f"/api/v1/learners/{lid}/tokens", admin, 201)["secret"]
        _call(
            api,
            "POST",
            f"/api/v1/learners/{lid}/consent",
            secret,
            201,
            json={"text_version": version},
        )
        _call(
            api,
            "POST",
            f"/api/v1/learners/{lid}/templates",
            secret,
            201,
            files={"photo": ("me.jpg", enrolment_photo(frames, i), "image/jpeg")},
        )
        return {"learner_id": lid, "token": secret, "course_id": course}

    with ThreadPoolExecutor(6) as ex:
        return list(ex.map(one, range(n)))


# -- reading the ledger ----------------------------------------------------------------


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def read_ledgers(api: Any, admin: str, sessions: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    def one(sid: str) -> tuple[str, list[dict[str, Any]]]:
        return sid, _call(api, "GET", f"/api/v1/sessions/{sid}/events", admin, 200)

    with ThreadPoolExecutor(8) as ex:
        return dict(ex.map(one, sessions))


def _intervals(policy: dict[str, Any], kind: str) -> tuple[float, float, float]:
    return (
        policy[f"{kind}_interval_min_s"],
        policy[f"{kind}_interval_mean_s"],
        policy[f"{kind}_interval_max_s"],
    )


def simulate_schedule(
    policy: dict[str, Any],
    d_presence: float,
    d_identity: float,
    ages: Sequence[float],
    window: float,
    runs: int = 200,
) -> tuple[float, float]:
    """Expected (presence, identity) scheduled checks in a window, replaying LiveSession.run.

    Each session is `age` seconds old (since its page attached) when the window opens.
    After each check the loop draws the next presence moment from the check's end; the
    identity moment, drawn once per identity check, replaces the presence check when it
    comes first. `d_*` are the checks' durations (scheduled moment to ledger event).
    """
    from supervisor.rules.schedule import draw_interval

    rng = random.Random(2026)
    p, q = _intervals(policy, "presence"), _intervals(policy, "identity")
    presence = identity = 0
    for age in ages:
        for _ in range(runs):
            t, end = 0.0, age + window
            identity_due: float | None = None
            while True:
                presence_at = t + draw_interval(rng, *p)
                if identity_due is None:
                    identity_due = t + draw_interval(rng, *q)
                if identity_due <= presence_at:
                    due, is_identity, identity_due = identity_due, True, None
                    t = due + d_identity
                else:
                    due, is_identity = presence_at, False
                    t = due + d_presence
                if due >= end:
                    break
                if due >= age:
                    identity += is_identity
                    presence += not is_identity
    return presence / runs, identity / runs


def stationary_rates(
    policy: dict[str, Any], d_presence: float, d_identity: float
) -> tuple[float, float]:
    """(presence, identity) scheduled checks per hour of a long session."""
    hours = 2000.0
    presence, identity = simulate_schedule(
        policy, d_presence, d_identity, [3600.0], hours * 3600, runs=1
    )
    return presence / hours, identity / hours


def engine_costs(
    frames: Sequence[np.ndarray], liveness: dict[str, Any], repeat: int = 8
) -> dict[str, float]:
    """CPU seconds, in this process, of one presence and one identity check (3 frames, best
    of k, with the engine the service's pool runs: what an identity check costs more), and
    of one active challenge as the service runs it (`liveness.challenge_fps` frames a
    second for `challenge_time_limit_s` + 0.5 s): VP8 decoding and JPEG encoding of its
    frames (the main process), then decoding, the check, liveness on every frame and the
    challenge's verdict (a worker)."""
    from dataclasses import replace

    from config import FaceSettings
    from verification.dlib_engine import DlibFaceEngine
    from verification.imageio import decode_image, encode_jpeg
    from verification.liveness import (
        DEFAULT_PARAMS,
        evaluate_challenge,
        observe,
        passive_liveness,
    )
    from verification.types import Challenge, ChallengeKind, CheckKind

    engine = DlibFaceEngine(FaceSettings())
    templates = np.asarray([engine.enrol(frames[0]).vector])
    out = {}
    for kind in (CheckKind.presence, CheckKind.identity):
        t = time.process_time()
        for i in range(repeat):
            k = (i * 31) % max(len(frames) - 40, 1)
            images = [frames[k], frames[k + 18], frames[k + 36]]
            engine.check(kind, images, templates if kind is CheckKind.identity else None)
        out[kind.value] = (time.process_time() - t) / repeat

    fps = float(liveness.get("challenge_fps", 8.0))
    limit = float(liveness.get("challenge_time_limit_s", 5.0))
    count = max(2, int(fps * (limit + 0.5)))
    step = max(int(SOURCE_FPS / fps), 1)
    encoder = av.CodecContext.create("libvpx", "w")
    encoder.width, encoder.height, encoder.pix_fmt = W, H, "yuv420p"
    encoder.bit_rate = 500_000
    packets = []
    for n in range(count):
        frame = av.VideoFrame.from_ndarray(frames[(n * step) % len(frames)], format="rgb24")
        packets += encoder.encode(frame.reformat(format="yuv420p"))
    packets += encoder.encode(None)
    challenge = Challenge(ChallengeKind.turn_left, 0.0, limit)
    params = replace(DEFAULT_PARAMS, challenge_time_limit_s=limit)
    t = time.process_time()
    decoder = av.CodecContext.create("libvpx", "r")
    rgb = [f.to_ndarray(format="rgb24") for p in packets for f in decoder.decode(p)]
    jpegs = [encode_jpeg(image, 90) for image in rgb]
    images = [decode_image(j, max_pixels=W * H, max_side=W) for j in jpegs]
    result = engine.check(CheckKind.presence, images, None)
    anchor = next((f.box for f in result.frames if f.faces_found == 1), None)
    seen = [observe(engine, image, n / fps, near=anchor) for n, image in enumerate(images)]
    evaluate_challenge(challenge, seen, params)
    passive_liveness(seen, DEFAULT_PARAMS)
    out["challenge"] = time.process_time() - t
    return out


def pct(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def analyse(
    ledgers: dict[str, list[dict[str, Any]]],
    t0: datetime,
    t1: datetime,
    policy: dict[str, Any],
    asked: dict[str, dict[str, float]],
    asked_until: float,
    attached: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Scheduled checks of the window, what went wrong, latencies, holes and lost checks.

    `asked` holds, per session, the check ids the server announced to the page (its
    "checking" messages) with their unix time; one announced before `asked_until` and
    absent from the ledger is lost (later ones may still be running when the pages end).
    """
    slack = 2.0  # seconds: a check's own bookkeeping after its ledger event
    out: dict[str, Any] = {
        "done": 0,
        "by_kind": Counter(),
        "purposes": Counter(),
        "verdicts": Counter(),
        "missed": 0,
        "missed_total": 0,
        "deferred": 0,
        "failed": 0,
        "pauses": Counter(),
        "ended": Counter(),
        "latency_ms": [],
        "latency_by_kind": {"presence": [], "identity": []},
        "holes": 0,
        "max_gap_s": 0.0,
        "lost": 0,
        "announced": 0,
        "late_first": 0,
        "max_first_s": 0.0,
        "integrity_events": 0,
    }
    for sid, events in ledgers.items():
        ids = set()
        loop_checks = []  # the run loop's checks, in order: (scheduled_at, recorded_at)
        for e in events:
            out["integrity_events"] += 1
            p = e["payload"]
            recorded = ts(e["recorded_at"])
            if e["kind"] in ("check", "check_missed", "check_deferred"):
                ids.add(p["check_id"])
            if e["kind"] == "check":
                out["purposes"][p["purpose"]] += 1
                if p["purpose"] == "scheduled" and p.get("scheduled_at"):
                    sched = ts(p["scheduled_at"])
                    loop_checks.append((sched, recorded))
                    if t0 <= sched < t1:
                        out["done"] += 1
                        out["by_kind"][p["check_kind"]] += 1
                        out["verdicts"][p["verdict"]] += 1
                        out["failed"] += 0 if p["passed"] else 1
                        ms = (recorded - sched).total_seconds() * 1000
                        out["latency_ms"].append(ms)
                        out["latency_by_kind"][p["check_kind"]].append(ms)
            elif e["kind"] == "check_missed":
                out["missed_total"] += 1
                if t0 <= ts(p["scheduled_at"]) < t1:
                    out["missed"] += 1
            elif e["kind"] == "check_deferred":
                out["deferred"] += 1
            elif e["kind"] == "state_changed" and p["to_state"] == "paused":
                out["pauses"][p["reason"]] += 1
            elif e["kind"] == "session_ended":
                out["ended"][p["reason"]] += 1
        # The first check comes at most presence_max after the page attached (the page
        # reports "up" just after the server attached it, so this errs on the safe side).
        if attached and sid in attached and loop_checks:
            first = loop_checks[0][0].timestamp() - attached[sid]
            out["max_first_s"] = max(out["max_first_s"], first)
            if first > policy["presence_interval_max_s"] + slack:
                out["late_first"] += 1
        # No hole in the schedule: the next check is drawn at most presence_max after the
        # previous one ended, so a longer gap means a scheduled check was lost.
        for (_, prev_rec), (sched, _) in zip(loop_checks, loop_checks[1:], strict=False):
            gap = (sched - prev_rec).total_seconds()
            out["max_gap_s"] = max(out["max_gap_s"], gap)
            if gap > policy["presence_interval_max_s"] + slack:
                out["holes"] += 1
        out["announced"] += sum(1 for at in asked.get(sid, {}).values() if at < asked_until)
        out["lost"] += sum(
            1 for cid, at in asked.get(sid, {}).items() if at < asked_until and cid not in ids
        )
    return out


# -- phases ------------------------------------------------------------------------------


@dataclass
class Phase:
    name: str
    kind: str  # service | baseline
    client_mode: str  # webrtc | upload | chromium | baseline
    sessions: int
    window_s: float
    env: dict[str, str] = field(default_factory=dict)
    label: str = ""


@dataclass
class Result:
    phase: Phase
    sessions_up: int
    window_s: float
    cpu: dict[str, float]
    idle_cpu_per_h: float | None = None
    code: str = ""  # digest of the packages' sources when the service started
    stats0: dict[str, Any] = field(default_factory=dict)
    stats1: dict[str, Any] = field(default_factory=dict)
    ledger: dict[str, Any] | None = None
    expected: float | None = None  # scheduled checks in the window, for these sessions' ages
    expected_identity: float | None = None
    stationary: tuple[float, float] | None = None  # (presence, identity) per hour, long session
    clients_cpu: float = 0.0
    machine_cpu: float = 0.0
    rss_mb: float = 0.0
    load: tuple[float, float] = (0.0, 0.0)
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    receiver: dict[str, Any] = field(default_factory=dict)
    profile: list[tuple[str, float]] = field(default_factory=list)

    @property
    def learner_hours(self) -> float:
        return self.sessions_up * self.window_s / 3600

    def per_learner_hour(self, key: str = "total") -> float:
        return self.cpu.get(key, 0.0) / self.learner_hours if self.learner_hours else math.nan

    def steady_mix_per_learner_hour(
        self, costs: dict[str, float], challenge_probability: float
    ) -> float | None:
        """Per learner-hour with the identity checks a long session has, when the window had
        fewer (the first one comes 10-15 min after the page attaches): each missing identity
        check costs the engine's identity-minus-presence CPU more, and is followed by an
        active challenge with `liveness.challenge_probability` (at the measured cost of one)."""
        if self.ledger is None or self.stationary is None or not costs:
            return None
        per_h = self.ledger["by_kind"].get("identity", 0) / self.learner_hours
        missing = max(self.stationary[1] - per_h, 0.0)
        extra = missing * (costs["identity"] - costs["presence"])
        extra += missing * challenge_probability * costs.get("challenge", 0.0)
        return self.per_learner_hour() + extra


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.procs = Procs()
        self.run_dir = Path(tempfile.mkdtemp(prefix="webrtc-bench-"))
        self.data = self.run_dir / "data"
        self.data.mkdir()
        self.logs = self.run_dir / "logs"
        self.logs.mkdir()
        self.extra_env = dict(kv.split("=", 1) for kv in args.env)
        self.learners: list[dict[str, Any]] = []
        self.admin = ""
        self.policy: dict[str, Any] = {}
        self.settings: dict[str, Any] = {}
        self.video = Path(args.video) if args.video else None
        self.frames = load_frames(self.video)
        self.costs: dict[str, float] = {}

    @property
    def challenge_probability(self) -> float:
        return float(self.settings.get("liveness", {}).get("challenge_probability", 0.0))

    # -- helpers -------------------------------------------------------------------

    def spawn_children(
        self, role: str, configs: list[dict[str, Any]], events: queue.Queue[Any]
    ) -> list[Child]:
        children = []
        for k, cfg in enumerate(configs):
            path = self.run_dir / f"{role}-{k}.json"
            path.write_text(json.dumps(cfg))
            name = f"{role}-{k}"
            proc = self.procs.start(
                name,
                [
                    sys.executable,
                    str(Path(__file__).resolve()),
                    "--role",
                    role,
                    "--config",
                    str(path),
                ],
                self.logs / f"{name}.log",
                cwd=REPO,
                pipes=True,
            )
            children.append(Child(name, proc, events))
        return children

    def client_configs(self, mode: str, n: int, url: str, **extra: Any) -> list[dict[str, Any]]:
        procs = self.args.client_procs or max(1, min(8, math.ceil(n / 15)))
        if mode == "chromium":
            procs = 1
        chunks: list[list[dict[str, Any]]] = [[] for _ in range(min(procs, n))]
        for i in range(n):
            # A baseline stream goes to the bench's receiver: no learner, no token.
            known = self.learners[i] if mode != "baseline" else {"learner_id": 0}
            learner = dict(known, index=i, delay=i / self.args.ramp)
            chunks[i % len(chunks)].append(learner)
        base = {"mode": mode, "url": url, "video": str(self.video) if self.video else None}
        return [dict(base, learners=chunk, **extra) for chunk in chunks]

    def wait_events(
        self,
        events: queue.Queue[Any],
        done: Callable[[], bool],
        timeout: float,
        on_event: Callable[[str, dict[str, Any]], None],
    ) -> bool:
        deadline = time.monotonic() + timeout
        while not done():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                name, ev = events.get(timeout=min(remaining, 1.0))
            except queue.Empty:
                continue
            on_event(name, ev)
        return True

    def stop_children(
        self, children: list[Child], events: queue.Queue[Any], collect: list[dict[str, Any]]
    ) -> None:
        for child in children:
            child.send("stop")
        pending = {c.name for c in children if not c.eof}  # a crashed one sends nothing

        def on_event(name: str, ev: dict[str, Any]) -> None:
            if ev.get("ev") in ("report", "exit"):
                if ev.get("ev") == "report":
                    collect.append(ev)
                pending.discard(name)

        self.wait_events(events, lambda: not pending, 120, on_event)
        for child in children:
            self.procs.stop(child.proc, signal.SIGTERM, 20)

    # -- set-up ------------------------------------------------------------------------

    def setup(self, n: int) -> None:
        svc = Service(self.procs, self.data, self.logs, self.extra_env)
        self.admin = svc.cli("token", "create", "--role", "admin", "--label", "webrtc bench")
        self.admin = self.admin.strip().splitlines()[-1]
        self.settings = json.loads(svc.cli("settings"))
        self.policy = self.settings["policy"]
        log(f"run directory {self.run_dir}; creating {n} learners (enrolment takes a while)")
        svc.start("setup")
        try:
            import httpx

            t = time.monotonic()
            with httpx.Client(base_url=svc.url, timeout=120) as api:
                self.learners = make_learners(api, self.admin, n, self.frames)
            log(f"{n} learners enrolled in {time.monotonic() - t:.0f} s")
        finally:
            svc.stop()

    # -- one phase against the service ------------------------------------------------

    def run_service_phase(self, phase: Phase) -> Result:
        import httpx

        svc = Service(self.procs, self.data, self.logs, {**self.extra_env, **phase.env})
        if phase.env:
            settings = json.loads(svc.cli("settings"))
        else:
            settings = self.settings
        svc.start(phase.name)
        events: queue.Queue[Any] = queue.Queue()
        children: list[Child] = []
        reports: list[dict[str, Any]] = []
        api = httpx.Client(base_url=svc.url, timeout=120)
        try:
            time.sleep(3)
            idle = None
            if self.args.idle_seconds > 0:
                c0 = svc.cpu()
                time.sleep(self.args.idle_seconds)
                idle = cpu_delta(c0, svc.cpu())["total"] / self.args.idle_seconds * 3600
            extra: dict[str, Any] = {}
            if phase.client_mode == "chromium":
                y4m = write_y4m(self.run_dir / "face.y4m", self.frames)
                extra = {"y4m": str(y4m), "chromium": self.args.chromium_path}
            configs = self.client_configs(phase.client_mode, phase.sessions, svc.url, **extra)
            role = "chromium" if phase.client_mode == "chromium" else "client"
            children = self.spawn_children(role, configs, events)
            up: dict[int, dict[str, Any]] = {}
            failed: dict[int, str] = {}
            streaming: set[int] = set()
            trouble: list[str] = []

            def on_event(name: str, ev: dict[str, Any]) -> None:
                kind = ev.get("ev")
                if kind == "up":
                    up[ev["index"]] = dict(ev, at=time.time())
                elif kind == "fail":
                    failed[ev["index"]] = ev["error"]
                elif kind == "streaming":
                    streaming.add(ev["index"])
                elif kind in ("disconnected", "ended"):
                    trouble.append(f"learner {ev['index']} {kind} at {datetime.now():%H:%M:%S}")
                elif kind == "exit":
                    trouble.append(f"{name} exited early")

            ramp = phase.sessions / self.args.ramp
            log(f"{phase.name}: connecting {phase.sessions} sessions (ramp {ramp:.0f} s)")
            self.wait_events(
                events,
                lambda: len(up) + len(failed) >= phase.sessions or all(c.eof for c in children),
                ramp + 180,
                on_event,
            )
            if not up:
                raise BenchError(f"{phase.name}: no session came up: {list(failed.values())[:3]}")
            modes = Counter(e.get("mode", "webrtc") for e in up.values())
            log(f"{phase.name}: {len(up)} up {dict(modes)}, {len(failed)} failed")
            if phase.env.get("SUPERVISOR_WEBRTC__IDLE_FPS"):
                # The idle rate is asked for only after a session's first check.
                limit = settings["policy"]["presence_interval_max_s"] + 60
                log(f"{phase.name}: waiting for every page to stream between checks")
                self.wait_events(events, lambda: len(streaming) >= len(up), limit, on_event)
                self.wait_events(events, lambda: False, 5, on_event)
            else:
                self.wait_events(events, lambda: False, self.args.warmup, on_event)
            result = self.measure(
                phase, lambda: svc.cpu(), api, events, on_event, children, up, svc.pid
            )
            result.idle_cpu_per_h = idle
            result.code = svc.code
            result.failures = [f"learner {i}: {e}" for i, e in sorted(failed.items())]
            result.notes.extend(trouble)
            if phase.client_mode != "upload" and modes.get("upload"):
                result.notes.append(f"{modes['upload']} pages fell back to still frames")
            self.stop_children(children, events, reports)
            children = []
            asked: dict[str, dict[str, float]] = {}
            for report in reports:
                for rec in report.get("learners", []):
                    if rec.get("session_id"):
                        asked[rec["session_id"]] = rec.get("asked") or {}
                    if rec.get("fell_back"):
                        result.notes.append(f"learner {rec['index']} fell back: {rec['error']}")
            sessions = [e["session_id"] for e in up.values() if e.get("session_id")]
            time.sleep(2)
            ledgers = read_ledgers(api, self.admin, sessions)
            t0, t1 = result.stats0["_t0"], result.stats1["_t1"]
            until = t1.timestamp() - settings["policy"]["capture_timeout_s"] - 10
            attached = {e["session_id"]: e["at"] for e in up.values() if e.get("session_id")}
            result.ledger = analyse(ledgers, t0, t1, settings["policy"], asked, until, attached)
            lat = result.ledger["latency_by_kind"]
            d_p = float(np.mean(lat["presence"])) / 1000 if lat["presence"] else 1.5
            d_i = float(np.mean(lat["identity"])) / 1000 if lat["identity"] else d_p
            ages = [t0.timestamp() - e["at"] for e in up.values() if e.get("session_id")]
            exp_p, exp_i = simulate_schedule(settings["policy"], d_p, d_i, ages, result.window_s)
            result.expected = exp_p + exp_i
            result.expected_identity = exp_i
            result.stationary = stationary_rates(settings["policy"], d_p, d_i)
            verify = _call(api, "GET", "/api/v1/ledger/integrity", self.admin, 200)
            result.notes.append(
                f"ledger integrity after the run: ok={verify.get('ok')}, "
                f"{verify.get('chains')} chains, {verify.get('events')} events"
            )
            return result
        finally:
            api.close()
            if children:
                self.stop_children(children, events, reports)
            svc.stop()

    def measure(
        self,
        phase: Phase,
        cpu: Callable[[], dict[int, tuple[str, float]]],
        api: Any,
        events: queue.Queue[Any],
        on_event: Callable[[str, dict[str, Any]], None],
        children: list[Child],
        up: dict[int, dict[str, Any]],
        server_pid: int,
    ) -> Result:
        def live_stats() -> dict[str, Any]:
            if api is None:
                return {}
            with contextlib.suppress(Exception):
                return dict(_call(api, "GET", "/api/v1/live/stats", self.admin, 200))
            return {}

        def clients_cpu() -> dict[int, tuple[str, float]]:
            out: dict[int, tuple[str, float]] = {}
            for c in children:
                out.update(tree_cpu(c.proc.pid))
            return out

        stats0 = live_stats()
        stats0["_t0"] = datetime.now(UTC)
        m0, k0, c0, w0 = machine_busy(), clients_cpu(), cpu(), time.monotonic()
        log(f"{phase.name}: measuring {phase.window_s:.0f} s with {len(up)} sessions")
        end = w0 + phase.window_s
        while time.monotonic() < end:
            self.wait_events(events, lambda: False, min(60.0, end - time.monotonic()), on_event)
            if time.monotonic() < end - 1:
                s = live_stats()
                if s:
                    log(
                        f"{phase.name}: {s.get('live_sessions')} live, "
                        f"{s.get('peers_connected')} peers, {s.get('frames_received')} frames"
                    )
        c1, w1, k1, m1 = cpu(), time.monotonic(), clients_cpu(), machine_busy()
        stats1 = live_stats()
        stats1["_t1"] = datetime.now(UTC)
        load = os.getloadavg()
        result = Result(
            phase=phase,
            sessions_up=len(up),
            window_s=w1 - w0,
            cpu=cpu_delta(c0, c1),
            stats0=stats0,
            stats1=stats1,
            rss_mb=rss_mb(server_pid),
            load=(load[0], load[1]),
        )
        result.clients_cpu = cpu_delta(k0, k1)["total"]
        result.machine_cpu = m1 - m0
        if self.args.profile_seconds > 0 and phase.name == "webrtc":
            result.profile = self.profile(server_pid)
        return result

    def profile(self, pid: int) -> list[tuple[str, float]]:
        """py-spy over the server's process tree, after the window (it is not counted)."""
        spy = Path(sys.executable).parent / "py-spy"
        if not spy.exists():
            log("py-spy is not installed in the venv; no profile")
            return []
        out = self.run_dir / "profile.txt"
        secs = self.args.profile_seconds
        log(f"profiling the server for {secs} s with py-spy")
        proc = self.procs.start(
            "py-spy",
            [str(spy), "record", "--pid", str(pid), "--subprocesses", "--format", "raw"]
            + [
                "--duration",
                str(round(secs)),
                "--rate",
                "50",
                "--output",
                str(out),
                "--nonblocking",
            ],
            self.logs / "py-spy.log",
        )
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(secs + 60)
        self.procs.stop(proc, signal.SIGINT, 10)
        if not out.exists():
            return []
        return summarise_profile(out)

    # -- the baseline: a bare receiver that checks every frame ------------------------------

    def run_baseline_phase(self, phase: Phase) -> Result:
        events: queue.Queue[Any] = queue.Queue()
        children: list[Child] = []
        reports: list[dict[str, Any]] = []
        processes = int(self.settings.get("server", {}).get("verify_processes", 2))
        (receiver,) = self.spawn_children("receiver", [{"processes": processes}], events)
        try:
            port: list[int] = []
            stats: list[dict[str, Any]] = []
            up: dict[int, dict[str, Any]] = {}
            failed: dict[int, str] = {}

            def on_event(name: str, ev: dict[str, Any]) -> None:
                if ev.get("ev") == "up":
                    up[ev["index"]] = ev
                elif ev.get("ev") == "fail":
                    failed[ev["index"]] = ev["error"]
                elif ev.get("ev") == "listening":
                    port.append(ev["port"])
                elif ev.get("ev") == "stats":
                    stats.append(ev)

            if not self.wait_events(events, lambda: bool(port), 120, on_event):
                raise BenchError("the baseline receiver did not start")
            configs = self.client_configs(
                "baseline", phase.sessions, "", receiver_port=port[0], fps=self.args.stream_fps
            )
            children = self.spawn_children("client", configs, events)
            log(f"{phase.name}: connecting {phase.sessions} continuous streams")
            self.wait_events(
                events,
                lambda: len(up) + len(failed) >= phase.sessions or all(c.eof for c in children),
                phase.sessions / self.args.ramp + 120,
                on_event,
            )
            if not up:
                raise BenchError(f"{phase.name}: no stream came up: {list(failed.values())[:3]}")
            self.wait_events(events, lambda: False, 15, on_event)
            receiver.send("stats")
            self.wait_events(events, lambda: len(stats) >= 1, 30, on_event)
            result = self.measure(
                phase,
                lambda: tree_cpu(receiver.proc.pid),
                None,
                events,
                on_event,
                children,
                up,
                receiver.proc.pid,
            )
            receiver.send("stats")
            self.wait_events(events, lambda: len(stats) >= 2, 30, on_event)
            result.failures = [f"stream {i}: {e}" for i, e in sorted(failed.items())]
            if len(stats) >= 2:
                a, b = stats[0]["counts"], stats[1]["counts"]
                result.receiver = {
                    "received": b.get("received", 0) - a.get("received", 0),
                    "processed": b.get("processed", 0) - a.get("processed", 0),
                    "verdicts": {
                        k[8:]: v - a.get(k, 0) for k, v in b.items() if k.startswith("verdict:")
                    },
                    "latency_ms": [x * 1000 for x in stats[1]["latencies"]],
                }
            self.stop_children(children, events, reports)
            children = []
            return result
        finally:
            if children:
                self.stop_children(children, events, reports)
            receiver.send("stop")
            self.wait_events(events, lambda: receiver.proc.poll() is not None, 30, lambda *_: None)
            self.procs.stop(receiver.proc, signal.SIGTERM, 10)


# Leaf functions that wait rather than work: py-spy's idle detection misses some of them
# in --nonblocking mode, so they are left out of the summary.
_WAITING = (
    "select",
    "poll",
    "wait",
    "_worker",
    "Queue.get",
    "_read_from_socket",
    "recv_into",
    "accept",
    "sleep",
    "acquire",
    "_collect",
)


def summarise_profile(path: Path, top: int = 25) -> list[tuple[str, float]]:
    """Share of working samples by the innermost frame of ours or of a known library."""
    total = waiting = 0
    buckets: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        leaf = (frames[-1] if frames else "?").split(" (")[0]
        if leaf.endswith(_WAITING):
            waiting += n
            continue
        total += n
        buckets[_bucket(frames) + "  <- " + leaf] += n
    if not total:
        return []
    out = [(name, n / total) for name, n in buckets.most_common(top)]
    out.append((f"(left out: {waiting} waiting samples; {total} working samples)", 0.0))
    return out


def _bucket(frames: list[str]) -> str:
    keys = (
        "dlib_engine",
        "verification/",
        "aiortc/",
        "aioice/",
        "av/",
        "sqlalchemy",
        "sqlite",
        "storage/",
        "supervisor/",
        "capture/",
        "uvicorn",
        "starlette",
        "fastapi",
        "redis",
        "asyncio",
        "concurrent/futures",
        "threading",
    )
    for f in reversed(frames):
        for key in keys:
            if key in f:
                return key.strip("/")
    return "other"


# -- the report ------------------------------------------------------------------------


def fmt(x: float | None, digits: int = 1) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:,.{digits}f}"


def table_rows(results: list[Result]) -> list[list[str]]:
    rows = []
    for r in results:
        per_h = r.per_learner_hour()
        per_core = 3600 / per_h if per_h and per_h > 0 else math.nan
        if r.ledger is not None:
            checks = f"{r.ledger['done']}/{r.expected:.0f}" if r.expected else "n/a"
            missed = str(r.ledger["missed"])
            lat = r.ledger["latency_ms"]
            latency = f"{pct(lat, 50):.0f} / {pct(lat, 99):.0f}" if lat else "n/a"
        else:
            rec = r.receiver
            processed = rec.get("processed", 0)
            per_s = processed / r.window_s / max(r.sessions_up, 1) if r.window_s else 0.0
            checks = f"every frame: {processed} presence ({per_s:.1f}/s per stream)"
            # A frame received just before the window and checked in it is not behind.
            missed = f"{max(0, rec.get('received', 0) - processed)} behind"
            lat = rec.get("latency_ms") or []
            latency = f"{pct(lat, 50):.0f} / {pct(lat, 99):.0f} (per frame)" if lat else "n/a"
        rows.append(
            [
                r.phase.label or r.phase.name,
                str(r.sessions_up),
                f"{r.window_s:.0f}",
                fmt(r.cpu.get("total", 0.0)),
                fmt(per_h),
                fmt(per_core, 0),
                checks,
                missed,
                latency,
            ]
        )
    return rows


HEADER = [
    "mode",
    "sessions",
    "window s",
    "server CPU-s",
    "CPU-s per learner-hour",
    "learners per core",
    "scheduled checks done/expected",
    "missed",
    "latency p50/p99 ms",
]


def markdown_table(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def text_table(rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(HEADER)]
    out = [" | ".join(h.ljust(w) for h, w in zip(HEADER, widths, strict=True))]
    out.append("-+-".join("-" * w for w in widths))
    out += [" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(out)


def details(r: Result, costs: dict[str, float], p_challenge: float) -> list[str]:
    lines = [f"##### {r.phase.label or r.phase.name}", ""]
    cpu = r.cpu
    parts = ", ".join(f"{k} {v:.1f}" for k, v in sorted(cpu.items()) if k != "total")
    who = "Receiver" if r.phase.kind == "baseline" else "Server"
    lines.append(f"- {who} process tree CPU-s over {r.window_s:.0f} s: {cpu.get('total', 0):.1f} "
                 f"({parts}); main process alone {fmt(r.per_learner_hour('main'))} CPU-s per "
                 f"learner-hour, whole tree {fmt(r.per_learner_hour())}.")  # fmt: skip
    if r.ledger is not None and r.ledger["done"]:
        done = r.ledger["done"]
        lines.append(
            f"- Per scheduled check in the window: {cpu.get('total', 0) / done:.3f} CPU-s in "
            f"all (main {cpu.get('main', 0) / done:.3f}, workers "
            f"{cpu.get('workers', 0) / done:.3f}); "
            f"{r.ledger['done'] / r.learner_hours:.1f} checks per learner-hour."
        )
    mix = r.steady_mix_per_learner_hour(costs, p_challenge)
    if mix is not None and r.stationary is not None:
        lines.append(
            f"- A long session has {r.stationary[0]:.1f} presence and {r.stationary[1]:.1f} "
            f"identity checks per hour; this window had "
            f"{r.ledger['by_kind'].get('identity', 0) / r.learner_hours:.1f} identity checks "
            f"per learner-hour (the first one is drawn 10-15 min after the page attaches). "
            f"With the missing ones at the engine's extra cost of an identity check "
            f"({costs['identity'] - costs['presence']:.3f} CPU-s), each followed by an active "
            f"challenge with probability {p_challenge:g} (measured cost of one challenge: "
            f"{costs.get('challenge', 0.0):.3f} CPU-s): {mix:.1f} CPU-s per learner-hour."
        )
    if r.idle_cpu_per_h is not None:
        lines.append(
            f"- The same server with no session, just before: {r.idle_cpu_per_h:.1f} CPU-s per "
            "hour (a fixed cost, not per learner); net of it: "
            f"{(r.cpu.get('total', 0) / r.window_s * 3600 - r.idle_cpu_per_h) / r.sessions_up:.1f}"
            " CPU-s per learner-hour."
        )
    lines.append(f"- {who} RSS (main process) at the end of the window: {r.rss_mb:.0f} MB.")
    if r.code:
        lines.append(f"- Code under test: {r.code}.")
    s0, s1 = r.stats0, r.stats1
    if s0 and s1 and "frames_received" in s1:
        frames = s1["frames_received"] - s0.get("frames_received", 0)
        sampled = s1["frames_sampled"] - s0.get("frames_sampled", 0)
        fps = frames / r.window_s / max(r.sessions_up, 1)
        lines.append(
            f"- Video frames received by the server in the window: {frames} ({fps:.3f} fps per "
            f"session), sampled for checks: {sampled}; verification shed: "
            f"{s1.get('verification_shed', 0) - s0.get('verification_shed', 0)}; "
            f"live sessions {s1.get('live_sessions')}, peers connected {s1.get('peers_connected')}."
        )
    if r.ledger is not None:
        lg = r.ledger
        lat = lg["latency_by_kind"]
        lines.append(
            f"- Scheduled checks with `scheduled_at` in the window: {lg['done']} "
            f"({dict(lg['by_kind'])}), verdicts {dict(lg['verdicts'])}, failed {lg['failed']}; "
            f"expected {fmt(r.expected, 0)} (identity {fmt(r.expected_identity, 1)}) from the "
            f"policy's draws replayed for each session's age and the measured check durations "
            f"({r.sessions_up} sessions x {r.window_s:.0f} s)."
        )
        lines.append(
            f"- Missed in the window: {lg['missed']} (whole run: {lg['missed_total']}); "
            f"deferred: {lg['deferred']}; checks announced to the pages: "
            + (
                "n/a (the real page is not instrumented)"
                if r.phase.client_mode == "chromium"
                else f"{lg['announced']}, lost (announced, absent from the ledger): {lg['lost']}"
            )
            + "; holes in a schedule (gap > presence max + 2 s): "
            f"{lg['holes']}, largest gap {lg['max_gap_s']:.1f} s; first checks later than "
            f"presence max after the page attached: {lg['late_first']} (latest "
            f"{lg['max_first_s']:.1f} s)."
        )
        lines.append(
            "- Latency scheduled_at -> ledger recorded_at, ms: presence p50/p99/max "
            f"{fmt(pct(lat['presence'], 50), 0)}/{fmt(pct(lat['presence'], 99), 0)}/"
            f"{fmt(max(lat['presence'], default=math.nan), 0)}, identity p50/p99/max "
            f"{fmt(pct(lat['identity'], 50), 0)}/{fmt(pct(lat['identity'], 99), 0)}/"
            f"{fmt(max(lat['identity'], default=math.nan), 0)}."
        )
        lines.append(
            f"- Checks by purpose over the whole run: {dict(lg['purposes'])}; pauses: "
            f"{dict(lg['pauses']) or 'none'}; session ends: {dict(lg['ended'])}."
        )
    if r.receiver:
        rec = r.receiver
        lines.append(
            f"- Receiver: {rec.get('received')} frames received, {rec.get('processed')} decoded "
            f"and checked in the window; verdicts {rec.get('verdicts')}."
        )
    lines.append(
        f"- Load generators (client processes) used {r.clients_cpu:.1f} CPU-s; the whole "
        f"machine {r.machine_cpu:.1f} CPU-s of {2 * r.window_s:.0f} available "
        f"({max(r.machine_cpu - r.clients_cpu - r.cpu.get('total', 0), 0):.1f} by other "
        f"work on the machine); load average at the end {r.load[0]:.2f} / {r.load[1]:.2f}."
    )
    for f in r.failures[:10]:
        lines.append(f"- FAILED: {f}")
    if len(r.failures) > 10:
        lines.append(f"- ... and {len(r.failures) - 10} more failures")
    for n in r.notes[:15]:
        lines.append(f"- {n}")
    if r.profile:
        lines += [
            "",
            "py-spy after the window, server process tree: share of working samples (waiting "
            "leaves left out), by the innermost known module <- the function on CPU:",
            "",
        ]
        lines += [
            f"    {share * 100:5.1f}%  {name}" if share else f"    {name}"
            for name, share in r.profile
        ]
    lines.append("")
    return lines


def aim_verdict(results: list[Result], costs: dict[str, float], p_challenge: float) -> list[str]:
    webrtc = next((r for r in results if r.phase.name == "webrtc"), None)
    if webrtc is None or webrtc.ledger is None:
        return ["- The aim was not assessed (no webrtc mode in this run)."]
    lg = webrtc.ledger
    measured = webrtc.per_learner_hour()
    mix = webrtc.steady_mix_per_learner_hour(costs, p_challenge)
    per_h = max(measured, mix or 0.0)
    ok_cpu = per_h <= 10.0
    ok_n = webrtc.sessions_up >= 100 and webrtc.window_s >= 180
    ok_checks = (
        lg["missed"] == 0
        and lg["lost"] == 0
        and lg["holes"] == 0
        and lg["late_first"] == 0
        and lg["deferred"] == 0
    )
    ratio = lg["done"] / webrtc.expected if webrtc.expected else math.nan
    return [
        f"- At most 10 server CPU-s per learner-hour over WebRTC including the checks: "
        f"{'MET' if ok_cpu else 'NOT MET'} ({measured:.1f} measured"
        + (
            f", {mix:.1f} with a long session's identity checks and challenges"
            if mix is not None
            else ""
        )
        + ").",
        f"- At least 100 concurrent sessions held for several minutes: "
        f"{'MET' if ok_n else 'NOT MET'} ({webrtc.sessions_up} sessions, "
        f"{webrtc.window_s / 60:.1f} min).",
        f"- Every scheduled check done, none lost: {'MET' if ok_checks else 'NOT MET'} "
        f"({lg['done']} done vs {webrtc.expected:.0f} expected = {ratio:.2f}; missed "
        f"{lg['missed']}, deferred {lg['deferred']}, lost {lg['lost']}, holes {lg['holes']}, "
        f"late first checks {lg['late_first']}).",
    ]


def write_report(path: Path, results: list[Result], bench: Bench, command: str, tag: str) -> str:
    import aiortc

    begin, end = RESULTS_BEGIN.format(tag=tag), RESULTS_END.format(tag=tag)
    costs = bench.costs
    p_challenge = bench.challenge_probability

    pol = bench.policy
    web = bench.settings.get("webrtc", {})
    rev = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain"], capture_output=True, text=True
    ).stdout.strip()
    lines = [
        begin,
        f"### Run `{tag}`",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.node()} "
        f"({os.cpu_count()} CPU cores), Python {platform.python_version()}, aiortc "
        f"{aiortc.__version__}, commit {rev}{' with uncommitted changes' if dirty else ''}.",
        "",
        "Command:",
        "",
        f"    {command}",
        "",
        "Service: `supervisor serve` in its own process, SQLite + embedded Redis in a temporary "
        "directory, default settings except "
        + ", ".join(f"`{k}={v}`" for k, v in {**BENCH_ENV, **bench.extra_env}.items())
        + " (benchmark only: all learners are enrolled from the same face, and the clients "
        "replay one 8-s clip, which the loop detection across checks would rightly refuse), "
        "and the mode's own variables below. Policy in force: presence every "
        f"{pol.get('presence_interval_min_s')}–{pol.get('presence_interval_max_s')} s (mean "
        f"{pol.get('presence_interval_mean_s')}), identity every "
        f"{pol.get('identity_interval_min_s')}–{pol.get('identity_interval_max_s')} s (mean "
        f"{pol.get('identity_interval_mean_s')}), {pol.get('frames_per_check')} frames per check "
        f"at {web.get('check_fps')} fps, {web.get('frame_spacing_s')} s apart, at most "
        f"{web.get('max_width')} px wide.",
        "",
        "Modes: "
        + "; ".join(
            f"**{r.phase.label or r.phase.name}**"
            + (
                f" (`{' '.join(f'{k}={v}' for k, v in r.phase.env.items())}`)"
                if r.phase.env
                else ""
            )
            for r in results
        )
        + ".",
        "",
        markdown_table(table_rows(results)),
        "",
        "CPU-s are user + system seconds of the server process and its children (the "
        "verification pool and check workers, the embedded redis-server) over the window, or "
        "of the bench's receiver for the baseline; per learner-hour = CPU-s / "
        "(sessions x window); learners per core = 3600 / that. Scheduled checks: ledger `check` "
        "events with purpose `scheduled` whose `scheduled_at` falls in the window; expected = "
        "LiveSession.run's random draws replayed from each session's attach time (with the "
        "measured check durations), summed over the sessions. Latency: `scheduled_at` to the "
        "event's ledger `recorded_at`; it includes sampling the check's frames.",
        "",
        "Engine CPU in the bench process per check (3 frames, best of k, stops at the first "
        "pass) and per active challenge (its frames decoded, re-encoded and checked): "
        + (
            ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in costs.items())
            if costs
            else "not measured"
        )
        + ".",
        "",
        "Aim (issue 4):",
        "",
        *aim_verdict(results, costs, p_challenge),
        "",
        f"#### Details of run `{tag}`",
        "",
    ]
    for r in results:
        lines += details(r, costs, p_challenge)
    lines.append(end)
    block = "\n".join(lines)
    if path.exists():
        text = path.read_text()
        if begin in text and end in text:
            head, rest = text.split(begin, 1)
            tail = rest.split(end, 1)[1]
            path.write_text(head + block + tail)
        else:
            path.write_text(text.rstrip("\n") + "\n\n" + block + "\n")
        return block
    header = (
        "# WebRTC load: server CPU per supervised learner-hour\n\n"
        "Written by `bench/webrtc_load.py` (see its docstring). Each run's block, between its "
        "result markers, is replaced when a run with the same `--tag` is repeated; text "
        "outside the blocks is kept.\n\n"
    )
    path.write_text(header + block + "\n")
    return block


# -- main ----------------------------------------------------------------------------


def build_phases(args: argparse.Namespace) -> list[Phase]:
    window = args.minutes * 60
    stream_window = (args.stream_minutes or min(args.minutes, 2.0)) * 60
    wanted = [m.strip() for m in args.modes.split(",") if m.strip()]
    if args.chromium and "chromium" not in wanted:
        wanted.append("chromium")
    phases = []
    for m in wanted:
        if m == "webrtc":
            phases.append(
                Phase("webrtc", "service", "webrtc", args.sessions, window,
                      label="webrtc, paused between checks")
            )  # fmt: skip
        elif m == "fallback":
            n = args.fallback_sessions or args.sessions
            phases.append(
                Phase("fallback", "service", "upload", n, window, label="still-frame fallback")
            )
        elif m == "idle15":
            env = {"SUPERVISOR_WEBRTC__IDLE_FPS": f"{args.stream_fps:g}"}
            phases.append(
                Phase("idle15", "service", "webrtc", args.stream_sessions, stream_window, env,
                      label=f"webrtc, {args.stream_fps:g} fps between checks")
            )  # fmt: skip
        elif m == "baseline":
            phases.append(
                Phase("baseline", "baseline", "baseline", args.baseline_sessions, stream_window,
                      label=f"baseline: {args.stream_fps:g} fps, every frame checked")
            )  # fmt: skip
        elif m == "chromium":
            if not args.chromium:
                raise SystemExit("the chromium mode needs --chromium N (tabs)")
            phases.append(
                Phase("chromium", "service", "chromium", args.chromium, args.chromium_minutes * 60,
                      label="webrtc, real Chromium tabs")
            )  # fmt: skip
        else:
            raise SystemExit(f"unknown mode {m!r}")
    return phases


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sessions", type=int, default=100, help="sessions in webrtc mode")
    p.add_argument("--minutes", type=float, default=5.0, help="measured window of main modes")
    p.add_argument("--modes", default="webrtc,fallback,idle15,baseline", help="which modes")
    p.add_argument("--fallback-sessions", type=int, default=0, help="default: --sessions")
    p.add_argument("--stream-sessions", type=int, default=10, help="sessions in idle15 mode")
    p.add_argument("--baseline-sessions", type=int, default=4, help="streams in baseline mode")
    p.add_argument(
        "--stream-fps", type=float, default=15.0, help="continuous rate (idle15, baseline)"
    )
    p.add_argument(
        "--stream-minutes",
        type=float,
        default=0.0,
        help="window of idle15/baseline/chromium (default min(minutes, 2))",
    )
    p.add_argument("--chromium", type=int, default=0, help="also run N real headless Chromium tabs")
    p.add_argument("--chromium-path", default=CHROMIUM)
    p.add_argument("--chromium-minutes", type=float, default=5.0, help="window of chromium")
    p.add_argument(
        "--client-procs",
        type=int,
        default=0,
        help="client processes (default ~15 sessions each, at most 8)",
    )
    p.add_argument("--ramp", type=float, default=4.0, help="sessions started per second")
    p.add_argument("--warmup", type=float, default=30.0, help="seconds after the last connect")
    p.add_argument("--idle-seconds", type=float, default=15.0, help="idle-server CPU sample")
    p.add_argument(
        "--profile-seconds",
        type=int,
        default=0,
        help="py-spy the webrtc server after its window",
    )
    p.add_argument("--video", default=str(DEFAULT_VIDEO), help="face video the clients play")
    p.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra service setting (repeatable)",
    )
    p.add_argument("--out", default=str(DEFAULT_OUT), help="markdown file for the results")
    p.add_argument("--tag", default="default", help="name of this run's block in --out")
    p.add_argument("--keep", action="store_true", help="keep the run directory (logs, database)")
    p.add_argument("--role", choices=["client", "receiver", "chromium"], help=argparse.SUPPRESS)
    p.add_argument("--config", help=argparse.SUPPRESS)
    return p.parse_args(argv)  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.role:
        return child_main(args.role, args.config)
    for kv in args.env:
        if "=" not in kv or not kv.startswith("SUPERVISOR_"):
            raise SystemExit(f"--env wants SUPERVISOR_NAME=VALUE, got {kv!r}")
    phases = build_phases(args)
    command = shlex.join([os.path.relpath(sys.executable, REPO), "bench/webrtc_load.py",
                          *(argv if argv is not None else sys.argv[1:])])  # fmt: skip
    # SIGTERM ends the run like Ctrl-C: every process is stopped in the finally below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    # Ctrl-C too, even when started from a shell that left SIGINT ignored (a background job).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    bench = Bench(args)
    results: list[Result] = []
    ok = False
    try:
        need = max((p.sessions for p in phases if p.kind == "service"), default=0)
        bench.setup(max(need, 1))
        bench.costs = engine_costs(bench.frames, bench.settings.get("liveness", {}))
        for phase in phases:
            if phase.kind == "baseline":
                results.append(bench.run_baseline_phase(phase))
            else:
                results.append(bench.run_service_phase(phase))
            log(f"{phase.name}: done\n" + text_table(table_rows(results[-1:])))
        ok = True
    except KeyboardInterrupt:
        log("interrupted; stopping every process started")
        return 130
    finally:
        bench.procs.close_all()
        if args.keep or not ok:  # a failed run keeps its logs
            log(f"run directory kept: {bench.run_dir}")
        else:
            import shutil

            shutil.rmtree(bench.run_dir, ignore_errors=True)
    print(text_table(table_rows(results)))
    print()
    print("\n".join(aim_verdict(results, bench.costs, bench.challenge_probability)))
    write_report(Path(args.out), results, bench, command, args.tag)
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
