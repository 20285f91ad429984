"""Liveness: telling a present person from a photo, a frozen image or a looped video.

Pure, synchronous functions on numpy arrays; no I/O. Two parts:

Passive liveness (`passive_liveness`) over the frames of one check, with cues
cheap enough for every check (a few ms per frame beyond detection and landmarks):

- pixel identity: block means (8 x 8 px cells) of the face region of every
  frame, including frames passed for their pixels only. A frozen image (every
  frame the same picture) or a looped clip (a moving picture that returns exactly
  to an earlier frame, within the check or against the fingerprints of earlier
  checks of the session) is a spoof. A real camera does not repeat a frame: its
  sensor noise and the person's micro-motion change every frame.
- facial motion: a photo or a screen held to the camera is a plane, so between
  two frames its face moves by one homography (one affine transform when it
  faces the camera). A live face adds motion no homography explains: expression,
  blinks, and the parallax of a 3D head that turns. Each pair of face frames is
  aligned on the landmarks into a canonical face crop, then textured points are
  tracked (pyramidal Lucas-Kanade with a forward-backward check) and fitted with
  one homography; the RMS residual, as a fraction of the inter-ocular distance
  (IOD), is the non-rigid motion. Points are tracked on pixels rather than taken
  from dlib's landmarks because landmark jitter on a static photo is about as
  large as the motion of a live face. Glare that slides over the face (a print or
  a screen) and soft frames make the tracker unreliable: motion seen on them is
  not taken as life.

The verdict is `live` only with non-rigid motion measured on sharp enough frames
and no sign of an attack; `spoof` for a frozen, looped or rigidly moving face;
`inconclusive` otherwise (a person who keeps perfectly still looks like a photo
held perfectly still: ask for an active challenge).

Active challenges (`choose_challenge`, `evaluate_challenge`): the server asks for
an action (blink, turn left or right, look up) and checks it in the frames that
follow, within a time limit, from eye aspect ratio and head pose
(verification/headpose.py), relative to the learner's pose at the prompt. The
action must also move the face non-rigidly: a photo tilted to fake a head turn
moves as a plane and fails.
"""

from __future__ import annotations

import math
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from verification import quality
from verification.headpose import eye_aspect_ratio, head_pose, inter_ocular_px
from verification.protocols import FaceEngine
from verification.types import (
    Challenge,
    ChallengeKind,
    ChallengeOutcome,
    ChallengeResult,
    FaceBox,
    FrameFingerprint,
    Image,
    LivenessFrame,
    LivenessMeasures,
    LivenessReason,
    LivenessResult,
    LivenessVerdict,
)

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
U8 = npt.NDArray[np.uint8]


@dataclass(frozen=True, slots=True)
class LivenessParams:
    """Thresholds of passive liveness and of active challenges.

    Defaults were chosen on the DEV evaluation (bench/pad_eval.py) with margins on
    both sides of the observed classes; see BENCHMARKS.md (liveness).
    """

    # Pixel identity. Distances are the mean absolute difference (0-255 grey levels)
    # between the block means of the face region (the face box grown by 20%, cut
    # into `fingerprint_block`-pixel cells: about 25 x 25 cells for a 150-px face).
    fingerprint_block: int = 8
    # A check whose frames all lie within this distance of each other is frozen.
    # Identical bytes give 0, a frozen picture recompressed on its way about 0.1,
    # the sensor noise of a real camera alone about 0.2, a held photo with hand
    # tremor 0.4 or more, and frames of a live talking head 0.5 s apart 0.5 or more.
    frozen_mad_max: float = 0.25
    frozen_min_span_s: float = 0.5  # shorter checks are not called frozen
    # A return to a frame at least `loop_min_gap_s` earlier, within `repeat_mad_max`,
    # after the picture moved between them by at least `loop_moved_min`, is a loop
    # (and so is a moving check that shows a frame of an earlier check).
    repeat_mad_max: float = 0.25
    loop_min_gap_s: float = 0.5
    loop_moved_min: float = 0.5
    # Facial motion, as fractions of the inter-ocular distance (IOD).
    # Non-rigid residual at or above which the face counts as moving like a live
    # face. Flat photos (held still, moved, tilted up to 30 degrees) measured at most
    # 0.008 (95% below 0.005); live talking heads at least 0.011 (95% above 0.019).
    nonrigid_live_min: float = 0.010
    # Mean landmark displacement at or above which a face with no non-rigid motion
    # is called a flat picture being moved (live talking heads moved up to 0.17
    # within a check; photos moved by hand 0.24 and more).
    rigid_motion_min: float = 0.25
    # Motion evidence needs frames at least this sharp (the engine's sharpness
    # measure; its quality gate refuses below 25): on softer frames tracking noise
    # approaches the live threshold.
    sharpness_min: float = 30.0
    iod_min_px: float = 28.0  # smaller faces are too coarse to measure motion on
    # Motion is not taken as life when glare (grey >= 230) appeared or vanished over
    # more than this share of the aligned face between two frames: a reflection
    # sliding over a print or a screen moves the tracked texture with it.
    glare_moved_max: float = 0.01
    min_tracked_points: int = 20  # fewer tracked points leave a pair unmeasured
    # A long run of frames (a challenge's, 8 a second for 5 s) feeds the facial-motion
    # cue with at most this many face frames, spread evenly over it: about a second
    # apart, as the frames of a check are (and as the DEV evaluation measured). Every
    # frame still feeds pixel identity. Pairs cost about 4 ms each; consecutive
    # frames an eighth of a second apart add cost, not evidence.
    motion_frames_max: int = 6
    # Active challenges.
    challenge_time_limit_s: float = 5.0
    # Frames up to this long after the prompt still show the pose before it (no one
    # reacts faster), and actions completed before it do not count as answers.
    reaction_min_s: float = 0.25
    yaw_change_min_deg: float = 15.0  # a head turn, relative to the pose at the prompt
    pitch_change_min_deg: float = 10.0  # looking up, relative to the pose at the prompt
    # A blink: EAR at most `blink_ear_ratio_max` of the baseline, then back to at least
    # `blink_reopen_ratio_min` of it (EAR also changes with head pose: a blink during
    # a turn may not reopen to the full baseline).
    blink_ear_ratio_max: float = 0.65
    blink_reopen_ratio_min: float = 0.75
    # ...and the eyes' appearance changed at least this many times as much as the
    # rest of the face (a photo whose landmarks jitter into an EAR dip does not).
    blink_eye_change_min: float = 1.5


DEFAULT_PARAMS = LivenessParams()

# Canonical face crop: eye centres at fixed points of a _SIDE x _SIDE crop, so that
# tracking runs at one scale whatever the face size (IOD = 0.4 * _SIDE px).
_SIDE = 128
_EYE_Y = 0.38
_EYE_X = (0.30, 0.70)
_IOD_CANON = (_EYE_X[1] - _EYE_X[0]) * _SIDE
_PATCH_MARGIN = 0.25  # extra canonical side kept around the crop before warping
# Local contrast normalisation: removes the lighting gradients, print tone and
# glare haze that would otherwise pull tracked points (Gaussian sigma, canonical px;
# the std floor keeps flat skin from amplifying noise).
_LCN_SIGMA = 4.0
_LCN_FLOOR = 8.0
# Tracking: pass 1 (coarse to fine, strongest points) recovers what the landmark
# alignment got wrong; pass 2 (fine level only) measures on the refined alignment.
_MAX_POINTS = 150
_P1_POINTS = 60
_LK_WIN = (15, 15)
_LK_LEVELS = 3
_LK_WIN2 = (11, 11)
_LK_LEVELS2 = 1
_LK_CRITERIA = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01)
_FB_MAX_PX = 0.5  # forward-backward tracking disagreement above which a point is dropped
_RANSAC_PX = 1.5
_GLARE_GREY = 230  # grey level at which a pixel counts as glare or blown out
_GLARE_PAD = 15  # px of the canonical crop kept clear around it (the LK window)
_BOX_MARGIN = 0.2  # face region for thumbnails: the box grown by this share of its width
# Discs around the canonical eye centres, radius 30% of the IOD.
_YS, _XS = np.mgrid[0:_SIDE, 0:_SIDE]
_EYE_DISCS = (
    np.minimum(
        np.hypot(_XS - _EYE_X[0] * _SIDE, _YS - _EYE_Y * _SIDE),
        np.hypot(_XS - _EYE_X[1] * _SIDE, _YS - _EYE_Y * _SIDE),
    )
    <= 0.3 * _IOD_CANON
)
_L_EYE = list(range(36, 42))
_R_EYE = list(range(42, 48))


# -- observing frames ----------------------------------------------------------


def observe(
    engine: FaceEngine, image: Image, t_s: float, near: FaceBox | None = None
) -> LivenessFrame:
    """A `LivenessFrame` of `image` with the largest face's box and 68 landmarks
    (or none when no face is found). Costs one detection and one landmark fit;
    a caller that already holds the box from its check should reuse it.

    `near`, a face found in a frame of the same check, narrows the detection to a
    window around it (the whole frame is searched when the face is not there).
    Pass the same `near` for every frame of a check: the same window and scale
    give identical frames identical boxes and landmarks."""
    boxes = engine.detect_near(image, near) if near is not None else []
    if not boxes:
        boxes = engine.detect(image)
    if not boxes:
        return LivenessFrame(t_s, image)
    box = boxes[0]
    points = engine.landmarks(image, box, 68)
    return LivenessFrame(t_s, image, box, tuple((int(x), int(y)) for x, y in points))


def _grey(image: Image) -> U8:
    return np.asarray(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), dtype=np.uint8)


# -- pixel identity --------------------------------------------------------------

_Q = 16.0  # fingerprint cells hold grey levels in 1/16 steps


@dataclass(frozen=True, slots=True)
class _Grid:
    """A rectangle of whole `block`-pixel cells of a frame."""

    block: int
    col: int
    row: int
    cols: int
    rows: int


def _grid(box: FaceBox | None, shape: tuple[int, ...], block: int) -> _Grid:
    h, w = shape[:2]
    max_cols, max_rows = w // block, h // block
    if box is None:
        return _Grid(block, 0, 0, max_cols, max_rows)
    m = _BOX_MARGIN * box.width
    c0 = max(0, math.floor((box.left - m) / block))
    r0 = max(0, math.floor((box.top - m) / block))
    c1 = min(max_cols, math.ceil((box.right + m) / block))
    r1 = min(max_rows, math.ceil((box.bottom + m) / block))
    if c1 - c0 < 2 or r1 - r0 < 2:
        return _Grid(block, 0, 0, max_cols, max_rows)
    return _Grid(block, c0, r0, c1 - c0, r1 - r0)


def _union(boxes: Sequence[FaceBox]) -> FaceBox | None:
    if not boxes:
        return None
    return FaceBox(
        min(b.left for b in boxes),
        min(b.top for b in boxes),
        max(b.right for b in boxes),
        max(b.bottom for b in boxes),
        0.0,
    )


def _cells(image: Image, g: _Grid) -> F32:
    """Mean grey level of every cell of `g` (exact block means)."""
    b = g.block
    crop = image[g.row * b : (g.row + g.rows) * b, g.col * b : (g.col + g.cols) * b]
    grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY).astype(np.float32)
    # Area interpolation by a whole factor is the exact mean of each block.
    means = cv2.resize(grey, (g.cols, g.rows), interpolation=cv2.INTER_AREA)
    return np.asarray(np.round(means * _Q) / _Q, dtype=np.float32)


def _to_fingerprint(t_s: float, shape: tuple[int, ...], g: _Grid, cells: F32) -> FrameFingerprint:
    h, w = shape[:2]
    packed = np.round(cells * _Q).astype("<u2").tobytes()
    return FrameFingerprint(t_s, w, h, g.block, g.col, g.row, g.cols, g.rows, packed)


def fingerprint(frame: LivenessFrame, params: LivenessParams | None = None) -> FrameFingerprint:
    """The fingerprint of one frame over its own face region (or the whole frame)."""
    block = (params or DEFAULT_PARAMS).fingerprint_block
    g = _grid(frame.box, frame.image.shape, block)
    return _to_fingerprint(frame.t_s, frame.image.shape, g, _cells(frame.image, g))


_Slices = tuple[slice, slice]


def _overlap(
    a: FrameFingerprint | tuple[int, int, _Grid], b: FrameFingerprint
) -> tuple[_Slices, _Slices] | None:
    """The cells two fingerprints share, as (rows, cols) slices into each; None
    unless same-sized frames, the same block, and at least half of the smaller
    rectangle shared."""
    if isinstance(a, FrameFingerprint):
        size, ga = (a.frame_width, a.frame_height), _Grid(a.block, a.col, a.row, a.cols, a.rows)
    else:
        size, ga = (a[0], a[1]), a[2]
    if size != (b.frame_width, b.frame_height) or ga.block != b.block:
        return None
    c0, c1 = max(ga.col, b.col), min(ga.col + ga.cols, b.col + b.cols)
    r0, r1 = max(ga.row, b.row), min(ga.row + ga.rows, b.row + b.rows)
    if c1 <= c0 or r1 <= r0:
        return None
    if (c1 - c0) * (r1 - r0) * 2 < min(ga.cols * ga.rows, b.cols * b.rows):
        return None
    return (
        (slice(r0 - ga.row, r1 - ga.row), slice(c0 - ga.col, c1 - ga.col)),
        (slice(r0 - b.row, r1 - b.row), slice(c0 - b.col, c1 - b.col)),
    )


def _cells_of(f: FrameFingerprint) -> F32:
    raw = np.frombuffer(f.cells, dtype="<u2").reshape(f.rows, f.cols)
    return np.asarray(raw.astype(np.float32) / _Q, dtype=np.float32)


def fingerprint_distance(a: FrameFingerprint, b: FrameFingerprint) -> float | None:
    """Mean absolute difference (grey levels) of two fingerprints over the cells
    they share; None unless they come from same-sized frames, use the same block
    and share at least half of the smaller rectangle."""
    ov = _overlap(a, b)
    if ov is None:
        return None
    return float(np.abs(_cells_of(a)[ov[0]] - _cells_of(b)[ov[1]]).mean())


def _mad_matrix(cells: F32) -> F32:
    n = cells.shape[0]
    flat = cells.reshape(n, -1)
    d = np.zeros((n, n), dtype=np.float32)
    for i in range(n - 1):
        row = np.abs(flat[i + 1 :] - flat[i]).mean(axis=1)
        d[i, i + 1 :] = row
        d[i + 1 :, i] = row
    return d


@dataclass(frozen=True, slots=True)
class _Identity:
    change_max: float | None
    frozen: bool
    looped: bool
    repeat_mad: float | None
    repeat_gap_s: float | None
    history_matches: int
    fingerprints: tuple[FrameFingerprint, ...]


def _pixel_identity(
    frames: Sequence[LivenessFrame],
    box: FaceBox | None,
    history: Sequence[FrameFingerprint],
    p: LivenessParams,
) -> _Identity:
    times = [f.t_s for f in frames]
    shape = frames[0].image.shape
    g = _grid(box, shape, p.fingerprint_block)
    cells = np.stack([_cells(f.image, g) for f in frames])
    own = tuple(_to_fingerprint(f.t_s, shape, g, c) for f, c in zip(frames, cells, strict=True))
    n = len(frames)
    if n < 2:
        return _Identity(None, False, False, None, None, 0, own)
    d = _mad_matrix(cells)
    change_max = float(d.max())
    frozen = times[-1] - times[0] >= p.frozen_min_span_s and change_max <= p.frozen_mad_max
    # Returns: pairs far enough apart in time, with a frame between them that moved.
    repeat_mad: float | None = None
    repeat_gap: float | None = None
    looped = False
    for a in range(n):
        for b in range(a + 2, n):
            gap = times[b] - times[a]
            if gap < p.loop_min_gap_s or float(d[a, a + 1 : b].max()) < p.loop_moved_min:
                continue
            if repeat_mad is None or float(d[a, b]) < repeat_mad:
                repeat_mad, repeat_gap = float(d[a, b]), gap
            if d[a, b] <= p.repeat_mad_max:
                looped = True
    # Against earlier checks: a moving picture that shows a frame seen before.
    hit = np.zeros(n, dtype=bool)
    if change_max >= p.loop_moved_min:
        h_, w_ = shape[:2]
        t = np.asarray(times)
        for past in history:
            ov = _overlap((w_, h_, g), past)
            if ov is None:
                continue
            (rs, cs), theirs = ov
            dist = np.abs(cells[:, rs, cs] - _cells_of(past)[theirs][None]).mean(axis=(1, 2))
            hit |= (dist <= p.repeat_mad_max) & (np.abs(t - past.t_s) >= p.loop_min_gap_s)
    matches = int(hit.sum())
    return _Identity(
        change_max, frozen, looped or matches > 0, repeat_mad, repeat_gap, matches, own
    )


# -- facial motion -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Face:
    t_s: float
    points: F64  # 68 x 2 landmarks, frame px
    iod: float
    sharpness: float
    patch: U8  # grey face region, pre-shrunk to about canonical scale
    to_patch: F64  # 3x3: frame px -> patch px
    to_canon: F64  # 3x3 similarity: frame px -> canonical crop px


def _similarity_to_canon(points: F64) -> F64:
    a = points[_L_EYE].mean(axis=0)
    b = points[_R_EYE].mean(axis=0)
    src = b - a
    scale = _IOD_CANON / max(float(np.linalg.norm(src)), 1e-6)
    angle = -math.atan2(float(src[1]), float(src[0]))
    c, s = scale * math.cos(angle), scale * math.sin(angle)
    rot = np.array([[c, -s], [s, c]])
    t = np.array([_EYE_X[0] * _SIDE, _EYE_Y * _SIDE]) - rot @ a
    return np.array([[rot[0, 0], rot[0, 1], t[0]], [rot[1, 0], rot[1, 1], t[1]], [0.0, 0.0, 1.0]])


def _prepare(frame: LivenessFrame, grey: U8) -> _Face | None:
    assert frame.box is not None and frame.landmarks is not None
    points = np.asarray(frame.landmarks, dtype=np.float64)
    if points.shape != (68, 2):
        raise ValueError(f"68 landmarks needed, got {points.shape[0]}")
    iod = inter_ocular_px(frame.landmarks)
    if iod < 1.0:
        return None
    sharp = quality.measure(grey, frame.box, frame.landmarks).sharpness
    to_canon = _similarity_to_canon(points)
    scale = math.sqrt(abs(float(np.linalg.det(to_canon[:2, :2]))))
    # The frame region that the canonical crop (with a margin) covers.
    lo, hi = -_PATCH_MARGIN * _SIDE, (1 + _PATCH_MARGIN) * _SIDE
    corners = np.array([[lo, lo, 1], [hi, lo, 1], [hi, hi, 1], [lo, hi, 1]], dtype=np.float64)
    back = (np.linalg.inv(to_canon) @ corners.T).T[:, :2]
    h, w = grey.shape
    x0, y0 = max(0, int(back[:, 0].min())), max(0, int(back[:, 1].min()))
    x1, y1 = min(w, int(math.ceil(back[:, 0].max()))), min(h, int(math.ceil(back[:, 1].max())))
    if x1 - x0 < 8 or y1 - y0 < 8:
        return None
    crop = grey[y0:y1, x0:x1]
    # Shrink with area averaging first: a perspective warp straight to a much
    # smaller crop would alias, and aliasing differs between poses.
    k = min(1.0, scale * 1.25)
    if k < 1.0:
        size = (max(8, round((x1 - x0) * k)), max(8, round((y1 - y0) * k)))
        patch = np.asarray(cv2.resize(crop, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)
        kx, ky = size[0] / (x1 - x0), size[1] / (y1 - y0)
    else:
        patch, kx, ky = np.ascontiguousarray(crop), 1.0, 1.0
    to_patch = np.array([[kx, 0.0, -x0 * kx], [0.0, ky, -y0 * ky], [0.0, 0.0, 1.0]])
    return _Face(frame.t_s, points, iod, sharp, patch, to_patch, to_canon)


def _lcn(image: U8) -> U8:
    f = image.astype(np.float32)
    mean = cv2.GaussianBlur(f, (0, 0), _LCN_SIGMA)
    dev = f - mean
    std = np.sqrt(cv2.GaussianBlur(dev * dev, (0, 0), _LCN_SIGMA))
    return np.asarray(np.clip(dev / (std + _LCN_FLOOR) * 40.0 + 128.0, 0, 255), dtype=np.uint8)


def _warp(face: _Face, frame_to_canon: F64) -> tuple[U8, U8]:
    """The canonical crop of `face` as grey levels and contrast-normalised."""
    m = frame_to_canon @ np.linalg.inv(face.to_patch)
    out = np.asarray(
        cv2.warpPerspective(face.patch, m, (_SIDE, _SIDE), flags=cv2.INTER_LINEAR), dtype=np.uint8
    )
    return out, _lcn(out)


def _track(
    ref: U8, moving: U8, pts: F32, win: tuple[int, int], levels: int
) -> tuple[F32, npt.NDArray[np.bool_]]:
    fwd, st1, _ = cv2.calcOpticalFlowPyrLK(
        ref, moving, pts, pts.copy(), winSize=win, maxLevel=levels, criteria=_LK_CRITERIA
    )
    back, st2, _ = cv2.calcOpticalFlowPyrLK(
        moving, ref, fwd, pts.copy(), winSize=win, maxLevel=levels, criteria=_LK_CRITERIA
    )
    fb = np.linalg.norm((back - pts).reshape(-1, 2), axis=1)
    ok = (st1.ravel() == 1) & (st2.ravel() == 1) & (fb < _FB_MAX_PX)
    return np.asarray(fwd.reshape(-1, 2), dtype=np.float32), ok


@dataclass(frozen=True, slots=True)
class _Pair:
    nonrigid: float  # fraction of IOD
    points: int
    glare_moved: float  # share of the face area where glare appeared or vanished
    eye_change: float  # appearance change around the eyes over that of the rest of the face


def _nonrigid(a: _Face, b: _Face) -> _Pair | None:
    """Residual motion of face `a` relative to face `b` that one homography does not
    explain; None when too few points could be tracked."""
    coarse, _ = cv2.findHomography(a.points, b.points, cv2.LMEDS)
    if coarse is None:
        return None
    ref_grey, ref = _warp(b, b.to_canon)
    a_to_canon = b.to_canon @ coarse
    moving_grey, moving = _warp(a, a_to_canon)
    hull_mask = np.zeros((_SIDE, _SIDE), np.uint8)
    hull = cv2.convexHull((b.points @ b.to_canon[:2, :2].T + b.to_canon[:2, 2]).astype(np.float32))
    cv2.fillConvexPoly(hull_mask, hull.astype(np.int32), 1)
    # No points near glare or blown-out skin in either frame: there the texture is
    # gone and a moving highlight (a print's glare) drags the tracker.
    bright = np.asarray((ref_grey >= _GLARE_GREY) | (moving_grey >= _GLARE_GREY), dtype=np.uint8)
    near_bright = np.asarray(
        cv2.dilate(bright, np.ones((_GLARE_PAD, _GLARE_PAD), np.uint8)), dtype=np.uint8
    )
    mask = np.asarray(hull_mask & (1 - near_bright), dtype=np.uint8)
    found = cv2.goodFeaturesToTrack(ref, _MAX_POINTS, 0.01, 3, mask=mask, blockSize=5)
    if found is None or len(found) < 12:
        return None
    pts = np.asarray(found, dtype=np.float32)
    # Pass 1 corrects what the landmark homography got wrong (landmarks jitter);
    # pass 2 measures what is left on the refined alignment.
    p1 = pts[:_P1_POINTS]
    moved, ok = _track(ref, moving, p1, _LK_WIN, _LK_LEVELS)
    if int(ok.sum()) < 12:
        return None
    refine, _ = cv2.findHomography(p1.reshape(-1, 2)[ok], moved[ok], cv2.RANSAC, _RANSAC_PX)
    if refine is None:
        return None
    moving_grey, moving = _warp(a, np.linalg.inv(refine) @ a_to_canon)
    moved, ok = _track(ref, moving, pts, _LK_WIN2, _LK_LEVELS2)
    n = int(ok.sum())
    if n < 12:
        return None
    src = pts.reshape(-1, 2)[ok].astype(np.float64)
    dst = moved[ok].astype(np.float64)
    fit, _ = cv2.findHomography(src, dst, 0)
    if fit is None:
        return None
    pred = cv2.perspectiveTransform(src[None, :, :], fit)[0]
    r2 = ((pred - dst) ** 2).sum(axis=1)  # residual over every tracked point
    # Glare on the aligned faces: a highlight of the face itself stays where it is
    # on the face; a reflection on a sheet of paper slides across it.
    inside = hull_mask.astype(bool)
    moved_glare = (ref_grey >= _GLARE_GREY) != (moving_grey >= _GLARE_GREY)
    glare = float(np.count_nonzero(moved_glare & inside)) / max(1, int(inside.sum()))
    # Appearance change around the eyes against that of the rest of the face, on
    # the refined alignment: a closing eyelid replaces the eye's texture (its
    # tracks fail the forward-backward check, so the residual misses a blink).
    diff = np.abs(ref.astype(np.float32) - moving.astype(np.float32))
    rest = inside & ~_EYE_DISCS
    eye_change = float(diff[_EYE_DISCS].mean()) / max(1.0, float(diff[rest].mean()))
    return _Pair(float(math.sqrt(float(r2.mean())) / _IOD_CANON), n, glare, eye_change)


def _pairs(n: int) -> list[tuple[int, int]]:
    """Consecutive pairs and first-to-last: every frame is compared, at short and
    long range, with n pairs in all (3 for 3 frames)."""
    out = [(i, i + 1) for i in range(n - 1)]
    if n > 2:
        out.append((0, n - 1))
    return out


@dataclass(frozen=True, slots=True)
class _Motion:
    motion: float
    nonrigid: float | None
    points: int | None
    glare_moved: float | None


def _facial_motion(faces: Sequence[_Face]) -> _Motion:
    motion = 0.0
    pairs: list[_Pair] = []
    for i, j in _pairs(len(faces)):
        a, b = faces[i], faces[j]
        iod = (a.iod + b.iod) / 2.0
        shift = float(np.linalg.norm(a.points - b.points, axis=1).mean()) / iod
        motion = max(motion, shift)
        measured = _nonrigid(a, b)
        if measured is not None:
            pairs.append(measured)
    if not pairs:
        return _Motion(motion, None, None, None)
    return _Motion(
        motion,
        max(q.nonrigid for q in pairs),
        min(q.points for q in pairs),
        max(q.glare_moved for q in pairs),
    )


# -- passive liveness -------------------------------------------------------------------


def passive_liveness(
    frames: Sequence[LivenessFrame],
    params: LivenessParams = DEFAULT_PARAMS,
    history: Sequence[FrameFingerprint] = (),
) -> LivenessResult:
    """Decide whether the frames of one check show a live face.

    `frames` in strictly increasing time; those with a box and 68 landmarks feed
    the facial-motion cue (at most `params.motion_frames_max` of them, spread evenly),
    all of them the pixel-identity cue. `history` holds
    the fingerprints returned by earlier checks of the same session (same clock);
    each check returns one per frame (about 1.5 KB each for a 150-px face).
    """
    started = time.perf_counter()
    times = [f.t_s for f in frames]
    if any(b <= a for a, b in zip(times, times[1:], strict=False)):
        raise ValueError("frames must be in strictly increasing time (distinct frames)")
    p = params
    with_face = [f for f in frames if f.box is not None and f.landmarks is not None]
    # Pixels are compared between frames of one size (a WebRTC track may change
    # resolution within a check: the most common size is used).
    sizes = Counter(f.image.shape for f in frames)
    common = [f for f in frames if sizes and f.image.shape == sizes.most_common(1)[0][0]]
    in_common = {id(f) for f in common}
    box = _union([f.box for f in with_face if f.box is not None and id(f) in in_common])
    ident = _pixel_identity(common, box, history, p) if common else None

    prepared = (_prepare(f, _grey(f.image)) for f in _spread(with_face, p.motion_frames_max))
    faces = [face for face in prepared if face is not None]
    reasons: list[LivenessReason] = []
    if ident is not None and ident.frozen:
        reasons.append(LivenessReason.frozen)
    if ident is not None and ident.looped:
        reasons.append(LivenessReason.looped)
    motion: _Motion | None = None
    live = False
    if len(faces) < 2:
        reasons.append(LivenessReason.too_few_faces)
    elif not (ident is not None and ident.frozen):
        motion = _facial_motion(faces)
        iod = float(np.mean([f.iod for f in faces]))
        sharp = min(f.sharpness for f in faces)
        if motion.nonrigid is None or (motion.points or 0) < p.min_tracked_points:
            reasons.append(LivenessReason.too_few_points)
        elif motion.nonrigid >= p.nonrigid_live_min:
            if sharp < p.sharpness_min:
                reasons.append(LivenessReason.too_blurred)
            elif iod < p.iod_min_px:
                reasons.append(LivenessReason.face_too_small)
            elif (motion.glare_moved or 0.0) > p.glare_moved_max:
                reasons.append(LivenessReason.moving_glare)
            else:
                reasons.append(LivenessReason.nonrigid_motion)
                live = True
        elif motion.motion >= p.rigid_motion_min:
            reasons.append(LivenessReason.rigid_motion)
        else:
            reasons.append(LivenessReason.too_still)
    spoof = {LivenessReason.frozen, LivenessReason.looped, LivenessReason.rigid_motion}
    if any(r in spoof for r in reasons):
        verdict = LivenessVerdict.spoof
    elif live:
        verdict = LivenessVerdict.live
    else:
        verdict = LivenessVerdict.inconclusive
    ears = [eye_aspect_ratio(f.landmarks) for f in with_face if f.landmarks is not None]
    measures = LivenessMeasures(
        frames=len(frames),
        face_frames=len(with_face),
        span_s=round(times[-1] - times[0], 4) if times else 0.0,
        iod_px=round(float(np.mean([f.iod for f in faces])), 2) if faces else None,
        sharpness_min=round(min(f.sharpness for f in faces), 2) if faces else None,
        motion=_r(motion.motion if motion else None),
        nonrigid=_r(motion.nonrigid if motion else None),
        tracked_points=motion.points if motion else None,
        glare_moved=_r(motion.glare_moved if motion else None),
        pixel_change_max=_r(ident.change_max if ident else None),
        repeat_mad=_r(ident.repeat_mad if ident else None),
        repeat_gap_s=_r(ident.repeat_gap_s if ident else None),
        history_matches=ident.history_matches if ident else 0,
        ear_min=_r(min(ears) if ears else None),
        ear_max=_r(max(ears) if ears else None),
        elapsed_ms=round((time.perf_counter() - started) * 1000.0, 3),
    )
    return LivenessResult(verdict, tuple(reasons), measures, ident.fingerprints if ident else ())


def _spread(frames: Sequence[LivenessFrame], most: int) -> Sequence[LivenessFrame]:
    """At most `most` (at least 2) of `frames`, evenly spread, first and last included."""
    n, k = len(frames), max(2, most)
    if n <= k:
        return frames
    return [frames[round(i * (n - 1) / (k - 1))] for i in range(k)]


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 5)


# -- active challenges -----------------------------------------------------------------


def choose_challenge(
    rng: random.Random,
    issued_at_s: float,
    params: LivenessParams = DEFAULT_PARAMS,
    kinds: Sequence[ChallengeKind] = tuple(ChallengeKind),
) -> Challenge:
    """Draw a challenge with the server's random source (pass a
    `secrets.SystemRandom()` in production, a seeded `random.Random` in tests)."""
    if not kinds:
        raise ValueError("no challenge kinds to choose from")
    return Challenge(rng.choice(list(kinds)), issued_at_s, params.challenge_time_limit_s)


@dataclass(frozen=True, slots=True)
class _Pose:
    frame: LivenessFrame
    yaw: float
    pitch: float
    ear: float


def _pose(frame: LivenessFrame) -> _Pose:
    assert frame.landmarks is not None
    h, w = frame.image.shape[:2]
    pose = head_pose(frame.landmarks, (w, h))
    return _Pose(frame, pose.yaw_deg, pose.pitch_deg, eye_aspect_ratio(frame.landmarks))


def _moved_like_a_face(
    base: LivenessFrame, action: Sequence[LivenessFrame], blink: bool, p: LivenessParams
) -> bool | None:
    """Did the face change from `base` to the `action` frames (the frame showing
    the action and up to two after it) as a face does (True) or as one flat
    picture (False)? None if it could not be measured.

    A turn or a look up shows non-rigid motion (3D parallax) in the median of the
    action frames, so that one noisy pair cannot pass a tilted photo. A blink may
    not (the eyelid's tracks are dropped): for a blink, a change of the eyes'
    appearance well above that of the rest of the face at the action frame counts.
    """
    fa = _prepare(base, _grey(base.image))
    if fa is None or fa.sharpness < p.sharpness_min:
        return None
    values: list[float] = []
    for k, frame in enumerate(action):
        fb = _prepare(frame, _grey(frame.image))
        if fb is None or fb.sharpness < p.sharpness_min:
            continue
        m = _nonrigid(fa, fb)
        if m is None or m.points < p.min_tracked_points or m.glare_moved > p.glare_moved_max:
            continue
        if blink and k == 0 and m.eye_change >= p.blink_eye_change_min:
            return True
        values.append(m.nonrigid)
    if not values:
        return None
    return float(np.median(values)) >= p.nonrigid_live_min


def evaluate_challenge(
    challenge: Challenge,
    frames: Sequence[LivenessFrame],
    params: LivenessParams = DEFAULT_PARAMS,
    mirrored: bool = False,
    reference_yaw_deg: float | None = None,
) -> ChallengeResult:
    """Judge the frames around a challenge: passed, failed or timed out.

    `frames` (same clock as the challenge) should start at or shortly before the
    prompt and reach its deadline; those with 68 landmarks are used. The baseline
    is the pose in frames up to `reaction_min_s` after the prompt (or the first
    face frame after it). Set `mirrored` if the client flips its frames
    horizontally: left and right then swap in the image.

    `reference_yaw_deg` (a later round of challenges: the yaw before the first round,
    the learner facing the camera): a turn must also reach past that pose to the asked
    side, by half the asked angle.
    A recording that turned one way and comes back would otherwise pass the opposite
    turn asked next, since coming back is a turn from where the round found it.
    """
    p = params
    issued, deadline = challenge.issued_at_s, challenge.deadline_s
    poses = [_pose(f) for f in frames if f.box is not None and f.landmarks is not None]
    early = [q for q in poses if q.frame.t_s <= issued + p.reaction_min_s]
    after = [q for q in poses if q.frame.t_s > issued + p.reaction_min_s]
    base_frames = early[-3:] or after[:1]
    n_after = len([q for q in poses if q.frame.t_s >= issued])
    if not base_frames or not after:
        return ChallengeResult(
            kind=challenge.kind,
            outcome=ChallengeOutcome.failed,
            reasons=("no_face",),
            response_s=None,
            frames=len(frames),
            face_frames=n_after,
            baseline_yaw_deg=None,
            baseline_pitch_deg=None,
            baseline_ear=None,
            peak_yaw_change_deg=None,
            trough_yaw_change_deg=None,
            peak_pitch_change_deg=None,
            min_ear_ratio=None,
        )
    base_yaw = float(np.median([q.yaw for q in base_frames]))
    base_pitch = float(np.median([q.pitch for q in base_frames]))
    base_ear = float(np.median([q.ear for q in base_frames]))
    baseline = base_frames[-1].frame
    # Image-yaw sign of a turn to the learner's own left: the nose moves to the
    # image's right on an unmirrored camera.
    left = -1.0 if mirrored else 1.0
    kind = challenge.kind

    def hit(q: _Pose, i: int) -> bool:
        dyaw = q.yaw - base_yaw
        # Past the pose before round one by half the asked angle: coming back to it
        # reaches none, while a learner who faced a little aside then still passes.
        ref = 0.0 if reference_yaw_deg is None else q.yaw - reference_yaw_deg
        past = p.yaw_change_min_deg / 2
        if kind is ChallengeKind.turn_left:
            return left * dyaw >= p.yaw_change_min_deg and (
                reference_yaw_deg is None or left * ref >= past
            )
        if kind is ChallengeKind.turn_right:
            return -left * dyaw >= p.yaw_change_min_deg and (
                reference_yaw_deg is None or -left * ref >= past
            )
        if kind is ChallengeKind.look_up:
            return q.pitch - base_pitch >= p.pitch_change_min_deg
        # A blink: closed at this frame, open again at a later one.
        if base_ear <= 0 or q.ear / base_ear > p.blink_ear_ratio_max:
            return False
        return any(r.ear / base_ear >= p.blink_reopen_ratio_min for r in after[i + 1 :])

    def contrary(q: _Pose) -> bool:
        dyaw = q.yaw - base_yaw
        if kind is ChallengeKind.turn_left:
            return -left * dyaw >= p.yaw_change_min_deg
        if kind is ChallengeKind.turn_right:
            return left * dyaw >= p.yaw_change_min_deg
        return False

    first = next((i for i, q in enumerate(after) if hit(q, i)), None)
    response = None if first is None else round(after[first].frame.t_s - issued, 4)
    in_time = [q for q in after if q.frame.t_s <= deadline]
    reasons: list[str] = []
    if first is not None and after[first].frame.t_s <= deadline:
        # The action frame and the next two in time: a turn keeps going.
        action = [q.frame for q in after[first : first + 3] if q.frame.t_s <= deadline]
        moved = _moved_like_a_face(baseline, action, kind is ChallengeKind.blink, p)
        if moved is False:
            outcome, reasons = ChallengeOutcome.failed, ["rigid_motion"]
        elif moved is None:
            outcome, reasons = ChallengeOutcome.failed, ["unmeasurable_motion"]
        else:
            outcome = ChallengeOutcome.passed
    elif any(contrary(q) for q in in_time):
        outcome, reasons = ChallengeOutcome.failed, ["wrong_direction"]
    elif first is not None:
        outcome, reasons = ChallengeOutcome.timed_out, ["late"]
    else:
        outcome, reasons = ChallengeOutcome.timed_out, ["no_response"]
    if poses[-1].frame.t_s < deadline and outcome is not ChallengeOutcome.passed:
        reasons.append("frames_end_before_deadline")
    dyaws = [q.yaw - base_yaw for q in in_time]
    return ChallengeResult(
        kind=kind,
        outcome=outcome,
        reasons=tuple(reasons),
        response_s=response,
        frames=len(frames),
        face_frames=n_after,
        baseline_yaw_deg=round(base_yaw, 2),
        baseline_pitch_deg=round(base_pitch, 2),
        baseline_ear=round(base_ear, 4),
        peak_yaw_change_deg=round(max(dyaws), 2) if dyaws else None,
        trough_yaw_change_deg=round(min(dyaws), 2) if dyaws else None,
        peak_pitch_change_deg=(
            round(max(q.pitch - base_pitch for q in in_time), 2) if in_time else None
        ),
        min_ear_ratio=(
            round(min(q.ear for q in in_time) / base_ear, 4) if in_time and base_ear > 0 else None
        ),
    )
