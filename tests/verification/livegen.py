"""Bona fide and attack frame sequences for liveness tests and the PAD benchmark.

Everything starts from real faces: photos (the packaged astronaut and Grace Hopper
portraits, identity photos of ../shared/faces) and the talking-head videos of
../shared/faces/video. Attacks are what an attacker shows the camera:

- a photo held in front of the camera: a plane in 3D, placed by a homography
  (in-plane rotation, scale, translation and a tilt about the vertical and
  horizontal axes, pinhole camera), composited over a room-like background,
  then "captured": sensor noise and JPEG compression, frame by frame;
- a printed photo: the same, with the print's reduced contrast and colour cast,
  optical blur and a specular glare blob that moves as the paper moves;
- a frozen image: a virtual camera repeating one frame byte for byte;
- a looped clip: a virtual camera repeating a short clip of a real video.

A sequence is a list of `(t_s, frame)` with `t_s` seconds since the first frame.
PyAV is imported here (tests and bench only), never in verification/.
"""

from __future__ import annotations

import io
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image as PILImage

from verification.types import FaceBox

Image = np.ndarray
Sequence_ = list[tuple[float, Image]]

FRAME_SIZE = (640, 480)  # width, height of generated webcam frames
FOCAL_PX = 600.0  # pinhole focal length of the simulated webcam (about 56 degrees across)


# -- timing ------------------------------------------------------------------


def check_times(
    rng: random.Random, n: int = 3, gap: tuple[float, float] = (0.8, 1.2)
) -> list[float]:
    """Times (s, first at 0) of `n` frames of one check, each gap drawn from `gap`."""
    t = [0.0]
    for _ in range(n - 1):
        t.append(t[-1] + rng.uniform(*gap))
    return t


def dense_times(times: Sequence[float], fps: float = 10.0) -> list[float]:
    """`times` plus frames at `fps` between the first and the last (pixel-only frames)."""
    step = 1.0 / fps
    extra = np.arange(times[0] + step, times[-1], step)
    return sorted({round(x, 4) for x in [*times, *extra.tolist()]})


# -- the camera ----------------------------------------------------------------


def capture(frame: Image, rng: np.random.Generator, noise: float = 2.5, quality: int = 85) -> Image:
    """What a webcam delivers: Gaussian sensor noise (sigma in grey levels), then JPEG."""
    noisy = frame.astype(np.float32) + rng.normal(0.0, noise, frame.shape).astype(np.float32)
    buf = io.BytesIO()
    PILImage.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(
        buf, format="JPEG", quality=quality
    )
    with PILImage.open(io.BytesIO(buf.getvalue())) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


def room(seed: int, size: tuple[int, int] = FRAME_SIZE) -> Image:
    """A room-like background: a lit wall gradient with a door frame and a shelf."""
    r = random.Random(seed)
    w, h = size
    base = np.array([r.randint(90, 200) for _ in range(3)], np.float32)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    light = 0.75 + 0.35 * (1 - ((xs - r.uniform(0, w)) ** 2 + (ys - 0.2 * h) ** 2) / (w * w))
    img = np.clip(base[None, None, :] * light[..., None], 0, 255).astype(np.uint8)
    x0 = r.randint(0, w // 4)
    cv2.rectangle(img, (x0, r.randint(20, 80)), (x0 + 90, h), (60, 50, 40), 6)
    y = r.randint(h // 3, h // 2)
    cv2.rectangle(img, (w - 200, y), (w - 20, y + 12), (120, 90, 60), -1)
    return img


# -- a photo as a plane in front of the camera ---------------------------------


@dataclass(frozen=True)
class Pose:
    """Where a held photo is: its face centre in frame pixels, the face width in
    pixels when facing the camera, and rotations in degrees (roll in the image
    plane; yaw about the vertical axis; pitch about the horizontal axis)."""

    cx: float
    cy: float
    face_width: float
    roll: float = 0.0
    yaw: float = 0.0
    pitch: float = 0.0


def plane_homography(face: FaceBox, pose: Pose, size: tuple[int, int] = FRAME_SIZE) -> np.ndarray:
    """The 3x3 homography taking photo pixels to frame pixels for a photo at `pose`.

    The photo is a plane at the distance where its face appears `pose.face_width`
    wide, rotated about its face centre, seen by a pinhole camera of focal
    length FOCAL_PX centred on (cx, cy).
    """
    w, h = size
    s = pose.face_width / max(face.width, 1)  # photo px -> frame px at the plane's distance
    fx, fy = (face.left + face.right) / 2, (face.top + face.bottom) / 2
    z = FOCAL_PX  # plane distance in "frame pixel" units: a unit at depth z projects 1:1
    a, b, c = (math.radians(v) for v in (pose.pitch, pose.yaw, pose.roll))
    rx = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    ry = np.array([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])
    rz = np.array([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]])
    rot = rz @ ry @ rx
    k = np.array([[FOCAL_PX, 0, w / 2], [0, FOCAL_PX, h / 2], [0, 0, 1]])
    # Offset so that the face centre lands at (cx, cy).
    t = np.array([(pose.cx - w / 2) * z / FOCAL_PX, (pose.cy - h / 2) * z / FOCAL_PX, z])
    m = np.column_stack([rot[:, 0], rot[:, 1], t])  # plane coords (x, y, 1) -> camera
    # Photo pixel (u, v) -> plane coordinates (x, y) in frame pixels at depth z.
    plane = np.array([[s, 0, -s * fx], [0, s, -s * fy], [0, 0, 1]], dtype=np.float64)
    return np.asarray(k @ m @ plane, dtype=np.float64)


def held_photo(photo: Image, face: FaceBox, pose: Pose, background: Image) -> Image:
    """The photo at `pose` over `background` (before capture)."""
    hm = plane_homography(face, pose, (background.shape[1], background.shape[0]))
    size = (background.shape[1], background.shape[0])
    warped = cv2.warpPerspective(photo, hm, size, flags=cv2.INTER_LINEAR)
    mask = cv2.warpPerspective(
        np.full(photo.shape[:2], 255, np.uint8), hm, size, flags=cv2.INTER_LINEAR
    )
    alpha = (mask.astype(np.float32) / 255.0)[..., None]
    out = warped.astype(np.float32) * alpha + background.astype(np.float32) * (1 - alpha)
    return np.clip(out, 0, 255).astype(np.uint8)


def printed(photo: Image, rng: random.Random) -> Image:
    """A photo as a print: compressed tonal range, a warm cast, and print blur."""
    lo, hi = rng.uniform(20, 40), rng.uniform(200, 230)
    cast = np.array([1.0, rng.uniform(0.93, 0.98), rng.uniform(0.82, 0.92)], np.float32)
    out = (lo + photo.astype(np.float32) * (hi - lo) / 255.0) * cast
    out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.5, 1.2))
    return np.clip(out, 0, 255).astype(np.uint8)


def glare(frame: Image, centre: tuple[float, float], radius: float, strength: float) -> Image:
    """A specular highlight: an elliptic Gaussian blend toward white (saturating at its core)."""
    h, w = frame.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    d2 = ((xs - centre[0]) / radius) ** 2 + ((ys - centre[1]) / (0.6 * radius)) ** 2
    a = (strength * np.exp(-d2))[..., None]
    out = frame.astype(np.float32) * (1 - a) + 255.0 * a
    return np.clip(out, 0, 255).astype(np.uint8)


def _key_pose(rng: random.Random, base: Pose, kind: str, face_width: float) -> Pose:
    if kind == "still":
        return base
    if kind == "rigid":
        # Moved, rotated and scaled in the image plane, kept facing the camera.
        return Pose(
            base.cx + rng.uniform(-60, 60),
            base.cy + rng.uniform(-40, 40),
            face_width * rng.uniform(0.85, 1.18),
            rng.uniform(-15, 15),
        )
    if kind == "tilt":
        # Also turned about the vertical and horizontal axes (perspective).
        return Pose(
            base.cx + rng.uniform(-40, 40),
            base.cy + rng.uniform(-30, 30),
            face_width * rng.uniform(0.88, 1.12),
            rng.uniform(-10, 10),
            rng.uniform(-30, 30),
            rng.uniform(-25, 25),
        )
    # "print": a printed sheet, moved and turned a little.
    return Pose(
        base.cx + rng.uniform(-25, 25),
        base.cy + rng.uniform(-20, 20),
        face_width * rng.uniform(0.93, 1.07),
        rng.uniform(-6, 6),
        rng.uniform(-15, 15),
        rng.uniform(-12, 12),
    )


def _lerp(a: Pose, b: Pose, u: float) -> Pose:
    return Pose(
        *(
            x + (y - x) * u
            for x, y in zip(
                (a.cx, a.cy, a.face_width, a.roll, a.yaw, a.pitch),
                (b.cx, b.cy, b.face_width, b.roll, b.yaw, b.pitch),
                strict=True,
            )
        )
    )


def photo_attack(
    photo: Image,
    face: FaceBox,
    times: Sequence[float],
    kind: str,
    seed: int,
    face_width: float = 170.0,
    key_every_s: float = 1.0,
) -> Sequence_:
    """A photo held in front of a webcam, captured at `times`.

    kind: "still" (held still: hand tremor of a fraction of a pixel), "rigid"
    (moved, rotated, scaled in the image plane), "tilt" (also tilted up to 30
    degrees: perspective), "print" (a printed copy, moved and tilted a little,
    with a glare that moves across the paper and defocus blur). The hand goes
    through a new random pose every `key_every_s` seconds, smoothly in between.
    """
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    w, h = FRAME_SIZE
    bg = room(seed)
    base = Pose(w * rng.uniform(0.42, 0.58), h * rng.uniform(0.4, 0.5), face_width)
    source = printed(photo, rng) if kind == "print" else photo
    blur = rng.uniform(0.3, 1.8)
    glare_at = (rng.uniform(-0.4, 0.4), rng.uniform(-0.4, 0.2))
    glare_radius = face_width * rng.uniform(0.35, 0.6)
    glare_strength = rng.uniform(0.5, 0.9)
    n_keys = int(max(times) / key_every_s) + 2
    keys = [_key_pose(rng, base, kind, face_width) for _ in range(n_keys)]
    out: Sequence_ = []
    for t in times:
        k = int(t / key_every_s)
        pose = _lerp(keys[k], keys[k + 1], t / key_every_s - k)
        # Hand tremor: a fraction of a pixel and of a degree, different every frame.
        pose = Pose(
            pose.cx + rng.gauss(0, 0.3),
            pose.cy + rng.gauss(0, 0.3),
            pose.face_width,
            pose.roll + rng.gauss(0, 0.1),
            pose.yaw,
            pose.pitch,
        )
        frame = held_photo(source, face, pose, bg)
        if kind == "print":
            # The glare is tied to the light and the paper's angle, not to the face.
            gx = pose.cx + (glare_at[0] + pose.yaw / 60) * face_width
            gy = pose.cy + (glare_at[1] + pose.pitch / 60) * face_width
            frame = glare(frame, (gx, gy), glare_radius, glare_strength)
            frame = np.asarray(cv2.GaussianBlur(frame, (0, 0), blur), dtype=np.uint8)
        out.append((t, capture(frame, nrng)))
    return out


def still_image(photo: Image, face: FaceBox, seed: int, face_width: float = 170.0) -> Image:
    """One captured webcam frame of a photo: what a virtual camera would replay."""
    rng = random.Random(seed)
    w, h = FRAME_SIZE
    pose = Pose(w * rng.uniform(0.42, 0.58), h * rng.uniform(0.4, 0.5), face_width)
    return capture(held_photo(photo, face, pose, room(seed)), np.random.default_rng(seed))


def frozen(frame: Image, times: Sequence[float]) -> Sequence_:
    """A virtual camera showing one still image: the same bytes at every time."""
    return [(t, frame) for t in times]


# -- videos -----------------------------------------------------------------------


@dataclass(frozen=True)
class Video:
    """Decoded frames of a clip with their presentation times (s)."""

    name: str
    times: tuple[float, ...]
    frames: tuple[Image, ...]

    @property
    def fps(self) -> float:
        return (len(self.times) - 1) / max(self.times[-1] - self.times[0], 1e-9)

    def at(self, t: float) -> Image:
        """The frame showing at time `t` (s from the first frame)."""
        i = int(np.searchsorted(np.asarray(self.times) - self.times[0], t + 1e-6, "right")) - 1
        return self.frames[max(0, min(i, len(self.frames) - 1))]

    def index_at(self, t: float) -> int:
        i = int(np.searchsorted(np.asarray(self.times) - self.times[0], t + 1e-6, "right")) - 1
        return max(0, min(i, len(self.frames) - 1))


def read_video(path: Path, first: int = 0, last: int | None = None) -> Video:
    """Every frame of a video file (frames `first`..`last` inclusive), RGB, with PyAV."""
    import av

    times: list[float] = []
    frames: list[Image] = []
    with av.open(str(path)) as container:
        for i, fr in enumerate(container.decode(video=0)):
            if i < first:
                continue
            if last is not None and i > last:
                break
            assert fr.pts is not None and fr.time_base is not None
            times.append(float(fr.pts * fr.time_base))
            frames.append(fr.to_ndarray(format="rgb24"))
    t0 = times[0]
    return Video(path.name, tuple(t - t0 for t in times), tuple(frames))


def replay(video: Video, start: float, times: Sequence[float]) -> Sequence_:
    """The video as a camera sees it, from `start` s: the bona fide frames at `times`."""
    return [(t, video.at(start + t)) for t in times]


def webcam_view(frame: Image, scale: float, rng: np.random.Generator) -> Image:
    """A video frame as a farther, noisier webcam would deliver it: scaled by
    `scale` into a 640x480 frame (edges replicated), sensor noise and JPEG."""
    w, h = FRAME_SIZE
    small = cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    sh, sw = small.shape[:2]
    top, left = max(0, (h - sh) // 2), max(0, (w - sw) // 2)
    canvas = cv2.copyMakeBorder(
        small, top, max(0, h - sh - top), left, max(0, w - sw - left), cv2.BORDER_REPLICATE
    )
    return capture(np.ascontiguousarray(canvas[:h, :w]), rng)


def looped(
    video: Video, start: float, period: float, times: Sequence[float], reencode: float = 0.0
) -> Sequence_:
    """A virtual camera looping `period` s of `video` from `start`.

    With `reencode` > 0, every delivered frame gets noise of that sigma and JPEG
    (a lossy path between the virtual camera and the server), so repeats are near
    rather than byte-exact.
    """
    n = max(1, round(period * video.fps))
    i0 = video.index_at(start)
    rng = np.random.default_rng(round(start * 1000) + n)
    out: Sequence_ = []
    for t in times:
        k = round(t * video.fps) % n
        frame = video.frames[min(i0 + k, len(video.frames) - 1)]
        out.append((t, capture(frame, rng, reencode, 92) if reencode > 0 else frame))
    return out
