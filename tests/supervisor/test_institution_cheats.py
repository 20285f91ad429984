"""An institution tries to cheat, through the real API, on SQLite and PostgreSQL.

The institution is paid per verified hour, so it is the party under supervision:
every way it (or a learner it coaches) could make its own evidence is tried here,
and each is refused with a 4xx and a reason, with the ledger unchanged (the events
counted before and after, and every chain verified).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest

from storage.types import Role
from tests import imagegen
from tests.supervisor.conftest import (
    HOPPER_FRAME,
    HOPPER_PHOTO,
    NO_LIVENESS,
    Service,
    StillFrames,
    _service,
    institution_body,
    new_id_number,
)


@contextmanager
def unchanged(svc: Service) -> Iterator[None]:
    """The block appends nothing to the ledger and breaks no chain. (The service is
    shared by the session's tests, some of which tamper with a chain on purpose: a
    break found before the block is not the block's.)"""
    before = svc.storage.ledger.verify(None)
    yield
    after = svc.storage.ledger.verify(None)
    assert after.events == before.events, "the ledger changed"
    assert set(after.breaks) <= set(before.breaks), after.breaks


def refused(r: httpx.Response, status: int, reason: str | None = None) -> None:
    assert r.status_code == status, r.text
    if reason is not None:
        assert r.json()["reason"] == reason, r.text
    assert r.json().get("message"), r.text


def _course(svc: Service, operator: str, institution_id: int) -> int:
    r = svc.call(
        "POST",
        "/api/v1/courses",
        operator,
        json={
            "institution_id": institution_id,
            "name": "Welder",
            "required_hours": 0.0005,
            "delivery_mode": "online",
        },
    )
    assert r.status_code == 201, r.text
    course: int = r.json()["id"]
    return course


def test_the_operator_cannot_act_as_its_learner(service: Service) -> None:
    svc = service
    w = svc.world()
    bare = svc.world(enrol=False)
    version = svc.settings.security.consent_text_version
    with unchanged(svc):
        # Consent, enrolment, a learner's credential: never the institution's to make.
        r = svc.call(
            "POST",
            f"/api/v1/learners/{bare.learner_id}/consent",
            bare.operator,
            json={"text_version": version},
        )
        refused(r, 403, "learner_only")
        r = svc.call(
            "POST",
            f"/api/v1/learners/{bare.learner_id}/templates",
            bare.operator,
            files={"photo": ("p.jpg", HOPPER_PHOTO, "image/jpeg")},
        )
        refused(r, 403, "learner_only")
        r = svc.call("POST", f"/api/v1/learners/{w.learner_id}/tokens", w.operator)
        refused(r, 403, "wrong_role")
        # Sessions and study frames: the learner only.
        refused(svc.sign_in(w.operator, w.course_id), 403, "wrong_role")
        refused(svc.sign_in(svc.admin, w.course_id), 403, "wrong_role")
    sid = svc.start(w)
    page = StillFrames(svc, w.learner, sid).attach()
    _, capture = page.request()
    with unchanged(svc):
        data = {"check_id": capture["check_id"], "nonce": capture["nonce"]}
        files = [("frames", ("f.jpg", HOPPER_FRAME, "image/jpeg"))]
        for token in (w.operator, svc.admin, svc.bureau):
            r = svc.call("POST", f"/api/v1/sessions/{sid}/frames", token, data=data, files=files)
            refused(r, 403)
        for path in ("live", "webrtc", "messages"):
            method = "GET" if path == "messages" else "POST"
            r = svc.call(method, f"/api/v1/sessions/{sid}/{path}", w.operator, json={})
            assert r.status_code in (403, 422), r.text
    page.end()
    # Withdrawing is the learner's too; bureau staff may record it in person.
    r = svc.call("DELETE", f"/api/v1/learners/{w.learner_id}/consent", w.operator)
    refused(r, 403, "learner_only")


def test_checks_happen_only_when_the_server_asks(service: Service) -> None:
    svc = service
    w = svc.world()
    sid = svc.start(w)
    with unchanged(svc):
        # The client-chosen check endpoint is gone.
        r = svc.call(
            "POST",
            f"/api/v1/sessions/{sid}/checks",
            w.learner,
            data={"kind": "identity"},
            files={"frame": ("f.jpg", HOPPER_FRAME, "image/jpeg")},
        )
        assert r.status_code in (404, 405), r.text
    page = StillFrames(svc, w.learner, sid).attach()
    _, capture = page.request()
    with unchanged(svc):
        files = [("frames", ("f.jpg", HOPPER_FRAME, "image/jpeg"))]
        for check_id, nonce, reason in (
            ("chosen-by-me", capture["nonce"], "no_pending_check"),
            (capture["check_id"], "guessed-nonce", "wrong_nonce"),
        ):
            r = svc.call(
                "POST",
                f"/api/v1/sessions/{sid}/frames",
                w.learner,
                data={"check_id": check_id, "nonce": nonce},
                files=files,
            )
            refused(r, 409, reason)
    assert page.answer(capture, [HOPPER_FRAME] * capture["count"]).status_code == 202
    with unchanged(svc):
        refused(page.answer(capture, [HOPPER_FRAME]), 409, "already_answered")
    page.end()


def test_the_operator_cannot_set_its_own_subsidy_or_decide_its_own_flags(
    service: Service,
) -> None:
    svc = service
    w = svc.world()
    course = _course(svc, w.operator, w.institution_id)
    rules = {
        "occupation": "6-18-02-04",
        "skill_level": 4,
        "subsidy_kind": "per_learner",
        "subsidy_amount": 99_999,
    }
    with unchanged(svc):
        r = svc.call("PUT", f"/api/v1/courses/{course}/rules", w.operator, json=rules)
        refused(r, 403, "wrong_role")
        r = svc.call("POST", f"/api/v1/courses/{course}/publish", w.operator)
        refused(r, 403, "wrong_role")
        r = svc.call(
            "POST",
            f"/api/v1/institutions/{w.institution_id}/status",
            w.operator,
            json={"status": "active", "reason": "we are fine"},
        )
        refused(r, 403, "wrong_role")
    # A flag on its learner (a second learner enrols the same face).
    other = svc.call(
        "POST",
        "/api/v1/learners",
        w.operator,
        json={
            "institution_id": w.institution_id,
            "full_name": "Proxy",
            "id_number": new_id_number(),
        },
    ).json()["id"]
    token = svc.call("POST", f"/api/v1/learners/{other}/tokens", svc.bureau).json()["secret"]
    version = svc.settings.security.consent_text_version
    svc.call("POST", f"/api/v1/learners/{other}/consent", token, json={"text_version": version})
    r = svc.call(
        "POST",
        f"/api/v1/learners/{other}/templates",
        token,
        files={"photo": ("me.jpg", HOPPER_PHOTO, "image/jpeg")},
    )
    refused(r, 409, "duplicate_identity")
    flag = r.json()["flag_id"]
    with unchanged(svc):
        for status in ("dismissed", "confirmed"):
            r = svc.call(
                "POST", f"/api/v1/flags/{flag}/decision", w.operator, json={"status": status}
            )
            refused(r, 403, "wrong_role")


def test_an_expelled_institution_creates_nothing_and_is_paid_nothing_after_the_date(
    service: Service,
) -> None:
    svc = service
    w = svc.world()
    course = _course(svc, w.operator, w.institution_id)
    r = svc.call(
        "PUT",
        f"/api/v1/courses/{course}/rules",
        svc.bureau,
        json={
            "occupation": "6-18-02-04",
            "skill_level": 4,
            "subsidy_kind": "per_learner",
            "subsidy_amount": 800,
        },
    )
    assert r.status_code == 200, r.text
    assert svc.call("POST", f"/api/v1/courses/{course}/publish", svc.bureau).status_code == 200
    r = svc.call(
        "POST",
        f"/api/v1/courses/{course}/enrolments",
        w.operator,
        json={"learner_ids": [w.learner_id]},
    )
    assert r.status_code == 201, r.text
    r = svc.sign_in(w.learner, course)
    assert r.status_code == 201, r.text
    sid = r.json()["session"]["session_id"]
    with StillFrames(svc, w.learner, sid) as page:
        while page.check(HOPPER_FRAME)["asked"] != "identity":
            pass
    r = svc.call(
        "POST",
        f"/api/v1/courses/{course}/assessments",
        w.operator,
        json={"learner_id": w.learner_id, "passed": True},
    )
    assert r.status_code == 201, r.text
    e = svc.call("GET", f"/api/v1/learners/{w.learner_id}/eligibility/{course}", w.operator)
    assert e.json()["eligible"], e.text

    expelled_at = datetime.now(UTC)
    r = svc.call(
        "POST",
        f"/api/v1/institutions/{w.institution_id}/status",
        svc.bureau,
        json={
            "status": "expelled",
            "reason": "fake training",
            "effective_at": expelled_at.isoformat(),
        },
    )
    assert r.status_code == 200, r.text
    e = svc.call("GET", f"/api/v1/learners/{w.learner_id}/eligibility/{course}", svc.bureau)
    assert not e.json()["eligible"] and "institution_expelled" in e.json()["reasons"]
    # A claim for a period after the date is held, with the reason.
    period = {
        "from": (expelled_at - timedelta(days=1)).isoformat(),
        "until": (expelled_at + timedelta(days=1)).isoformat(),
    }
    claims = svc.call("GET", "/api/v1/claims", svc.bureau, params=period).json()
    (row,) = [c for c in claims if c["learner_id"] == w.learner_id]
    assert not row["eligible"] and "institution_expelled" in row["reasons"]
    # Its operators read, and create nothing.
    with unchanged(svc):
        r = svc.call(
            "POST",
            "/api/v1/learners",
            w.operator,
            json={
                "institution_id": w.institution_id,
                "full_name": "X",
                "id_number": new_id_number(),
            },
        )
        refused(r, 403, "institution_expelled")
        r = svc.call(
            "POST",
            "/api/v1/courses",
            w.operator,
            json={
                "institution_id": w.institution_id,
                "name": "Another",
                "required_hours": 1,
                "delivery_mode": "online",
            },
        )
        refused(r, 403, "institution_expelled")
        r = svc.call(
            "POST",
            f"/api/v1/courses/{course}/assessments",
            w.operator,
            json={"learner_id": w.learner_id, "passed": True},
        )
        refused(r, 403, "institution_expelled")
        refused(svc.sign_in(w.learner, course), 403, "institution_expelled")
    assert svc.call("GET", f"/api/v1/courses/{course}", w.operator).status_code == 200


def test_a_duplicated_face_holds_up_the_suspect_and_hides_the_other_institution(
    service: Service,
) -> None:
    svc = service
    victim = svc.world()  # Grace Hopper, enrolled first, at one institution
    shop = svc.world(enrol=False)  # another institution enrols her face for its learner
    version = svc.settings.security.consent_text_version
    svc.call(
        "POST",
        f"/api/v1/learners/{shop.learner_id}/consent",
        shop.learner,
        json={"text_version": version},
    )
    r = svc.call(
        "POST",
        f"/api/v1/learners/{shop.learner_id}/templates",
        shop.learner,
        files={"photo": ("me.jpg", HOPPER_PHOTO, "image/jpeg")},
    )
    refused(r, 409, "duplicate_identity")
    flag_id = r.json()["flag_id"]
    # The shop's operator sees the flag on its learner, never the other learner's id.
    seen = svc.call("GET", f"/api/v1/flags/{flag_id}", shop.operator).json()
    assert seen["learner_id"] == shop.learner_id
    assert seen["other_learner_ids"] == [] and seen["others_elsewhere"] == 1
    assert str(victim.learner_id) not in seen["summary"]
    # The victim's institution does not see it; the bureau sees everything.
    refused(svc.call("GET", f"/api/v1/flags/{flag_id}", victim.operator), 403)
    full = svc.call("GET", f"/api/v1/flags/{flag_id}", svc.bureau).json()
    assert full["other_learner_ids"] == [victim.learner_id]
    assert "another institution" in full["summary"]  # a case for the bureau


def _second_learner(svc: Service, operator: str, institution_id: int, photo: bytes) -> str:
    """Another learner of the institution, with their own credential, consent and face."""
    lid = svc.call(
        "POST",
        "/api/v1/learners",
        operator,
        json={
            "institution_id": institution_id,
            "full_name": "Second Learner",
            "id_number": new_id_number(),
        },
    ).json()["id"]
    token: str = svc.call("POST", f"/api/v1/learners/{lid}/tokens", svc.bureau).json()["secret"]
    version = svc.settings.security.consent_text_version
    svc.call("POST", f"/api/v1/learners/{lid}/consent", token, json={"text_version": version})
    r = svc.call(
        "POST",
        f"/api/v1/learners/{lid}/templates",
        token,
        files={"photo": ("me.jpg", photo, "image/jpeg")},
    )
    assert r.status_code == 201, r.text
    return token


def test_one_device_studying_for_many_learners_is_flagged(service: Service) -> None:
    svc = service
    a = svc.world()  # Grace Hopper
    c = _second_learner(
        svc, a.operator, a.institution_id, imagegen.jpeg_bytes(imagegen.astronaut())
    )
    c_id = svc.call("GET", "/api/v1/me", c).json()["learner_id"]
    # One shop phone signs in for both learners, one after the other.
    device = "Mozilla/5.0 (Linux; Android 12)|zh-CN|412|915|one shop phone"
    astronaut = imagegen.jpeg_bytes(imagegen.webcam_frame(imagegen.astronaut(), face_width=170))
    sa = svc.sign_in(a.learner, a.course_id, HOPPER_FRAME, device=device)
    assert sa.status_code == 201, sa.text
    sc = svc.sign_in(c, a.course_id, astronaut, device=device)
    assert sc.status_code == 201, sc.text
    (flag,) = svc.call(
        "GET", "/api/v1/flags", svc.bureau, params={"kind": "shared_device", "learner_id": c_id}
    ).json()
    assert flag["learner_id"] == c_id and flag["other_learner_ids"] == [a.learner_id]
    sessions = {e["chain_id"] for e in flag["evidence"]}
    ids = (sa.json()["session"]["session_id"], sc.json()["session"]["session_id"])
    assert {f"session:{i}" for i in ids} <= sessions
    assert all(len(e["hash"]) == 64 for e in flag["evidence"])
    # The fingerprint itself is never stored: only its keyed hash.
    kept = svc.storage.registry.session_clients(learner_id=c_id)
    assert kept and len(kept[0].device_hash or "") == 64 and device not in repr(kept)
    for token, sid in ((a.learner, ids[0]), (c, ids[1])):
        svc.call("POST", f"/api/v1/sessions/{sid}/end", token)


def test_more_learners_than_a_room_holds_from_one_address_are_flagged(tmp_path: Path) -> None:
    gen = _service(
        tmp_path,
        f"sqlite:///{tmp_path / 'db.sqlite'}",
        "sqlite",
        subsidy={"max_learners_per_address": 1},
    )
    svc = next(gen)
    try:
        a = svc.world()
        c = _second_learner(
            svc, a.operator, a.institution_id, imagegen.jpeg_bytes(imagegen.astronaut())
        )
        c_id = svc.call("GET", "/api/v1/me", c).json()["learner_id"]
        astronaut = imagegen.jpeg_bytes(imagegen.webcam_frame(imagegen.astronaut(), face_width=170))
        first = svc.start(a)
        r = svc.sign_in(c, a.course_id, astronaut)  # both from 127.0.0.1, at once
        assert r.status_code == 201, r.text
        (flag,) = svc.call(
            "GET",
            "/api/v1/flags",
            svc.bureau,
            params={"kind": "crowded_address", "learner_id": c_id},
        ).json()
        assert flag["other_learner_ids"] == [a.learner_id]
        assert f"session:{first}" in {e["chain_id"] for e in flag["evidence"]}
    finally:
        for _ in gen:
            pass


def test_bureau_staff_record_consent_given_in_person_with_the_forms_hash(
    service: Service,
) -> None:
    svc = service
    w = svc.world(enrol=False)
    version = svc.settings.security.consent_text_version
    url = f"/api/v1/learners/{w.learner_id}/consent"
    with unchanged(svc):
        r = svc.call("POST", url, svc.bureau, json={"text_version": version})
        refused(r, 422, "signed_form_required")
        r = svc.call(
            "POST", url, w.learner, json={"text_version": version, "signed_form_sha256": "a" * 64}
        )
        refused(r, 422, "form_not_expected")
    r = svc.call(
        "POST", url, svc.bureau, json={"text_version": version, "signed_form_sha256": "b" * 64}
    )
    assert r.status_code == 201, r.text
    (given,) = [
        e for e in svc.storage.ledger.read_chain(f"learner:{w.learner_id}")
        if e.kind == "consent_given"
    ]  # fmt: skip
    assert '"form_sha256":"' + "b" * 64 + '"' in given.payload
    assert '"recorded_by":"bureau:' in given.payload
    assert svc.token(Role.inspector)  # inspectors exist too; they record no consent


def test_institutions_are_filed_with_a_unique_name_and_code_corrected_only_with_a_reason(
    service: Service,
) -> None:
    svc = service
    body = institution_body("Filing school")
    op = svc.world(enrol=False).operator
    with unchanged(svc):
        r = svc.call("POST", "/api/v1/institutions", svc.admin, json={"name": body["name"]})
        refused(r, 422, "invalid_input")  # the code is required
        bad = {**body, "credit_code": body["credit_code"][:-1] + "0"}
        if bad["credit_code"] == body["credit_code"]:
            bad["credit_code"] = body["credit_code"][:-1] + "1"
        refused(svc.call("POST", "/api/v1/institutions", svc.admin, json=bad), 422)
        refused(svc.call("POST", "/api/v1/institutions", op, json=body), 403, "wrong_role")
    r = svc.call("POST", "/api/v1/institutions", svc.bureau, json=body)
    assert r.status_code == 201, r.text
    inst = r.json()["id"]
    assert r.json()["credit_code"] == body["credit_code"]
    listed = svc.call("GET", "/api/v1/institutions", svc.bureau).json()
    assert {"id": inst, "credit_code": body["credit_code"]}.items() <= next(
        i for i in listed if i["id"] == inst
    ).items()
    with unchanged(svc):
        same_name = {**institution_body("x"), "name": body["name"].upper()}
        refused(svc.call("POST", "/api/v1/institutions", svc.bureau, json=same_name), 409,
                "duplicate_name")  # fmt: skip
        same_code = {**institution_body("y"), "credit_code": body["credit_code"]}
        refused(svc.call("POST", "/api/v1/institutions", svc.bureau, json=same_code), 409,
                "duplicate_credit_code")  # fmt: skip
    # A correction: the bureau, with a reason, recorded with the earlier code.
    new_code = institution_body("z")["credit_code"]
    url = f"/api/v1/institutions/{inst}/credit-code"
    with unchanged(svc):
        refused(svc.call("PUT", url, svc.bureau, json={"credit_code": new_code}), 422,
                "reason_required")  # fmt: skip
        op = svc.token(Role.operator, inst)
        r = svc.call("PUT", url, op, json={"credit_code": new_code, "reason": "typo"})
        refused(r, 403, "wrong_role")
    r = svc.call(
        "PUT", url, svc.bureau, json={"credit_code": new_code, "reason": "typo on the filing"}
    )
    assert r.status_code == 200 and r.json()["credit_code"] == new_code, r.text
    chain = [e.kind for e in svc.storage.ledger.read_chain(f"institution:{inst}")]
    assert chain == ["institution_registered", "credit_code_corrected"]
    last = svc.storage.ledger.read_chain(f"institution:{inst}")[-1].payload
    assert body["credit_code"] in last and "typo on the filing" in last


# -- replayed frames ----------------------------------------------------------------


@pytest.fixture(scope="module")
def replay_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    tmp = tmp_path_factory.mktemp("svc-replay")
    yield from _service(
        tmp,
        f"sqlite:///{tmp / 'supervisor.db'}",
        "sqlite",
        liveness={**NO_LIVENESS, "replay_check": True},
    )


def _photo(faces: Path, identity: str, n: int) -> bytes:
    return (faces / identity / f"{n}.jpg").read_bytes()


def _at_webcam(photo: bytes, width: int = 170) -> bytes:
    return imagegen.jpeg_bytes(imagegen.webcam_frame(imagegen._load_jpeg(photo), face_width=width))


@pytest.mark.faces
def test_a_kept_frame_posted_again_is_refused_and_flagged(
    replay_service: Service, faces_dir: Path
) -> None:
    svc = replay_service
    svc.forget_faces()
    # A learner enrolled from one photo, who studies in front of the camera (other
    # photos of the same person stand for their live frames).
    w = svc.world(photo=_photo(faces_dir, "angelina_jolie", 1))
    live = [_at_webcam(_photo(faces_dir, "angelina_jolie", n)) for n in (2, 3, 4)]
    # The enrolment photo itself is not a sign-in.
    with unchanged_but_flags(svc):
        r = svc.sign_in(w.learner, w.course_id, _photo(faces_dir, "angelina_jolie", 1))
        refused(r, 422, "replayed_frame")
    r = svc.sign_in(w.learner, w.course_id, live[0])
    assert r.status_code == 201, r.text
    sid = r.json()["session"]["session_id"]
    page = StillFrames(svc, w.learner, sid).attach()
    honest = page.check(live[1])
    assert honest["passed"], honest
    events = svc.call("GET", f"/api/v1/sessions/{sid}/events", w.learner).json()
    kept = next(e for e in events if e["payload"].get("check_id") == honest["check_id"])
    sha = kept["payload"]["evidence_sha256"]
    # The institution fetches that evidence frame (as an inspector can) and posts it back,
    # as it is, then re-encoded with light noise.
    r = svc.call("GET", f"/api/v1/inspect/sessions/{sid}/frames/{sha}", w.operator)
    assert r.status_code == 200, r.text
    frame = r.content
    noisy = imagegen.jpeg_bytes(
        np.clip(
            imagegen._load_jpeg(frame).astype(np.int16)
            + np.random.default_rng(3).normal(0, 3, imagegen._load_jpeg(frame).shape),
            0,
            255,
        ).astype(np.uint8),
        quality=80,
    )
    for copy in (frame, noisy):
        result = page.check(copy)
        assert result["verdict"] == "replayed_frame" and not result["passed"], result
    page.end()
    events = svc.call("GET", f"/api/v1/sessions/{sid}/events", w.learner).json()
    replays = [e for e in events if e["payload"].get("verdict") == "replayed_frame"]
    assert len(replays) == 2
    assert all(e["payload"]["replay"]["copied_evidence_sha256"] == sha for e in replays)
    # The flags name what was copied, with the check event as evidence.
    flags = svc.call(
        "GET",
        "/api/v1/flags",
        svc.bureau,
        params={"kind": "replayed_frame", "learner_id": w.learner_id},
    ).json()
    assert len(flags) == 2  # the enrolment photo at sign-in, and this session
    session_flag = next(
        f for f in flags if any(e["chain_id"] == f"session:{sid}" for e in f["evidence"])
    )
    copied = {e["evidence_sha256"] for e in session_flag["evidence"] if e["evidence_sha256"]}
    assert copied == {sha}
    assert svc.storage.ledger.verify(None).ok


@contextmanager
def unchanged_but_flags(svc: Service) -> Iterator[None]:
    """Nothing is appended but the `flag_raised` events of flags the block raises."""
    before = svc.storage.ledger.verify(None)
    flags_before = len(svc.storage.registry.list_flags())
    yield
    after = svc.storage.ledger.verify(None)
    raised = len(svc.storage.registry.list_flags()) - flags_before
    assert after.events == before.events + raised, "the ledger changed"
    assert after.ok, after.breaks
