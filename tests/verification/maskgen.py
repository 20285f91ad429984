"""Face masks drawn over real faces, for the occlusion gate's tests and benchmark.

A mask is drawn from dlib's 68 landmarks of the face (iBUG 300-W scheme): it
covers the jaw line (points 1-15) up to the bridge of the nose (point 28), as a
surgical or cloth mask does. To keep the gate from being tested on flat
polygons only, the drawing adds what a camera sees on a real mask: shading
across its curve (darker toward the cheeks, a highlight along the nose), a light
direction, pleats or seams, fabric noise, and for some styles a printed pattern.
The `skin` style is a mask close to skin colour, the hardest case for a colour
cue; it is reported apart from the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

Image = np.ndarray


@dataclass(frozen=True, slots=True)
class MaskStyle:
    name: str
    rgb: tuple[int, int, int]
    pleats: bool  # surgical: three horizontal pleats; otherwise one vertical seam
    pattern: tuple[int, int, int] | None = None  # colour of printed dots, if any


STYLES: tuple[MaskStyle, ...] = (
    MaskStyle("surgical_blue", (150, 190, 222), pleats=True),
    MaskStyle("surgical_white", (236, 238, 236), pleats=True),
    MaskStyle("cloth_black", (32, 32, 36), pleats=False),
    MaskStyle("cloth_grey", (128, 130, 134), pleats=False),
    MaskStyle("cloth_navy", (42, 52, 96), pleats=False),
    MaskStyle("cloth_pink", (232, 182, 194), pleats=False),
    MaskStyle("printed", (222, 222, 214), pleats=False, pattern=(200, 60, 70)),
    MaskStyle("kn95_white", (226, 226, 220), pleats=False),
    MaskStyle("skin", (206, 168, 142), pleats=False),
)


def mask_polygon(landmarks: Sequence[tuple[float, float]]) -> np.ndarray:
    """The mask outline (int32 (n, 2), frame px) from 68 landmarks."""
    pts = np.asarray(landmarks, dtype=np.float64)
    if pts.shape != (68, 2):
        raise ValueError(f"68 landmarks needed, got {pts.shape}")
    bridge = pts[28]
    drop = 0.05 * (pts[8, 1] - bridge[1])  # the top edge sags a little between nose and ear
    left_top = (pts[1] + bridge) / 2.0 + (0.0, drop)
    right_top = (pts[15] + bridge) / 2.0 + (0.0, drop)
    outline = [pts[i] for i in range(1, 16)] + [right_top, bridge, left_top]
    return np.round(np.asarray(outline)).astype(np.int32)


def draw_mask(
    image: Image,
    landmarks: Sequence[tuple[float, float]],
    style: MaskStyle,
    rng: np.random.Generator,
) -> Image:
    """A copy of `image` (RGB uint8) with a mask of `style` over the lower face."""
    h, w = image.shape[:2]
    poly = mask_polygon(landmarks)
    cover = np.zeros((h, w), np.uint8)
    cv2.fillPoly(cover, [poly], 255)
    x0, y0 = poly.min(axis=0)
    x1, y1 = poly.max(axis=0)
    cx = float(np.asarray(landmarks, dtype=np.float64)[30, 0])  # under the nose tip
    half = max(1.0, (x1 - x0) / 2.0)
    height = max(1.0, float(y1 - y0))
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    u = (xs - cx) / half  # -1 .. 1 across the mask
    v = (ys - y0) / height  # 0 .. 1 down the mask
    light = float(rng.uniform(-1.0, 1.0))
    # Curvature falloff, a side light, darker toward the chin, a ridge along the nose.
    shade = 1.0 - 0.28 * np.clip(u, -1, 1) ** 2 + 0.10 * light * u - 0.10 * v
    shade += 0.08 * np.exp(-((u / 0.12) ** 2)) * np.clip(1.0 - 2.0 * v, 0.0, 1.0)
    base = np.asarray(style.rgb, dtype=np.float32) * rng.uniform(0.9, 1.1)
    layer = base[None, None, :] * shade[..., None]
    if style.pattern is not None:
        dots = np.zeros((h, w), np.uint8)
        step = max(4, round(half / 4))
        for yy in range(int(y0), int(y1), step):
            for xx in range(int(x0) + (yy // step % 2) * step // 2, int(x1), step):
                cv2.circle(dots, (xx, yy), max(1, step // 4), 255, -1)
        layer = np.where(dots[..., None] > 0, np.asarray(style.pattern, np.float32), layer)
    folds = np.zeros((h, w), np.float32)
    thick = max(1, round(height / 45))
    if style.pleats:
        for k in (0.32, 0.52, 0.72):
            yy = int(y0 + k * height + rng.uniform(-2, 2))
            cv2.line(folds, (int(x0), yy), (int(x1), yy + int(rng.uniform(-3, 3))), -0.22, thick)
            cv2.line(folds, (int(x0), yy + 2 * thick), (int(x1), yy + 2 * thick), 0.08, thick)
    else:
        cv2.line(folds, (int(cx), int(y0)), (int(cx), int(y1)), -0.12, thick)
    sigma = max(0.8, height / 120)
    folds = cv2.GaussianBlur(folds, (0, 0), sigma)
    layer = layer * (1.0 + folds[..., None])
    fabric = cv2.GaussianBlur(rng.normal(0.0, 6.0, (h, w)).astype(np.float32), (0, 0), 0.8)
    layer = layer + fabric[..., None] + rng.normal(0.0, 2.5, layer.shape).astype(np.float32)
    alpha = cv2.GaussianBlur(cover, (0, 0), max(0.7, height / 200)).astype(np.float32)[..., None]
    out = image.astype(np.float32) * (1.0 - alpha / 255.0) + layer * (alpha / 255.0)
    return np.clip(out, 0, 255).astype(np.uint8)
