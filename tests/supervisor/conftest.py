"""A real service on a real port, on SQLite and on PostgreSQL.

The app runs under uvicorn in a background thread of the test process, with its
verification process pool; tests talk to it over HTTP with httpx.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
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
        config = uvicorn.Config(
            create_app(settings),
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


def make_settings(tmp: Path, database_url: str, **overrides: object) -> Settings:
    base: dict[str, object] = {
        "environment": "development",
        "data_dir": str(tmp),
        "database": {"url": database_url},
        "evidence": {"directory": str(tmp / "evidence")},
        "server": {"port": free_port(), "verify_processes": 2},
        "redis": {"embedded_path": str(tmp / "redis.db")},
    }
    base.update(overrides)
    return Settings(**base)  # type: ignore[arg-type]


_serial = iter(range(1, 10**6))


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
    _worlds: list[World] = field(default_factory=list)

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
        r = self.call("POST", "/api/v1/institutions", self.admin, json={"name": "Test school"})
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
        r = self.call("POST", f"/api/v1/learners/{learner_id}/tokens", operator)
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
        with ServerThread(settings):
            base = f"http://127.0.0.1:{settings.server.port}"
            with httpx.Client(base_url=base, timeout=60) as client:
                yield Service(base, settings, storage, admin, client, backend)
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

    def launch(y4m: Path, init_script: str | None = None):  # type: ignore[no-untyped-def]
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
        context = browser.new_context(viewport={"width": 1000, "height": 800})
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
