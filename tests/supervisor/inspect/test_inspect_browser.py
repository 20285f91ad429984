"""The inspector's workspace in a real headless Chromium: sign-in, search, replay of a
real session, a spot-check verdict, an evidence export, and tampering shown plainly.
Screenshots are kept in test-artifacts/."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from storage.types import Role
from supervisor.inspect.packs import verify_pack
from tests import imagegen
from tests.storage.helpers import tamper
from tests.supervisor.conftest import HOPPER_FRAME, Service, StillFrames, _service, wait_js
from tests.videogen import write_y4m

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts"


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    tmp = tmp_path_factory.mktemp("svc-inspect-browser")
    yield from _service(
        tmp,
        f"sqlite:///{tmp / 'supervisor.db'}",
        "sqlite",
        inspection={"seal_interval_s": 0},
    )


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"inspect-{name}.png"), full_page=True)


def _browser(factory: Callable[..., Any], tmp: Path) -> Any:
    # The workspace needs no camera; Chromium's fake camera still wants a file.
    grey = np.full((48, 64, 3), 128, np.uint8)
    return factory(write_y4m(tmp / "still.y4m", [(grey, 0.4)]))


def _real_session(svc: Service) -> tuple[Any, str]:
    """A session through the real API: identity check at start, two checks, end."""
    svc.forget_faces()
    w = svc.world()
    sid = svc.start(w)
    astronaut = imagegen.jpeg_bytes(imagegen.webcam_frame(imagegen.astronaut(), face_width=170))
    page = StillFrames(svc, w.learner, sid).attach()
    for frame in (HOPPER_FRAME, astronaut):
        page.check(frame)
    assert svc.call("POST", f"/api/v1/sessions/{sid}/end", w.learner).status_code == 200
    return w, sid


def _sign_in(page: Any, svc: Service, token: str) -> None:
    page.goto(f"{svc.url}/inspect")
    assert page.url.endswith("/inspect/login")
    page.fill("#token", token)
    page.click("#login-form button[type=submit]")
    page.wait_for_url(f"{svc.url}/inspect")


def test_inspector_searches_replays_spot_checks_and_exports(
    svc: Service, browser_factory: Callable[..., Any], tmp_path: Path
) -> None:
    w, sid = _real_session(svc)
    inspector = svc.token(Role.inspector)
    assert svc.call("POST", "/api/v1/seals", svc.admin).status_code == 201
    page = _browser(browser_factory, tmp_path)
    _sign_in(page, svc, inspector)

    # Search by learner name within the institution.
    page.fill("input[name=learner]", "Grace")
    page.fill("input[name=institution_id]", str(w.institution_id))
    page.click("#search-form button[type=submit]")
    page.wait_for_selector("#results")
    row = page.locator(f"#results tr[data-id='{sid}']")
    assert row.count() == 1
    cells = row.locator("td").all_inner_texts()
    assert cells[1] == "Grace Hopper" and "*" in cells[2] and cells[6] == "ended by the learner"
    shot(page, "search")

    # Replay: the timeline, the checks with their verdicts and frames, the integrity.
    row.locator("a.open-replay").click()
    page.wait_for_selector("#replay")
    assert page.inner_text("#learner-name") == "Grace Hopper"
    assert page.get_attribute("#integrity-chain", "data-state") == "intact"
    assert page.get_attribute("#integrity-seal", "data-state") == "sealed_ok"
    wait_js(page, "document.getElementById('integrity-frames').dataset.state !== 'checking'")
    assert page.get_attribute("#integrity-frames", "data-state") == "intact"
    verdicts = page.locator("#checks tr.check").evaluate_all("rs => rs.map(r => r.dataset.verdict)")
    # As many as the ledger holds: the sign-in and the checks the server asked for.
    checks = [e for e in svc.storage.ledger.read_chain(f"session:{sid}") if e.kind == "check"]
    assert verdicts[0] == "match" and len(verdicts) == len(checks) >= 3
    assert page.locator("#timeline .tl-mark").count() == len(checks)
    assert page.locator("#timeline .tl-credited").count() >= 1
    wait_js(page, "document.getElementById('frame').naturalWidth > 0")
    assert page.inner_text("#frame-pos") == f"1 / {len(checks)}"
    # Chromium asks for English here: codes are shown by their names.
    assert page.inner_text("#frame-verdict") == "identity confirmed"
    assert "distance" in page.inner_text("#frame-distance")
    page.click("#next")
    assert page.inner_text("#frame-pos") == f"2 / {len(checks)}"
    page.click("#play")
    last = f"{len(checks)} / {len(checks)}"
    wait_js(page, f"document.getElementById('frame-pos').textContent === '{last}'", 60)
    # The last check is whichever kind the server drew: identity (the astronaut is not
    # the learner) or presence (a face is there).
    last_kind = json.loads(checks[-1].payload)["check_kind"]
    label = {
        "identity": ("not the enrolled learner", "identity confirmed"),
        "presence": ("present",),
    }
    assert page.inner_text("#frame-verdict") in label[last_kind]
    shot(page, "replay")

    # Evidence export from the replay page, verified offline.
    with page.expect_download() as dl:
        page.click("#export-pack")
    pack = tmp_path / "pack.zip"
    dl.value.save_as(str(pack))
    report = verify_pack(pack)
    assert report.ok, report.problems
    assert report.frames_retained >= 2
    assert zipfile.ZipFile(io.BytesIO(pack.read_bytes())).read("manifest.json")

    # Spot check: draw from a recorded seed, review, record a verdict.
    page.click("text=Spot checks")
    page.select_option("#draw-form select[name=institution_id]", str(w.institution_id))
    # The form's dates are local (Beijing) dates: between 16:00 and 24:00 UTC the local
    # day is already the next one.
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    page.fill("#draw-form input[name=period_start]", str(today - timedelta(days=1)))
    page.fill("#draw-form input[name=period_end]", str(today + timedelta(days=1)))
    page.fill("#draw-form input[name=size]", "3")
    page.fill("#draw-form input[name=seed]", "browser-seed-1")
    page.click("#draw-form button[type=submit]")
    page.wait_for_selector("#draw")
    assert page.inner_text("#seed") == "browser-seed-1"
    assert "gives the same sample" in page.inner_text("#reproduced")
    sample = page.locator(f"#sample tr[data-session='{sid}']")
    assert sample.count() == 1
    sample.locator("select[name=verdict]").select_option("irregular")
    sample.locator("input[name=note]").fill("second check shows another person")
    sample.locator("button[type=submit]").click()
    page.wait_for_selector(f"#sample tr[data-session='{sid}'] .verdict-cell strong")
    cell = page.inner_text(f"#sample tr[data-session='{sid}'] .verdict-cell")
    assert "irregular" in cell and "another person" in cell
    draw_id = page.get_attribute("#draw", "data-draw")
    chain = svc.storage.ledger.read_chain(f"spotcheck:{draw_id}")
    assert [e.kind for e in chain] == ["spot_check_drawn", "spot_check_verdict"]
    shot(page, "spot-check")

    # Tampering: swap an evidence file, then edit an event row; the page says so.
    replay = svc.call("GET", f"/api/v1/inspect/sessions/{sid}/replay", inspector).json()
    sha = replay["checks"][0]["evidence_sha256"]
    svc.storage.evidence.path_for(sha).write_bytes(imagegen.jpeg_bytes(imagegen.astronaut()))
    page.goto(f"{svc.url}/inspect/sessions/{sid}")
    wait_js(page, "document.getElementById('integrity-frames').dataset.state === 'altered'")
    assert sha[:16] in page.inner_text("#integrity-frames")
    assert "could not be shown" in page.inner_text("#frame-state") or page.evaluate(
        "document.getElementById('frame').hidden"
    )
    tamper(
        svc.storage,
        "UPDATE ledger_events SET payload = replace(payload, '\"identity\"', '\"presence\"') "
        "WHERE chain_id = :c AND seq = 2",
        c=f"session:{sid}",
    )
    page.reload()
    assert page.get_attribute("#integrity-chain", "data-state") == "broken"
    assert "HASH CHAIN BROKEN" in page.inner_text("#integrity-chain")
    assert page.get_attribute("#integrity-seal", "data-state") == "sealed_mismatch"
    shot(page, "tampered")

    # The inspector's reads are in the access log.
    log = svc.call(
        "GET", "/api/v1/access-log", svc.admin, params={"learner_id": w.learner_id}
    ).json()
    assert {"replay_session", "view_frame", "evidence_pack"} <= {a["action"] for a in log}


def test_other_institutions_replay_is_refused_in_the_browser(
    svc: Service, browser_factory: Callable[..., Any], tmp_path: Path
) -> None:
    from tests.supervisor.inspect_helpers import record_session

    w = svc.world(enrol=False)
    other = svc.world(enrol=False)
    sid = record_session(
        svc.storage,
        w.institution_id,
        w.course_id,
        w.learner_id,
        datetime(2026, 1, 5, 9, tzinfo=UTC),
        [HOPPER_FRAME],
    )
    page = _browser(browser_factory, tmp_path)
    _sign_in(page, svc, other.operator)
    response = page.goto(f"{svc.url}/inspect/sessions/{sid}")
    assert response.status == 403
    assert "another institution" in page.inner_text("#error-message")
    shot(page, "refused")
    # A learner cannot sign in at all.
    page.goto(f"{svc.url}/inspect/login")
    page.fill("#token", w.learner)
    page.click("#login-form button[type=submit]")
    assert "Learners have no" in page.inner_text("#login-error")


def test_flags_queue_decides_on_the_workspace_session(
    svc: Service, browser_factory: Callable[..., Any], tmp_path: Path
) -> None:
    w = svc.world(enrol=False)
    flag = svc.storage.registry.raise_flag("duplicate_face", "{}", w.institution_id, w.learner_id)
    inspector = svc.token(Role.inspector)
    page = _browser(browser_factory, tmp_path)
    _sign_in(page, svc, inspector)
    page.goto(f"{svc.url}/inspect/flags")
    wait_js(page, "document.getElementById('flags-state').dataset.state !== undefined")
    assert page.get_attribute("#flags-state", "data-state") == "loaded"
    row = page.locator(f"#flags tr[data-flag='{flag.id}']")
    assert row.count() == 1
    row.locator(".flag-note").fill("same person, two ID numbers")
    row.locator(".flag-dismissed").click()
    wait_js(page, f"!document.querySelector(\"#flags tr[data-flag='{flag.id}']\")")
    assert svc.storage.registry.list_flags()[-1].status.value == "dismissed"
    shot(page, "flags")
