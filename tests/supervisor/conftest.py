"""A real service on a real port, on SQLite and on PostgreSQL.

The app runs under uvicorn in a background thread of the test process, with its
verification process pool; tests talk to it over HTTP with httpx.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import uvicorn

from config import Settings
from config.settings import DEV_TEMPLATE_KEY, DatabaseSettings, EvidenceSettings
from storage import Storage, open_storage
from storage.migrate import upgrade
from storage.types import Role
from supervisor.app import create_app
from supervisor.registry.identity import id_check_character
from tests import imagegen
from tests.conftest import unavailable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class ServerThread:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app = create_app(settings)
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=settings.server.port,
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=5,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the service did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


# Most API tests are not about liveness, and the packaged portraits are still photos,
# which is exactly what passive liveness refuses: it is off unless a test turns it on
# (the liveness, browser and "institution tries to cheat" tests do).
NO_LIVENESS = {
    "passive": False,
    "challenge_probability": 0.0,
    "challenge_when_doubtful": False,
    "challenge_first_check": False,
    # The same packaged photo answers check after check here: that is a replay, which
    # the "institution tries to cheat" tests show refused.
    "replay_check": False,
}
# Live supervision at test speed: checks a second or two apart, short windows.
FAST_POLICY = {
    "presence_interval_min_s": 1.0,
    "presence_interval_mean_s": 1.5,
    "presence_interval_max_s": 2.0,
    "identity_interval_min_s": 2.0,
    "identity_interval_mean_s": 3.0,
    "identity_interval_max_s": 4.0,
    "response_window_s": 8,
    "retry_interval_s": 1.0,
    "capture_timeout_s": 6.0,
    "live_lock_ttl_s": 6.0,
    "max_failed_windows": 3,
}


# The test cameras are served on this machine: the services under test accept cameras
# on loopback as well as on the default camera networks. The refusal of loopback by
# default is tested with settings that do not list it (tests/supervisor/classroom/
# test_camera_urls.py).
TEST_CAMERA_NETWORKS = ("127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")


def make_settings(tmp: Path, database_url: str, **overrides: object) -> Settings:
    base: dict[str, object] = {
        "environment": "development",
        "data_dir": str(tmp),
        "database": {"url": database_url},
        "evidence": {"directory": str(tmp / "evidence")},
        "server": {"port": free_port(), "verify_processes": 2},
        "redis": {"embedded_path": str(tmp / "redis.db")},
        "liveness": NO_LIVENESS,
        "policy": FAST_POLICY,
        # Every test learner studies from 127.0.0.1: the crowded-address signal is tested
        # where it is asked for (the "institution tries to cheat" tests).
        "subsidy": {"max_learners_per_address": 10_000},
        "classroom": {"camera_networks": TEST_CAMERA_NETWORKS},
    }
    base.update(overrides)
    return Settings(**base)  # type: ignore[arg-type]


_serial = iter(range(1, 10**6))
_codes = iter(range(1, 10**6))


def new_credit_code() -> str:
    """A valid, unique 18-character unified social credit code (GB 32100)."""
    from supervisor.registry.credit_code import check_character

    body = f"9111010{next(_codes):06d}MA0X"[:17]
    return body + check_character(body)


def institution_body(name: str) -> dict[str, str]:
    """The body of POST /institutions: names and credit codes are unique, so each call
    gets its own number after the name, and its own code."""
    return {"name": f"{name} {next(_serial)}", "credit_code": new_credit_code()}


def new_id_number(birth: str = "19900307") -> str:
    """A valid, unique 18-character resident ID number for a test learner."""
    body = f"110101{birth}{next(_serial) % 1000:03d}"
    return body + id_check_character(body)


@dataclass
class World:
    """One institution with a course and an enrolled learner, built through the API."""

    institution_id: int
    course_id: int
    operator: str
    learner_id: int
    learner: str


@dataclass
class Service:
    url: str
    settings: Settings
    storage: Storage
    admin: str
    client: httpx.Client
    backend: str
    bureau: str = ""
    app: Any = None  # the FastAPI app, served in this process by ServerThread
    _redis_url: str = ""
    _worlds: list[World] = field(default_factory=list)

    def forget_failed_sign_ins(self) -> None:
        """No failed sign-ins counted for any address: neither the shared counts in
        Redis nor the service's own (in-process) ones."""
        prefix = f"{self.settings.web.redis_prefix}auth:"
        # Asked once, while this address may still sign in (the API is limited too).
        if not self._redis_url:
            self._redis_url = self.live_redis_url()
        r = redis.Redis.from_url(self._redis_url)
        try:
            for key in r.scan_iter(f"{prefix}*"):
                r.delete(key)
        finally:
            r.close()
        if self.app is not None:
            self.app.state.ratelimit.local.forget(prefix)

    def sign_in(
        self,
        token: str,
        course_id: int,
        frame: bytes | Sequence[bytes] | None = None,
        mode: str = "upload",
        device: str | None = None,
    ) -> httpx.Response:
        """POST /sessions with the burst the server asks for: `frame` repeated (default:
        Grace Hopper at a webcam), or the frames given."""
        if frame is None or isinstance(frame, bytes):
            one = HOPPER_FRAME if frame is None else frame
            frames = [one] * self.settings.policy.signin_frames
        else:
            frames = list(frame)
        data = {"course_id": str(course_id), "mode": mode}
        if device is not None:
            data["device"] = device
        files = [("frame", (f"f{i}.jpg", f, "image/jpeg")) for i, f in enumerate(frames)]
        return self.call("POST", "/api/v1/sessions", token, data=data, files=files)

    def start(self, w: World, frame: bytes | None = None) -> str:
        """A session of the world's learner, signed in; its id."""
        r = self.sign_in(w.learner, w.course_id, frame)
        assert r.status_code == 201, r.text
        sid: str = r.json()["session"]["session_id"]
        return sid

    def token(
        self, role: Role, institution_id: int | None = None, learner_id: int | None = None
    ) -> str:
        _, secret = self.storage.registry.create_token(
            role, f"test {role.value}", institution_id, learner_id
        )
        return secret

    def call(self, method: str, path: str, token: str | None, **kw: object) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.client.request(method, path, headers=headers, **kw)  # type: ignore[arg-type]

    def live_stats(self) -> dict[str, int]:
        r = self.call("GET", "/api/v1/live/stats", self.admin)
        assert r.status_code == 200, r.text
        stats: dict[str, int] = r.json()
        return stats

    def live_redis_url(self) -> str:
        """The Redis the service uses (its embedded server's socket, or the URL)."""
        r = self.call("GET", "/api/v1/live/stats", self.admin)
        assert r.status_code == 200, r.text
        url: str = r.json()["redis_url"]
        return url

    def live_stats_queue(self) -> dict[str, float]:
        text = self.client.get("/metrics").text
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith("supervisor_queue_length "):
                out["length"] = float(line.split()[1])
        return out

    def forget_faces(self) -> None:
        """Delete every enrolled template: the packaged photos hold only two people, and
        each test enrols them afresh without tripping the duplicate-identity search."""
        for learner in self.storage.registry.list_learners():
            self.storage.templates.delete_for_learner(learner.id)

    def event_count(self) -> int:
        return self.storage.ledger.verify(None).events

    def world(self, enrol: bool = True, photo: bytes | None = None) -> World:
        r = self.call(
            "POST", "/api/v1/institutions", self.admin, json=institution_body("Test school")
        )
        assert r.status_code == 201, r.text
        inst = r.json()["id"]
        operator = self.token(Role.operator, inst)
        r = self.call(
            "POST",
            "/api/v1/courses",
            operator,
            json={
                "institution_id": inst,
                "name": "Electrician, level 4",
                "required_hours": 40,
                "delivery_mode": "online",
            },
        )
        assert r.status_code == 201, r.text
        course = r.json()["id"]
        r = self.call(
            "POST",
            "/api/v1/learners",
            operator,
            json={
                "institution_id": inst,
                "full_name": "Grace Hopper",
                "id_number": new_id_number(),
            },
        )
        assert r.status_code == 201, r.text
        learner_id = r.json()["id"]
        r = self.call("POST", f"/api/v1/learners/{learner_id}/tokens", self.bureau)
        assert r.status_code == 201, r.text
        learner = r.json()["secret"]
        if enrol:
            version = self.settings.security.consent_text_version
            r = self.call(
                "POST",
                f"/api/v1/learners/{learner_id}/consent",
                learner,
                json={"text_version": version},
            )
            assert r.status_code == 201, r.text
            r = self.call(
                "POST",
                f"/api/v1/learners/{learner_id}/templates",
                learner,
                files={"photo": ("me.jpg", photo or HOPPER_PHOTO, "image/jpeg")},
            )
            assert r.status_code == 201, r.text
        return World(inst, course, operator, learner_id, learner)


class StillFrames:
    """A learner's page on the still-frame path, as `learner.js` drives it: attach,
    long-poll the server's messages, answer each check request with frames (its check
    id and nonce), read the verdict. The server alone chooses when to ask."""

    def __init__(self, svc: Service, token: str, session_id: str) -> None:
        self.svc = svc
        self.token = token
        self.sid = session_id
        self.inbox: list[dict[str, Any]] = []

    def attach(self) -> StillFrames:
        r = self.svc.call(
            "POST", f"/api/v1/sessions/{self.sid}/live", self.token, json={"mode": "upload"}
        )
        assert r.status_code == 200, r.text
        return self

    def __enter__(self) -> StillFrames:
        return self.attach()

    def __exit__(self, *exc: object) -> None:
        self.end()

    def end(self) -> None:
        """End the session (already ended is fine): live supervision of it stops, so it
        appends nothing while later tests count events."""
        r = self.svc.call("POST", f"/api/v1/sessions/{self.sid}/end", self.token)
        assert r.status_code in (200, 409), r.text

    def poll(self, wait: float = 2.0) -> list[dict[str, Any]]:
        r = self.svc.call("GET", f"/api/v1/sessions/{self.sid}/messages?wait={wait}", self.token)
        if r.status_code == 503:  # the service's own outage: the page waits and polls again
            time.sleep(1.0)
            return []
        assert r.status_code == 200, r.text
        got: list[dict[str, Any]] = r.json()
        self.inbox.extend(got)
        return got

    def next(
        self, kind: str, timeout: float = 40.0, where: Callable[[dict[str, Any]], bool] = bool
    ) -> dict[str, Any]:
        """The next message of `kind` (earlier ones of other kinds stay in the inbox)."""
        deadline = time.monotonic() + timeout
        while True:
            for i, m in enumerate(self.inbox):
                if m.get("type") == kind and where(m):
                    del self.inbox[: i + 1]
                    return m
            if time.monotonic() > deadline:
                raise AssertionError(f"no {kind!r} message within {timeout} s: {self.inbox}")
            self.poll()

    def request(self, timeout: float = 40.0) -> tuple[str, dict[str, Any]]:
        """The next check request: (what was asked: "presence", "identity" or
        "challenge:<kind>"), and its capture message (check id, nonce, count)."""
        deadline = time.monotonic() + timeout
        while True:
            for i, m in enumerate(self.inbox):
                if m.get("type") in ("checking", "challenge"):
                    del self.inbox[: i + 1]
                    asked = m["kind"] if m["type"] == "checking" else f"challenge:{m['kind']}"
                    left = max(deadline - time.monotonic(), 1.0)
                    capture = self.next(
                        "capture", left, where=lambda c, m=m: c.get("check_id") == m["check_id"]
                    )
                    return str(asked), capture
            if time.monotonic() > deadline:
                raise AssertionError(f"no check request within {timeout} s: {self.inbox}")
            self.poll()

    def answer(self, capture: dict[str, Any], frames: Sequence[bytes]) -> httpx.Response:
        files = [("frames", (f"f{i}.jpg", f, "image/jpeg")) for i, f in enumerate(frames)]
        data = {"check_id": capture["check_id"], "nonce": capture["nonce"]}
        return self.svc.call(
            "POST", f"/api/v1/sessions/{self.sid}/frames", self.token, data=data, files=files
        )

    def check(self, frame: bytes | Callable[[str], bytes], timeout: float = 40.0) -> dict[str, Any]:
        """Answer the next request with its count of frames; the result message. A request
        that is already over when answered (the page was slow) is skipped, as a page
        would: it waits for the next one."""
        deadline = time.monotonic() + timeout
        while True:
            kind, capture = self.request(max(deadline - time.monotonic(), 1.0))
            data = frame(kind) if callable(frame) else frame
            r = self.answer(capture, [data] * int(capture.get("count") or 1))
            late = r.status_code == 409 and r.json().get("reason") in (
                "already_answered",
                "check_expired",
            )
            if not late:
                break
        assert r.status_code == 202, r.text
        wanted = capture["check_id"]
        result = self.next("result", timeout, where=lambda m: m.get("check_id") == wanted)
        result["asked"] = kind
        return result


HOPPER_PHOTO = imagegen.jpeg_bytes(imagegen.grace_hopper())
HOPPER_FRAME = imagegen.jpeg_bytes(imagegen.webcam_frame(imagegen.grace_hopper(), face_width=170))
ASTRONAUT_FRAME = imagegen.jpeg_bytes(imagegen.webcam_frame(imagegen.astronaut(), face_width=170))
EMPTY_FRAME = imagegen.jpeg_bytes(imagegen.non_face_images()[2])


def _service(tmp: Path, url: str, backend: str, **overrides: object) -> Iterator[Service]:
    settings = make_settings(tmp, url, **overrides)
    upgrade(url)
    storage = open_storage(
        settings.database, settings.evidence, settings.security.template_key.get_secret_value()
    )
    try:
        _, admin = storage.registry.create_token(Role.admin, "test admin")
        _, bureau = storage.registry.create_token(Role.bureau, "test bureau")
        with ServerThread(settings) as server:
            base = f"http://127.0.0.1:{settings.server.port}"
            with httpx.Client(base_url=base, timeout=60) as client:
                yield Service(base, settings, storage, admin, client, backend, bureau, server.app)
    finally:
        storage.close()


@pytest.fixture(scope="session")
def sqlite_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    tmp = tmp_path_factory.mktemp("svc-sqlite")
    yield from _service(tmp, f"sqlite:///{tmp / 'supervisor.db'}", "sqlite")


@pytest.fixture(scope="session")
def postgres_service(
    tmp_path_factory: pytest.TempPathFactory, postgres_server_url: str
) -> Iterator[Service]:
    from tests.conftest import scratch_postgres_db

    tmp = tmp_path_factory.mktemp("svc-pg")
    with scratch_postgres_db(postgres_server_url, "sv_svc") as url:
        yield from _service(tmp, url, "postgres")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def service(request: pytest.FixtureRequest) -> Service:
    fixture = "sqlite_service" if request.param == "sqlite" else "postgres_service"
    svc: Service = request.getfixturevalue(fixture)
    svc.forget_faces()
    return svc


CHROMIUM_CANDIDATES = ("/usr/lib/chromium/chromium", "/usr/bin/chromium")


def chromium_path() -> str:
    for candidate in CHROMIUM_CANDIDATES:
        if Path(candidate).exists():
            return candidate
    found = shutil.which("chromium")
    if found is None:
        unavailable("Debian's chromium is not installed (apt-get install chromium)")
    assert found is not None
    return found


@pytest.fixture
def browser_factory(tmp_path: Path) -> Iterator[Callable[..., object]]:
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    pw = sync_playwright().start()
    browsers: list[object] = []

    def launch(y4m: Path, init_script: str | None = None, **context_options: object):  # type: ignore[no-untyped-def]
        """A page in a new Chromium whose camera plays `y4m`. `context_options` go to
        Playwright's `new_context` (a phone: viewport, is_mobile, has_touch,
        device_scale_factor, locale, user_agent); a 1000x800 desktop by default."""
        browser = pw.chromium.launch(
            executable_path=executable,
            headless=True,
            args=[
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-video-capture={y4m}",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        browsers.append(browser)
        options: dict[str, object] = {"viewport": {"width": 1000, "height": 800}}
        options.update(context_options)
        context = browser.new_context(**options)  # type: ignore[arg-type]
        if init_script:
            context.add_init_script(init_script)
        return context.new_page()

    yield launch
    for b in browsers:
        b.close()  # type: ignore[attr-defined]
    pw.stop()


def wait_js(page: object, expression: str, timeout: float = 30.0) -> None:
    """Wait until the JavaScript `expression` is truthy in `page`.

    Playwright's `wait_for_function` compiles its predicate with `eval` inside the
    page, which the service's Content-Security-Policy (no 'unsafe-eval') forbids, as
    it should; `evaluate` runs through the DevTools protocol instead.
    """
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):  # type: ignore[attr-defined]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for: {expression}")
        time.sleep(0.1)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def generated(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Storage, Settings]]:
    """An empty, migrated store and its settings on each backend, for generated ledgers
    (tests/ledgergen.py)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'gen.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    upgrade(url)
    storage = open_storage(
        DatabaseSettings(url=url), EvidenceSettings(directory=tmp_path / "ev"), DEV_TEMPLATE_KEY
    )
    settings = Settings(database={"url": url}, data_dir=tmp_path)  # type: ignore[arg-type]
    try:
        yield storage, settings
    finally:
        storage.close()
