"""Quality measures of a detected face and the gates that refuse unusable ones.

Pure functions on numpy arrays. Thresholds come from `FaceSettings`.

Occlusion of the lower face (`occlusion`, the `face_occluded` gate) is measured on
a small crop aligned on the two eye centres alone, which both engines give and
which a mask does not hide: the eyes go where SFace's alignment template puts
them (112 x 112 px), so the mouth and chin fall in a fixed region. Two cues,
either of which marks the face occluded:

- colour: in a colour image, the share of mouth-and-chin pixels whose colour is
  skin-like: a skin hue (15-85 degrees in CIELAB's a*b* plane, where skin of every
  tone lies) at a chroma within a factor of the face's own skin chroma, measured
  around the eyes and on the nose bridge above any mask. Lips, stubble and a
  smile's teeth lower the share of an uncovered face; blue, white, grey, black and
  pink masks bring it near zero. A mask printed in skin-like hues, or of skin
  colour, is not caught by this cue.
- uniformity: the share of mouth-and-chin pixels within a small colour distance of
  their median, high for a plain mask of any colour (also in grey-level images,
  where the colour cue does not apply) and low for a mouth, a chin and shading.
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


# SFace's alignment template (OpenCV's face_recognize.cpp): the eye centres of a
# 112 x 112 crop. Eye-aligned crops put the mouth near y = 92 and the chin below 106.
CROP_SIDE = 112
_EYES_AT = np.array([[38.2946, 51.6963], [73.5318, 51.5014]])
# Regions of the eye-aligned crop, (rows, columns): mouth and chin between the
# mouth corners; the band of the eyes, brows, temples and nose bridge.
_LOWER = (slice(78, 100), slice(38, 74))
_UPPER = (slice(30, 62), slice(22, 90))
_SKIN_HUE_DEG = (15.0, 85.0)
_HUE_CHROMA_MIN = 4.0  # below this chroma a pixel's hue is noise
_SKIN_CHROMA = (0.3, 2.0)  # skin-like: chroma within this factor of the face's own skin
_COLOUR_CHROMA_MIN = 6.0  # the face's skin chroma below which the colour cue does not apply
_UPPER_SKIN_PIXELS_MIN = 50
_UNIFORM_DELTA_E = 12.0  # CIELAB distance from the region's median colour


def eye_crop(
    image: npt.NDArray[np.uint8], eyes: Sequence[tuple[float, float]]
) -> npt.NDArray[np.uint8]:
    """The RGB face crop (`CROP_SIDE` px square) aligned on two eye centres (frame px,
    in either order), by a similarity transform; pixels past the frame repeat its edge."""
    a, b = sorted((tuple(map(float, e)) for e in eyes[:2]), key=lambda p: p[0])
    src = np.array([a, b], dtype=np.float64)
    d, dst = src[1] - src[0], _EYES_AT[1] - _EYES_AT[0]
    scale = float(np.linalg.norm(dst) / max(float(np.linalg.norm(d)), 1e-6))
    angle = float(np.arctan2(dst[1], dst[0]) - np.arctan2(d[1], d[0]))
    c, s_ = scale * np.cos(angle), scale * np.sin(angle)
    rot = np.array([[c, -s_], [s_, c]])
    t = _EYES_AT[0] - rot @ src[0]
    warp = np.hstack([rot, t[:, None]])
    interp = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
    crop = cv2.warpAffine(
        image, warp, (CROP_SIDE, CROP_SIDE), flags=interp, borderMode=cv2.BORDER_REPLICATE
    )
    return np.asarray(crop, dtype=np.uint8)


def occlusion(
    image: npt.NDArray[np.uint8], eyes: Sequence[tuple[float, float]]
) -> tuple[float | None, float]:
    """(skin share, uniformity) of the mouth-and-chin region of the face whose eye
    centres are `eyes` (see the module docstring). The skin share is None where the
    colour cue does not apply (a grey-level image, a face with no skin-hued pixels
    around the eyes). About 0.3 ms."""
    crop = cv2.GaussianBlur(eye_crop(image, eyes), (3, 3), 0)
    lab = cv2.cvtColor(crop, cv2.COLOR_RGB2LAB).astype(np.float32)
    a, b = lab[..., 1] - 128.0, lab[..., 2] - 128.0
    chroma = np.hypot(a, b)
    hue = np.degrees(np.arctan2(b, a))
    hued = (chroma >= _HUE_CHROMA_MIN) & (hue >= _SKIN_HUE_DEG[0]) & (hue <= _SKIN_HUE_DEG[1])
    lower = lab[_LOWER].reshape(-1, 3)
    median = np.median(lower, axis=0)
    uniformity = float(np.mean(np.linalg.norm(lower - median, axis=1) < _UNIFORM_DELTA_E))
    upper = hued[_UPPER]
    if int(upper.sum()) < _UPPER_SKIN_PIXELS_MIN:
        return None, uniformity
    reference = float(np.median(chroma[_UPPER][upper]))
    if reference < _COLOUR_CHROMA_MIN:
        return None, uniformity
    skin = hued & (chroma >= _SKIN_CHROMA[0] * reference) & (chroma <= _SKIN_CHROMA[1] * reference)
    return float(skin[_LOWER].mean()), uniformity


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
    if (m.lower_skin is not None and m.lower_skin < s.occlusion_skin_min) or (
        m.lower_uniformity is not None and m.lower_uniformity > s.occlusion_uniformity_max
    ):
        issues.append(QualityIssue.face_occluded)
    return tuple(issues)
