"""Quality measures of a detected face and the gates that refuse unusable ones.

Pure functions on numpy arrays. Thresholds come from `FaceSettings`.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import numpy.typing as npt

from config import FaceSettings
from verification.types import FaceBox, QualityIssue, QualityMeasures

Grey = npt.NDArray[np.uint8]

# Sharpness is measured at a fixed scale so that it does not depend on the
# face's size in the frame: a face resized to 128x128 grey, Laplacian variance.
SHARPNESS_SIDE = 128


def measure(grey: Grey, box: FaceBox, landmarks: Sequence[tuple[int, int]]) -> QualityMeasures:
    """Measure a face: its width, sharpness, brightness and distance to the frame edge.

    `grey` is the whole frame in grey levels; `landmarks` are (x, y) points in
    frame coordinates. `edge_distance_px` is the smallest distance of the box
    to the frame edge, negative when the box extends past it.
    """
    h, w = grey.shape
    x0, y0 = max(box.left, 0), max(box.top, 0)
    x1, y1 = min(box.right, w), min(box.bottom, h)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return QualityMeasures(box.width, 0.0, 0.0, -box.width)
    crop = grey[y0:y1, x0:x1]
    # Brightness over the central part of the box: the skin, not the background.
    ch, cw = crop.shape
    centre = crop[ch // 5 : ch - ch // 5, cw // 5 : cw - cw // 5]
    brightness = float(centre.mean()) if centre.size else float(crop.mean())
    interp = cv2.INTER_AREA if cw > SHARPNESS_SIDE else cv2.INTER_LINEAR
    norm = cv2.resize(crop, (SHARPNESS_SIDE, SHARPNESS_SIDE), interpolation=interp)
    sharpness = float(cv2.Laplacian(norm, cv2.CV_64F).var())
    edge = min(box.left, box.top, w - box.right, h - box.bottom)
    for x, y in landmarks:
        edge = min(edge, x, y, w - 1 - x, h - 1 - y)
    return QualityMeasures(
        face_width_px=box.width,
        sharpness=round(sharpness, 2),
        brightness=round(brightness, 2),
        edge_distance_px=int(edge),
    )


def gates(
    m: QualityMeasures,
    box: FaceBox,
    landmarks: Sequence[tuple[int, int]],
    frame_shape: tuple[int, int],
    s: FaceSettings,
) -> tuple[QualityIssue, ...]:
    """Every quality gate the face fails, in a fixed order."""
    issues: list[QualityIssue] = []
    h, w = frame_shape
    outside = max(-box.left, -box.top, box.right - w, box.bottom - h, 0)
    landmark_outside = any(not (0 <= x < w and 0 <= y < h) for x, y in landmarks)
    if landmark_outside or outside > s.cutoff_fraction * max(box.width, 1):
        issues.append(QualityIssue.face_cut_off)
    if m.face_width_px < s.min_face_px:
        issues.append(QualityIssue.face_too_small)
    if m.brightness < s.brightness_min:
        issues.append(QualityIssue.too_dark)
    elif m.brightness > s.brightness_max:
        issues.append(QualityIssue.too_bright)
    if m.sharpness < s.blur_min:
        issues.append(QualityIssue.too_blurred)
    return tuple(issues)
