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
    new_id_number,
)


def _frame(
    data: bytes, name: str = "f.jpg", ctype: str = "image/jpeg"
) -> dict[str, tuple[str, bytes, str]]:
    return {"frame": (name, data, ctype)}


def _start(svc: Service, token: str, course: int, frame: bytes = HOPPER_FRAME):  # type: ignore[no-untyped-def]
    return svc.call(
        "POST", "/api/v1/sessions", token, data={"course_id": str(course)}, files=_frame(frame)
    )


def _check(svc: Service, token: str, sid: str, frame: bytes, kind: str = "identity"):  # type: ignore[no-untyped-def]
    return svc.call(
        "POST", f"/api/v1/sessions/{sid}/checks", token, data={"kind": kind}, files=_frame(frame)
    )


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_full_session_with_passes_and_a_mismatch(service: Service) -> None:
    w = service.world()
    r = _start(service, w.learner, w.course_id)
    assert r.status_code == 201, r.text
    body = r.json()
    sid = body["session"]["session_id"]
    assert body["check"]["verdict"] == "match" and body["check"]["purpose"] == "start"
    assert body["check"]["distance"] < body["check"]["threshold"]
    times = [_ts(body["check"]["at"])]

    r = _check(service, w.learner, sid, HOPPER_FRAME, kind="presence")
    assert r.status_code == 201 and r.json()["check"]["verdict"] == "present"
    times.append(_ts(r.json()["check"]["at"]))

    r = _check(service, w.learner, sid, ASTRONAUT_FRAME)
    assert r.status_code == 201, r.text
    assert r.json()["check"]["verdict"] == "mismatch"
    assert r.json()["session"]["state"] == "paused"
    times.append(_ts(r.json()["check"]["at"]))

    # A presence check does not resume a paused session; an identity check does.
    r = _check(service, w.learner, sid, HOPPER_FRAME, kind="presence")
    assert r.json()["session"]["state"] == "paused"
    times.append(_ts(r.json()["check"]["at"]))
    r = _check(service, w.learner, sid, HOPPER_FRAME)
    assert r.json()["check"]["verdict"] == "match" and r.json()["session"]["state"] == "active"
    times.append(_ts(r.json()["check"]["at"]))
    r = _check(service, w.learner, sid, HOPPER_FRAME, kind="presence")
    times.append(_ts(r.json()["check"]["at"]))

    r = service.call("POST", f"/api/v1/sessions/{sid}/end", w.learner)
    assert r.status_code == 200 and r.json()["state"] == "ended"

    credit = service.call("GET", f"/api/v1/sessions/{sid}/credited", w.learner).json()
    # Credited: start -> presence pass, then resume -> last pass. Not the stretch
    # from the mismatch until the identity check that resumed the session.
    expected = (times[1] - times[0]).total_seconds() + (times[5] - times[4]).total_seconds()
    assert credit["credited_seconds"] == pytest.approx(expected, abs=1e-3)
    assert credit["credited_seconds"] < credit["wall_seconds"]
    assert credit["passed_checks"] == 5 and credit["failed_checks"] == 1

    events = service.call("GET", f"/api/v1/sessions/{sid}/events", w.learner).json()
    kinds = [e["kind"] for e in events]
    assert kinds == [
        "session_started", "check", "check", "check", "state_changed",
        "check", "check", "state_changed", "check", "session_ended",
    ]  # fmt: skip
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    for prev, cur in zip(events, events[1:], strict=False):
        assert cur["prev_hash"] == prev["hash"]
    # Every check carries the hash of its evidence frame, and the frame is stored.
    for e in events:
        if e["kind"] == "check":
            sha = e["payload"]["evidence_sha256"]
            assert service.storage.evidence.get(sha)[:2] == b"\xff\xd8"
    integrity = service.call("GET", f"/api/v1/sessions/{sid}/integrity", w.learner).json()
    assert integrity["ok"] and integrity["events"] == len(events)

    # Recomputation gives the same answer.
    again = service.call("GET", f"/api/v1/sessions/{sid}/credited", w.learner).json()
    assert again == credit


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
        service.call("POST", "/api/v1/institutions", w.operator, json={"name": "x"}),
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
    other = service.world(enrol=False)
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

    # In a session: a check on an ended session, and a non-image check frame.
    sid = _start(service, w.learner, w.course_id).json()["session"]["session_id"]
    mid = service.event_count()
    _refusal(_check(service, w.learner, sid, b"GIF89a not really"), 415, "not_an_image")
    assert service.event_count() == mid
    assert service.call("POST", f"/api/v1/sessions/{sid}/end", w.learner).status_code == 200
    mid = service.event_count()
    _refusal(_check(service, w.learner, sid, HOPPER_FRAME), 409, "session_ended")
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
    _refusal(_check(service, b.learner, sid, HOPPER_FRAME), 403, "not_your_data")
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
    _refusal(
        service.call("POST", f"/api/v1/sessions/{sid}/end", b.operator), 403, "other_institution"
    )
    _refusal(
        service.call("GET", f"/api/v1/learners/{a.learner_id}", b.operator),
        403,
        "other_institution",
    )
    _refusal(
        service.call("POST", f"/api/v1/learners/{a.learner_id}/tokens", b.operator),
        403,
        "other_institution",
    )
    _refusal(
        service.call("DELETE", f"/api/v1/learners/{a.learner_id}/consent", b.operator),
        403,
        "other_institution",
    )
    listing = service.call("GET", "/api/v1/learners", b.operator).json()
    assert a.learner_id not in {x["id"] for x in listing}


def test_concurrent_checks_leave_an_unbroken_chain(service: Service) -> None:
    w = service.world()
    sid = _start(service, w.learner, w.course_id).json()["session"]["session_id"]
    n = 10
    with ThreadPoolExecutor(n) as pool:
        results = list(
            pool.map(lambda i: _check(service, w.learner, sid, HOPPER_FRAME, "presence"), range(n))
        )
    assert [r.status_code for r in results] == [201] * n
    events = service.call("GET", f"/api/v1/sessions/{sid}/events", w.learner).json()
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert sum(e["kind"] == "check" for e in events) == n + 1
    check_ids = {e["payload"]["check_id"] for e in events if e["kind"] == "check"}
    assert len(check_ids) == n + 1
    assert service.call("GET", f"/api/v1/sessions/{sid}/integrity", w.learner).json()["ok"]


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
    sid = _start(service, w.learner, w.course_id).json()["session"]["session_id"]
    _check(service, w.learner, sid, HOPPER_FRAME, "presence")
    _check(service, w.learner, sid, ASTRONAUT_FRAME)
    chain = f"session:{sid}"
    events = service.storage.ledger.read_chain(chain)
    mismatch = next(e for e in events if '"verdict":"mismatch"' in e.payload)
    forged = mismatch.payload.replace('"verdict":"mismatch"', '"verdict":"match"').replace(
        '"passed":false', '"passed":true'
    )
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
