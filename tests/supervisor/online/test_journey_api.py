"""What the learner's browser journey found, through the real API: the ledger records
the mode a session is actually supervised in, and an empty room is `no_face`, never a
spoof; a flag always carries its evidence."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import numpy as np
import pytest

from storage.types import Role
from supervisor.checks.flags import raise_flag
from supervisor.rules.flags import EvidenceRef, MissingEvidence
from tests import imagegen
from tests.supervisor.conftest import NO_LIVENESS, Service, StillFrames, _service


def _events(svc: Service, token: str, sid: str) -> list[dict]:  # type: ignore[type-arg]
    r = svc.call("GET", f"/api/v1/sessions/{sid}/events", token)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def test_the_mode_actually_used_is_recorded(service: Service) -> None:
    """A page that signed in meaning to use WebRTC and then fell back to still frames:
    the chain says so, the session's mode follows, and the inspector's replay shows it."""
    w = service.world()
    r = service.sign_in(w.learner, w.course_id, mode="webrtc")
    assert r.status_code == 201, r.text
    sid = r.json()["session"]["session_id"]
    evs = _events(service, w.learner, sid)
    assert evs[0]["kind"] == "session_started" and evs[0]["payload"]["mode"] == "webrtc"
    assert r.json()["session"]["mode"] == "webrtc"

    with StillFrames(service, w.learner, sid):
        changes = [e for e in _events(service, w.learner, sid) if e["kind"].startswith("superv")]
        assert [
            (e["kind"], e["payload"]["from_mode"], e["payload"]["to_mode"]) for e in changes
        ] == [("supervision_mode_changed", "webrtc", "upload")]
        state = service.call("GET", f"/api/v1/sessions/{sid}", w.learner).json()
        assert state["mode"] == "upload"
        # Attaching again the same way records nothing more.
        again = service.call(
            "POST", f"/api/v1/sessions/{sid}/live", w.learner, json={"mode": "upload"}
        )
        assert again.status_code == 200, again.text
        after = [e for e in _events(service, w.learner, sid) if e["kind"].startswith("superv")]
        assert len(after) == 1
    inspector = service.token(Role.inspector)
    replay = service.call("GET", f"/api/v1/inspect/sessions/{sid}/replay", inspector)
    assert replay.status_code == 200, replay.text
    texts = [i["text"] for i in replay.json()["items"]]
    assert "session started (webrtc)" in texts
    assert "supervised over upload (was webrtc)" in texts
    assert service.storage.ledger.verify([f"session:{sid}"]).ok


# Passive liveness on (the empty room must meet it), challenges off, and a flag after
# two spoof signs, as the learner's journey met them.
LIVENESS = {
    **NO_LIVENESS,
    "passive": True,
    "spoof_flag_after": 2,
}


@pytest.fixture(scope="module")
def liveness_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    tmp = tmp_path_factory.mktemp("svc-journey")
    yield from _service(tmp, f"sqlite:///{tmp / 'supervisor.db'}", "sqlite", liveness=LIVENESS)


def _live_frames(n: int) -> list[bytes]:
    """A still face with sensor noise: passive liveness calls it inconclusive (too
    still), which lets a sign-in pass, as a real webcam's frames do."""
    rng = np.random.default_rng(7)
    base = imagegen.webcam_frame(imagegen.grace_hopper(), face_width=170).astype(np.int16)
    return [
        imagegen.jpeg_bytes(
            np.clip(base + rng.integers(-6, 7, base.shape), 0, 255).astype(np.uint8)
        )
        for _ in range(n)
    ]


def test_an_empty_room_is_no_face_and_raises_no_spoof_flag(liveness_service: Service) -> None:
    svc = liveness_service
    svc.forget_faces()
    w = svc.world()
    r = svc.sign_in(w.learner, w.course_id, _live_frames(svc.settings.policy.signin_frames))
    assert r.status_code == 201, r.text
    sid = r.json()["session"]["session_id"]
    # The learner walked away: a grey wall, the same picture frame after frame.
    wall = imagegen.jpeg_bytes(np.full((480, 640, 3), 128, np.uint8))
    with StillFrames(svc, w.learner, sid) as page:
        results = [page.check(wall) for _ in range(3)]
    assert [x["verdict"] for x in results] == ["no_face"] * 3
    checks = [e["payload"] for e in _events(svc, w.learner, sid) if e["kind"] == "check"]
    empty = [c for c in checks if c["purpose"] != "start"]
    assert len(empty) >= 3
    for c in empty:
        assert c["verdict"] == "no_face" and c["faces"] == 0 and not c["passed"]
        # No face, nothing to judge live or not: no spoof on the record.
        assert c.get("liveness") is None
    flags = svc.call("GET", "/api/v1/flags", svc.bureau).json()
    assert not [
        f for f in flags if f["kind"] == "liveness_spoof" and f["learner_id"] == w.learner_id
    ]


def test_a_flag_without_its_evidence_is_never_raised(service: Service) -> None:
    """Every evidence entry names a recorded event in full or a kept frame, and a flag
    about a learner has at least one; the flag-raising path refuses anything else."""
    w = service.world()
    before = len(service.storage.registry.list_flags())
    now = datetime.now(UTC)
    for evidence in (
        [],
        [EvidenceRef(f"session:{w.learner_id}", None, None, None, {"verdict": "no_face"})],
        [EvidenceRef(None, None, None, None, {})],
    ):
        with pytest.raises(MissingEvidence):
            raise_flag(
                service.storage, "liveness_spoof", w.institution_id, w.learner_id, (),
                "repeated spoof signs", evidence, now,
            )  # fmt: skip
    assert len(service.storage.registry.list_flags()) == before
    sid = service.start(w)
    stored = service.storage.ledger.read_chain(f"session:{sid}")[-1]
    flag = raise_flag(
        service.storage, "liveness_spoof", w.institution_id, w.learner_id, (),
        "repeated spoof signs", [EvidenceRef(stored.chain_id, stored.seq, stored.hash, None, {})],
        now,
    )  # fmt: skip
    r = service.call("GET", f"/api/v1/flags/{flag.id}", service.bureau)
    assert r.status_code == 200, r.text
    [entry] = r.json()["evidence"]
    assert (entry["chain_id"], entry["seq"], entry["hash"]) == (
        stored.chain_id,
        stored.seq,
        stored.hash,
    )
