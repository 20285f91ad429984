"""A real aiortc peer standing in for the learner's browser (sends a video track)."""

from __future__ import annotations

import asyncio
import fractions

import av
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription, VideoStreamTrack

VIDEO_CLOCK_RATE = 90_000


class StillTrack(VideoStreamTrack):
    """Sends one picture (RGB) over and over at `fps`, with fresh timestamps."""

    def __init__(self, image: np.ndarray, fps: float = 10.0) -> None:
        super().__init__()
        self.image = image
        self.fps = fps
        self._pts = 0

    def set_image(self, image: np.ndarray) -> None:
        self.image = image

    async def recv(self) -> av.VideoFrame:
        await asyncio.sleep(1 / self.fps)
        frame = av.VideoFrame.from_ndarray(self.image, format="rgb24")
        self._pts += int(VIDEO_CLOCK_RATE / self.fps)
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK_RATE)
        return frame


async def client_offer(track: VideoStreamTrack | None, channel: bool = True) -> RTCPeerConnection:
    """A peer with a send-only video transceiver (and a data channel) and its local offer."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    if track is not None:
        pc.addTransceiver(track, direction="sendonly")
    else:
        pc.addTransceiver("audio", direction="sendonly")
    if channel:
        pc.createDataChannel("supervision")
    await pc.setLocalDescription(await pc.createOffer())
    return pc


async def complete(pc: RTCPeerConnection, answer_sdp: str) -> None:
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer_sdp, type="answer"))
