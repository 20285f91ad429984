"""Registry, sessions and the ledger through the real HTTP API, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import numpy as np
import pytest

from storage.types import Role
from supervisor.cli.admin import run_ledger_verify
from tests import imagegen
from tests.storage.helpers import tamper
from tests.supervisor.conftest import (
    ASTRONAUT_FRAME,
    EMPTY_FRAME,
    HOPPER_FRAME,
    Service,
    StillFrames,
    institution_body,
    new_id_number,
)


def _start(svc: Service, token: str, course: int, frame: bytes = HOPPER_FRAME):  # type: ignore[no-untyped-def]
    return svc.sign_in(token, course, frame)


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _credited(events: list[dict], gap_s: float) -> float:  # type: ignore[type-arg]
    """The crediting rule, written again here as the test's own oracle: time between
    two consecutive passed checks counts (up to the gap) unless a failed or missed
    check, a pause or the end came between; a pause ends only with a resume."""
    total, last, paused = 0.0, None, False
    for e in events:
        kind, body = e["kind"], e["payload"]
        if kind == "check":
            at = _ts(body["at"])
            if not body["passed"]:
                last = None
            elif not paused:
                if last is not None and 0 < (at - last).total_seconds() <= gap_s:
                    total += (at - last).total_seconds()
                last = at if last is None or at > last else last
        elif kind == "check_missed" or kind == "session_ended":
            last = None
        elif kind == "state_changed":
            paused = body["to_state"] != "active"
            last = _ts(body["at"]) if not paused else None
    return total


def test_a_session_over_still_frames_credits_only_between_passed_checks(
    service: Service,
) -> None:
    w = service.world()
    r = _start(service, w.learner, w.course_id)
    assert r.status_code == 201, r.text
    body = r.json()
    sid = body["session"]["session_id"]
    assert body["check"]["verdict"] == "match" and body["check"]["purpose"] == "start"
    assert body["check"]["distance"] < body["check"]["threshold"]
    page = StillFrames(service, w.learner, sid).attach()
    first = page.check(HOPPER_FRAME)
    assert first["passed"], first
    # An identity check answered by somebody else fails; the clock stops; the retries
    # of the response window bring it back once the learner is there again.
    while True:
        kind, capture = page.request()
        if kind == "identity":
            assert page.answer(capture, [ASTRONAUT_FRAME] * capture["count"]).status_code == 202
            wanted = capture["check_id"]
            failed = page.next("result", where=lambda m, c=wanted: m["check_id"] == c)
            break
        assert page.answer(capture, [HOPPER_FRAME] * capture["count"]).status_code == 202
    assert failed["verdict"] == "mismatch" and not failed["passed"]
    retry = page.check(HOPPER_FRAME)
    assert retry["passed"], retry
    page.check(HOPPER_FRAME)
    r = service.call("POST", f"/api/v1/sessions/{sid}/end", w.learner)
    assert r.status_code == 200 and r.json()["state"] == "ended"

    events = service.call("GET", f"/api/v1/sessions/{sid}/events", w.learner).json()
    credit = service.call("GET", f"/api/v1/sessions/{sid}/credited", w.learner).json()
    gap = service.settings.policy.max_credited_gap_s
    assert credit["credited_seconds"] == pytest.approx(_credited(events, gap), abs=1e-3)
    assert 0 < credit["credited_seconds"] < credit["wall_seconds"]
    assert credit["failed_checks"] == 1
    mismatch = next(e for e in events if e["payload"].get("verdict") == "mismatch")
    after = next(
        e for e in events if e["seq"] > mismatch["seq"] and e["payload"].get("passed") is True
    )
    # Nothing between the mismatch and the next passed check is credited.
    crediting_intervals = credit["intervals"]
    assert all(
        _ts(i["end"]) <= _ts(mismatch["payload"]["at"])
        or _ts(i["start"]) >= _ts(after["payload"]["at"])
        for i in crediting_intervals
    )
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    for prev, cur in zip(events, events[1:], strict=False):
        assert cur["prev_hash"] == prev["hash"]
    # Every check carries the hash of its evidence frame, the frame is stored, and the
    # frame's capture time (when it reached the server) is in the event.
    for e in events:
        if e["kind"] == "check":
            sha = e["payload"]["evidence_sha256"]
            assert service.storage.evidence.get(sha)[:2] == b"\xff\xd8"
            assert _ts(e["payload"]["captured_at"]) <= _ts(e["payload"]["at"])
    integrity = service.call("GET", f"/api/v1/sessions/{sid}/integrity", w.learner).json()
    assert integrity["ok"] and integrity["events"] == len(events)
    again = service.call("GET", f"/api/v1/sessions/{sid}/credited", w.learner).json()
    assert again == credit


def test_a_window_without_a_pass_pauses_and_only_an_identity_check_resumes(
    service: Service,
) -> None:
    w = service.world()
    sid = service.start(w)
    page = StillFrames(service, w.learner, sid).attach()
    # Nobody there: every request is answered with an empty room until the window ends.
    while True:
        kind, capture = page.request()
        page.answer(capture, [EMPTY_FRAME] * capture["count"])
        state = service.call("GET", f"/api/v1/sessions/{sid}", w.learner).json()["state"]
        if state == "paused":
            break
    # Back at the desk: the next request is an identity check, which resumes.
    resumed = page.check(HOPPER_FRAME)
    page.end()
    assert resumed["passed"] and resumed["asked"] == "identity", resumed
    events = service.call("GET", f"/api/v1/sessions/{sid}/events", w.learner).json()
    changes = [e["payload"] for e in events if e["kind"] == "state_changed"]
    assert changes[0]["reason"] == "response_window_expired"
    assert changes[-1]["to_state"] == "active"
    assert changes[-1]["reason"] == "identity_check_passed"


def test_a_hidden_page_pauses_its_session_and_coming_back_resumes_after_an_identity_check(
    service: Service,
) -> None:
    w = service.world()
    sid = service.start(w)
    page = StillFrames(service, w.learner, sid).attach()
    first = page.check(HOPPER_FRAME)
    assert first["passed"]
    # The screen locks: the page says it is hidden; the session pauses at once, with
    # that reason, and the page's link is let go (it long-polls no more).
    r = service.call(
        "POST", f"/api/v1/sessions/{sid}/signals", w.learner, json={"hidden": True, "label": "cam"}
    )
    assert r.status_code == 204, r.text
    session = service.call("GET", f"/api/v1/sessions/{sid}", w.learner).json()
    assert session["state"] == "paused"
    events = service.call("GET", f"/api/v1/sessions/{sid}/events", w.learner).json()
    pause = [e["payload"] for e in events if e["kind"] == "state_changed"][-1]
    assert pause["to_state"] == "paused" and pause["reason"] == "page_hidden"
    refused = service.call("GET", f"/api/v1/sessions/{sid}/messages?wait=0", w.learner)
    assert refused.status_code == 409 and refused.json()["reason"] == "not_live"
    before = service.call("GET", f"/api/v1/sessions/{sid}/credited", w.learner).json()
    # Back in front: the page attaches again, and the first thing asked is an identity
    # check; only its pass resumes the session.
    page.inbox.clear()
    page.attach()
    resumed = page.check(HOPPER_FRAME)
    assert resumed["asked"] == "identity" and resumed["passed"], resumed
    page.end()
    events = service.call("GET", f"/api/v1/sessions/{sid}/events", w.learner).json()
    resume_checks = [
        e["payload"] for e in events if e["kind"] == "check" and e["payload"]["purpose"] == "resume"
    ]
    assert resume_checks and resume_checks[0]["check_kind"] == "identity"
    changes = [e["payload"] for e in events if e["kind"] == "state_changed"]
    assert [c["reason"] for c in changes] == ["page_hidden", "identity_check_passed"]
    # Nothing was credited for the time the page was away.
    after = service.call("GET", f"/api/v1/sessions/{sid}/credited", w.learner).json()
    pause_at, resume_at = _ts(changes[0]["at"]), _ts(changes[1]["at"])
    for interval in after["intervals"]:
        assert not (_ts(interval["start"]) < resume_at and _ts(interval["end"]) > pause_at)
    assert after["credited_seconds"] >= before["credited_seconds"]


def test_responses_mask_the_id_number(service: Service) -> None:
    w = service.world(enrol=False)
    learner = service.call("GET", f"/api/v1/learners/{w.learner_id}", w.operator).json()
    full = service.storage.registry.get_learner(w.learner_id).id_number
    assert learner["id_number_masked"] == full[:4] + "*" * 10 + full[-4:]
    assert full not in json.dumps(learner)
    listing = service.call("GET", "/api/v1/learners", w.operator).text
    assert full not in listing


def _refusal(r, status: int, reason: str) -> dict:  # type: ignore[no-untyped-def]
    assert r.status_code == status, r.text
    body = r.json()
    assert body["reason"] == reason, body
    assert body["message"]
    return body


def test_refusals_name_their_reason_and_never_touch_the_ledger(service: Service) -> None:
    w = service.world()
    bare = service.world(enrol=False)
    before = service.event_count()

    # Start refusals: no consent, not enrolled, no face, several faces, low quality, mismatch.
    _refusal(_start(service, bare.learner, bare.course_id), 409, "no_consent")
    version = service.settings.security.consent_text_version
    r = service.call(
        "POST",
        f"/api/v1/learners/{bare.learner_id}/consent",
        bare.learner,
        json={"text_version": "old"},
    )
    _refusal(r, 409, "consent_version_outdated")
    r = service.call(
        "POST",
        f"/api/v1/learners/{bare.learner_id}/consent",
        bare.learner,
        json={"text_version": version},
    )
    assert r.status_code == 201
    before = service.event_count()  # the consent itself is a ledger fact
    _refusal(_start(service, bare.learner, bare.course_id), 409, "not_enrolled")
    _refusal(_start(service, w.learner, w.course_id, EMPTY_FRAME), 422, "no_face")
    two = imagegen.jpeg_bytes(imagegen.two_faces_frame())
    _refusal(_start(service, w.learner, w.course_id, two), 422, "multiple_faces")
    dark = imagegen.jpeg_bytes(
        imagegen.adjust(imagegen.webcam_frame(imagegen.grace_hopper(), 170), 0.22, 0)
    )
    body = _refusal(_start(service, w.learner, w.course_id, dark), 422, "low_quality")
    assert "too_dark" in body["issues"]
    body = _refusal(_start(service, w.learner, w.course_id, ASTRONAUT_FRAME), 422, "mismatch")
    assert body["distance"] > body["threshold"]

    # Enrolment refusals: a photo failing a gate, and another learner's face.
    r = service.call(
        "POST",
        f"/api/v1/learners/{bare.learner_id}/templates",
        bare.learner,
        files={"photo": ("p.jpg", dark, "image/jpeg")},
    )
    _refusal(r, 422, "low_quality")
    r = service.call(
        "POST",
        f"/api/v1/learners/{bare.learner_id}/templates",
        bare.learner,
        files={"photo": ("p.jpg", HOPPER_FRAME, "image/jpeg")},
    )
    body = _refusal(r, 409, "duplicate_identity")
    flag = next(f for f in service.storage.registry.list_flags() if f.id == body["flag_id"])
    assert flag.kind == "duplicate_identity" and flag.learner_id == bare.learner_id
    # The refusal records nothing, but the flag it raised is a ledger fact (issue 6:
    # flags bar subsidies, so eligibility must find them in the ledger).
    raised = service.storage.ledger.read_chain(f"flag:{flag.id}")
    assert [e.kind for e in raised] == ["flag_raised"]
    before += 1

    # Unknown ids, wrong roles, other institutions.
    _refusal(_start(service, w.learner, 999_999), 404, "unknown_id")
    r = service.call("GET", "/api/v1/sessions/00000000-0000-0000-0000-000000000000", w.learner)
    _refusal(r, 404, "unknown_id")
    _refusal(service.call("GET", "/api/v1/sessions/not-a-uuid", w.learner), 422, "invalid_input")
    _refusal(
        service.call("POST", "/api/v1/institutions", w.operator, json=institution_body("x")),
        403,
        "wrong_role",
    )
    inspector = service.token(Role.inspector)
    r = service.call(
        "POST",
        "/api/v1/courses",
        inspector,
        json={
            "institution_id": w.institution_id,
            "name": "x",
            "required_hours": 1,
            "delivery_mode": "online",
        },
    )
    _refusal(r, 403, "wrong_role")
    made = service.event_count()
    other = service.world(enrol=False)
    before += service.event_count() - made  # filing the other institution is a ledger fact
    r = service.call(
        "POST",
        "/api/v1/learners",
        w.operator,
        json={
            "institution_id": other.institution_id,
            "full_name": "Someone",
            "id_number": new_id_number(),
        },
    )
    _refusal(r, 403, "other_institution")
    _refusal(_start(service, w.learner, other.course_id), 403, "other_institution")
    _refusal(service.call("GET", "/api/v1/me", None), 401, "unauthenticated")
    _refusal(service.call("GET", "/api/v1/me", "not-a-token"), 401, "unauthenticated")

    # Bodies: too large, not an image, too many pixels; invalid ID numbers.
    big = b"\xff\xd8" + b"\x00" * (service.settings.images.max_upload_bytes + 100_000)
    _refusal(_start(service, w.learner, w.course_id, big), 413, "body_too_large")
    _refusal(_start(service, w.learner, w.course_id, b"%PDF-1.4 not an image"), 415, "not_an_image")
    huge = imagegen.png_bytes(np.zeros((3000, 4100, 3), np.uint8))
    _refusal(_start(service, w.learner, w.course_id, huge), 413, "image_too_large")
    good = new_id_number()
    bad_id = good[:-1] + ("0" if good[-1] != "0" else "1")
    r = service.call(
        "POST",
        "/api/v1/learners",
        w.operator,
        json={"institution_id": w.institution_id, "full_name": "Bad Check", "id_number": bad_id},
    )
    _refusal(r, 422, "invalid_id_number")
    r = service.call("POST", "/api/v1/courses", w.operator, json={"name": 5})
    _refusal(r, 422, "invalid_input")

    assert service.event_count() == before

    # In a session: a non-image answer, frames after the end.
    sid = _start(service, w.learner, w.course_id).json()["session"]["session_id"]
    page = StillFrames(service, w.learner, sid).attach()
    _, capture = page.request()
    mid = service.event_count()  # supervision waits for this answer: nothing is appended
    _refusal(page.answer(capture, [b"GIF89a not really"]), 415, "not_an_image")
    assert service.event_count() == mid
    assert service.call("POST", f"/api/v1/sessions/{sid}/end", w.learner).status_code == 200
    mid = service.event_count()
    _refusal(page.answer(capture, [HOPPER_FRAME]), 409, "not_live")
    _refusal(service.call("POST", f"/api/v1/sessions/{sid}/end", w.learner), 409, "session_ended")
    assert service.event_count() == mid


def test_one_open_session_per_learner(service: Service) -> None:
    w = service.world()
    sid = _start(service, w.learner, w.course_id).json()["session"]["session_id"]
    body = _refusal(_start(service, w.learner, w.course_id), 409, "session_already_open")
    assert body["session_id"] == sid


def test_a_learner_cannot_read_another_learners_session(service: Service) -> None:
    a = service.world()
    b = service.world(photo=imagegen.jpeg_bytes(imagegen.astronaut()))
    sid = _start(service, a.learner, a.course_id).json()["session"]["session_id"]
    for path in ("", "/events", "/credited", "/integrity"):
        _refusal(
            service.call("GET", f"/api/v1/sessions/{sid}{path}", b.learner), 403, "not_your_data"
        )
    r = service.call(
        "POST",
        f"/api/v1/sessions/{sid}/frames",
        b.learner,
        data={"check_id": "x", "nonce": "y"},
        files=[("frames", ("f.jpg", HOPPER_FRAME, "image/jpeg"))],
    )
    _refusal(r, 403, "not_your_data")
    _refusal(
        service.call("GET", f"/api/v1/learners/{a.learner_id}", b.learner), 403, "not_your_data"
    )
    # The learner's own, an operator of the institution and an inspector may read it.
    assert service.call("GET", f"/api/v1/sessions/{sid}", a.learner).status_code == 200
    assert service.call("GET", f"/api/v1/sessions/{sid}/events", a.operator).status_code == 200
    inspector = service.token(Role.inspector)
    assert service.call("GET", f"/api/v1/sessions/{sid}/events", inspector).status_code == 200


def test_an_operator_cannot_touch_another_institution(service: Service) -> None:
    a = service.world()
    b = service.world(photo=imagegen.jpeg_bytes(imagegen.astronaut()))
    sid = _start(service, a.learner, a.course_id).json()["session"]["session_id"]
    _refusal(service.call("GET", f"/api/v1/sessions/{sid}", b.operator), 403, "other_institution")
    _refusal(service.call("POST", f"/api/v1/sessions/{sid}/end", b.operator), 403, "learner_only")
    _refusal(
        service.call("GET", f"/api/v1/learners/{a.learner_id}", b.operator),
        403,
        "other_institution",
    )
    _refusal(
        service.call("POST", f"/api/v1/learners/{a.learner_id}/tokens", b.operator),
        403,
        "wrong_role",
    )
    _refusal(
        service.call("DELETE", f"/api/v1/learners/{a.learner_id}/consent", b.operator),
        403,
        "learner_only",
    )
    listing = service.call("GET", "/api/v1/learners", b.operator).json()
    assert a.learner_id not in {x["id"] for x in listing}


def test_concurrent_sign_ins_open_one_session(service: Service) -> None:
    w = service.world()
    n = 6
    with ThreadPoolExecutor(n) as pool:
        results = list(pool.map(lambda _: _start(service, w.learner, w.course_id), range(n)))
    codes = sorted(r.status_code for r in results)
    assert codes == [201] + [409] * (n - 1), [r.text for r in results]
    sid = next(r for r in results if r.status_code == 201).json()["session"]["session_id"]
    events = service.call("GET", f"/api/v1/sessions/{sid}/events", w.learner).json()
    assert [e["kind"] for e in events] == ["session_started", "check"]
    assert service.call("GET", f"/api/v1/sessions/{sid}/integrity", w.learner).json()["ok"]
    opened = service.storage.registry.list_sessions(None, w.learner_id, False)
    assert [s.id for s in opened] == [sid]


def test_consent_withdrawal_deletes_templates_and_ends_sessions(service: Service) -> None:
    w = service.world()
    sid = _start(service, w.learner, w.course_id).json()["session"]["session_id"]
    r = service.call("DELETE", f"/api/v1/learners/{w.learner_id}/consent", w.learner)
    assert r.status_code == 200, r.text
    assert r.json()["templates_deleted"] == 1 and r.json()["sessions_ended"] == 1
    assert service.storage.templates.for_learner(w.learner_id) == []
    state = service.call("GET", f"/api/v1/sessions/{sid}", w.learner).json()
    assert state["state"] == "ended" and state["end_reason"] == "consent_withdrawn"
    _refusal(_start(service, w.learner, w.course_id), 409, "no_consent")
    chain = service.storage.ledger.read_chain(f"learner:{w.learner_id}")
    assert [e.kind for e in chain] == ["consent_given", "template_enrolled", "consent_withdrawn"]


def test_an_edited_row_is_caught_and_named(
    service: Service, capsys: pytest.CaptureFixture[str]
) -> None:
    w = service.world()
    r = _start(service, w.learner, w.course_id)
    sid = r.json()["session"]["session_id"]
    chain = f"session:{sid}"
    events = service.storage.ledger.read_chain(chain)
    mismatch = next(e for e in events if e.kind == "check")  # the sign-in check
    forged = mismatch.payload.replace('"purpose":"start"', '"purpose":"scheduled"')
    assert forged != mismatch.payload
    # As an attacker with the database owner's rights would: append-only triggers off.
    tamper(
        service.storage,
        "UPDATE ledger_events SET payload = :p WHERE chain_id = :c AND seq = :s",
        p=forged,
        c=chain,
        s=mismatch.seq,
    )
    report = service.call("GET", f"/api/v1/sessions/{sid}/integrity", w.learner).json()
    assert not report["ok"]
    assert report["breaks"] == [
        {"chain_id": chain, "seq": mismatch.seq, "reason": report["breaks"][0]["reason"]}
    ]
    # The command line names it too, and fails.
    assert run_ledger_verify(service.settings, [chain]) == 1
    out = capsys.readouterr().out
    assert f"BROKEN {chain} first bad event seq={mismatch.seq}" in out
    assert json.loads(out.strip().splitlines()[-1])["ok"] is False


def test_the_learner_page_and_its_consent_text_follow_the_readers_language(
    service: Service,
) -> None:
    # Chinese by default, English when the browser asks for it, the switch above both.
    page = service.client.get("/learn")
    assert page.status_code == 200 and '<html lang="zh-CN">' in page.text
    assert 'id="lang-switch"' in page.text and 'href="/learn?lang=en"' in page.text
    english = service.client.get("/learn", headers={"Accept-Language": "en-US,en;q=0.9"})
    assert '<html lang="en">' in english.text
    try:
        switched = service.client.get("/learn?lang=zh-CN", headers={"Accept-Language": "en"})
        assert '<html lang="zh-CN">' in switched.text
    finally:
        service.client.cookies.clear()  # the switch's cookie: not for the other tests
    # The consent text a Chinese reader gets is the Chinese version, which names its
    # language; consent to it is consent to the version in force.
    zh = service.client.get("/api/v1/consent-text", headers={"Accept-Language": "zh-CN"}).json()
    en = service.client.get("/api/v1/consent-text", headers={"Accept-Language": "en"}).json()
    current = service.settings.security.consent_text_version
    assert zh["version"] == f"{current}-zh-CN" and "人脸" in zh["text"]
    assert en["version"] == current and "consent" in en["text"].lower()
    w = service.world(enrol=False)
    r = service.call(
        "POST",
        f"/api/v1/learners/{w.learner_id}/consent",
        w.learner,
        json={"text_version": zh["version"]},
    )
    assert r.status_code == 201, r.text
    status = service.call("GET", f"/api/v1/learners/{w.learner_id}/consent", w.learner).json()
    assert status["consent"]["text_version"] == f"{current}-zh-CN"
