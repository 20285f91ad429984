"""The learner's "Your data" section in a real headless Chromium: see the data held,
ask for the non-face path, withdraw consent."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests import imagegen
from tests.supervisor.conftest import Service, wait_js
from tests.videogen import write_y4m

pytestmark = [pytest.mark.browser]

ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts"


def test_a_learner_sees_their_data_asks_for_the_non_face_path_and_withdraws(
    sqlite_service: Service, browser_factory: Callable[..., object], tmp_path: Path
) -> None:
    svc = sqlite_service
    svc.forget_faces()
    w = svc.world()
    y4m = write_y4m(
        tmp_path / "hopper.y4m",
        [(imagegen.webcam_frame(imagegen.grace_hopper(), face_width=170), 1.0)],
    )
    page = browser_factory(y4m)
    page.on("dialog", lambda d: d.accept())  # type: ignore[attr-defined]
    page.goto(f"{svc.url}/learn#token={w.learner}")  # type: ignore[attr-defined]
    page.wait_for_selector("#mydata:not([hidden])")  # type: ignore[attr-defined]

    page.click("#mydata-button")  # type: ignore[attr-defined]
    page.wait_for_selector("#mydata-view table")  # type: ignore[attr-defined]
    view = page.inner_text("#mydata-view")  # type: ignore[attr-defined]
    assert "Grace Hopper" in view and "**********" in view
    assert "Face templates (the face numbers themselves are never shown) (1)" in view
    assert "consent given" in view
    # Frames by their kind in words, never a raw code.
    assert "enrolment photo" in view and "\tenrolment\t" not in view

    page.fill("#alt-reason", "<b>I prefer not</b>")  # type: ignore[attr-defined]
    page.click("#alt-button")  # type: ignore[attr-defined]
    wait_js(page, "document.getElementById('alt-status').textContent === 'requested'")
    r = svc.call("GET", f"/api/v1/learners/{w.learner_id}/alternative", w.operator)
    assert r.json()["status"] == "requested" and r.json()["reason"] == "<b>I prefer not</b>"

    page.click("#withdraw-button")  # type: ignore[attr-defined]
    wait_js(
        page, "document.getElementById('mydata-error').textContent.startsWith('Consent withdrawn')"
    )
    assert svc.storage.templates.for_learner(w.learner_id) == []
    # The view was refreshed: no template left, the withdrawal listed.
    view = page.inner_text("#mydata-view")  # type: ignore[attr-defined]
    assert "never shown) (0)" in view and "consent withdrawn" in view
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "learner-your-data.png"), full_page=True)  # type: ignore[attr-defined]
