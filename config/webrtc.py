"""Settings of live video over WebRTC (capture/webrtc.py)."""

from __future__ import annotations

from pydantic import Field

from config.base import _Section


class WebRTCSettings(_Section):
    """Learners' webcams over WebRTC (capture/)."""

    max_peers: int = Field(
        1000, ge=1, le=100_000, description="Peer connections one process accepts at most."
    )
    max_sdp_bytes: int = Field(
        64 * 1024, ge=1024, le=1024 * 1024, description="Largest accepted SDP offer in bytes."
    )
    ice_gathering_timeout_s: float = Field(
        5.0, gt=0, le=60, description="Seconds to wait for the server's ICE candidates."
    )
    connect_timeout_s: float = Field(
        20.0,
        gt=0,
        le=300,
        description="Seconds a new peer connection may take to connect before it is closed.",
    )
    check_fps: float = Field(
        2.0,
        gt=0,
        le=30,
        description="Frame rate the browser is asked to send while a check is sampling.",
    )
    idle_fps: float = Field(
        0.0,
        ge=0,
        le=30,
        description="Frame rate between checks; 0 stops the video between checks (the "
        "browser's encoder is paused; checks resume it at random moments).",
    )
    max_width: int = Field(
        640, ge=160, le=1920, description="Widest frame the browser is asked to send."
    )
    frame_spacing_s: float = Field(
        0.6, ge=0.0, le=10, description="Seconds between the frames one check samples."
    )
    heartbeat_timeout_s: float = Field(
        30.0,
        gt=0,
        le=600,
        description="A learner link with no heartbeat for this long counts as disconnected; "
        "the page is told to send one every third of it.",
    )
    receive_bandwidth_estimation: bool = Field(
        False,
        description="Negotiate the abs-send-time header so that the server estimates the "
        "incoming bitrate and sends REMB feedback. Off: the server fixes the rate itself "
        "(a few frames at each check) and the browser's loss-based control suffices, and "
        "aiortc's estimator, a Python loop per millisecond between packets, is not run.",
    )
