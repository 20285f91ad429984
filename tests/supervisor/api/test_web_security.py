"""Web protections: security headers, CSRF for cookie-authenticated requests, path
tricks against every route that serves files, and the rate limits (429 with
Retry-After, shared through Redis)."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator

import pytest

from config.web import WebSettings
from storage.types import Role
from supervisor.api.middleware.security import security_headers
from supervisor.web import STATIC_DIR, TEMPLATES_DIR
from tests.supervisor.conftest import HOPPER_FRAME, Service, _service, institution_body

WEB = {
    "auth_failures_per_window": 5,
    "auth_failure_window_s": 3,
    "uploads_per_window": 3,
    "upload_window_s": 60,
}


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    tmp = tmp_path_factory.mktemp("svc-web")
    yield from _service(tmp, f"sqlite:///{tmp / 'supervisor.db'}", "sqlite", web=WEB)


def _raw_get(svc: Service, raw_path: str) -> tuple[int, bytes]:
    """GET with the path sent byte for byte (HTTP clients normalise `..` away)."""
    port = svc.settings.server.port
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        head = f"GET {raw_path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n"
        s.sendall(head.encode() + b"\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


# -- headers ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/health", 200),
        ("GET", "/learn", 200),
        ("GET", "/operator", 200),
        ("GET", "/static/learner.js", 200),
        ("GET", "/api/v1/me", 401),
        ("GET", "/no/such/page", 404),
        ("GET", "/api/v1/consent-text", 200),
    ],
)
def test_every_response_carries_strict_security_headers(
    svc: Service, method: str, path: str, status: int
) -> None:
    r = svc.client.request(method, path)
    assert r.status_code == status
    csp = r.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["script-src"] == "'self'"
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert directives["frame-ancestors"] == "'none'"
    assert directives["object-src"] == "'none'"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert "camera=(self)" in r.headers["permissions-policy"]
    assert "microphone=()" in r.headers["permissions-policy"]
    # Plain HTTP: no HSTS (a browser ignores it there, and it must not pin localhost).
    assert "strict-transport-security" not in r.headers


def test_middleware_refusals_carry_the_headers_too(svc: Service) -> None:
    port = svc.settings.server.port
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(
            b"POST /api/v1/institutions HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n"
            b"Connection: close\r\n\r\n"
        )
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head = data.partition(b"\r\n\r\n")[0].lower()
    assert head.startswith(b"http/1.1 413")
    assert b"x-content-type-options: nosniff" in head


def test_hsts_is_sent_only_over_https() -> None:
    names = dict(security_headers(WebSettings(), https=True))
    assert names[b"strict-transport-security"] == b"max-age=31536000"
    assert b"strict-transport-security" not in dict(security_headers(WebSettings(), https=False))


def test_pages_hold_no_inline_script_or_handler_and_build_no_html_from_data() -> None:
    for page in [*STATIC_DIR.glob("*.html"), TEMPLATES_DIR / "learner.html"]:
        html = page.read_text()
        for tag in re.findall(r"<script\b[^>]*>", html):
            assert "src=" in tag, f"{page.name}: inline script {tag}"
        assert not re.search(r"<script\b[^>]*>\s*[^<\s]", html), f"{page.name}: inline script"
        assert not re.search(r"\son[a-z]+\s*=", html), f"{page.name}: inline event handler"
        assert "style=" not in html and "<style" not in html, f"{page.name}: inline style"
        assert "javascript:" not in html.lower()
    for script in STATIC_DIR.glob("*.js"):
        js = script.read_text()
        # Data reaches the page only through textContent: any HTML sink may only clear.
        for sink in re.findall(r"(?:innerHTML|outerHTML)\s*=\s*([^;]+);", js):
            assert sink.strip() in ('""', "''"), f"{script.name}: HTML built from {sink}"
        assert "insertAdjacentHTML" not in js and "document.write" not in js
        assert not re.search(r"\beval\(|new Function\(", js), script.name


# -- path tricks ---------------------------------------------------------------------

TRICKS = [
    "/static/../app.py",
    "/static/..%2fapp.py",
    "/static/%2e%2e/app.py",
    "/static/%2e%2e%2f%2e%2e%2fconfig%2fsettings.py",
    "/static/..%5c..%5capp.py",
    "/static//etc/passwd",
    "/static/%2fetc%2fpasswd",
    "/static/....//....//app.py",
    "/static/learner.js%00.html",
    "/static/%252e%252e/app.py",
    "/learn/../../../../etc/passwd",
    "/operator/%2e%2e/%2e%2e/etc/passwd",
    "/static/../../../../../../etc/passwd",
    "/api/v1/../../../../etc/passwd",
]


@pytest.mark.parametrize("path", TRICKS)
def test_path_tricks_reach_no_file_outside_the_static_folder(svc: Service, path: str) -> None:
    status, body = _raw_get(svc, path)
    assert status in (400, 404), (path, status, body[:200])
    assert b"root:" not in body and b"import " not in body and b"def " not in body


def test_evidence_is_reachable_only_by_a_hex_hash(svc: Service) -> None:
    from storage.exceptions import InvalidInput, NotFound

    for bad in ("../../etc/passwd", "/etc/passwd", "a" * 63 + "/", "%2e%2e", "G" * 64, "ab" * 31):
        with pytest.raises((InvalidInput, NotFound)):
            svc.storage.evidence.get(bad)


# -- CSRF ------------------------------------------------------------------------------


def test_cookie_requests_need_origin_and_double_submit(svc: Service) -> None:
    own = svc.url
    cases = [
        ({}, "no Origin"),
        ({"Origin": "https://evil.example"}, "foreign Origin"),
        ({"Referer": "https://evil.example/page"}, "foreign Referer"),
        ({"Origin": own}, "no token header"),
        ({"Origin": own, "X-CSRF-Token": "wrong"}, "wrong token"),
    ]
    count = len(svc.storage.registry.list_institutions())
    for extra, what in cases:
        r = svc.client.post(
            "/api/v1/institutions",
            json={"name": "CSRF school"},
            headers={"Authorization": f"Bearer {svc.admin}", **extra},
            cookies={"sv_session": "s3ss10n", "sv_csrf": "t0k3n"},
        )
        assert r.status_code == 403, what
        assert r.json()["reason"] == "csrf", what
    assert len(svc.storage.registry.list_institutions()) == count
    r = svc.client.post(
        "/api/v1/institutions",
        json=institution_body("CSRF school"),
        headers={"Authorization": f"Bearer {svc.admin}", "Origin": own, "X-CSRF-Token": "t0k3n"},
        cookies={"sv_session": "s3ss10n", "sv_csrf": "t0k3n"},
    )
    assert r.status_code == 201, r.text
    # Safe methods and bearer requests without the cookie are not affected.
    r = svc.client.get(
        "/api/v1/institutions",
        headers={"Authorization": f"Bearer {svc.admin}"},
        cookies={"sv_session": "s3ss10n"},
    )
    assert r.status_code == 200
    svc.client.cookies.clear()
    r = svc.call("POST", "/api/v1/institutions", svc.admin, json=institution_body("Bearer school"))
    assert r.status_code == 201


# -- rate limits ------------------------------------------------------------------------


def test_failed_tokens_are_limited_per_address_then_forgiven(svc: Service) -> None:
    time.sleep(WEB["auth_failure_window_s"])  # a fresh window
    for _ in range(WEB["auth_failures_per_window"]):
        assert svc.call("GET", "/api/v1/me", "not-a-token").status_code == 401
    r = svc.call("GET", "/api/v1/me", "not-a-token")
    assert r.status_code == 429 and r.json()["reason"] == "too_many_auth_failures"
    # Once limited, even a valid token from this address waits: no more guessing.
    r = svc.call("GET", "/api/v1/me", svc.admin)
    assert r.status_code == 429
    retry = int(r.headers["retry-after"])
    assert 1 <= retry <= WEB["auth_failure_window_s"]
    time.sleep(retry + 0.5)
    assert svc.call("GET", "/api/v1/me", svc.admin).status_code == 200


def test_uploads_are_limited_per_token(svc: Service) -> None:
    svc.forget_faces()
    w = svc.world()  # the enrolment photo is this token's first upload
    heads = list(svc.storage.ledger.heads())
    statuses = []
    for _ in range(WEB["uploads_per_window"] + 1):
        r = svc.sign_in(w.learner, w.course_id, b"garbage")
        statuses.append(r.status_code)
    assert statuses[: WEB["uploads_per_window"] - 1] == [415] * (WEB["uploads_per_window"] - 1)
    assert statuses[-1] == 429, statuses
    assert r.json()["reason"] == "too_many_uploads"
    assert 1 <= int(r.headers["retry-after"]) <= WEB["upload_window_s"]
    assert list(svc.storage.ledger.heads()) == heads
    # Another token is not affected.
    other = svc.token(Role.admin)
    learner_id = w.learner_id
    r = svc.call(
        "POST",
        f"/api/v1/learners/{learner_id}/templates",
        other,
        files={"photo": ("p.jpg", HOPPER_FRAME, "image/jpeg")},
    )
    assert r.status_code != 429, r.text
