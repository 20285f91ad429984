"""HLS cameras: a playlist at an allowed address plays, and every URL it names is
checked before it is fetched (a segment at a refused address is never contacted)."""

from __future__ import annotations

import asyncio
import io
import ipaddress
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import av
import numpy as np
import pytest
from PIL import Image as PILImage

from capture.stream import NETWORK_FAILURE, StreamSource
from capture.types import NetworkPolicy, SourceState
from config import ClassroomSettings
from tests import classgen, imagegen
from tests.classgen import Presence

FAST = ClassroomSettings(
    camera_open_timeout_s=2.0,
    camera_read_timeout_s=1.0,
    camera_backoff_initial_s=0.1,
    camera_backoff_max_s=0.4,
    camera_unreachable_after=2,
)
# The playlist's server is on 127.0.0.1; 127.0.0.2 (where the test listens for
# connections that must not come) is loopback outside the camera network.
CAMERA_ONLY = NetworkPolicy((ipaddress.ip_network("127.0.0.1/32"),), frozenset())


def clock() -> datetime:
    return datetime.now(UTC)


def segment(images: list[np.ndarray], first: int, fps: int = 10) -> bytes:
    """An MPEG-TS segment (H.264, starting on a key frame) of the images."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="mpegts") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.height, stream.width = images[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.options = {"g": str(fps), "preset": "ultrafast"}
        for i, image in enumerate(images):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = first + i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buf.getvalue()


def playlist(*uris: str) -> bytes:
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:2", "#EXT-X-MEDIA-SEQUENCE:0"]
    for uri in uris:
        lines += ["#EXTINF:2.0,", uri]
    return ("\n".join([*lines, "#EXT-X-ENDLIST"]) + "\n").encode()


class Site:
    """An HTTP server on `host` serving `files` by path, recording every path asked."""

    def __init__(self, files: dict[str, bytes], host: str = "127.0.0.1") -> None:
        self.files = files
        self.redirects: dict[str, str] = {}  # path -> where a 302 sends it
        self.paths: list[str] = []
        site = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                site.paths.append(self.path)
                if self.path in site.redirects:
                    self.send_response(302)
                    self.send_header("Location", site.redirects[self.path])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = site.files.get(self.path)
                if body is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.port: int = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def segments() -> list[bytes]:
    """Three 2-s segments of the classroom with the astronaut in it, 320x180."""
    person = classgen.person("Eileen Collins", imagegen.astronaut())
    images = []
    for i in range(60):
        full = classgen.render([Presence(person, 1, 0, 99)], i / 10)
        images.append(np.asarray(PILImage.fromarray(full).resize((320, 180)), dtype=np.uint8))
    return [segment(images[i : i + 20], i) for i in range(0, 60, 20)]


@pytest.fixture
def elsewhere() -> Iterator[Site]:
    """Where a hostile playlist points: a server the test owns, outside the policy."""
    site = Site({"/seg.ts": b""}, host="127.0.0.2")
    yield site
    site.close()


async def _until(predicate: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


async def test_an_hls_playlist_plays_with_every_url_checked(segments: list[bytes]) -> None:
    files = {f"/seg{i}.ts": s for i, s in enumerate(segments)}
    files["/live/cam.m3u8"] = playlist("/seg0.ts", "http://127.0.0.1:PORT/seg1.ts", "../seg2.ts")
    site = Site(files)
    files["/live/cam.m3u8"] = files["/live/cam.m3u8"].replace(b"PORT", str(site.port).encode())
    try:
        url = f"http://127.0.0.1:{site.port}/live/cam.m3u8"
        source = StreamSource("cam-hls", url, FAST, clock, policy=CAMERA_ONLY)
        await source.start()
        try:
            frame = await source.next_frame(10)
            assert frame.image.shape == (180, 320, 3)
            await _until(lambda: "/seg2.ts" in site.paths, 10)
            assert site.paths[:4] == ["/live/cam.m3u8", "/seg0.ts", "/seg1.ts", "/seg2.ts"]
        finally:
            await source.stop()
    finally:
        site.close()


@pytest.mark.parametrize("where", ["other-host", "metadata", "file", "mixed", "redirect"])
async def test_a_playlist_naming_a_refused_address_is_refused(
    segments: list[bytes], elsewhere: Site, where: str
) -> None:
    bad = {
        "other-host": f"http://127.0.0.2:{elsewhere.port}/seg.ts",
        "metadata": "http://169.254.169.254/latest/meta-data/seg.ts",
        "file": "file:///etc/passwd",
        "mixed": f"http://127.0.0.2:{elsewhere.port}/seg.ts",
        "redirect": "/moved.ts",  # on the allowed host, redirecting elsewhere
    }[where]
    uris = ["/seg0.ts", bad] if where == "mixed" else [bad]
    site = Site({"/seg0.ts": segments[0], "/cam.m3u8": playlist(*uris)})
    site.redirects["/moved.ts"] = f"http://127.0.0.2:{elsewhere.port}/seg.ts"
    try:
        url = f"http://127.0.0.1:{site.port}/cam.m3u8"
        source = StreamSource("cam-hls-bad", url, FAST, clock, policy=CAMERA_ONLY)
        await source.start()
        try:
            await _until(lambda: source.status().state is SourceState.unreachable, 10)
            assert source.status().last_error == NETWORK_FAILURE
            if where == "mixed":
                # The allowed segment was fetched; the refused one ended the read.
                assert "/seg0.ts" in site.paths
            if where == "redirect":
                assert "/moved.ts" in site.paths  # asked, and its redirect not followed
            await asyncio.sleep(0.5)
            assert site.paths and elsewhere.paths == []
        finally:
            await source.stop()
    finally:
        site.close()
