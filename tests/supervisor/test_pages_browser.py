"""Pages in a real headless Chromium: /docs and /redoc with every request off this
machine blocked, and the inspector's and public pages in Chinese with CJK glyphs
(screenshots in test-artifacts/)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from storage.types import Role
from tests.supervisor.conftest import Service, _service, institution_body, wait_js
from tests.videogen import write_y4m

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    tmp = tmp_path_factory.mktemp("svc-pages-browser")
    yield from _service(tmp, f"sqlite:///{tmp / 'supervisor.db'}", "sqlite")


def _page(factory: Callable[..., Any], tmp: Path, svc: Service, locale: str) -> Any:
    grey = np.full((48, 64, 3), 128, np.uint8)
    page = factory(write_y4m(tmp / "still.y4m", [(grey, 0.4)]))
    page.set_extra_http_headers({"Accept-Language": locale})
    outside: list[str] = []
    own = svc.url

    def route(r: Any) -> None:
        # Nothing but this service: a CDN request fails, and is remembered.
        if r.request.url.startswith(own):
            r.continue_()
        else:
            outside.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.outside = outside
    return page


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"pages-{name}.png"), full_page=True)


def _cjk_rendered(page: Any, selector: str) -> None:
    # A CJK glyph is about as wide as it is tall; a missing font draws narrow boxes or
    # nothing. The text's rendered width per character says which.
    width = page.evaluate(
        """(sel) => { const el = document.querySelector(sel); const r = document.createRange();
        r.selectNodeContents(el);
        return r.getBoundingClientRect().width / el.textContent.length; }""",
        selector,
    )
    size = page.evaluate(
        "(sel) => parseFloat(getComputedStyle(document.querySelector(sel)).fontSize)", selector
    )
    assert width > 0.8 * size, (width, size)


def test_docs_and_redoc_render_offline(
    svc: Service, browser_factory: Callable[..., Any], tmp_path: Path
) -> None:
    page = _page(browser_factory, tmp_path, svc, "zh-CN")
    violations: list[str] = []
    page.on(
        "console", lambda m: violations.append(m.text) if "Content Security" in m.text else None
    )
    page.goto(f"{svc.url}/docs")
    page.wait_for_selector(".opblock", timeout=30_000)
    operations = page.locator(".opblock").count()
    assert operations > 50
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert any("/api/v1/public/catalogue" in p for p in paths)
    shot(page, "docs")
    page.goto(f"{svc.url}/redoc")
    page.wait_for_selector("[data-section-id^='tag/'], [data-section-id^='operation/']",
                           timeout=30_000)  # fmt: skip
    wait_js(page, "document.querySelectorAll('[data-section-id^=\"operation/\"]').length > 50")
    shot(page, "redoc")
    assert page.outside == [], page.outside
    # ReDoc's own "by Redocly" badge points at its CDN; the policy blocks that image (it
    # is decoration), and nothing else is refused: no script, style or data.
    refused = [v for v in violations if "cdn.redoc.ly/redoc/logo" not in v]
    assert refused == [], refused


def test_public_pages_in_chinese(
    svc: Service, browser_factory: Callable[..., Any], tmp_path: Path
) -> None:
    r = svc.call(
        "POST", "/api/v1/institutions", svc.admin, json=institution_body("红星职业技能培训学校")
    )
    inst = r.json()["id"]
    op = svc.token(Role.operator, inst)
    body = {"institution_id": inst, "name": "电工（四级）", "required_hours": 40}
    course = svc.call("POST", "/api/v1/courses", op, json={**body, "delivery_mode": "blended"})
    cid = course.json()["id"]
    rules = {"occupation": "6-31-01-03", "skill_level": 4, "subsidy_kind": "per_hour"}
    rules.update(subsidy_amount=30, subsidy_cap=1200)
    # The bureau sets and publishes the standard; the institution only offers the course.
    bureau = svc.bureau
    assert svc.call("PUT", f"/api/v1/courses/{cid}/rules", bureau, json=rules).status_code == 200
    assert svc.call("POST", f"/api/v1/courses/{cid}/publish", bureau).status_code == 200
    body = institution_body("虚假培训中心")
    r = svc.call("POST", "/api/v1/institutions", svc.admin, json=body)
    bad = r.json()["id"]
    status = {
        "status": "expelled",
        "reason": "虚报学时",
        "effective_at": "2026-11-01T00:00:00+08:00",
    }
    assert (
        svc.call("POST", f"/api/v1/institutions/{bad}/status", svc.admin, json=status).status_code
        == 200
    )

    page = _page(browser_factory, tmp_path, svc, "zh-CN,zh;q=0.9")
    page.goto(f"{svc.url}/public/catalogue")
    assert page.evaluate("document.documentElement.lang") == "zh-CN"
    assert page.inner_text("h2") == "补贴性培训目录"
    page.fill("input[name=q]", "电工")
    page.click("#catalogue-search button[type=submit]")
    page.wait_for_selector(f"#courses tr[data-course='{cid}']")
    cells = page.locator(f"#courses tr[data-course='{cid}'] td").all_inner_texts()
    assert cells[0] == "电工（四级）" and cells[2] == "4 级" and cells[3] == "线上线下混合"
    assert cells[5] == "每学时 30.00 元，最高 1200.00 元" and cells[8] == "正常"
    _cjk_rendered(page, "h1")
    shot(page, "public-catalogue-zh")
    page.goto(f"{svc.url}/public/expelled")
    row = page.locator(f"#expelled tr[data-institution='{bad}'] td").all_inner_texts()
    assert row[0].startswith("虚假培训中心 ") and row[2] == "虚报学时" and row[3] == "2026-11-01"
    shot(page, "public-expelled-zh")
    # The switch: English, remembered for the next page.
    page.click("#lang-switch a[data-lang='en']")
    page.wait_for_selector("html[lang='en']")
    page.goto(f"{svc.url}/public/catalogue")
    assert page.inner_text("h2") == "Catalogue of subsidised training"
    assert page.outside == []


def test_inspector_pages_in_chinese(
    svc: Service, browser_factory: Callable[..., Any], tmp_path: Path
) -> None:
    page = _page(browser_factory, tmp_path, svc, "zh-CN")
    page.goto(f"{svc.url}/inspect/login")
    assert page.inner_text("h1") == "监管工作台"
    page.fill("#token", svc.token(Role.inspector))
    page.click("#login-form button[type=submit]")
    page.wait_for_url(f"{svc.url}/inspect")
    assert page.inner_text("#search-form button[type=submit]") == "查询"
    assert "监管人员" in page.inner_text("#who")
    _cjk_rendered(page, "h2")
    page.click("#search-form button[type=submit]")
    page.wait_for_selector("#results")
    shot(page, "inspect-search-zh")
    page.goto(f"{svc.url}/inspect/flags")
    wait_js(page, "document.getElementById('flags-state').dataset.state === 'loaded'")
    assert page.inner_text("#flags-state").startswith("待处理疑点")
    shot(page, "inspect-flags-zh")
    assert page.outside == []
