"""A classroom generated in the test from real face photos: a video file and a live
MJPEG camera served over HTTP by the test.

People sit at seats of a 1280x720 room and come and go at given times. The video
is written with PyAV (H.264 in .mp4, a key frame every second); the camera serves
the same frames as `multipart/x-mixed-replace` at the video's frame rate, the
frame shown at wall time t being the video's frame at t - `go()` time. The camera
can drop (its listener closes, so reconnections are refused), serve a page that
is not video, or be down from the start.
"""

from __future__ import annotations

import io
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import av
import cv2
import numpy as np
from PIL import Image as PILImage

from config import FaceSettings
from verification.dlib_engine import DlibFaceEngine

Image = np.ndarray
SIZE = (1280, 720)
# Seat centres (fractions of the frame): two rows of desks.
SEATS = (
    (0.14, 0.36),
    (0.38, 0.36),
    (0.62, 0.36),
    (0.86, 0.36),
    (0.26, 0.72),
    (0.50, 0.72),
    (0.74, 0.72),
)


@dataclass(frozen=True)
class Person:
    """A portrait cut around one face: `face_width` px wide, centred at `centre`."""

    name: str
    portrait: Image
    centre: tuple[float, float]
    face_width: float


@dataclass(frozen=True)
class Presence:
    person: Person
    seat: int
    start_s: float
    end_s: float
    face_px: int = 90

    def at(self, t: float) -> bool:
        return self.start_s <= t < self.end_s


def person(name: str, photo: Image, engine: DlibFaceEngine | None = None) -> Person:
    """The photo's largest face with a margin around it (head and shoulders)."""
    engine = engine or DlibFaceEngine(FaceSettings())
    boxes = engine.detect(photo)
    if not boxes:
        raise ValueError(f"no face found in the photo of {name}")
    b = boxes[0]
    w = b.width
    cx, cy = (b.left + b.right) / 2, (b.top + b.bottom) / 2
    pad = int(2 * w)
    padded = cv2.copyMakeBorder(photo, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    x0, x1 = int(cx - 1.3 * w) + pad, int(cx + 1.3 * w) + pad
    y0, y1 = int(cy - 1.2 * w) + pad, int(cy + 1.6 * w) + pad
    crop = np.ascontiguousarray(padded[y0:y1, x0:x1])
    return Person(name, crop, (cx + pad - x0, cy + pad - y0), float(w))


def room() -> Image:
    """An empty classroom: a wall, a floor and two rows of desks."""
    w, h = SIZE
    frame = np.zeros((h, w, 3), np.uint8)
    frame[:] = (182, 176, 160)
    frame[int(h * 0.55) :] = (120, 104, 90)
    for _, y in (SEATS[0], SEATS[4]):
        top = int((y + 0.12) * h)
        cv2.rectangle(frame, (20, top), (w - 20, min(top + 40, h - 1)), (95, 70, 50), -1)
    return frame


def render(presences: Sequence[Presence], t: float, base: Image | None = None) -> Image:
    """The room at time `t` (seconds) with everybody present then."""
    frame = (base if base is not None else room()).copy()
    h, w = frame.shape[:2]
    for p in presences:
        if not p.at(t):
            continue
        scale = p.face_px / p.person.face_width
        img = cv2.resize(p.person.portrait, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        sx, sy = SEATS[p.seat]
        ox = round(sx * w - p.person.centre[0] * scale)
        oy = round(sy * h - p.person.centre[1] * scale)
        ih, iw = img.shape[:2]
        x0, y0, x1, y1 = max(ox, 0), max(oy, 0), min(ox + iw, w), min(oy + ih, h)
        if x1 > x0 and y1 > y0:
            frame[y0:y1, x0:x1] = img[y0 - oy : y1 - oy, x0 - ox : x1 - ox]
    return frame


def write_video(
    path: Path, presences: Sequence[Presence], duration_s: float, fps: int = 10
) -> Path:
    """An H.264 .mp4 of the class, with a key frame every second."""
    base = room()
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height = SIZE
        stream.pix_fmt = "yuv420p"
        stream.options = {"g": str(fps), "preset": "ultrafast", "crf": "20"}
        for i in range(round(duration_s * fps)):
            frame = av.VideoFrame.from_ndarray(render(presences, i / fps, base), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def jpeg_frames(path: Path) -> tuple[list[bytes], float]:
    """Every frame of a video file as JPEG, and its frame rate."""
    out: list[bytes] = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or 10)
        for frame in container.decode(stream):
            buf = io.BytesIO()
            PILImage.fromarray(frame.to_ndarray(format="rgb24")).save(buf, "JPEG", quality=85)
            out.append(buf.getvalue())
    return out, fps


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class MjpegCamera:
    """An IP camera: `GET /` streams MJPEG (multipart/x-mixed-replace)."""

    def __init__(self, frames: list[bytes], fps: float, port: int | None = None) -> None:
        self.frames = frames
        self.fps = fps
        self.port = port or free_port()
        self.mode = "video"  # or "html": answer with a web page instead of video
        self.redirect_to: str | None = None  # answer every request with a redirect here
        self.playlist_to: str | None = None  # answer with an HLS playlist of this segment
        self.hosts: list[str] = []  # the Host header of every request received
        self.t0 = time.monotonic()
        self.started_wall: float | None = None
        self._server: ThreadingHTTPServer | None = None
        self._generation = 0  # bumped by drop(): streams of older generations end
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream.mjpg"

    def go(self) -> float:
        """Start the class's clock now; returns the wall time (time.time()) of t = 0."""
        self.t0 = time.monotonic()
        self.started_wall = time.time()
        return self.started_wall

    def frame_now(self) -> bytes:
        i = int((time.monotonic() - self.t0) * self.fps)
        return self.frames[min(max(i, 0), len(self.frames) - 1)]

    def listen(self) -> None:
        camera = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                camera.hosts.append(self.headers.get("Host", ""))
                if camera.redirect_to is not None:
                    self.send_response(302)
                    self.send_header("Location", camera.redirect_to)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if camera.playlist_to is not None:
                    body = (
                        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n"
                        f"#EXTINF:2.0,\n{camera.playlist_to}\n#EXT-X-ENDLIST\n"
                    ).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/vnd.apple.mpegurl")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                if camera.mode == "html":
                    body = b"<!doctype html><title>Camera login</title><p>Please log in.</p>" * 40
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                generation = camera._generation
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                try:
                    while generation == camera._generation:
                        jpeg = camera.frame_now()
                        self.wfile.write(
                            b"--frame\r\nContent-Type: image/jpeg\r\n"
                            + f"Content-Length: {len(jpeg)}\r\n\r\n".encode()
                            + jpeg
                            + b"\r\n"
                        )
                        time.sleep(1 / camera.fps)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        with self._lock:
            server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
            server.daemon_threads = True
            self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()

    def close(self) -> None:
        """Stop listening and end every stream (a camera losing power)."""
        with self._lock:
            server, self._server = self._server, None
            self._generation += 1
        if server is not None:
            server.shutdown()
            server.server_close()

    def drop(self, seconds: float) -> threading.Thread:
        """Go away for `seconds` (connections end, reconnections are refused), then
        come back; runs in the background."""

        def run() -> None:
            self.close()
            time.sleep(seconds)
            self.listen()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread

    def __enter__(self) -> MjpegCamera:
        self.listen()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
