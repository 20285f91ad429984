"""The WebRTC capture hub against a real aiortc peer: frames, bad offers, cleanup."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import numpy as np
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection

from capture.exceptions import InvalidOffer, NoFrames, NotConnected, PeerExists
from capture.types import PeerState
from capture.webrtc import PeerHub
from config import WebRTCSettings
from tests import imagegen
from tests.capture.peers import StillTrack, client_offer, complete

ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"


def _hub(
    messages: list[tuple[str, str]],
    states: list[tuple[str, PeerState]],
    settings: WebRTCSettings | None = None,
) -> PeerHub:
    return PeerHub(
        settings or WebRTCSettings(connect_timeout_s=10),
        lambda: datetime.now(UTC),
        lambda sid, text: messages.append((sid, text)),
        lambda sid, state: states.append((sid, state)),
    )


async def _wait(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


async def test_frames_arrive_as_rgb_and_only_the_latest_is_kept() -> None:
    messages: list[tuple[str, str]] = []
    states: list[tuple[str, PeerState]] = []
    hub = _hub(messages, states)
    frame = imagegen.webcam_frame(imagegen.grace_hopper(), face_width=170)
    track = StillTrack(frame, fps=15)
    client = await client_offer(track)
    try:
        assert ABS_SEND_TIME in client.localDescription.sdp
        answer = await hub.accept("s1", client.localDescription.sdp, "offer")
        # No receive-side bandwidth estimation by default: the header it needs is
        # not negotiated, so the sender never stamps it and frames arrive all the same.
        assert ABS_SEND_TIME not in answer
        await complete(client, answer)
        await _wait(lambda: hub.state("s1") is PeerState.connected)
        assert ("s1", PeerState.connected) in states
        reader = hub.reader("s1")
        samples = await reader.sample(3, 0.3, 10)
        assert len(samples) == 3
        for s in samples:
            assert s.image.shape == (480, 640, 3) and s.image.dtype == np.uint8
            assert s.session_id == "s1" and s.captured_at.tzinfo is not None
            assert s.pts is not None and s.time_base is not None
        # The picture survived the VP8 round trip.
        assert np.abs(samples[-1].image.astype(int) - frame.astype(int)).mean() < 12
        # Frames that nobody sampled were dropped, not queued.
        await asyncio.sleep(0.5)
        stats = reader.stats()
        assert stats.received > stats.sampled and stats.dropped > 0
    finally:
        await client.close()
        await hub.stop()
    assert hub.stats().peers == 0


async def test_receive_bandwidth_estimation_is_negotiated_only_when_asked_for() -> None:
    hub = _hub([], [], WebRTCSettings(receive_bandwidth_estimation=True))
    client = await client_offer(StillTrack(imagegen.webcam_frame(imagegen.grace_hopper())))
    try:
        answer = await hub.accept("s1", client.localDescription.sdp, "offer")
        assert ABS_SEND_TIME in answer
    finally:
        await client.close()
        await hub.stop()


async def test_garbage_sdp_is_refused_and_leaves_nothing_open() -> None:
    hub = _hub([], [])
    for sdp, reason in [
        ("this is not sdp", "invalid_sdp"),
        (
            "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n",
            "invalid_sdp",
        ),
        ("v=0\r\n" + "a=x\r\n" * 50_000 + "m=video 9\r\n", "sdp_too_large"),
    ]:
        with pytest.raises(InvalidOffer) as exc:
            await hub.accept("s", sdp, "offer")
        assert exc.value.reason == reason
    with pytest.raises(InvalidOffer) as exc:
        await hub.accept("s", "v=0\r\nm=video 9\r\n", "answer")
    assert exc.value.reason == "invalid_sdp"
    assert hub.stats().peers == 0 and hub.stats().offers_refused == 4
    await hub.stop()


async def test_an_offer_without_video_is_refused() -> None:
    hub = _hub([], [])
    client = await client_offer(None)
    try:
        with pytest.raises(InvalidOffer) as exc:
            await hub.accept("s", client.localDescription.sdp, "offer")
        assert exc.value.reason == "no_video"
        assert hub.stats().peers == 0
    finally:
        await client.close()
        await hub.stop()


async def test_a_second_offer_for_a_live_session_is_refused() -> None:
    hub = _hub([], [])
    frame = imagegen.webcam_frame(imagegen.astronaut(), face_width=150)
    first = await client_offer(StillTrack(frame))
    second = await client_offer(StillTrack(frame))
    try:
        await complete(first, await hub.accept("s", first.localDescription.sdp, "offer"))
        with pytest.raises(PeerExists):
            await hub.accept("s", second.localDescription.sdp, "offer")
        assert hub.stats().peers == 1
        # The first connection is unharmed.
        await _wait(lambda: hub.state("s") is PeerState.connected)
        assert len(await hub.reader("s").sample(1, 0, 10)) == 1
    finally:
        await first.close()
        await second.close()
        await hub.stop()


async def test_a_closed_client_is_reported_and_cleaned_up() -> None:
    states: list[tuple[str, PeerState]] = []
    hub = _hub([], states)
    client = await client_offer(StillTrack(imagegen.webcam_frame(imagegen.astronaut())))
    await complete(client, await hub.accept("s", client.localDescription.sdp, "offer"))
    await _wait(lambda: hub.state("s") is PeerState.connected)
    await client.close()
    await _wait(lambda: hub.state("s") is None, timeout=40)
    assert any(s in (PeerState.closed, PeerState.failed, PeerState.disconnected) for _, s in states)
    with pytest.raises(NotConnected):
        hub.reader("s")
    await hub.stop()


async def test_no_frames_in_time_is_reported() -> None:
    hub = _hub([], [])
    track = StillTrack(imagegen.webcam_frame(imagegen.astronaut()), fps=1)
    client = await client_offer(track)
    try:
        await complete(client, await hub.accept("s", client.localDescription.sdp, "offer"))
        await _wait(lambda: hub.state("s") is PeerState.connected)
        reader = hub.reader("s")
        await reader.sample(1, 0, 10)
        with pytest.raises(NoFrames):
            await reader.next_frame(reader.seq, timeout=0.2)
    finally:
        await client.close()
        await hub.stop()


async def test_the_data_channel_carries_text_both_ways() -> None:
    messages: list[tuple[str, str]] = []
    hub = _hub(messages, [])
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver(StillTrack(imagegen.webcam_frame(imagegen.astronaut())), direction="sendonly")
    channel = pc.createDataChannel("supervision")
    received: list[str] = []
    channel.on("message", lambda m: received.append(m))
    opened = asyncio.Event()
    channel.on("open", opened.set)
    await pc.setLocalDescription(await pc.createOffer())
    try:
        answer = await hub.accept("s", pc.localDescription.sdp, "offer")
        # Said before the page's channel is open: kept, and delivered first, in order.
        assert hub.send("s", '{"type":"hello"}') and hub.send("s", '{"n":2}')
        await complete(pc, answer)
        await asyncio.wait_for(opened.wait(), 10)
        await _wait(lambda: received == ['{"type":"hello"}', '{"n":2}'])
        received.clear()
        channel.send('{"type":"heartbeat"}')
        channel.send("x" * 20_000)  # oversized: dropped unread
        await _wait(lambda: len(messages) == 1)
        assert messages == [("s", '{"type":"heartbeat"}')]
        await _wait(lambda: hub.send("s", '{"type":"state"}'))
        await _wait(lambda: received == ['{"type":"state"}'])
    finally:
        await pc.close()
        await hub.stop()
