"""The learner's page on a phone: real Chromium with mobile emulation (a 390x844
portrait viewport at 3x, touch, a Chinese browser) and a fake front camera fed from
.y4m files. Each test drives the page by touch and asserts through the API and the
ledger as well as what the page shows; screenshots go to test-artifacts/.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from supervisor.web import STATIC_DIR
from tests import imagegen
from tests.supervisor.conftest import HOPPER_FRAME, Service, _service, wait_js
from tests.supervisor.online.test_learner_browser import (
    LIVE_LIVENESS,
    LIVE_POLICY,
    LIVE_WEBRTC,
    checks,
    events,
    frame,
    shot,
    wait_for,
)
from tests.videogen import write_y4m

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ZH = json.loads((STATIC_DIR / "i18n" / "zh-CN.json").read_text(encoding="utf-8"))
CJK = re.compile(r"[\u4e00-\u9fff]")

# A phone held upright: what Playwright's "Pixel 7" descriptor sets, with a Chinese
# browser (Accept-Language and navigator.language zh-CN).
PHONE: dict[str, object] = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 3,
    "is_mobile": True,
    "has_touch": True,
    "locale": "zh-CN",
    "user_agent": (
        "Mozilla/5.0 (Linux; Android 14; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/156.0.0.0 Mobile Safari/537.36"
    ),
}

# Records what the page asks of the camera (the constraints), before its scripts run.
RECORD_CAMERA = """
window.__cameraAsked = [];
const __gum = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
navigator.mediaDevices.getUserMedia = (c) => {
  window.__cameraAsked.push(JSON.stringify(c));
  return __gum(c);
};
"""

# Every text the clock and the state line show, in order.
WATCH = """
window.__clock = [document.getElementById('clock').textContent];
window.__states = [document.getElementById('state').textContent];
new MutationObserver(() => __clock.push(document.getElementById('clock').textContent))
  .observe(document.getElementById('clock'), {childList: true, characterData: true, subtree: true});
new MutationObserver(() => __states.push(document.getElementById('state').textContent))
  .observe(document.getElementById('state'), {childList: true, characterData: true, subtree: true});
"""

# Headless Chromium keeps every tab visible (bringing another tab to the front or
# minimising the window through the DevTools protocol changes nothing), and the
# screen lock of a phone is the OS's: the page is told it is hidden the way the
# browser would tell it, and the phone's camera stops as a phone's does. Everything
# from the page's handler on is real.
HIDE = """
Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => 'hidden'});
Object.defineProperty(document, 'hidden', {configurable: true, get: () => true});
const __v = document.getElementById('preview');
if (__v.srcObject) __v.srcObject.getVideoTracks().forEach((t) => t.stop());
document.dispatchEvent(new Event('visibilitychange'));
"""
SHOW = """
delete document.visibilityState;
delete document.hidden;
document.dispatchEvent(new Event('visibilitychange'));
"""


@pytest.fixture(scope="module")
def phone_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    tmp = tmp_path_factory.mktemp("svc-phone")
    yield from _service(
        tmp,
        f"sqlite:///{tmp / 'supervisor.db'}",
        "sqlite",
        policy=LIVE_POLICY,
        webrtc=LIVE_WEBRTC,
        liveness=LIVE_LIVENESS,
    )


@pytest.fixture
def svc(phone_service: Service) -> Service:
    phone_service.forget_faces()
    return phone_service


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def seconds(hms: str) -> int:
    h, m, s = (int(x) for x in hms.split(":"))
    return h * 3600 + m * 60 + s


def hms(total: float) -> str:
    s = int(total)
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def wait_text(page: object, selector: str, text: str, timeout: float = 30.0) -> None:
    wait_js(page, f"document.querySelector({selector!r}).textContent === {text!r}", timeout)


def state_text(page: object) -> str:
    return str(page.text_content("#state"))  # type: ignore[attr-defined]


def credited(svc: Service, token: str, sid: str) -> dict:  # type: ignore[type-arg]
    r = svc.call("GET", f"/api/v1/sessions/{sid}/credited", token)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def never_backwards(page: object) -> list[int]:
    shown = [seconds(x) for x in page.evaluate("window.__clock")]  # type: ignore[attr-defined]
    assert shown == sorted(shown), f"the clock went backwards: {shown}"
    return shown


def test_the_phone_page_speaks_chinese_and_its_clock_is_the_ledgers_credited_time(
    svc: Service, browser_factory: Callable[..., object], tmp_path: Path
) -> None:
    w = svc.world()
    y4m = write_y4m(tmp_path / "hopper.y4m", [(frame(imagegen.grace_hopper()), 4.0)])
    page = browser_factory(y4m, init_script=RECORD_CAMERA, **PHONE)
    page.goto(f"{svc.url}/learn#token={w.learner}")  # type: ignore[attr-defined]
    page.wait_for_selector("body[data-ready='1']")  # type: ignore[attr-defined]
    # Chinese first: the language of the page, its words, the state as a sentence.
    assert page.evaluate("document.documentElement.lang") == "zh-CN"  # type: ignore[attr-defined]
    assert page.inner_text("h1") == ZH["learner.title"]  # type: ignore[attr-defined]
    assert page.title() == ZH["learner.title"]  # type: ignore[attr-defined]
    assert state_text(page) == ZH["learner.state.not_started"]
    assert page.inner_text("#start-button") == ZH["learner.start"]  # type: ignore[attr-defined]
    body = page.inner_text("body")  # type: ignore[attr-defined]
    assert len(CJK.findall(body)) > 100
    # The front camera, a portrait preview, and buttons a thumb can hit.
    asked = page.evaluate("window.__cameraAsked")  # type: ignore[attr-defined]
    assert asked and json.loads(asked[0])["video"]["facingMode"] == "user"
    video = page.locator("#preview").bounding_box()  # type: ignore[attr-defined]
    assert video["height"] > video["width"] > 200 and video["y"] + video["height"] < 844
    assert page.locator("#enrol-button").is_hidden()  # type: ignore[attr-defined]
    assert page.locator("#end-button").is_hidden()  # type: ignore[attr-defined]
    for button in ("#start-button", "#mydata-button"):
        box = page.locator(button).bounding_box()  # type: ignore[attr-defined]
        assert box["height"] >= 44 and box["width"] >= 300, (button, box)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # type: ignore[attr-defined]
    shot(page, "phone-learner-ready")

    page.evaluate(WATCH)  # type: ignore[attr-defined]
    page.tap("#start-button")  # type: ignore[attr-defined]
    page.wait_for_selector("body[data-mode='webrtc']", timeout=30_000)  # type: ignore[attr-defined]
    sid = page.evaluate("document.body.dataset.session")  # type: ignore[attr-defined]
    assert page.inner_text("#mode") == ZH["learner.mode.webrtc"]  # type: ignore[attr-defined]
    wait_for(
        lambda: len(checks(events(svc, w.learner, sid), purpose="scheduled", passed=True)) >= 2,
        40,
        "two passed scheduled checks",
    )
    wait_text(page, "#state", ZH["learner.state.verified"])
    wait_js(page, "document.getElementById('clock').textContent !== '00:00:00'")
    shot(page, "phone-learner-studying")
    # What the clock shows is never more than the ledger credits at that moment.
    shown = seconds(page.text_content("#clock"))  # type: ignore[attr-defined]
    assert shown <= credited(svc, w.learner, sid)["credited_seconds"]

    page.tap("#end-button")  # type: ignore[attr-defined]
    wait_for(
        lambda: events(svc, w.learner, sid)[-1]["kind"] == "session_ended", 15, "the session end"
    )
    ended = events(svc, w.learner, sid)[-1]["payload"]
    assert ended["reason"] == "learner"
    page.wait_for_selector("body[data-state='ended']", timeout=15_000)  # type: ignore[attr-defined]
    assert state_text(page) == ZH["learner.ended.learner"]
    # The clock ends on the ledger's credited time, and it never went backwards.
    final = credited(svc, w.learner, sid)
    assert final["credited_seconds"] > 4
    wait_text(page, "#clock", hms(final["credited_seconds"]))
    shown_all = never_backwards(page)
    assert max(shown_all) == int(final["credited_seconds"])
    # No raw code reached the state line.
    for text in page.evaluate("window.__states"):  # type: ignore[attr-defined]
        assert not re.search(r"[a-z]+_[a-z_]+", text), text
    shot(page, "phone-learner-ended")


def test_a_mismatch_reads_as_its_own_sentence_and_the_clock_stands_still(
    svc: Service, browser_factory: Callable[..., object], tmp_path: Path
) -> None:
    w = svc.world()
    r = svc.sign_in(w.learner, w.course_id, HOPPER_FRAME)
    assert r.status_code == 201, r.text
    sid = r.json()["session"]["session_id"]
    y4m = write_y4m(tmp_path / "astronaut.y4m", [(frame(imagegen.astronaut()), 4.0)])
    page = browser_factory(y4m, **PHONE)
    page.goto(f"{svc.url}/learn#token={w.learner}&session={sid}")  # type: ignore[attr-defined]
    page.wait_for_selector("body[data-ready='1']")  # type: ignore[attr-defined]
    page.evaluate(WATCH)  # type: ignore[attr-defined]

    def mismatched() -> bool:
        return bool(checks(events(svc, w.learner, sid), check_kind="identity", verdict="mismatch"))

    wait_for(mismatched, 45, "an identity check to find another person")
    mismatch = ZH["learner.failed.mismatch"]
    wait_js(page, f"window.__states.includes({mismatch!r})", timeout=15)
    states = page.evaluate("window.__states")  # type: ignore[attr-defined]
    # Not the enrolled person: call the institution. Not a failed challenge's words.
    assert "联系培训机构" in mismatch
    assert mismatch != ZH["learner.failed.challenge_failed"]
    assert not any(s.startswith(ZH["learner.failed.challenge_failed"][:6]) for s in states)
    assert not any(re.search(r"[a-z]+_[a-z_]+", s) for s in states), states
    shot(page, "phone-learner-mismatch")
    # The clock stands: after the mismatch nothing more is credited, and the page
    # shows no more than the ledger's figure.
    before = credited(svc, w.learner, sid)["credited_seconds"]
    time.sleep(4)
    assert credited(svc, w.learner, sid)["credited_seconds"] == before
    assert seconds(page.text_content("#clock")) == int(before)  # type: ignore[attr-defined]
    never_backwards(page)
    svc.call("POST", f"/api/v1/sessions/{sid}/end", w.learner)


def test_a_page_sent_to_the_background_pauses_and_resumes_after_an_identity_check(
    svc: Service, browser_factory: Callable[..., object], tmp_path: Path
) -> None:
    w = svc.world()
    r = svc.sign_in(w.learner, w.course_id, HOPPER_FRAME)
    assert r.status_code == 201, r.text
    sid = r.json()["session"]["session_id"]
    y4m = write_y4m(tmp_path / "hopper.y4m", [(frame(imagegen.grace_hopper()), 4.0)])
    page = browser_factory(y4m, init_script=RECORD_CAMERA, **PHONE)
    page.goto(f"{svc.url}/learn#token={w.learner}&session={sid}")  # type: ignore[attr-defined]
    page.wait_for_selector("body[data-mode='webrtc']", timeout=30_000)  # type: ignore[attr-defined]
    page.evaluate(WATCH)  # type: ignore[attr-defined]
    wait_for(
        lambda: bool(checks(events(svc, w.learner, sid), purpose="scheduled", passed=True)),
        30,
        "a passed scheduled check",
    )

    # The screen locks.
    page.evaluate(HIDE)  # type: ignore[attr-defined]

    def paused_hidden() -> list[dict]:  # type: ignore[type-arg]
        return [
            e
            for e in events(svc, w.learner, sid)
            if e["kind"] == "state_changed" and e["payload"]["reason"] == "page_hidden"
        ]

    wait_for(lambda: bool(paused_hidden()), 15, "the session to pause for the hidden page")
    pause = paused_hidden()[0]
    assert pause["payload"]["to_state"] == "paused"
    assert svc.call("GET", f"/api/v1/sessions/{sid}", w.learner).json()["state"] == "paused"
    assert state_text(page) == ZH["learner.paused.page_hidden"]
    shot(page, "phone-learner-background")
    held = credited(svc, w.learner, sid)["credited_seconds"]
    time.sleep(3)
    assert credited(svc, w.learner, sid)["credited_seconds"] == held
    seq_paused = pause["seq"]

    # Back on the page: it opens the camera again and reconnects; an identity check
    # comes first, and only its pass resumes the session.
    page.evaluate(SHOW)  # type: ignore[attr-defined]

    def resumed() -> bool:
        later = [e for e in events(svc, w.learner, sid) if e["seq"] > seq_paused]
        return any(
            e["kind"] == "state_changed"
            and e["payload"]["to_state"] == "active"
            and e["payload"]["reason"] == "identity_check_passed"
            for e in later
        )

    wait_for(resumed, 40, "an identity check to resume the session")
    later = [e for e in events(svc, w.learner, sid) if e["seq"] > seq_paused]
    first_check = next(e for e in later if e["kind"] in ("check", "check_missed"))
    assert first_check["kind"] == "check"
    assert first_check["payload"]["check_kind"] == "identity"
    assert first_check["payload"]["purpose"] == "resume" and first_check["payload"]["passed"]
    assert "page_hidden" in first_check["payload"]["suspicion"]
    # The camera was opened again (the phone had stopped it), the front one.
    asked = page.evaluate("window.__cameraAsked")  # type: ignore[attr-defined]
    assert len(asked) == 2 and all(json.loads(a)["video"]["facingMode"] == "user" for a in asked)
    wait_text(page, "#state", ZH["learner.state.verified"])
    states = page.evaluate("window.__states")  # type: ignore[attr-defined]
    assert ZH["learner.state.resuming"] in states
    # Nothing was credited while the page was away; the clock never went back.
    changes = [e["payload"] for e in later if e["kind"] == "state_changed"]
    pause_at, resume_at = _ts(pause["payload"]["at"]), _ts(changes[0]["at"])
    for interval in credited(svc, w.learner, sid)["intervals"]:
        assert not (_ts(interval["start"]) < resume_at and _ts(interval["end"]) > pause_at)
    never_backwards(page)
    shot(page, "phone-learner-resumed")
    svc.call("POST", f"/api/v1/sessions/{sid}/end", w.learner)


def test_a_new_learner_consents_in_chinese_and_a_masked_enrolment_photo_says_how_to_do_better(
    svc: Service, browser_factory: Callable[..., object], tmp_path: Path
) -> None:
    from config import FaceSettings
    from tests.verification import maskgen
    from verification.dlib_engine import DlibFaceEngine

    seating = DlibFaceEngine(FaceSettings())
    hopper = imagegen.grace_hopper()
    box = seating.detect(hopper)[0]
    points = seating.landmarks(hopper, box, 68)
    masked = maskgen.draw_mask(hopper, points, maskgen.STYLES[0], np.random.default_rng(1))
    y4m = write_y4m(tmp_path / "masked.y4m", [(frame(masked, 180), 4.0)])
    w = svc.world(enrol=False)
    page = browser_factory(y4m, **PHONE)
    page.goto(f"{svc.url}/learn#token={w.learner}")  # type: ignore[attr-defined]
    # The consent text in Chinese, agreed to by touch.
    page.wait_for_selector("#consent:not([hidden])")  # type: ignore[attr-defined]
    consent = page.inner_text("#consent-text")  # type: ignore[attr-defined]
    assert len(CJK.findall(consent)) > 50
    page.tap("#consent-agree")  # type: ignore[attr-defined]
    page.tap("#consent-button")  # type: ignore[attr-defined]
    page.wait_for_selector("body[data-ready='1']")  # type: ignore[attr-defined]
    r = svc.call("GET", f"/api/v1/learners/{w.learner_id}/consent", w.learner)
    # The consent recorded names the language of the text the learner read.
    assert r.json()["consent"]["text_version"].endswith("-zh-CN"), r.json()
    # No face enrolled yet: the page says so and offers the photo.
    page.tap("#start-button")  # type: ignore[attr-defined]
    page.wait_for_selector("#enrol-button:not([hidden])", timeout=30_000)  # type: ignore[attr-defined]
    assert state_text(page) == ZH["learner.signin.not_enrolled"]
    # A photo with a mask on: refused, and the page says how to take a better one.
    page.tap("#enrol-button")  # type: ignore[attr-defined]
    page.wait_for_selector("#advice li", timeout=30_000)  # type: ignore[attr-defined]
    advice = page.locator("#advice li").all_inner_texts()  # type: ignore[attr-defined]
    assert ZH["advice.face_occluded"] in advice, advice
    assert ZH["learner.enrol.tips"] in advice
    assert state_text(page).startswith(ZH["learner.enrol.refused"].split("{")[0])
    assert svc.storage.templates.for_learner(w.learner_id) == []
    shot(page, "phone-learner-enrol-masked")


def test_end_stops_every_upload_and_frames_caught_by_the_end_are_no_error(
    svc: Service, browser_factory: Callable[..., object], tmp_path: Path
) -> None:
    w = svc.world()
    r = svc.sign_in(w.learner, w.course_id, HOPPER_FRAME)
    assert r.status_code == 201, r.text
    sid = r.json()["session"]["session_id"]
    y4m = write_y4m(tmp_path / "hopper.y4m", [(frame(imagegen.grace_hopper()), 4.0)])
    # The still-frame path (a phone browser without WebRTC): every frame is a request.
    page = browser_factory(y4m, init_script="delete window.RTCPeerConnection;", **PHONE)
    sent: list[tuple[float, str, str]] = []
    page.on(  # type: ignore[attr-defined]
        "request", lambda q: sent.append((time.monotonic(), q.method, q.url))
    )
    held: list[object] = []
    page.goto(f"{svc.url}/learn#token={w.learner}&session={sid}")  # type: ignore[attr-defined]
    page.wait_for_selector("body[data-mode='upload']", timeout=30_000)  # type: ignore[attr-defined]
    # The next frames the page posts are held on their way, as on a slow network.
    page.route("**/frames", lambda route: held.append(route))  # type: ignore[attr-defined]
    deadline = time.monotonic() + 30
    while not held and time.monotonic() < deadline:
        page.wait_for_timeout(200)  # type: ignore[attr-defined]
    assert held, "the page posted no frames for a check"
    pressed_at = time.monotonic()
    page.tap("#end-button")  # type: ignore[attr-defined]
    page.wait_for_selector("body[data-state='ended']", timeout=15_000)  # type: ignore[attr-defined]
    assert svc.call("GET", f"/api/v1/sessions/{sid}", w.learner).json()["end_reason"] == "learner"
    # The held frames arrive after the end: refused by the server (409), not an error
    # for the learner, whose page says the session ended and why.
    held[0].continue_()  # type: ignore[attr-defined]
    page.wait_for_timeout(4000)  # type: ignore[attr-defined]
    assert page.text_content("#study-error") == ""  # type: ignore[attr-defined]
    assert state_text(page) == ZH["learner.ended.learner"]
    # Nothing was uploaded once End was pressed: no frames, signals or polls after it.
    after = [
        (m, u)
        for at, m, u in sent
        if at > pressed_at and re.search(r"/(frames|signals|messages|webrtc|live)\b", u)
    ]
    assert not after, after
    assert len(held) == 1
    evs = events(svc, w.learner, sid)
    assert evs[-1]["kind"] == "session_ended"
    shot(page, "phone-learner-ended-during-check")
