"""Both frame sources of capture/ implement the protocols that supervisor/ names."""

from __future__ import annotations

from datetime import UTC, datetime

from aiortc import VideoStreamTrack

from capture.protocols import CameraFeed, FrameSource
from capture.stream import StreamSource
from capture.webrtc import TrackReader
from config import ClassroomSettings


def clock() -> datetime:
    return datetime.now(UTC)


def test_the_camera_source_is_a_camera_feed() -> None:
    source = StreamSource("cam", "rtsp://camera.invalid/stream", ClassroomSettings(), clock)
    assert isinstance(source, CameraFeed) and isinstance(source, FrameSource)


def test_the_track_reader_is_a_frame_source() -> None:
    reader = TrackReader("s1", VideoStreamTrack(), clock)
    assert isinstance(reader, FrameSource)
    assert not isinstance(reader, CameraFeed)  # it has no state of its own to report
