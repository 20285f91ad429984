"""Hostile and broken images on every upload path: a clear 413/415, nothing stored,
the ledger unchanged, and no effect on another learner's live session.

Awkward but honest photos (CMYK, 16-bit, palette, a phone's MPO, EXIF-rotated, a
polyglot whose first part is a real JPEG) work, and a sideways photo with its
EXIF orientation verifies because the orientation is applied.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image as PILImage

from tests import imagegen
from tests.supervisor import hostile
from tests.supervisor.conftest import (
    ASTRONAUT_FRAME,
    HOPPER_FRAME,
    NO_LIVENESS,
    Service,
    StillFrames,
    _service,
)

HOPPER = imagegen.grace_hopper()
WEBCAM = imagegen.webcam_frame(HOPPER, face_width=170)


def _consenting_learner(svc: Service) -> tuple[int, str]:
    w = svc.world(enrol=False)
    version = svc.settings.security.consent_text_version
    r = svc.call(
        "POST",
        f"/api/v1/learners/{w.learner_id}/consent",
        w.learner,
        json={"text_version": version},
    )
    assert r.status_code == 201, r.text
    return w.learner_id, w.learner


def _start(svc: Service, token: str, course_id: int, frame: bytes) -> httpx.Response:
    return svc.sign_in(token, course_id, frame)


def test_hostile_images_are_refused_on_every_upload_path(service: Service) -> None:
    svc = service
    enrollee_id, enrollee = _consenting_learner(svc)
    w = svc.world()
    r = _start(svc, w.learner, w.course_id, HOPPER_FRAME)
    assert r.status_code == 201, r.text
    sid = r.json()["session"]["session_id"]
    page = StillFrames(svc, w.learner, sid).attach()
    others = [h for h in svc.storage.ledger.heads() if h.chain_id != f"session:{sid}"]
    sessions_before = len(svc.storage.registry.list_sessions(None, None, False))

    capture: dict[str, object] | None = None
    for name, (data, status) in hostile.refused(HOPPER).items():
        expected_reason = "image_too_large" if status == 413 else "not_an_image"
        # A refused answer leaves the request waiting; one that timed out meanwhile is
        # replaced by the server's next request.
        answer = page.answer(capture, [data]) if capture is not None else None
        if answer is None or answer.status_code == 409:
            _, capture = page.request()
            answer = page.answer(capture, [data])
        answers = {
            "enrol": svc.call(
                "POST",
                f"/api/v1/learners/{enrollee_id}/templates",
                enrollee,
                files={"photo": ("p.jpg", data, "image/jpeg")},
            ),
            "start": _start(svc, w.learner, w.course_id, data),
            "check": answer,
        }
        for path, r in answers.items():
            if path == "start" and r.status_code == 409:
                continue  # the open session is refused first; covered below
            assert r.status_code == status, f"{name} on {path}: {r.status_code} {r.text}"
            body = r.json()
            assert body["reason"] == expected_reason, f"{name} on {path}: {body}"
            assert body["message"], f"{name} on {path}: no message"

    assert [h for h in svc.storage.ledger.heads() if h.chain_id != f"session:{sid}"] == others
    # The session holds its sign-in and nothing judged on garbage (a request nobody
    # answered with a usable frame is a missed check, never a failed one).
    kinds = [e.kind for e in svc.storage.ledger.read_chain(f"session:{sid}")]
    assert kinds[:2] == ["session_started", "check"] and "check" not in kinds[2:], kinds
    assert svc.storage.templates.for_learner(enrollee_id) == []
    assert len(svc.storage.registry.list_sessions(None, None, False)) == sessions_before
    # With no session open, a refused first frame opens none.
    page.end()
    heads = list(svc.storage.ledger.heads())
    for name, (data, status) in hostile.refused(HOPPER).items():
        r = _start(svc, w.learner, w.course_id, data)
        assert r.status_code == status, f"{name}: {r.status_code} {r.text}"
    assert list(svc.storage.ledger.heads()) == heads
    assert svc.storage.registry.list_sessions(None, w.learner_id, True) == []


@pytest.mark.parametrize("name", sorted(hostile.accepted(HOPPER)))
def test_awkward_but_honest_photos_enrol_and_evidence_is_reencoded(
    service: Service, name: str
) -> None:
    svc = service
    learner_id, token = _consenting_learner(svc)
    data = hostile.accepted(HOPPER)[name]
    r = svc.call(
        "POST",
        f"/api/v1/learners/{learner_id}/templates",
        token,
        files={"photo": ("p.jpg", data, "image/jpeg")},
    )
    assert r.status_code == 201, r.text
    stored = svc.storage.evidence.get(r.json()["evidence_sha256"])
    # The evidence is the decoded, upright pixels re-encoded as a plain JPEG: no
    # appended payload, no EXIF orientation left to misread.
    assert b"<script" not in stored and b"PK\x05\x06" not in stored
    with PILImage.open(io.BytesIO(stored)) as im:
        assert im.format == "JPEG" and im.mode == "RGB"
        assert im.size == (HOPPER.shape[1], HOPPER.shape[0])  # upright: width 512, height 600
        assert im.getexif().get(0x0112) in (None, 1)
    svc.forget_faces()


def test_an_exif_rotated_frame_verifies_and_the_same_frame_without_exif_does_not(
    service: Service,
) -> None:
    svc = service
    w = svc.world()  # enrolled from the upright portrait
    heads = list(svc.storage.ledger.heads())
    sideways = np.ascontiguousarray(np.rot90(WEBCAM, k=1))
    # Control: the sideways pixels alone hold no detectable upright face.
    r = _start(svc, w.learner, w.course_id, imagegen.jpeg_bytes(sideways))
    assert r.status_code == 422, r.text
    assert r.json()["reason"] == "no_face"
    assert list(svc.storage.ledger.heads()) == heads
    r = _start(svc, w.learner, w.course_id, hostile.exif_rotated_jpeg(WEBCAM))
    assert r.status_code == 201, r.text
    assert r.json()["check"]["passed"] is True
    svc.call("POST", f"/api/v1/sessions/{r.json()['session']['session_id']}/end", w.learner)


# -- the fallback's frames, and isolation between learners --------------------------

LIVE_POLICY = {
    "presence_interval_min_s": 3.0,
    "presence_interval_mean_s": 3.5,
    "presence_interval_max_s": 4.0,
    "identity_interval_min_s": 60.0,
    "identity_interval_mean_s": 70.0,
    "identity_interval_max_s": 80.0,
    "response_window_s": 6,
    "retry_interval_s": 2.0,
    "capture_timeout_s": 4.0,
    "live_lock_ttl_s": 10.0,
    "max_failed_windows": 3,
}
LIVE_LIVENESS = NO_LIVENESS


@pytest.fixture(scope="module")
def live_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    tmp = tmp_path_factory.mktemp("svc-hostile-live")
    yield from _service(
        tmp,
        f"sqlite:///{tmp / 'supervisor.db'}",
        "sqlite",
        policy=LIVE_POLICY,
        webrtc={"heartbeat_timeout_s": 8.0, "frame_spacing_s": 0.2},
        liveness=LIVE_LIVENESS,
    )


class FallbackPage(threading.Thread):
    """A learner's page on the still-frame fallback: long-polls for messages and
    answers every capture request with `frames()`; records each POST's status."""

    def __init__(self, svc: Service, token: str, sid: str, frame: bytes) -> None:
        super().__init__(daemon=True)
        self.client = httpx.Client(
            base_url=svc.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
        self.sid = sid
        self.frame = frame
        self.stop = threading.Event()
        self.posted: list[int] = []
        self.results: list[dict[str, Any]] = []

    def run(self) -> None:
        r = self.client.post(f"/api/v1/sessions/{self.sid}/live", json={"mode": "upload"})
        assert r.status_code == 200, r.text
        while not self.stop.is_set():
            r = self.client.get(f"/api/v1/sessions/{self.sid}/messages", params={"wait": 1})
            if r.status_code != 200:
                time.sleep(0.2)
                continue
            for message in r.json():
                if message.get("type") == "result":
                    self.results.append(message)
                if message.get("type") == "capture" and message.get("check_id"):
                    count = int(message.get("count") or 1)
                    r = self.client.post(
                        f"/api/v1/sessions/{self.sid}/frames",
                        data={"check_id": message["check_id"], "nonce": message["nonce"]},
                        files=[("frames", ("f.jpg", self.frame, "image/jpeg"))] * count,
                    )
                    self.posted.append(r.status_code)
        self.client.close()


def test_garbage_from_one_learner_does_not_disturb_another_live_session(
    live_service: Service,
) -> None:
    svc = live_service
    svc.forget_faces()
    honest = svc.world()
    r = _start(svc, honest.learner, honest.course_id, HOPPER_FRAME)
    assert r.status_code == 201, r.text
    honest_sid = r.json()["session"]["session_id"]
    attacker = svc.world(photo=imagegen.jpeg_bytes(imagegen.astronaut()))
    r = _start(svc, attacker.learner, attacker.course_id, ASTRONAUT_FRAME)
    assert r.status_code == 201, r.text
    attacker_sid = r.json()["session"]["session_id"]

    garbage = hostile.refused(HOPPER)["corrupt_png"][0]
    good_page = FallbackPage(svc, honest.learner, honest_sid, HOPPER_FRAME)
    bad_page = FallbackPage(svc, attacker.learner, attacker_sid, garbage)
    good_page.start()
    bad_page.start()
    refused: list[int] = []
    try:
        deadline = time.monotonic() + 25
        while time.monotonic() < deadline and (
            sum(1 for m in good_page.results if m["passed"]) < 2 or len(bad_page.posted) < 2
        ):
            # Meanwhile the attacker throws every hostile image at the enrolment path.
            for data, _ in hostile.refused(HOPPER).values():
                r = svc.call(
                    "POST",
                    f"/api/v1/learners/{attacker.learner_id}/templates",
                    attacker.learner,
                    files={"photo": ("f.png", data, "image/png")},
                )
                refused.append(r.status_code)
            time.sleep(0.2)
    finally:
        good_page.stop.set()
        bad_page.stop.set()
        good_page.join(10)
        bad_page.join(10)

    passed = [m for m in good_page.results if m["passed"]]
    assert len(passed) >= 2, good_page.results
    assert all(s == 202 for s in good_page.posted), good_page.posted
    # Refused as not an image, or, once the attacker's token passes its upload
    # limit, refused unread with 429.
    assert 415 in bad_page.posted and set(bad_page.posted) <= {415, 429}, bad_page.posted
    assert refused and set(refused) <= {413, 415, 429}, set(refused)
    assert {413, 415} <= set(refused), set(refused)
    # The honest chain holds only passed checks; the attacker's refused frames left
    # its own checks waiting, then missed, never "failed" on garbage.
    events = svc.call("GET", f"/api/v1/sessions/{honest_sid}/events", honest.learner).json()
    checks = [e for e in events if e["kind"] == "check"]
    assert len(checks) >= 3 and all(e["payload"]["passed"] for e in checks), checks
    events = svc.call("GET", f"/api/v1/sessions/{attacker_sid}/events", attacker.learner).json()
    kinds = {e["kind"] for e in events}
    assert "check_missed" in kinds, kinds
    assert svc.storage.ledger.verify(None).ok
    for w, sid in ((honest, honest_sid), (attacker, attacker_sid)):
        svc.call("POST", f"/api/v1/sessions/{sid}/end", w.learner)
