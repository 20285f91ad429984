"""Workspace sign-in in a real headless Chromium: no token anywhere the page's
scripts can read, sign-out and idle expiry end the session on the server, and a
burst of wrong tokens on the sign-in form meets the failed-token limit."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from storage.types import Role
from tests.supervisor.conftest import Service, _service
from tests.supervisor.inspect.test_inspect_browser import _browser, _sign_in, shot

pytestmark = [pytest.mark.browser, pytest.mark.slow]

IDLE_S = 3.0

# Everything the page's own scripts can read: web storage and document.cookie.
READABLE = (
    "JSON.stringify({local: Object.entries(localStorage), session: "
    "Object.entries(sessionStorage), cookie: document.cookie})"
)


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    tmp = tmp_path_factory.mktemp("svc-workspace-browser")
    yield from _service(
        tmp,
        f"sqlite:///{tmp / 'supervisor.db'}",
        "sqlite",
        inspection={"seal_interval_s": 0, "session_idle_s": IDLE_S},
    )


@pytest.fixture(scope="module")
def redis_url(svc: Service) -> str:
    return svc.live_redis_url()


def _session_cookie(page: Any) -> dict[str, Any]:
    (cookie,) = [c for c in page.context.cookies() if c["name"] == "sv_session"]
    return dict(cookie)


def _with_cookie(page: Any, svc: Service, cookie: dict[str, Any]) -> str:
    """Put a (copied) session cookie back into the browser and open the workspace;
    the path the browser ends up on."""
    page.context.clear_cookies()
    page.context.add_cookies([cookie])
    page.goto(f"{svc.url}/inspect")
    return str(page.url)


def test_no_token_in_the_page_and_sign_out_ends_the_session(
    svc: Service, redis_url: str, browser_factory: Callable[..., Any], tmp_path: Path
) -> None:
    w = svc.world(enrol=False)
    flag = svc.storage.registry.raise_flag("duplicate_face", "{}", w.institution_id, w.learner_id)
    token = svc.token(Role.inspector)
    page = _browser(browser_factory, tmp_path)
    _sign_in(page, svc, token)
    # The flags queue works on the session alone.
    page.goto(f"{svc.url}/inspect/flags")
    page.wait_for_selector(f"#flags tr[data-flag='{flag.id}']")
    readable = page.evaluate(READABLE)
    assert token not in readable
    assert page.evaluate("sessionStorage.length") == 0
    assert page.evaluate("localStorage.length") == 0
    cookie = _session_cookie(page)
    assert cookie["httpOnly"] and cookie["value"] != token
    assert cookie["value"] not in readable
    # Sign out with the page's button (a POST with the CSRF header, from the script).
    page.click("nav form[action='/inspect/logout'] button")
    page.wait_for_url(f"{svc.url}/inspect/login")
    shot(page, "signed-out")
    # The cookie copied before sign-out is refused: the server revoked the session.
    assert _with_cookie(page, svc, cookie).endswith("/inspect/login")


def test_a_refused_form_shows_the_reason_on_the_page(
    svc: Service, redis_url: str, browser_factory: Callable[..., Any], tmp_path: Path
) -> None:
    w = svc.world(enrol=False)
    page = _browser(browser_factory, tmp_path)
    _sign_in(page, svc, svc.token(Role.inspector))
    page.goto(f"{svc.url}/inspect/spot-checks")
    page.select_option("#draw-form select[name=institution_id]", str(w.institution_id))
    page.fill("#draw-form input[name=period_start]", "2026-02-01")
    page.fill("#draw-form input[name=period_end]", "2026-01-01")
    page.click("#draw-form button[type=submit]")
    page.wait_for_selector("#draw-form + .form-refusal")
    assert page.get_attribute("#draw-form + .form-refusal", "data-reason") == "bad_period"
    assert "period" in page.inner_text("#draw-form + .form-refusal")
    assert page.url.endswith("/inspect/spot-checks")


def test_an_idle_session_ends(
    svc: Service, redis_url: str, browser_factory: Callable[..., Any], tmp_path: Path
) -> None:
    page = _browser(browser_factory, tmp_path)
    _sign_in(page, svc, svc.token(Role.inspector))
    cookie = _session_cookie(page)
    page.goto(f"{svc.url}/inspect/spot-checks")
    assert page.url.endswith("/inspect/spot-checks")
    time.sleep(IDLE_S + 1)
    page.goto(f"{svc.url}/inspect/spot-checks")
    assert page.url.endswith("/inspect/login")
    # And it stays ended, whatever the browser still holds.
    assert _with_cookie(page, svc, cookie).endswith("/inspect/login")


def test_wrong_tokens_on_the_sign_in_form_meet_the_limit(
    svc: Service, redis_url: str, browser_factory: Callable[..., Any], tmp_path: Path
) -> None:
    # The earlier tests' refused cookies counted as failures: start from none.
    svc.forget_failed_sign_ins()
    page = _browser(browser_factory, tmp_path)
    statuses = []
    for _ in range(25):
        page.goto(f"{svc.url}/inspect/login")
        page.fill("#token", secrets.token_urlsafe(32))
        with page.expect_response(
            lambda r: r.url.endswith("/inspect/login") and r.request.method == "POST"
        ) as answer:
            page.click("#login-form button[type=submit]")
        statuses.append(answer.value.status)
    limit = svc.settings.web.auth_failures_per_window
    assert statuses == [401] * limit + [429] * (25 - limit)
    assert "too many failed" in page.inner_text("#login-error").lower()
    shot(page, "too-many-sign-ins")
