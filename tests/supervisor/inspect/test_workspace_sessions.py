"""Sign-in to the inspector's workspace through the running service: an opaque
server-side session (never the token) that ends at sign-out, when idle and at its
absolute expiry; the failed-token limit on every sign-in path."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import select

from storage.models import workspace_sessions
from storage.types import Role
from tests.supervisor.conftest import Service, _service

IDLE_S = 2.0
ABSOLUTE_S = 6.0


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    tmp = tmp_path_factory.mktemp("svc-workspace-sessions")
    yield from _service(
        tmp,
        f"sqlite:///{tmp / 'supervisor.db'}",
        "sqlite",
        inspection={
            "seal_interval_s": 0,
            "session_idle_s": IDLE_S,
            "session_absolute_s": ABSOLUTE_S,
        },
    )


@pytest.fixture(scope="module")
def redis_url(svc: Service) -> str:
    return svc.live_redis_url()


@pytest.fixture(autouse=True)
def no_failures_counted(svc: Service) -> Iterator[None]:
    """Each test starts and ends with no failed sign-ins counted for 127.0.0.1 (in
    Redis and in the service's own counts)."""
    svc.forget_failed_sign_ins()
    yield
    svc.forget_failed_sign_ins()


def _client(svc: Service) -> httpx.Client:
    """A browser-like client: its own cookie jar, the service's Origin on every request."""
    return httpx.Client(base_url=svc.url, headers={"Origin": svc.url}, timeout=60)


def _sign_in(c: httpx.Client, token: str) -> httpx.Response:
    r = c.post("/inspect/login", data={"token": token}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/inspect", r.text
    return r


def _signed_in(c: httpx.Client) -> bool:
    r = c.get("/inspect", follow_redirects=False)
    if r.status_code == 303:
        assert r.headers["location"] == "/inspect/login"
        return False
    assert r.status_code == 200, r.text
    return True


def _csrf(c: httpx.Client) -> dict[str, str]:
    return {"X-CSRF-Token": c.cookies["sv_csrf"]}


def test_the_cookie_holds_an_opaque_session_never_the_token(svc: Service) -> None:
    token = svc.token(Role.inspector)
    with _client(svc) as c:
        r = _sign_in(c, token)
        set_cookies = r.headers.get_list("set-cookie")
        assert all(token not in h for h in set_cookies)
        (session_header,) = [h for h in set_cookies if h.startswith("sv_session=")]
        assert "HttpOnly" in session_header and "SameSite=strict" in session_header
        assert "Path=/inspect" in session_header
        (csrf_header,) = [h for h in set_cookies if h.startswith("sv_csrf=")]
        assert "HttpOnly" not in csrf_header  # the page's script repeats it
        session = c.cookies["sv_session"]
        assert session != token and len(session) >= 40
        assert _signed_in(c)
    # The database keeps the session's hash only.
    with svc.storage.db.read() as conn:
        kept = set(conn.execute(select(workspace_sessions.c.secret_sha256)).scalars())
    assert hashlib.sha256(session.encode()).hexdigest() in kept
    assert session not in kept
    # The token is not a session: a cookie holding it signs nobody in.
    with _client(svc) as c:
        c.cookies.set("sv_session", token, path="/inspect")
        assert not _signed_in(c)


def test_sign_out_revokes_the_session_on_the_server(svc: Service) -> None:
    with _client(svc) as c:
        _sign_in(c, svc.token(Role.inspector))
        stolen = c.cookies["sv_session"]
        # Sign-out is a state change: without the CSRF header it is refused.
        r = c.post("/inspect/logout", follow_redirects=False)
        assert r.status_code == 403 and r.json()["reason"] == "csrf"
        assert _signed_in(c)
        r = c.post("/inspect/logout", headers=_csrf(c), follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/inspect/login"
    # A copy of the cookie kept from before is refused.
    with _client(svc) as c:
        c.cookies.set("sv_session", stolen, path="/inspect")
        assert not _signed_in(c)
        r = c.get("/inspect/flags/open")
        assert r.status_code == 401 and r.json()["reason"] == "unauthenticated"


def test_a_session_ends_when_idle_and_at_its_absolute_expiry(svc: Service) -> None:
    token = svc.token(Role.inspector)
    with _client(svc) as c:
        _sign_in(c, token)
        assert _signed_in(c)
        time.sleep(IDLE_S + 0.8)
        assert not _signed_in(c)
        # Signing in again works; the old session stays dead.
        _sign_in(c, token)
        assert _signed_in(c)
        # Used every second it never idles out, but ends at its absolute expiry.
        started = time.monotonic()
        while time.monotonic() - started < ABSOLUTE_S - 1.5:
            assert _signed_in(c)
            time.sleep(1.0)
        time.sleep(1.5 + 0.5)
        assert not _signed_in(c)


def test_a_revoked_token_ends_its_sessions(svc: Service) -> None:
    from datetime import UTC, datetime

    token = svc.token(Role.inspector)
    with _client(svc) as c:
        _sign_in(c, token)
        assert _signed_in(c)
        found = svc.storage.registry.resolve_token(token)
        assert found is not None
        svc.storage.registry.revoke_token(found.id, datetime.now(UTC))
        assert not _signed_in(c)


def test_failed_sign_ins_are_limited_on_the_form_and_the_cookie(svc: Service) -> None:
    limit = svc.settings.web.auth_failures_per_window
    good = svc.token(Role.inspector)
    with _client(svc) as c:
        codes = [
            c.post("/inspect/login", data={"token": secrets.token_urlsafe(32)}).status_code
            for _ in range(25)
        ]
        assert codes == [401] * limit + [429] * (25 - limit)
        # Once over the limit the address is refused, even with a good token ...
        r = c.post("/inspect/login", data={"token": good}, follow_redirects=False)
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
        # ... and on the JSON API with it.
        r = c.get("/api/v1/flags", headers={"Authorization": f"Bearer {good}"})
        assert r.status_code == 429 and r.json()["reason"] == "too_many_auth_failures"


def test_guessed_session_cookies_count_as_failed_sign_ins(svc: Service) -> None:
    limit = svc.settings.web.auth_failures_per_window
    with _client(svc) as c:
        for _ in range(limit):
            c.cookies.set("sv_session", secrets.token_urlsafe(32), path="/inspect")
            assert c.get("/inspect", follow_redirects=False).status_code == 303
        c.cookies.set("sv_session", secrets.token_urlsafe(32), path="/inspect")
        r = c.get("/inspect", follow_redirects=False)
        assert r.status_code == 429 and 'data-reason="too_many_auth_failures"' in r.text
        r = c.get("/inspect/flags/open")
        assert r.status_code == 429 and r.json()["reason"] == "too_many_auth_failures"


def _flag_status(svc: Service, flag_id: int) -> str:
    (flag,) = [f for f in svc.storage.registry.list_flags() if f.id == flag_id]
    return flag.status.value


def test_flags_are_read_and_decided_with_the_session_and_the_csrf_header(
    svc: Service,
) -> None:
    w = svc.world(enrol=False)
    flag = svc.storage.registry.raise_flag("duplicate_face", "{}", w.institution_id, w.learner_id)
    with _client(svc) as c:
        # A bearer token is not a workspace session.
        r = c.get("/inspect/flags/open", headers={"Authorization": f"Bearer {svc.admin}"})
        assert r.status_code == 401
        _sign_in(c, svc.token(Role.inspector))
        r = c.get("/inspect/flags/open")
        assert r.status_code == 200 and flag.id in {f["id"] for f in r.json()}
        decision = {"status": "dismissed", "note": "same person"}
        path = f"/inspect/flags/{flag.id}/decision"
        r = c.post(path, json=decision)
        assert r.status_code == 403 and r.json()["reason"] == "csrf"
        r = c.post(path, json=decision, headers={**_csrf(c), "Origin": "https://evil.example"})
        assert r.status_code == 403 and r.json()["reason"] == "csrf"
        assert _flag_status(svc, flag.id) == "open"
        r = c.post(path, json={"status": "maybe"}, headers=_csrf(c))
        assert r.status_code == 422 and r.json()["reason"] == "invalid_input"
        r = c.post(path, json=decision, headers=_csrf(c))
        assert r.status_code == 200, r.text
        assert _flag_status(svc, flag.id) == "dismissed"
    # An operator's session may not decide a flag about its own institution.
    with _client(svc) as c:
        _sign_in(c, w.operator)
        r = c.post(path, json={"status": "confirmed"}, headers=_csrf(c))
        assert r.status_code == 403 and r.json()["reason"] == "wrong_role"
