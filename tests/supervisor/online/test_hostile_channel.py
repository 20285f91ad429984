"""Hostile data-channel messages and out-of-order requests on a live session.

A real aiortc peer connects to the service's WebRTC endpoint, then sends garbage:
malformed and deeply nested JSON, unknown and out-of-order message types (a
"result" or "capture" the server never asked for), binary data and a 1 MB text.
Each is dropped or ignored and counted; the channel keeps answering heartbeats,
the session stays active and its ledger unchanged.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiortc import RTCConfiguration, RTCPeerConnection

from tests import imagegen
from tests.capture.peers import StillTrack, complete
from tests.supervisor.conftest import HOPPER_FRAME, Service

GARBAGE: list[str | bytes] = [
    "not json at all",
    "{",
    "[" * 5000 + "]" * 5000,  # nests past the JSON parser's recursion limit
    '"a string"',
    "42",
    "null",
    json.dumps({"no_type": 1}),
    json.dumps({"type": ["heartbeat"]}),
    json.dumps({"type": "result", "check_id": "x", "passed": True}),  # a reply nobody asked for
    json.dumps({"type": "capture", "on": True, "check_id": "y"}),  # the server's own message
    json.dumps({"type": "signals", "settings": "width", "label": {"x": 1}, "hidden": "yes"}),
    json.dumps({"type": "signals", "settings": {"width": 1e308, "frameRate": "NaN"}}),
    b"\x00\x01binary",
    "x" * (256 * 1024),  # the largest the answer allows (max-message-size), 16 x our limit
]


def _open_session(svc: Service) -> tuple[str, str]:
    w = svc.world()
    r = svc.sign_in(w.learner, w.course_id, HOPPER_FRAME)
    assert r.status_code == 201, r.text
    return w.learner, r.json()["session"]["session_id"]


async def _wait(predicate: Any, timeout: float = 15) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.1)


def test_garbage_on_the_data_channel_is_counted_and_changes_nothing(service: Service) -> None:
    svc = service
    token, sid = _open_session(svc)
    before = svc.live_stats()

    async def scenario() -> list[dict[str, Any]]:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTransceiver(
            StillTrack(imagegen.webcam_frame(imagegen.grace_hopper())), direction="sendonly"
        )
        channel = pc.createDataChannel("supervision")
        received: list[dict[str, Any]] = []
        channel.on("message", lambda m: received.append(json.loads(m)))
        opened = asyncio.Event()
        channel.on("open", opened.set)
        await pc.setLocalDescription(await pc.createOffer())
        try:
            r = await asyncio.to_thread(
                svc.call,
                "POST",
                f"/api/v1/sessions/{sid}/webrtc",
                token,
                json={"sdp": pc.localDescription.sdp, "type": "offer"},
            )
            assert r.status_code == 200, r.text
            await complete(pc, r.json()["sdp"])
            await asyncio.wait_for(opened.wait(), 15)
            await _wait(lambda: any(m.get("type") == "state" for m in received))
            heads = await asyncio.to_thread(lambda: list(svc.storage.ledger.heads()))
            for message in GARBAGE:
                channel.send(message)
            channel.send(json.dumps({"type": "heartbeat"}))
            await _wait(lambda: any(m.get("type") == "heartbeat" for m in received))
            after = await asyncio.to_thread(lambda: list(svc.storage.ledger.heads()))
            assert after == heads
            return received
        finally:
            await pc.close()

    received = asyncio.run(scenario())
    assert any(m.get("type") == "heartbeat" for m in received)
    stats = svc.live_stats()
    dropped = stats["messages_dropped"] - before["messages_dropped"]
    ignored = stats["messages_ignored"] - before["messages_ignored"]
    assert dropped == 2, stats  # the binary message and the oversized one
    assert ignored == len(GARBAGE) - 2 - 2, stats  # the two odd "signals" are taken, sanitised
    r = svc.call("GET", f"/api/v1/sessions/{sid}", token)
    assert r.status_code == 200 and r.json()["state"] in ("active", "paused"), r.text
    # This session's chain (the shared service also holds a chain another test tampers).
    r = svc.call("GET", f"/api/v1/sessions/{sid}/integrity", token)
    assert r.status_code == 200 and r.json()["ok"] is True, r.text
    svc.call("POST", f"/api/v1/sessions/{sid}/end", token)


def test_out_of_order_and_foreign_requests_are_refused(service: Service) -> None:
    svc = service
    token, sid = _open_session(svc)
    svc.forget_faces()
    other_token, other_sid = _open_session(svc)
    heads = list(svc.storage.ledger.heads())
    frame = [("frames", ("f.jpg", HOPPER_FRAME, "image/jpeg"))]
    # Frames before the session is on the fallback, and before any request for them.
    r = svc.call(
        "POST",
        f"/api/v1/sessions/{sid}/frames",
        token,
        data={"check_id": "c", "nonce": "n"},
        files=frame,
    )
    assert r.status_code == 409 and r.json()["reason"] == "not_live", r.text
    assert svc.call(
        "POST", f"/api/v1/sessions/{sid}/live", token, json={"mode": "upload"}
    ).is_success
    r = svc.call(
        "POST",
        f"/api/v1/sessions/{sid}/frames",
        token,
        data={"check_id": "c", "nonce": "n"},
        files=frame,
    )
    assert r.status_code == 409 and r.json()["reason"] == "no_pending_check", r.text
    # Another learner's session: not theirs, whatever they send.
    for path in ("frames", "signals", "heartbeat", "webrtc", "live", "messages"):
        method = "GET" if path == "messages" else "POST"
        r = svc.call(method, f"/api/v1/sessions/{sid}/{path}", other_token, json={})
        assert r.status_code in (403, 422), f"{path}: {r.status_code} {r.text}"
    # Signals and heartbeats of a session nobody supervises live.
    r = svc.call("POST", f"/api/v1/sessions/{other_sid}/signals", other_token, json={})
    assert r.status_code == 409 and r.json()["reason"] == "not_live"
    r = svc.call(
        "POST",
        f"/api/v1/sessions/{other_sid}/webrtc",
        other_token,
        json={"sdp": "v=0\r\n" + "a=" + "x" * (2 * 1024 * 1024) + "\r\n", "type": "offer"},
    )
    assert r.status_code in (413, 422), r.text
    assert list(svc.storage.ledger.heads()) == heads
    for t, s in ((token, sid), (other_token, other_sid)):
        svc.call("POST", f"/api/v1/sessions/{s}/end", t)
