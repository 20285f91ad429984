"""Real face images from installed packages and frames generated from them.

scikit-image ships the astronaut photo (Eileen Collins) and matplotlib ships a
portrait of Grace Hopper; both are real faces available on any machine that
installs the test dependencies.
"""

from __future__ import annotations

import io
from functools import cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image as PILImage

Image = np.ndarray


def astronaut_path() -> Path:
    import skimage

    return Path(skimage.__file__).parent / "data" / "astronaut.png"


def grace_hopper_path() -> Path:
    import matplotlib

    return Path(matplotlib.__file__).parent / "mpl-data" / "sample_data" / "grace_hopper.jpg"


@cache
def _load(path: str) -> Image:
    with PILImage.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


def astronaut() -> Image:
    """512x512 RGB; one face (about 94 px wide) in the upper left."""
    return _load(str(astronaut_path())).copy()


def grace_hopper() -> Image:
    """512x600 RGB portrait; one face about 190 px wide."""
    return _load(str(grace_hopper_path())).copy()


def jpeg_bytes(image: Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    PILImage.fromarray(image).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def png_bytes(image: Image) -> bytes:
    buf = io.BytesIO()
    PILImage.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def webcam_frame(
    face_image: Image,
    face_width: int = 180,
    centre: tuple[float, float] = (0.5, 0.45),
    size: tuple[int, int] = (640, 480),
    background: int = 90,
) -> Image:
    """A webcam-like frame: the photo scaled so its face is `face_width` px wide,
    placed at `centre` (fractions of the frame) on a plain grey-blue background."""

    fw = _face_width(face_image)
    scale = face_width / fw
    scaled = cv2.resize(
        face_image,
        None,
        fx=scale,
        fy=scale,
        interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC,
    )
    w, h = size
    frame = np.zeros((h, w, 3), dtype=np.uint8)
    frame[:] = (background, background + 10, background + 25)
    cx, cy = _face_centre(face_image)
    # Put the scaled face centre at the requested point, clipping what falls outside.
    ox = round(centre[0] * w - cx * scale)
    oy = round(centre[1] * h - cy * scale)
    sh, sw = scaled.shape[:2]
    x0, y0 = max(ox, 0), max(oy, 0)
    x1, y1 = min(ox + sw, w), min(oy + sh, h)
    if x1 > x0 and y1 > y0:
        frame[y0:y1, x0:x1] = scaled[y0 - oy : y1 - oy, x0 - ox : x1 - ox]
    return frame


# Face geometry of the packaged photos, measured once with dlib's HOG detector
# (box centre and width in the original pixels).
_GEOMETRY = {
    "astronaut": ((227.0, 125.0), 94.0),
    "grace_hopper": ((260.0, 239.0), 192.0),
}


def _key(image: Image) -> str:
    return "astronaut" if image.shape[:2] == (512, 512) else "grace_hopper"


def _face_width(image: Image) -> float:
    return _GEOMETRY[_key(image)][1]


def _face_centre(image: Image) -> tuple[float, float]:
    return _GEOMETRY[_key(image)][0]


def side_by_side(a: Image, b: Image, height: int = 480) -> Image:
    """Two photos next to each other at the same height (two faces in one frame)."""
    ra = cv2.resize(a, (round(a.shape[1] * height / a.shape[0]), height))
    rb = cv2.resize(b, (round(b.shape[1] * height / b.shape[0]), height))
    return np.ascontiguousarray(np.concatenate([ra, rb], axis=1))


def rotate(image: Image, degrees: float) -> Image:
    h, w = image.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return cv2.warpAffine(image, m, (w, h), borderMode=cv2.BORDER_REFLECT)


def adjust(image: Image, gain: float, offset: float) -> Image:
    return np.clip(image.astype(np.float32) * gain + offset, 0, 255).astype(np.uint8)


def augmented_copies(image: Image) -> list[Image]:
    """Genuine variations of one photo: light, small rotation, rescale, recompression, noise."""
    rng = np.random.default_rng(7)
    noisy = np.clip(image.astype(np.int16) + rng.normal(0, 6, image.shape), 0, 255)
    return [
        adjust(image, 0.8, 10),
        adjust(image, 1.1, 15),
        rotate(image, 6),
        rotate(image, -6),
        cv2.resize(cv2.resize(image, None, fx=0.7, fy=0.7), (image.shape[1], image.shape[0])),
        _load_jpeg(jpeg_bytes(image, quality=40)),
        noisy.astype(np.uint8),
    ]


def _load_jpeg(data: bytes) -> Image:
    with PILImage.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


def non_face_images() -> list[Image]:
    """Generated images with no face: noise, gradients, shapes, a checkerboard."""
    rng = np.random.default_rng(3)
    h, w = 480, 640
    noise = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    gradient = np.repeat(np.linspace(0, 255, w, dtype=np.uint8)[None, :, None], h, 0).repeat(3, 2)
    shapes = np.full((h, w, 3), 200, np.uint8)
    cv2.circle(shapes, (200, 200), 80, (30, 60, 200), -1)
    cv2.rectangle(shapes, (350, 100), (550, 380), (20, 160, 40), -1)
    checker = (((np.indices((h, w)) // 40).sum(0) % 2) * 255).astype(np.uint8)
    return [noise, np.ascontiguousarray(gradient), shapes, np.stack([checker] * 3, -1)]


def two_faces_frame(face_width: int = 150, size: tuple[int, int] = (640, 480)) -> Image:
    """A webcam-like frame with two people side by side (a helper beside the learner)."""
    left = webcam_frame(astronaut(), face_width=face_width, centre=(0.27, 0.45), size=size)
    right = webcam_frame(grace_hopper(), face_width=face_width, centre=(0.73, 0.45), size=size)
    half = size[0] // 2
    frame = left.copy()
    frame[:, half:] = right[:, half:]
    return frame
