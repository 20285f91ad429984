"""The operator console in a real headless Chromium asking for Chinese: sign-in, a roster
import with a bad row (the report names the row and the reason), the fixed file
imported, the learners list, a class roster, a statement on a flag, and the bureau's
institutions page. Screenshots are kept in test-artifacts/."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from supervisor.checks.flags import raise_flag
from supervisor.rules.flags import EvidenceRef
from tests import imagegen
from tests.classgen import MjpegCamera
from tests.supervisor.conftest import TEST_CAMERA_NETWORKS, Service, _service, new_id_number
from tests.supervisor.registry.test_roster_import import bad_check_digit, xlsx
from tests.videogen import write_y4m

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    tmp = tmp_path_factory.mktemp("svc-console-browser")
    (tmp / "videos").mkdir()
    yield from _service(
        tmp,
        f"sqlite:///{tmp / 'supervisor.db'}",
        "sqlite",
        classroom={
            "file_sources_dir": str(tmp / "videos"),
            "camera_networks": TEST_CAMERA_NETWORKS,
        },
    )


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"console-{name}.png"), full_page=True)


def _page(factory: Callable[..., Any], tmp: Path) -> Any:
    # The console needs no camera; Chromium's fake camera still wants a file.
    grey = np.full((48, 64, 3), 128, np.uint8)
    page = factory(write_y4m(tmp / "still.y4m", [(grey, 0.4)]))
    page.context.set_extra_http_headers({"Accept-Language": "zh-CN,zh;q=0.9"})
    return page


def _sign_in(page: Any, svc: Service, token: str, lands: str) -> None:
    page.goto(f"{svc.url}/console")
    assert page.url.endswith("/console/login")
    assert page.get_attribute("html", "lang") == "zh-CN"
    assert page.inner_text("h1") == "机构管理后台"
    page.fill("#token", token)
    page.click("#login-form button[type=submit]")
    page.wait_for_url(f"{svc.url}{lands}")


def test_operator_imports_a_roster_fixes_a_bad_row_and_answers_a_flag(
    svc: Service,
    browser_factory: Callable[..., Any],
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    w = svc.world(enrol=False)
    r = svc.call(
        "POST",
        "/api/v1/courses",
        w.operator,
        json={
            "institution_id": w.institution_id,
            "name": "中式烹调师（五级）",
            "required_hours": 40,
            "delivery_mode": "classroom",
        },
    )
    assert r.status_code == 201, r.text
    course = r.json()["id"]
    r = svc.call(
        "POST",
        "/api/v1/classes",
        w.operator,
        json={
            "course_id": course,
            "name": "烹调一班",
            "mode": "training",
            "starts_at": "2030-03-01T01:00:00Z",
            "ends_at": "2030-03-01T09:00:00Z",
        },
    )
    assert r.status_code == 201, r.text
    class_id = r.json()["id"]
    page = _page(browser_factory, tmp_path)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    _sign_in(page, svc, w.operator, "/console/learners")
    assert "学员名单" in page.inner_text("#console-nav")
    shot(page, "learners-before")

    # A file with a bad check digit on row 3 and an ID number Excel made a number.
    ids = [new_id_number("19980512"), new_id_number("20010830"), new_id_number("19751203")]
    bad = tmp_path / "学员名单.xlsx"
    bad.write_bytes(
        xlsx(
            [
                ["姓名", "身份证号", "手机号"],
                ["周杰", ids[0], "13800138000"],
                ["吴敏", bad_check_digit(ids[1]), ""],
                ["郑强", 110101197512030000, ""],
            ]
        )
    )
    page.click("#console-nav >> text=导入名册")
    page.wait_for_selector("#import-form")
    page.set_input_files("#roster-file", str(bad))
    page.select_option("#class-select", str(class_id))
    page.click("#do-import")
    page.wait_for_selector("#report")
    assert page.get_attribute("#report", "data-imported") == "no"
    row3 = page.locator("#report-rows tr[data-row='3']")
    assert row3.get_attribute("data-status") == "error"
    assert "校验码" in row3.locator("td.problems").inner_text()
    row4 = page.locator("#report-rows tr[data-row='4']")
    assert "数字" in row4.locator("td.problems").inner_text()
    assert page.locator("#report-rows tr[data-status='error']").count() == 2
    assert "有 2 行存在问题" in page.inner_text("#report-summary")
    shot(page, "import-bad-row")
    assert svc.storage.registry.list_learners(w.institution_id) == [
        lr for lr in svc.storage.registry.list_learners(w.institution_id) if lr.id == w.learner_id
    ]

    # The fixed file is imported, and its learners join the class.
    fixed = tmp_path / "学员名单-已改正.xlsx"
    fixed.write_bytes(
        xlsx(
            [
                ["姓名", "身份证号", "手机号"],
                ["周杰", ids[0], "13800138000"],
                ["吴敏", ids[1], ""],
                ["郑强", ids[2], ""],
            ]
        )
    )
    page.set_input_files("#roster-file", str(fixed))
    assert page.input_value("#class-select") == str(class_id)  # the choice was kept
    page.click("#do-import")
    page.wait_for_selector("#report[data-imported='yes']")
    assert "已登记 3 名学员" in page.inner_text("#report-summary")
    shot(page, "import-done")

    page.click("#console-nav >> text=学员名单")
    page.wait_for_selector("#learners")
    names = page.locator("#learners tbody td:nth-child(2)").all_inner_texts()
    assert {"周杰", "吴敏", "郑强"} <= set(names)
    assert ids[0] not in page.content()  # ID numbers are masked
    shot(page, "learners")

    page.click("#console-nav >> text=班级")
    page.click(f"#classes tr[data-id='{class_id}'] a.open-class")
    page.wait_for_selector("#roster")
    assert page.locator("#roster tbody tr[data-id]").count() == 3
    page.check(f"#roster-form input[value='{w.learner_id}']")
    page.click("#roster-form button[type=submit]")
    page.wait_for_selector(f"#roster tr[data-id='{w.learner_id}']")
    assert page.inner_text("#roster-count") == "4"

    # A camera (an MJPEG camera on this machine, inside the test's camera networks;
    # video files are the admin's) and its test-connection button.
    grey = imagegen.jpeg_bytes(np.full((240, 320, 3), 128, np.uint8))
    camera = MjpegCamera([grey] * 10, 5.0)
    request.addfinalizer(camera.__exit__)
    camera.__enter__()
    page.fill("#camera-form input[name=url]", camera.url)
    page.fill("#camera-form input[name=label]", "教室前门")
    page.click("#camera-form button[type=submit]")
    page.wait_for_selector("#cameras >> text=教室前门")
    page.click("#cameras form.camera-test button")
    page.wait_for_selector(".camera-result", timeout=40_000)
    assert page.get_attribute(".camera-result", "data-reachable") == "yes"
    assert "320×240" in page.inner_text(".camera-result")
    shot(page, "class-roster")

    filed = svc.storage.ledger.read_chain(f"institution:{w.institution_id}")[0]
    flag = raise_flag(
        svc.storage,
        "duplicate_device",
        w.institution_id,
        w.learner_id,
        [],
        "two learners studied from one device",
        # A flag always carries its evidence: the institution's filing stands in here.
        [EvidenceRef(filed.chain_id, filed.seq, filed.hash, None, {})],
        datetime.now(UTC),
    )
    page.click("#console-nav >> text=疑点")
    page.click(f"#flags tr[data-id='{flag.id}'] a.open-flag")
    page.wait_for_selector("#statement-form")
    page.fill("#statement", "两名学员在同一间机房上课，共用一台电脑。")
    page.click("#statement-form button[type=submit]")
    page.wait_for_selector("#statements >> text=共用一台电脑")
    assert page.get_attribute("#flag", "data-status") == "open"
    shot(page, "flag-statement")
    # No script error and no CSP violation (the refused import answers 422, which
    # Chromium reports as a failed load).
    assert not [e for e in errors if "status of 422" not in e], errors

    # The bureau: institutions and their status.
    page.click("#console-nav button[type=submit]")
    page.wait_for_url(f"{svc.url}/console/login")
    _sign_in(page, svc, svc.bureau, "/console/institutions")
    row = page.locator(f"#institutions tr[data-id='{w.institution_id}']")
    assert row.get_attribute("data-status") == "active"
    shot(page, "bureau-institutions")
    page.click("#console-nav >> text=培训目录与补贴标准")
    page.wait_for_selector(f"#catalogue tr[data-id='{course}']")
    shot(page, "bureau-catalogue")
    page.click(f"#catalogue tr[data-id='{course}'] a.open-standard")
    page.wait_for_selector("#standard-form")
    page.fill("#standard-form input[name=occupation]", "4-03-02-01")
    page.fill("#standard-form input[name=skill_level]", "5")
    page.fill("#standard-form input[name=subsidy_amount]", "1200")
    page.click("#standard-form button[type=submit]")
    page.wait_for_selector("#publish-form")
    page.click("#publish-form button[type=submit]")
    page.wait_for_selector("#standard[data-status='published']")
    assert "已公示" in page.inner_text("#standard-summary")
    shot(page, "bureau-standard")
    page.click("#console-nav >> text=补贴申领")
    page.fill("#claims-form input[name=date_from]", "2026-01-01")
    page.fill("#claims-form input[name=date_to]", "2030-12-31")
    page.click("#claims-form button[type=submit]")
    page.wait_for_selector("#claims-total")
    shot(page, "bureau-claims")
