"""Replayed frames: is a check frame a copy of an earlier evidence or enrolment frame?

An operator who can fetch a retained evidence frame (or the enrolment photo) can post
it back as a new check frame. Re-encoded, with a little noise, cropped or rescaled,
its bytes and its SHA-256 change while the face still matches. This module keeps a
small signature of every stored frame and tells whether a new frame is one of them
after such changes. Pure, synchronous functions on numpy arrays; no I/O.

The signature (`frame_signature`, serialised by `encode_signature` to 296 bytes, see
`SIGNATURE_BYTES`) is the inner face, aligned on the eye landmarks into a canonical
frame and sampled on a 16 x 16 grid of cells after a Gaussian blur of 0.6 cell:

- canonical units are inter-ocular distances (IOD: between the two eye centres),
  origin at the eyes' midpoint, x to the image's right, y down. The grid covers
  x in [-1.1, 1.1] and y in [-0.6, 1.6]: eyebrows to chin, cheek to cheek, so
  mostly skin and features that move when a person moves, little background;
- one cell is 0.1375 IOD (about 13 px for a face 100 px between the eyes); the
  blur makes every cell a band-limited sample that survives JPEG, noise and
  rescaling, and makes the samples smooth enough to align to a fraction of a cell;
- grey levels are stretched over the cells inside the frame to the full uint8
  range (only the shape of the grey-level pattern matters, not its brightness or
  contrast);
- each cell records whether its blur support lies inside the frame; frames are
  compared on the cells inside both.

The comparison (`find_replay`, `compare`) takes the new frame itself, not only its
signature: the new frame is resampled under the affine warp and the tone curve (a
quadratic in grey level: gain, offset and a bend for gamma and mild clipping) that
best explain the stored cells, found by Gauss-Newton from the landmark alignment,
so landmark jitter of a few pixels costs nothing. The score is the share of the
stored cells' variance that the best-aligned new frame leaves unexplained (the
residual of that fit over the cells inside both frames). On the DEV sets
(bench/replay_eval.py): 0 for the same pixels; at most 1e-3 for 99.8% of replays
after JPEG (q50-95), noise (sigma up to 4), crops (up to 8% a side), scaling
(0.7-1.3), slight light changes and all of them at once; 2.2e-3 and more for two
frames of a talking head 1 s or more apart; 0.04 and more for two different photos.
Why the new frame and not two signatures: a 16 x 16 sample cannot be re-sampled at
a sub-cell offset without losing as much as two honest frames differ by; the new
frame can.

For speed, every stored signature is first scored against a linearisation of the
new frame around its landmark alignment (one matrix product for the whole bank),
and only the few closest (`ReplayParams.max_candidates`) are aligned exactly:
well under 10 ms for 5,000 stored signatures on one core (bench/replay_eval.py).

What it cannot do: two frames of a person who did not move between them (frames
of a burst a frame interval apart, or a codec's repeated frame) are as alike as a
replay: two thirds of adjacent frames of the DEV talking heads score under the
threshold. Compare a new frame only with frames kept at earlier checks, never with
frames of its own check. A replay brightened until its highlights clip (gain 1.1
and +10 grey levels) escapes about one time in ten; one edited to move the face
(a warp, a new expression) is a new frame, for liveness to judge.
"""

from __future__ import annotations

import math
import struct
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from verification.exceptions import VerificationError
from verification.types import FaceBox, FrameSignature, Image, ReplayMatch, ReplayVerdict

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]

# -- the signature's geometry: fixed per format version ---------------------------

FORMAT_VERSION = 1
_MAGIC = b"RS"
GRID = 16  # cells per side
# Canonical region (IOD units): x0, x1, y0, y1.
REGION = (-1.1, 1.1, -0.6, 1.6)
BLUR_CELLS = 0.6  # Gaussian sigma, in cells, applied before sampling
# dlib's 5 landmarks (outer and inner corner of the eye on the image's right, outer
# and inner corner of the other eye, base of the nose) in canonical units: medians
# over the DEV identity images.
CANON_5: F64 = np.array(
    [[0.70, 0.0], [0.30, 0.0], [-0.70, 0.0], [-0.30, 0.0], [0.0, 0.76]], dtype=np.float64
)
# dlib's 68-point indices of the same 5 points, so either layout can be passed.
_FROM_68 = (45, 42, 36, 39, 33)
MIN_IOD_PX = 10.0  # smaller faces carry too little detail to tell frames apart
# The tone curve fitted between two frames: a polynomial in grey level of this
# degree. In the DEV experiments, 1 (gain and offset) left replays after gamma 0.9
# and 1.1 at a median of 4.5e-4, near the threshold; 2 took them to 1.3e-4 and raised
# the share caught of replays whose highlights clip from 84% to 89% (gain 1.1, +10)
# and from 79% to 91% (contrast x1.2), while lowering the closest honest talking-
# head scores by under 4% (the closest photos of two people by a quarter, still 40
# times the threshold).
_TONE_DEGREE = 2
_WORK_CELL_PX = 4.0  # the face region is area-shrunk to about this many px per cell

_HEADER = struct.Struct("<2sBBHH")  # magic, version, grid, IOD in 1/4 px, reserved (0)
_N = GRID * GRID
_MASK_BYTES = _N // 8  # one bit per cell
SIGNATURE_BYTES = _HEADER.size + _MASK_BYTES + _N  # 296


class SignatureFormatError(VerificationError, ValueError):
    """Stored signature bytes that this version cannot read (wrong magic, version or
    length). The message names what is wrong."""


@dataclass(frozen=True, slots=True)
class ReplayParams:
    """Thresholds of the replay decision. Scores are unexplained-variance shares
    (0 = the same pixels, 1 = unrelated); see the module docstring.

    Chosen on the DEV sets (bench/replay_eval.py; figures in the report on issue
    21): 99.8% of replays after the changes of the issue scored at most 1e-3 (the
    rest up to 2.3e-3: bright photos whose highlights clip); honest frames of the
    talking heads 1 s and 5 s apart scored at least 2.2e-3 and 3.0e-3, other photos
    of one person at least 0.04.
    """

    # At or below this a stored frame is replayed. Under half the lowest honest score
    # measured on frames 1 s or more apart (2.2e-3): the margin is for honest learners
    # who keep stiller than the DEV clips do.
    threshold: float = 1.0e-3
    # The linearised pre-filter share above which a stored frame is not aligned
    # exactly. The linearisation overstates the exact score when the landmarks of
    # the two frames disagree by more than a fraction of a cell: replays on the DEV
    # set reached 0.3 (99% under 0.02); a different person's photo scored 0.11 and
    # more. Only a cap on work: `max_candidates` bounds it anyway.
    prefilter_max: float = 0.5
    # At most this many stored frames (the lowest pre-filter shares) are aligned.
    max_candidates: int = 8
    # A stored frame is comparable only when at least this share of the grid lies
    # inside both frames; less (a face half out of a frame) is not evidence either way.
    min_overlap: float = 0.5
    iterations: int = 20  # Gauss-Newton steps at most per aligned candidate


# -- landmarks and geometry ----------------------------------------------------------


def _five_points(landmarks: Sequence[tuple[float, float]]) -> F64:
    pts = np.asarray(landmarks, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2 or pts.shape[0] not in (5, 68):
        raise ValueError(f"5 or 68 (x, y) landmarks needed, got shape {pts.shape}")
    if pts.shape[0] == 68:
        pts = pts[list(_FROM_68)]
    if not np.all(np.isfinite(pts)):
        raise ValueError("landmarks must be finite")
    return pts


# The 2x3 least-squares similarity (no reflection) taking `src` to `dst`.
def _similarity(src: F64, dst: F64) -> F64:
    ms, md = src.mean(axis=0), dst.mean(axis=0)
    s, d = src - ms, dst - md
    norm = float((s * s).sum())
    a = float((s[:, 0] * d[:, 0] + s[:, 1] * d[:, 1]).sum()) / norm
    b = float((s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0]).sum()) / norm
    m = np.array([[a, -b, 0.0], [b, a, 0.0]])
    m[:, 2] = md - m[:, :2] @ ms
    return m


def _cell_centres() -> F64:
    x0, x1, y0, y1 = REGION
    xs = x0 + (np.arange(GRID) + 0.5) * (x1 - x0) / GRID
    ys = y0 + (np.arange(GRID) + 0.5) * (y1 - y0) / GRID
    gx, gy = np.meshgrid(xs, ys)  # row-major: row = y, column = x
    return np.column_stack([gx.ravel(), gy.ravel()])


_U = _cell_centres()  # (256, 2) canonical cell centres
# Columns of the Jacobian of a sample with respect to the 6 affine parameters
# (row-major [[a, b, tx], [c, d, ty]]) are gx*u, gx*v, gx, gy*u, gy*v, gy.
_U1 = np.column_stack([_U, np.ones(_N)])


# -- the new frame, prepared for sampling ----------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class ReplayProbe:
    """A frame prepared for comparison: its blurred face region at working scale
    with its gradients, and its own signature (store that one once the frame is
    kept as evidence). Build with `probe_frame`."""

    signature: FrameSignature
    planes: F32  # (h, w, 3): blurred grey, d/dx, d/dy (per working px)
    start: F64  # 2x3 affine: canonical units -> working px, from the landmarks
    bounds: tuple[float, float, float, float]  # area of inside samples, working px: x0, x1, y0, y1


def probe_frame(
    image: Image, box: FaceBox, landmarks: Sequence[tuple[float, float]]
) -> ReplayProbe:
    """Prepare one decoded RGB uint8 frame, its face box and that face's landmarks
    (dlib's 5 points or 68 points, frame px) for `find_replay` and `compare`.

    Raises ValueError for a frame that is not RGB uint8, landmarks that are not
    5 or 68 finite points or lie outside the box, or a face under `MIN_IOD_PX`.
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"an RGB uint8 image is needed, got {image.dtype} {image.shape}")
    pts = _five_points(landmarks)
    bw, bh = max(box.width, 1), max(box.height, 1)
    cx, cy = pts.mean(axis=0)
    if not (
        box.left - 0.5 * bw <= cx <= box.right + 0.5 * bw
        and box.top - 0.5 * bh <= cy <= box.bottom + 0.5 * bh
    ):
        raise ValueError("the landmarks are not those of the face in the box")
    # Canonical units -> frame px, from the four eye corners only: on the same frame
    # re-encoded, dlib's nose point moved by up to a fifth of the IOD on the DEV
    # set, the eye corners by a pixel or two.
    to_frame = _similarity(CANON_5[:4], pts[:4])
    iod = math.hypot(to_frame[0, 0], to_frame[1, 0])
    if iod < MIN_IOD_PX:
        raise ValueError(f"face too small for a replay signature ({iod:.1f} px between eyes)")
    h, w = image.shape[:2]
    x0, x1, y0, y1 = REGION
    cell_px = (x1 - x0) / GRID * iod
    sigma = BLUR_CELLS * cell_px  # frame px
    # The frame region the grid covers, with room for the blur and for the
    # alignment to move the grid by a cell or two.
    corners = np.array([[x0, y0, 1.0], [x1, y0, 1.0], [x1, y1, 1.0], [x0, y1, 1.0]])
    back = corners @ to_frame.T
    pad = 3.0 * sigma + 2.0 * cell_px + 2.0
    rx0 = max(0, math.floor(back[:, 0].min() - pad))
    ry0 = max(0, math.floor(back[:, 1].min() - pad))
    rx1 = min(w, math.ceil(back[:, 0].max() + pad))
    ry1 = min(h, math.ceil(back[:, 1].max() + pad))
    if rx1 - rx0 < 4 or ry1 - ry0 < 4:
        raise ValueError("the face region lies outside the frame")
    roi = image[ry0:ry1, rx0:rx1]
    grey: F32 = cv2.cvtColor(roi, cv2.COLOR_RGB2GRAY).astype(np.float32)
    # Area-shrink to about _WORK_CELL_PX px per cell before blurring: the same
    # band-limited samples at any face size, for a fraction of the work.
    k = min(1.0, _WORK_CELL_PX / cell_px)
    size = (max(4, round((rx1 - rx0) * k)), max(4, round((ry1 - ry0) * k)))
    if k < 1.0:
        grey = np.asarray(cv2.resize(grey, size, interpolation=cv2.INTER_AREA), np.float32)
    kx, ky = size[0] / (rx1 - rx0), size[1] / (ry1 - ry0)
    sw = sigma * (kx + ky) / 2.0
    blurred = cv2.GaussianBlur(grey, (0, 0), sw, borderType=cv2.BORDER_REPLICATE)
    gx = np.zeros_like(blurred)
    gy = np.zeros_like(blurred)
    gx[:, 1:-1] = (blurred[:, 2:] - blurred[:, :-2]) * 0.5
    gy[1:-1, :] = (blurred[2:, :] - blurred[:-2, :]) * 0.5
    planes = np.ascontiguousarray(np.stack([blurred, gx, gy], axis=-1), np.float32)
    # Frame px -> working px (pixel centres: src = (dst + 0.5) / k - 0.5).
    to_work = np.array([[kx, 0.0, (0.5 - rx0) * kx - 0.5], [0.0, ky, (0.5 - ry0) * ky - 0.5]])
    start = to_work[:, :2] @ to_frame
    start[:, 2] += to_work[:, 2]
    # Samples are inside where their blur support (2 sigma) lies in the frame, not
    # just in the region cut out of it, and a pixel inside the working image.
    m = 2.0 * sigma
    bounds = (
        max((m + 0.5 - rx0) * kx - 0.5, 1.0),
        min((w - 1 - m + 0.5 - rx0) * kx - 0.5, size[0] - 2.0),
        max((m + 0.5 - ry0) * ky - 0.5, 1.0),
        min((h - 1 - m + 0.5 - ry0) * ky - 0.5, size[1] - 2.0),
    )
    values, inside = _sample(planes, start, bounds)
    signature = _make_signature(values[:, 0], inside, iod)
    return ReplayProbe(signature, planes, start, bounds)


def frame_signature(
    image: Image, box: FaceBox, landmarks: Sequence[tuple[float, float]]
) -> FrameSignature:
    """The signature of one decoded RGB uint8 frame's face (see `probe_frame`)."""
    return probe_frame(image, box, landmarks).signature


# The 3 planes at the grid's cell centres under `warp` (canonical -> working px),
# bilinear, and which samples are inside `bounds`.
def _sample(planes: F32, warp: F64, bounds: tuple[float, float, float, float]) -> tuple[F32, Bools]:
    pts = _U1 @ warp.T
    mx = pts[:, 0].astype(np.float32).reshape(1, -1)
    my = pts[:, 1].astype(np.float32).reshape(1, -1)
    out = cv2.remap(planes, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    values = np.asarray(out, dtype=np.float32).reshape(_N, 3)
    x0, x1, y0, y1 = bounds
    inside = (pts[:, 0] >= x0) & (pts[:, 0] <= x1) & (pts[:, 1] >= y0) & (pts[:, 1] <= y1)
    return values, inside


def _make_signature(values: F32, inside: Bools, iod: float) -> FrameSignature:
    v = values.astype(np.float64)
    if inside.any():
        lo, hi = float(v[inside].min()), float(v[inside].max())
    else:
        lo, hi = 0.0, 0.0
    scale = 255.0 / (hi - lo) if hi - lo > 1e-6 else 0.0
    cells = np.clip(np.rint((v - lo) * scale), 0, 255).astype(np.uint8)
    return FrameSignature(
        version=FORMAT_VERSION,
        grid=GRID,
        iod_px=round(iod * 4) / 4,
        inside=np.packbits(inside.astype(np.uint8)).tobytes(),
        cells=cells.tobytes(),
    )


# -- serialisation ------------------------------------------------------------------------


def encode_signature(signature: FrameSignature) -> bytes:
    """The stored form of a signature, `SIGNATURE_BYTES` (296) bytes, little-endian:

    - 0-1: magic b"RS"; 2: format version (1); 3: grid side (16);
    - 4-5: uint16, the inter-ocular distance in 1/4 px (diagnostic only); 6-7: zero;
    - 8-39: inside the frame, one bit per cell, cells row-major (row = y), most
      significant bit first (numpy.packbits);
    - 40-295: the 256 cells, same order, uint8 grey levels stretched over the
      inside cells.
    """
    _check_signature(signature)
    iod_q = min(65535, max(0, round(signature.iod_px * 4)))
    head = _HEADER.pack(_MAGIC, signature.version, signature.grid, iod_q, 0)
    return head + signature.inside + signature.cells


def decode_signature(data: bytes) -> FrameSignature:
    """Read `encode_signature`'s bytes; raises `SignatureFormatError` naming the
    problem for anything else (another type, magic, version, grid or length)."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise SignatureFormatError(f"a signature is bytes, not {type(data).__name__}")
    raw = bytes(data)
    if len(raw) < _HEADER.size:
        raise SignatureFormatError(
            f"a signature is {SIGNATURE_BYTES} bytes; got {len(raw)} (too short for a header)"
        )
    magic, version, grid, iod_q, _ = _HEADER.unpack_from(raw)
    if magic != _MAGIC:
        raise SignatureFormatError(f"not a replay signature (magic {magic!r}, expected {_MAGIC!r})")
    if version != FORMAT_VERSION:
        raise SignatureFormatError(
            f"signature format version {version} is not supported (this code reads "
            f"version {FORMAT_VERSION}); recompute the signature from the evidence frame"
        )
    if len(raw) != SIGNATURE_BYTES:
        raise SignatureFormatError(
            f"a version {FORMAT_VERSION} signature is {SIGNATURE_BYTES} bytes; got {len(raw)}"
        )
    a = _HEADER.size
    b = a + _MASK_BYTES
    signature = FrameSignature(version, grid, iod_q / 4, raw[a:b], raw[b:])
    _check_signature(signature)
    return signature


def _check_signature(s: FrameSignature) -> None:
    if s.version != FORMAT_VERSION:
        raise SignatureFormatError(f"signature format version {s.version} is not supported")
    if s.grid != GRID:
        raise SignatureFormatError(f"signature grid {s.grid} is not {GRID}")
    if len(s.inside) != _MASK_BYTES or len(s.cells) != _N:
        raise SignatureFormatError(
            f"signature fields have {len(s.inside)} inside and {len(s.cells)} cell bytes; "
            f"expected {_MASK_BYTES} and {_N}"
        )


# -- the stored side, packed for vectorised scoring --------------------------------------


class SignatureBank:
    """Stored signatures packed for `find_replay`: row i is the i-th signature given.

    Build it once per set of stored frames (for example an institution's, cached
    and extended as frames are kept) and reuse it for every new frame.
    """

    def __init__(self, signatures: Iterable[FrameSignature]) -> None:
        sigs = list(signatures)
        for s in sigs:
            _check_signature(s)
        n = len(sigs)
        cells = np.frombuffer(b"".join(s.cells for s in sigs), dtype=np.uint8).reshape(n, _N)
        inside = np.frombuffer(b"".join(s.inside for s in sigs), dtype=np.uint8)
        self.cells: F32 = cells.astype(np.float32)
        self.squares: F32 = self.cells * self.cells
        self.inside: Bools = np.unpackbits(inside.reshape(n, _MASK_BYTES), axis=1).astype(bool)

    @classmethod
    def from_bytes(cls, blobs: Iterable[bytes]) -> SignatureBank:
        """A bank from stored signature bytes; `SignatureFormatError` on bad bytes."""
        return cls(decode_signature(b) for b in blobs)

    def __len__(self) -> int:
        return int(self.cells.shape[0])

    def extended(self, signatures: Iterable[FrameSignature]) -> SignatureBank:
        """A new bank: this one's rows, then `signatures` (the frames kept since)."""
        more = SignatureBank(signatures)
        out = SignatureBank([])
        out.cells = np.concatenate([self.cells, more.cells])
        out.squares = np.concatenate([self.squares, more.squares])
        out.inside = np.concatenate([self.inside, more.inside])
        return out


# -- comparison ------------------------------------------------------------------------------


# Fit x by the tone curve of y (a polynomial of degree _TONE_DEGREE): the share of
# x's variance it leaves (0-1), the residual, and the curve's slope at each y.
def _tone_fit(x: F64, y: F64) -> tuple[float, F64, F64]:
    xc = x - x.mean()
    sxx = float(xc @ xc)
    yc = y - y.mean()
    sd = float(np.sqrt((yc @ yc) / max(len(y), 1)))
    if sd <= 1e-6 or sxx <= 1e-9:
        return 1.0, xc, np.zeros_like(y)
    t = yc / sd
    basis = np.column_stack([t**k for k in range(_TONE_DEGREE + 1)])
    coef = np.linalg.solve(basis.T @ basis, basis.T @ x)
    resid = x - basis @ coef
    slope = coef[1] + sum(k * coef[k] * t ** (k - 1) for k in range(2, _TONE_DEGREE + 1))
    return min(1.0, float(resid @ resid) / sxx), resid, np.asarray(slope / sd, dtype=np.float64)


# Gauss-Newton stops when a step improves the share by less than this fraction of
# it, or when after two steps the share is still above _HOPELESS: the worst start
# seen on the DEV set, a replay at 0.31 (a misplaced landmark), was at 0.024 after
# one step and 0.0023 after two; photos of other people stay above 0.04.
_STALL = 0.02
_HOPELESS = 0.05


# The lowest unexplained share of `cells` over the affine warps that Gauss-Newton
# visits from the landmark alignment; None when fewer than `min_overlap` of the
# cells lie inside both frames.
def _align(probe: ReplayProbe, cells: F64, inside: Bools, params: ReplayParams) -> float | None:
    warp = probe.start.copy()
    min_cells = params.min_overlap * _N
    # The landmark alignment is off by a fraction of the IOD at most for a replay:
    # a walk of more than half an IOD or a third in scale has lost its way.
    iod = math.sqrt(abs(float(np.linalg.det(warp[:, :2]))))
    best: float | None = None
    for step in range(params.iterations + 1):
        values, ok = _sample(probe.planes, warp, probe.bounds)
        m = ok & inside
        if m.sum() < min_cells:
            break
        x = cells[m]
        v = values[m].astype(np.float64)
        # Variable projection: the tone curve is solved for each warp, the warp by
        # one Gauss-Newton step on what the curve leaves.
        share, resid, slope = _tone_fit(x, v[:, 0])
        if best is not None and best - share < _STALL * share:
            best = min(best, share)
            break
        best = share if best is None else min(best, share)
        if share == 0.0 or step == params.iterations or not slope.any():
            break
        if step >= 2 and share > _HOPELESS:
            break
        u = _U1[m]
        jac = slope[:, None] * np.column_stack([v[:, 1:2] * u, v[:, 2:3] * u])
        jac -= jac.mean(axis=0)
        normal = jac.T @ jac
        normal[np.diag_indices(6)] += 1e-9 * float(np.trace(normal)) + 1e-12
        d = np.linalg.solve(normal, jac.T @ resid).reshape(2, 3)
        warp = warp + d
        moved = float(np.hypot(*(warp[:, 2] - probe.start[:, 2])))
        scale = math.sqrt(abs(float(np.linalg.det(warp[:, :2])))) / iod
        if moved > 0.5 * iod or not 0.75 <= scale <= 1.33:
            break
    return best


def compare(
    probe: ReplayProbe, stored: FrameSignature, params: ReplayParams | None = None
) -> float | None:
    """The replay score of one stored signature for `probe`: the unexplained
    variance share after exact alignment (0 = the same pixels), or None when less
    than `min_overlap` of the grid lies inside both frames."""
    p = params or ReplayParams()
    _check_signature(stored)
    cells = np.frombuffer(stored.cells, dtype=np.uint8).astype(np.float64)
    inside = np.unpackbits(np.frombuffer(stored.inside, dtype=np.uint8)).astype(bool)
    return _align(probe, cells, inside, p)


def prefilter(probe: ReplayProbe, bank: SignatureBank) -> F32:
    """Linearised scores of every stored signature (one per bank row, 0-1): the
    share of its variance outside the span of a constant, the probe's samples at
    the landmark alignment and their squares (the tone curve) and their 6 affine
    derivatives. A replay scores close to its exact score when the landmarks of
    the two frames agree within a cell, higher otherwise."""
    n = len(bank)
    if n == 0:
        return np.zeros(0, dtype=np.float32)
    values, ok = _sample(probe.planes, probe.start, probe.bounds)
    k = int(ok.sum())
    if k < 9:
        return np.ones(n, dtype=np.float32)
    v = values[ok].astype(np.float64)
    u = _U1[ok]
    y = v[:, 0] - v[:, 0].mean()
    y /= max(float(np.abs(y).max()), 1e-6)
    tone = [y**j for j in range(_TONE_DEGREE + 1)]
    basis = np.column_stack([*tone, v[:, 1:2] * u, v[:, 2:3] * u])
    q, _ = np.linalg.qr(basis)
    q_full = np.zeros((_N, q.shape[1]), dtype=np.float32)
    q_full[ok] = q
    w = ok.astype(np.float32)
    sums = bank.cells @ w
    total = bank.squares @ w - sums * sums / k
    proj = bank.cells @ q_full
    resid = bank.squares @ w - np.einsum("ij,ij->i", proj, proj)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(total > 1e-3, resid / np.maximum(total, 1e-3), 1.0)
    return np.clip(share, 0.0, 1.0).astype(np.float32)


def find_replay(
    probe: ReplayProbe, bank: SignatureBank, params: ReplayParams | None = None
) -> ReplayMatch:
    """Is the probe's frame a replay of one of the bank's stored frames?

    Every stored signature is pre-filtered (`prefilter`); the closest
    `max_candidates` under `prefilter_max` are aligned exactly (`compare`), the
    most promising first, stopping at the first at or under `threshold`.
    `score` and `index` are those of the lowest exact score found (None when no
    stored frame got that far).
    """
    p = params or ReplayParams()
    t0 = time.perf_counter()
    shares = prefilter(probe, bank)
    order = np.argsort(shares, kind="stable")
    order = order[shares[order] <= p.prefilter_max][: p.max_candidates]
    best: float | None = None
    best_index: int | None = None
    examined = 0
    for i in order.tolist():
        examined += 1
        score = _align(probe, bank.cells[i].astype(np.float64), bank.inside[i], p)
        if score is not None and (best is None or score < best):
            best, best_index = score, i
        if best is not None and best <= p.threshold:
            break
    replayed = best is not None and best <= p.threshold
    return ReplayMatch(
        verdict=ReplayVerdict.replayed if replayed else ReplayVerdict.distinct,
        score=None if best is None else round(best, 7),
        index=best_index,
        threshold=p.threshold,
        examined=examined,
        compared=len(bank),
        elapsed_ms=round((time.perf_counter() - t0) * 1000.0, 3),
    )
