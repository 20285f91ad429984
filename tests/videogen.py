"""Videos generated in the test from real face images: .y4m for Chromium's fake camera."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np


def write_y4m(path: Path, segments: Sequence[tuple[np.ndarray, float]], fps: int = 5) -> Path:
    """Write a yuv420p .y4m: each (RGB frame, seconds) segment held for its duration.

    A little noise per frame keeps the encoder honest (a perfectly static picture
    compresses to nothing and is not what a webcam sends).
    """
    first = segments[0][0]
    h, w = first.shape[:2]
    if w % 2 or h % 2:
        raise ValueError("y4m yuv420p needs even dimensions")
    rng = np.random.default_rng(11)
    with path.open("wb") as fh:
        fh.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for image, seconds in segments:
            if image.shape[:2] != (h, w):
                raise ValueError("every segment must have the same size")
            for _ in range(max(1, round(seconds * fps))):
                noisy = np.clip(image.astype(np.int16) + rng.integers(-2, 3, image.shape), 0, 255)
                yuv = cv2.cvtColor(noisy.astype(np.uint8), cv2.COLOR_RGB2YUV_I420)
                fh.write(b"FRAME\n")
                fh.write(yuv.tobytes())
    return path
