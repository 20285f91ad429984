"""Camera sources by URL: a video file, a live MJPEG camera served by the test, a dead
URL and a URL that answers with something that is not video."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from capture.exceptions import SourceDown
from capture.stream import NETWORK_FAILURE, StreamSource, file_path, redact_url
from capture.types import SourceState, SourceStatus
from config import ClassroomSettings
from tests import classgen, imagegen
from tests.classgen import MjpegCamera, Presence

FAST = ClassroomSettings(
    camera_open_timeout_s=2.0,
    camera_read_timeout_s=1.0,
    camera_backoff_initial_s=0.1,
    camera_backoff_max_s=0.4,
    camera_unreachable_after=2,
)


def clock() -> datetime:
    return datetime.now(UTC)


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 s of a room in which the astronaut sits from 1 s on."""
    person = classgen.person("Eileen Collins", imagegen.astronaut())
    path = tmp_path_factory.mktemp("video") / "room.mp4"
    return classgen.write_video(path, [Presence(person, 1, 1.0, 99)], 4)


@pytest.fixture(scope="module")
def frames(video: Path) -> tuple[list[bytes], float]:
    return classgen.jpeg_frames(video)


class Recorder:
    """Status changes as the event loop receives them."""

    def __init__(self) -> None:
        self.seen: list[SourceStatus] = []
        self.loop = asyncio.get_running_loop()

    def __call__(self, status: SourceStatus) -> None:
        assert asyncio.get_running_loop() is self.loop  # delivered on the loop
        self.seen.append(status)

    @property
    def states(self) -> list[str]:
        return [s.state.value for s in self.seen]


async def until(predicate: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


async def test_a_video_file_plays_at_its_own_pace_and_ends(video: Path) -> None:
    rec = Recorder()
    source = StreamSource("cam-file", video.as_uri(), FAST, clock, rec)
    await source.start()
    try:
        first = await source.next_frame(5)
        samples = await source.sample(3, 0.4, 5)
        assert first.image.shape == (720, 1280, 3) and first.image.dtype == np.uint8
        assert first.session_id == "cam-file" and first.captured_at.tzinfo is not None
        # The file's own timestamps are kept, and advance in real time.
        times = [float(s.pts * s.time_base) for s in [first, *samples]]  # type: ignore[operator]
        assert times == sorted(times) and len(set(times)) == 4
        assert 0.8 <= times[-1] - times[0] <= 2.0
        await until(lambda: source.status().state is SourceState.ended, 6)
        with pytest.raises(SourceDown) as caught:
            await source.next_frame(5)
        assert caught.value.state == "ended"
        st = source.status()
        assert st.last_error == "end of file" and (st.width, st.height) == (1280, 720)
        # Only what was asked for is handed out; every other packet counts as dropped.
        assert st.stats.received == 40 and st.stats.sampled == 4
        assert st.stats.dropped == st.stats.received - st.stats.sampled
        assert rec.states == ["live", "ended"]
    finally:
        await source.stop()


async def test_mjpeg_camera_drops_and_comes_back(frames: tuple[list[bytes], float]) -> None:
    jpegs, fps = frames
    rec = Recorder()
    with MjpegCamera(jpegs, fps) as camera:
        camera.go()
        settings = FAST.model_copy(update={"max_frame_width": 640})
        source = StreamSource("cam-ip", camera.url, settings, clock, rec)
        await source.start()
        try:
            frame = await source.next_frame(5)
            assert frame.image.shape == (360, 640, 3)  # scaled to max_frame_width
            dropper = camera.drop(1.5)
            await until(lambda: source.status().state is not SourceState.live, 5)
            with pytest.raises(SourceDown):
                await source.next_frame(0.5)  # nothing comes while it is out
            await until(lambda: source.status().state is SourceState.live, 10)
            dropper.join()
            assert (await source.next_frame(5)).image.shape == (360, 640, 3)
            st = source.status()
            assert st.stats.reconnects == 1 and st.attempts == 0 and st.last_error is None
            assert rec.states[0] == "live" and rec.states[-1] == "live"
            assert set(rec.states[1:-1]) <= {"reconnecting", "unreachable"} and rec.states[1:-1]
            assert rec.seen[1].last_error  # says why
        finally:
            started = time.monotonic()
            await source.stop()
            assert time.monotonic() - started < settings.camera_read_timeout_s + 2.5
    assert source.status().state is SourceState.stopped


async def test_a_dead_url_is_unreachable_at_once_and_recovers(
    frames: tuple[list[bytes], float],
) -> None:
    jpegs, fps = frames
    camera = MjpegCamera(jpegs, fps)  # not listening yet
    rec = Recorder()
    source = StreamSource("cam-dead", camera.url, FAST, clock, rec)
    await source.start()
    try:
        await until(lambda: source.status().state is SourceState.unreachable, 5)
        started = time.monotonic()
        with pytest.raises(SourceDown) as caught:
            await source.next_frame(5)
        assert time.monotonic() - started < 0.5  # refused at once, not after the timeout
        assert caught.value.state == "unreachable"
        # Nothing about the port: the same words as for a service that is not a camera.
        assert caught.value.last_error == NETWORK_FAILURE
        await until(lambda: source.status().attempts >= 3, 5)  # keeps trying, backing off
        with camera:
            await until(lambda: source.status().state is SourceState.live, 5)
            assert (await source.next_frame(5)).image.shape == (720, 1280, 3)
        assert rec.states[:1] == ["unreachable"] and rec.states[-1] == "live"
    finally:
        await source.stop()


async def test_a_page_that_is_not_video_reads_like_a_closed_port_and_recovers(
    frames: tuple[list[bytes], float],
) -> None:
    jpegs, fps = frames
    rec = Recorder()
    closed = MjpegCamera(jpegs, fps)  # nothing listens on its port
    with MjpegCamera(jpegs, fps) as camera:
        camera.mode = "html"
        source = StreamSource("cam-html", camera.url, FAST, clock, rec)
        dead = StreamSource("cam-closed", closed.url, FAST, clock)
        await source.start()
        await dead.start()
        try:
            await until(lambda: source.status().state is SourceState.unreachable, 5)
            await until(lambda: dead.status().state is SourceState.unreachable, 5)
            with pytest.raises(SourceDown) as caught:
                await source.next_frame(5)
            assert caught.value.state == "unreachable"
            # An open port that is not a camera and a closed port read the same.
            assert caught.value.last_error == dead.status().last_error == NETWORK_FAILURE
            camera.mode = "video"
            await until(lambda: source.status().state is SourceState.live, 5)
            assert rec.states == ["unreachable", "live"]
        finally:
            await source.stop()
            await dead.stop()


async def test_missing_files_and_credentials_never_leak(tmp_path: Path) -> None:
    source = StreamSource("cam-missing", (tmp_path / "absent.mp4").as_uri(), FAST, clock)
    await source.start()
    try:
        await until(lambda: source.status().state is SourceState.unreachable, 5)
        assert "No such file" in (source.status().last_error or "")
    finally:
        await source.stop()
    secret = "rtsp://admin:hunter2@127.0.0.1:1/live?token=abc123"
    source = StreamSource("cam-rtsp", secret, FAST, clock)
    await source.start()
    try:
        await until(lambda: source.status().state is SourceState.unreachable, 5)
        st = source.status()
        assert st.url == "rtsp://***@127.0.0.1:1/live?***"
        for text in (st.url, st.last_error or ""):
            assert "hunter2" not in text and "abc123" not in text
    finally:
        await source.stop()


def test_urls_are_redacted_and_file_paths_recognised() -> None:
    assert (
        redact_url("http://u:p@cam.local:8080/a.mjpg?k=v") == "http://***@cam.local:8080/a.mjpg?***"
    )
    assert redact_url("rtsp://10.0.0.5/stream") == "rtsp://10.0.0.5/stream"
    assert file_path("file:///srv/videos/a%20b.mp4") == "/srv/videos/a b.mp4"
    assert file_path("/srv/videos/a.mp4") == "/srv/videos/a.mp4"
    assert file_path("http://cam/a.mjpg") is None and file_path("rtsp://cam/x") is None
