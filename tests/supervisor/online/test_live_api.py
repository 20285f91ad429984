"""The live endpoints: refusals of bad offers, ownership, and the fallback's requests."""

from __future__ import annotations

import asyncio

import pytest

from tests import imagegen
from tests.capture.peers import StillTrack, client_offer
from tests.supervisor.conftest import HOPPER_FRAME, Service, StillFrames


def _session(svc: Service):  # type: ignore[no-untyped-def]
    w = svc.world()
    return w, svc.start(w)


def _offer_sdp(video: bool = True) -> str:
    async def make() -> str:
        track = StillTrack(imagegen.webcam_frame(imagegen.grace_hopper())) if video else None
        pc = await client_offer(track)
        sdp = pc.localDescription.sdp
        await pc.close()
        return str(sdp)

    return asyncio.run(make())


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        ({"sdp": "garbage", "type": "offer"}, 422, "invalid_sdp"),
        ({"sdp": "v=0\r\nm=video 9 X 96\r\n", "type": "answer"}, 422, "invalid_sdp"),
        (
            {"sdp": "v=0\r\n" + "a=x\r\n" * 20_000 + "m=video 9\r\n", "type": "offer"},
            422,
            "sdp_too_large",
        ),
        ({"type": "offer"}, 422, "invalid_input"),
    ],
)
def test_bad_offers_are_refused_without_side_effects(
    service: Service, body: dict[str, str], status: int, reason: str
) -> None:
    w, sid = _session(service)
    before = service.event_count()
    peers = service.live_stats()["peers"]
    r = service.call("POST", f"/api/v1/sessions/{sid}/webrtc", w.learner, json=body)
    assert r.status_code == status, r.text
    assert r.json()["reason"] == reason
    assert service.event_count() == before
    assert service.live_stats()["peers"] == peers


def test_an_offer_without_video_is_refused(service: Service) -> None:
    w, sid = _session(service)
    r = service.call(
        "POST",
        f"/api/v1/sessions/{sid}/webrtc",
        w.learner,
        json={"sdp": _offer_sdp(False), "type": "offer"},
    )
    assert r.status_code == 422 and r.json()["reason"] == "no_video"


def test_a_second_offer_for_a_live_session_is_refused(service: Service) -> None:
    w, sid = _session(service)
    first = service.call(
        "POST",
        f"/api/v1/sessions/{sid}/webrtc",
        w.learner,
        json={"sdp": _offer_sdp(), "type": "offer"},
    )
    assert first.status_code == 200, first.text
    assert first.json()["type"] == "answer" and "m=video" in first.json()["sdp"]
    second = service.call(
        "POST",
        f"/api/v1/sessions/{sid}/webrtc",
        w.learner,
        json={"sdp": _offer_sdp(), "type": "offer"},
    )
    assert second.status_code == 409 and second.json()["reason"] == "peer_exists"
    # Ending the session closes its peer connection.
    peers = service.live_stats()["peers"]
    assert service.call("POST", f"/api/v1/sessions/{sid}/end", w.learner).status_code == 200
    assert service.live_stats()["peers"] == peers - 1


def test_offers_for_ended_or_foreign_sessions_are_refused(service: Service) -> None:
    w, sid = _session(service)
    other = service.world(photo=imagegen.jpeg_bytes(imagegen.astronaut()))
    r = service.call(
        "POST",
        f"/api/v1/sessions/{sid}/webrtc",
        other.learner,
        json={"sdp": _offer_sdp(), "type": "offer"},
    )
    assert r.status_code == 403 and r.json()["reason"] == "not_your_data"
    service.call("POST", f"/api/v1/sessions/{sid}/end", w.learner)
    r = service.call(
        "POST",
        f"/api/v1/sessions/{sid}/webrtc",
        w.learner,
        json={"sdp": _offer_sdp(), "type": "offer"},
    )
    assert r.status_code == 409 and r.json()["reason"] == "session_ended"


def test_fallback_frames_need_a_pending_request(service: Service) -> None:
    w, sid = _session(service)
    r = service.call("GET", f"/api/v1/sessions/{sid}/messages?wait=0", w.learner)
    assert r.status_code == 409 and r.json()["reason"] == "not_live"
    r = service.call("POST", f"/api/v1/sessions/{sid}/live", w.learner, json={"mode": "upload"})
    assert r.status_code == 200
    r = service.call("GET", f"/api/v1/sessions/{sid}/messages?wait=0", w.learner)
    assert r.status_code == 200 and r.json()[0]["type"] == "hello"
    page = StillFrames(service, w.learner, sid)
    _, capture = page.request()  # the server's own request: its check id and nonce
    before = service.event_count()

    def post(check_id: str, nonce: str) -> tuple[int, str]:
        r = service.call(
            "POST",
            f"/api/v1/sessions/{sid}/frames",
            w.learner,
            data={"check_id": check_id, "nonce": nonce},
            files=[("frames", ("f.jpg", HOPPER_FRAME, "image/jpeg"))],
        )
        return r.status_code, r.json().get("reason", "")

    # Frames at a moment the client chose, or with a guessed nonce, are refused.
    assert post("not-requested", capture["nonce"]) == (409, "no_pending_check")
    assert post(capture["check_id"], "guessed") == (409, "wrong_nonce")
    assert service.event_count() == before
    # The answer the server asked for is taken once; a second answer is refused.
    assert post(capture["check_id"], capture["nonce"])[0] == 202
    result = page.next("result", where=lambda m: m.get("check_id") == capture["check_id"])
    assert result["passed"], result
    assert post(capture["check_id"], capture["nonce"]) == (409, "already_answered")
    page.end()


def test_an_answer_after_the_deadline_is_refused(service: Service) -> None:
    w, sid = _session(service)
    page = StillFrames(service, w.learner, sid).attach()
    _, capture = page.request()
    before = service.event_count()
    # The page takes longer than the capture timeout: the check is recorded as missed
    # by the server, and the late frames change nothing.
    missed = page.next("result", where=lambda m: m.get("check_id") == capture["check_id"])
    assert missed["verdict"] == "missed"
    after_miss = service.event_count()
    assert after_miss == before + 1
    r = page.answer(capture, [HOPPER_FRAME])
    assert r.status_code == 409 and r.json()["reason"] == "already_answered"
    assert service.event_count() == after_miss
    page.end()


@pytest.mark.parametrize(
    ("language", "said"),
    [("zh-CN,zh;q=0.9", "请保持本页面打开，摄像头保持开启。"),
     ("en", "Keep this page open with the camera on.")],
)  # fmt: skip
def test_the_words_beside_the_codes_follow_the_pages_language(
    service: Service, language: str, said: str
) -> None:
    """The page attaches with its Accept-Language; the advice the server sends with a
    verdict code (here a check the page let pass unanswered) is in that language, and
    the code stays the stable English identifier."""
    w, sid = _session(service)
    r = service.client.post(
        f"/api/v1/sessions/{sid}/live",
        json={"mode": "upload"},
        headers={"Authorization": f"Bearer {w.learner}", "Accept-Language": language},
    )
    assert r.status_code == 200, r.text
    page = StillFrames(service, w.learner, sid)
    _, capture = page.request()
    missed = page.next("result", where=lambda m: m.get("check_id") == capture["check_id"])
    assert missed["verdict"] == "missed"
    assert missed["advice"] == [said]
    page.end()
