"""A learner's data rights through the real API: see what is held, withdraw consent,
and the non-face path an operator approves; the processing record from the settings."""

from __future__ import annotations

import time

from storage.types import Role
from supervisor.ledger import events as ev
from tests.supervisor.conftest import HOPPER_FRAME, Service


def _start(svc: Service, token: str, course: int):  # type: ignore[no-untyped-def]
    return svc.sign_in(token, course, HOPPER_FRAME)


def _kinds(svc: Service, learner_id: int) -> list[str]:
    return [e.kind for e in svc.storage.ledger.read_chain(ev.learner_chain(learner_id))]


def test_a_learner_sees_what_is_held_about_them_and_nobody_else_does(service: Service) -> None:
    w = service.world()
    r = _start(service, w.learner, w.course_id)
    assert r.status_code == 201, r.text
    sid = r.json()["session"]["session_id"]
    assert service.call("POST", f"/api/v1/sessions/{sid}/end", w.learner).status_code == 200

    r = service.call("GET", f"/api/v1/learners/{w.learner_id}/data", w.learner)
    assert r.status_code == 200, r.text
    data = r.json()
    me = data["learner"]
    assert me["full_name"] == "Grace Hopper" and "*" in me["id_number_masked"]
    assert "id_number" not in me
    assert [c["event"] for c in data["consents"]] == ["consent_given"]
    assert len(data["face_templates"]) == 1
    assert "vector" not in str(data)  # face descriptors are never given out
    assert [s["session_id"] for s in data["sessions"]] == [sid]
    assert data["sessions"][0]["checks"] == 1
    whats = {f["what"] for f in data["evidence_frames"]}
    assert "enrolment" in whats and f"check in session {sid}" in whats
    assert all(f["retain_until"] and f["deleted_at"] is None for f in data["evidence_frames"])
    assert data["alternative_path"]["status"] == "none"
    # Giving it out is itself on the record.
    assert _kinds(service, w.learner_id)[-1] == "data_exported"

    other = service.world(enrol=False)
    r = service.call("GET", f"/api/v1/learners/{w.learner_id}/data", other.learner)
    assert r.status_code == 403 and r.json()["reason"] == "not_your_data"
    r = service.call("GET", f"/api/v1/learners/{w.learner_id}/data", other.operator)
    assert r.status_code == 403
    assert _kinds(service, w.learner_id)[-1] == "data_exported"  # refused reads add nothing
    r = service.call("GET", f"/api/v1/learners/{w.learner_id}/data", w.operator)
    assert r.status_code == 200
    # The learner sees that their institution's operator read their data.
    reads = service.call("GET", f"/api/v1/learners/{w.learner_id}/data", w.learner).json()
    assert any(x["role"] == "operator" for x in reads["read_by"]), reads["read_by"]

    # Withdrawal through the API: the templates go, the export says so.
    r = service.call("DELETE", f"/api/v1/learners/{w.learner_id}/consent", w.learner)
    assert r.status_code == 200 and r.json()["templates_deleted"] == 1
    data = service.call("GET", f"/api/v1/learners/{w.learner_id}/data", w.learner).json()
    assert [c["event"] for c in data["consents"]] == ["consent_given", "consent_withdrawn"]
    assert data["face_templates"] == []


def test_the_non_face_path_is_requested_approved_and_supervised_in_person(
    service: Service,
) -> None:
    w = service.world(enrol=False)  # no consent, no face: face recognition is refused
    base = f"/api/v1/learners/{w.learner_id}/alternative"
    assert service.call("GET", base, w.learner).json()["status"] == "none"

    # The institution is paid per hour: it neither approves the path nor attests
    # presence. The bureau does both, in person.
    bureau = service.bureau
    body = {"learner_id": w.learner_id, "course_id": w.course_id, "note": "ID card seen"}
    r = service.call("POST", "/api/v1/sessions/in-person", bureau, json=body)
    assert r.status_code == 409 and r.json()["reason"] == "alternative_not_approved"
    r = service.call("POST", f"{base}/decision", bureau, json={"approved": True})
    assert r.status_code == 409 and r.json()["reason"] == "no_request"

    r = service.call("POST", base, w.learner, json={"reason": "I do not want my face used."})
    assert r.status_code == 201 and r.json()["status"] == "requested"
    r = service.call("POST", base, w.learner, json={"reason": "again"})
    assert r.status_code == 409
    # Neither the learner nor any institution's operator decides the request.
    for token in (w.learner, w.operator, service.world(enrol=False).operator):
        r = service.call("POST", f"{base}/decision", token, json={"approved": True})
        assert r.status_code == 403 and r.json()["reason"] == "wrong_role", r.text
    assert service.call("GET", base, w.learner).json()["status"] == "requested"
    r = service.call("POST", f"{base}/decision", bureau, json={"approved": True, "note": "agreed"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "approved" and r.json()["method"] == "in_person_id_check"

    # Bureau staff open the session after checking the ID card, attest presence, end it.
    for token in (w.learner, w.operator):  # nobody attests themselves or their own pay
        r = service.call("POST", "/api/v1/sessions/in-person", token, json=body)
        assert r.status_code == 403, r.text
    r = service.call("POST", "/api/v1/sessions/in-person", bureau, json=body)
    assert r.status_code == 201, r.text
    sid = r.json()["session"]["session_id"]
    assert r.json()["session"]["mode"] == "in_person"
    assert (r.json()["check"]["kind"], r.json()["check"]["verdict"]) == ("in_person", "attested")
    # No camera supervision of such a session, whoever asks.
    r = service.call("POST", f"/api/v1/sessions/{sid}/live", w.learner, json={"mode": "upload"})
    assert r.status_code == 409 and r.json()["reason"] == "in_person_session"
    time.sleep(1.1)
    r = service.call("POST", f"/api/v1/sessions/{sid}/attestations", w.operator, json={})
    assert r.status_code == 403
    r = service.call("POST", f"/api/v1/sessions/{sid}/attestations", bureau, json={})
    assert r.status_code == 201, r.text
    assert r.json()["session"]["credited_seconds"] >= 1.0
    r = service.call("POST", f"/api/v1/sessions/{sid}/end", bureau)
    assert r.status_code == 200

    events = service.call("GET", f"/api/v1/sessions/{sid}/events", w.learner).json()
    checks = [e["payload"] for e in events if e["kind"] == "check"]
    assert [c["purpose"] for c in checks] == ["start", "attested"]
    assert all(any(i.startswith("attested_by:bureau:") for i in c["issues"]) for c in checks)
    assert _kinds(service, w.learner_id)[-2:] == ["alternative_requested", "alternative_decided"]
    assert service.storage.ledger.verify([f"session:{sid}"]).ok

    # A face session cannot take attestations.
    face = service.world()
    r = _start(service, face.learner, face.course_id)
    assert r.status_code == 201, r.text
    fsid = r.json()["session"]["session_id"]
    r = service.call("POST", f"/api/v1/sessions/{fsid}/attestations", bureau, json={})
    assert r.status_code == 409 and r.json()["reason"] == "not_in_person"
    admin_token = service.token(Role.inspector)
    r = service.call("POST", f"/api/v1/sessions/{fsid}/attestations", admin_token, json={})
    assert r.status_code == 403


def test_the_processing_record_follows_the_settings(service: Service) -> None:
    page = service.client.get("/privacy")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    days = service.settings.evidence.retention_days
    assert f"{days} days" in page.text
    assert f"{service.settings.privacy.templates_days_after_course_end} days" in page.text


def test_every_frame_of_the_learner_is_exported_and_withdrawal_deletes_only_enrolment_photos(
    service: Service,
) -> None:
    """The export lists enrolment photos, check frames and flag evidence; withdrawing
    consent deletes the enrolment photos (files gone, hashes kept) except one a flag rests
    on, and keeps check and flag frames until their retention, as the README says."""
    from datetime import UTC, datetime, timedelta

    from supervisor.checks.flags import raise_flag
    from supervisor.rules.flags import EvidenceRef
    from tests import imagegen

    w = service.world()  # enrolment photo A
    second = imagegen.jpeg_bytes(imagegen.webcam_frame(imagegen.grace_hopper(), face_width=230))
    r = service.call(
        "POST",
        f"/api/v1/learners/{w.learner_id}/templates",
        w.learner,
        files={"photo": ("again.jpg", second, "image/jpeg")},
    )
    assert r.status_code == 201, r.text  # enrolment photo B
    sid = service.start(w)  # check frame C
    assert service.call("POST", f"/api/v1/sessions/{sid}/end", w.learner).status_code == 200
    enrolled = [
        e.evidence_sha256
        for e in service.storage.templates.for_learner(w.learner_id)
        if e.evidence_sha256
    ]
    assert len(enrolled) == 2
    photo_a, photo_b = enrolled
    retain = datetime.now(UTC) + timedelta(days=30)
    frame_d = service.storage.evidence.put(
        imagegen.jpeg_bytes(imagegen.astronaut()), "image/jpeg", retain
    ).sha256
    # A flag resting on photo B (a kept frame posted again, as the replay search names
    # it) and on a frame of its own, D.
    flag = raise_flag(
        service.storage,
        "replayed_frame",
        w.institution_id,
        w.learner_id,
        (),
        "a kept enrolment frame posted again",
        [
            EvidenceRef(None, None, None, photo_b, {"copied": "enrolment"}),
            EvidenceRef(None, None, None, frame_d, {}),
        ],
        datetime.now(UTC),
    )

    data = service.call("GET", f"/api/v1/learners/{w.learner_id}/data", w.learner).json()
    frames = {f["sha256"]: f for f in data["evidence_frames"]}
    checks = [s for s, f in frames.items() if f["kinds"] == ["check"]]
    assert len(checks) == 1
    check_c = checks[0]
    assert frames[photo_a]["kinds"] == ["enrolment"]
    assert frames[photo_a]["after_withdrawal"] == "deleted"
    assert frames[photo_b]["kinds"] == ["enrolment", "flag"]
    assert frames[photo_b]["after_withdrawal"] == "kept_until_retention"
    assert frames[frame_d]["kinds"] == ["flag"]
    assert frames[frame_d]["what"] == f"evidence of flag {flag.id} (replayed_frame)"
    assert frames[check_c]["what"] == f"check in session {sid}"
    assert all(f["deleted_at"] is None for f in frames.values())
    paths = {sha: service.storage.evidence.path_for(sha) for sha in frames}
    assert all(p.exists() for p in paths.values())

    r = service.call("DELETE", f"/api/v1/learners/{w.learner_id}/consent", w.learner)
    assert r.status_code == 200 and r.json()["templates_deleted"] == 2
    assert not paths[photo_a].exists()
    assert all(paths[s].exists() for s in (photo_b, check_c, frame_d))
    data = service.call("GET", f"/api/v1/learners/{w.learner_id}/data", w.learner).json()
    after = {f["sha256"]: f for f in data["evidence_frames"]}
    # The withdrawn templates' photos are still listed (their hashes stay), deleted.
    assert set(after) == set(frames)
    assert after[photo_a]["deleted_at"] is not None
    assert [s for s, f in after.items() if f["deleted_at"] is not None] == [photo_a]
    assert data["consents"][-1]["event"] == "consent_withdrawn"
    assert data["consents"][-1]["photos_deleted"] == 1
    withdrawn = [
        e
        for e in service.storage.ledger.read_chain(ev.learner_chain(w.learner_id))
        if e.kind == "consent_withdrawn"
    ]
    assert '"photos_deleted":1' in withdrawn[-1].payload
    # The folder and files of faces are the owner's only.
    root = service.storage.evidence.directory
    for p in [paths[check_c], paths[photo_b], paths[frame_d]]:
        assert p.stat().st_mode & 0o777 == 0o600, oct(p.stat().st_mode)
        assert p.parent.stat().st_mode & 0o777 == 0o700
        assert p.parent.parent.stat().st_mode & 0o777 == 0o700
    assert root.stat().st_mode & 0o777 == 0o700
