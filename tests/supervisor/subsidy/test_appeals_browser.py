"""The learner's Appeals card on a phone: real Chromium with mobile emulation (a
390x844 portrait viewport, touch, a Chinese browser). The learner lists what they can
appeal, files an appeal on a flag raised on them, and sees the bureau's decision; the
outcome is asserted through the ledger as well as on the page."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from supervisor.checks.flags import raise_flag
from supervisor.rules.flags import EvidenceRef
from supervisor.web import STATIC_DIR
from tests import imagegen
from tests.supervisor.conftest import Service, wait_js
from tests.supervisor.online.test_learner_browser import frame, shot
from tests.supervisor.online.test_learner_phone import PHONE
from tests.videogen import write_y4m

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ZH = json.loads((STATIC_DIR / "i18n" / "zh-CN.json").read_text(encoding="utf-8"))


def test_a_learner_appeals_a_flag_from_the_phone_and_sees_the_decision(
    sqlite_service: Service, browser_factory: Callable[..., object], tmp_path: Path
) -> None:
    svc = sqlite_service
    svc.forget_faces()
    w = svc.world()
    head = svc.storage.ledger.read_chain(f"learner:{w.learner_id}")[0]
    flag = raise_flag(
        svc.storage,
        "replayed_image",
        w.institution_id,
        w.learner_id,
        (),
        "the same frame at every check",
        [EvidenceRef(head.chain_id, head.seq, head.hash, None, {})],
        datetime.now(UTC),
    )
    y4m = write_y4m(tmp_path / "hopper.y4m", [(frame(imagegen.grace_hopper()), 2.0)])
    page = browser_factory(y4m, **PHONE)
    page.goto(f"{svc.url}/learn#token={w.learner}")  # type: ignore[attr-defined]
    page.wait_for_selector("#appeals:not([hidden])")  # type: ignore[attr-defined]
    assert page.inner_text("#appeals h2") == ZH["learner.appeal.heading"]  # type: ignore[attr-defined]
    wait_js(page, "document.querySelectorAll('#appeal-list li').length === 1")
    assert page.inner_text("#appeal-list") == ZH["learner.appeal.mine_none"]  # type: ignore[attr-defined]

    page.tap("#appeal-load")  # type: ignore[attr-defined]
    page.wait_for_selector("#appeal-form:not([hidden])")  # type: ignore[attr-defined]
    option = page.inner_text("#appeal-subject option")  # type: ignore[attr-defined]
    # The flag by its number and kind, in Chinese, with its time in Beijing time.
    assert f"疑点 {flag.id}" in option and ZH["flag.replayed_image"] in option
    assert "(UTC+8)" in option
    for box in ("#appeal-subject", "#appeal-statement", "#appeal-submit"):
        b = page.locator(box).bounding_box()  # type: ignore[attr-defined]
        assert b["width"] >= 300 and b["height"] >= 44, (box, b)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # type: ignore[attr-defined]
    # An empty statement is caught on the page: nothing is filed.
    before = svc.event_count()
    page.tap("#appeal-submit")  # type: ignore[attr-defined]
    assert page.inner_text("#appeal-error") == ZH["learner.appeal.empty"]  # type: ignore[attr-defined]
    assert svc.event_count() == before
    page.fill("#appeal-statement", "那天是我本人在学习，摄像头卡住了。")  # type: ignore[attr-defined]
    page.tap("#appeal-submit")  # type: ignore[attr-defined]
    page.wait_for_selector("#appeal-list li[data-status='open']")  # type: ignore[attr-defined]
    shot(page, "phone-learner-appeal-filed")
    (appeal,) = svc.storage.appeals.find(learner_id=w.learner_id)
    assert appeal.flag_id == flag.id and appeal.statement.startswith("那天是我本人")
    assert [e.kind for e in svc.storage.ledger.read_chain(f"appeal:{appeal.id}")] == [
        "appeal_filed"
    ]
    # Filed: the flag is no longer offered.
    wait_js(page, "document.querySelectorAll('#appeal-subject option').length === 0")

    r = svc.call(
        "POST",
        f"/api/v1/appeals/{appeal.id}/decision",
        svc.bureau,
        json={"upheld": True, "note": "经现场核实，确为本人"},
    )
    assert r.status_code == 200, r.text
    page.reload()  # type: ignore[attr-defined]
    page.wait_for_selector("#appeal-list li[data-status='upheld']")  # type: ignore[attr-defined]
    shown = page.inner_text("#appeal-list")  # type: ignore[attr-defined]
    assert ZH["learner.appeal.upheld"] in shown and "经现场核实，确为本人" in shown
    assert "(UTC+8)" in shown
    shot(page, "phone-learner-appeal-upheld")
    assert svc.storage.subsidy.get_flag(flag.id).status.value == "dismissed"
