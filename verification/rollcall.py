"""Roll call in a classroom frame: every face found, identified within the class roster.

Unlike a learner's check (one face, the single-learner fast path) a classroom frame
holds many small faces. Detection runs once, on a grey copy scaled so that the
smallest face to find (`RollCallParams.min_face_px`) reaches the size the HOG
detector finds reliably (`DETECTOR_MIN_FACE_PX`): 1.6x for 40-px faces, where the
naive pipeline doubles an RGB frame. Every usable face is encoded once and
identified against the roster as a whole (`assign`):

- one face per learner and one learner per face (Hungarian assignment on the
  distance matrix, `scipy.optimize.linear_sum_assignment`, with "nobody" as an
  option for every face at the cost of the threshold);
- a face is assigned only within `threshold` of the learner, and only when no
  other learner is within `margin` of it and no other face within `margin` of
  that learner; otherwise it is left `ambiguous`, never guessed;
- a face beyond `threshold` of every learner is `unknown` (a stranger).

Over several frames of one camera (a roll call samples a few, a second apart),
a face whose box overlaps a face identified in the previous frame keeps that
identity without being encoded again: nobody swaps seats in a second, and the
encoding (about 75 ms per face here) dominates the cost.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import cv2
import dlib
import numpy as np
from scipy.optimize import linear_sum_assignment  # type: ignore[import-untyped]

from config import FaceSettings
from verification import quality
from verification.dlib_engine import DlibFaceEngine
from verification.matching import as_matrix, distances
from verification.types import (
    FaceBox,
    FaceStatus,
    Image,
    Matrix,
    QualityIssue,
    RollCallFace,
    RollCallFrame,
    RollCallParams,
    RollCallResult,
    RollCallTimings,
    Sighting,
)

# dlib's frontal HOG detector scans an 80x80 window; measured on classroom-like
# frames (bench/rollcall_bench.py), it finds faces of about 64 px and more.
DETECTOR_MIN_FACE_PX = 64
MIN_SCALE, MAX_SCALE = 0.25, 4.0
# Faces this much smaller than min_face_px are counted but not identified: an
# encoding of a 25-px face says little about who it is.
UNUSABLE_FRACTION = 0.75
# Quality issues that make a face unusable for identification in a classroom.
_UNUSABLE = (QualityIssue.face_cut_off, QualityIssue.face_too_small)
_INF = float("inf")


def detect_scale(min_face_px: int) -> float:
    """Scale of the detection copy that brings `min_face_px` faces to the detector's size."""
    return min(max(DETECTOR_MIN_FACE_PX / float(min_face_px), MIN_SCALE), MAX_SCALE)


def label_distances(
    vectors: Matrix, templates: Matrix, labels: Sequence[int]
) -> tuple[Matrix, list[int]]:
    """(faces x learners) distance matrix, each learner's distance being that of their
    nearest template, and the learners (labels) in column order."""
    if len(labels) != templates.shape[0]:
        raise ValueError("one label per template row is required")
    order = sorted(set(labels))
    column = {lab: j for j, lab in enumerate(order)}
    out = np.full((vectors.shape[0], len(order)), _INF, dtype=np.float64)
    for i in range(vectors.shape[0]):
        d = distances(vectors[i], templates)
        for lab, dist in zip(labels, d.tolist(), strict=True):
            j = column[lab]
            if dist < out[i, j]:
                out[i, j] = dist
    return out, order


def assign(
    matrix: Matrix, threshold: float, margin: float
) -> list[tuple[FaceStatus, int | None, float | None, float | None]]:
    """Assign faces (rows) to learners (columns) one to one, with a margin.

    Returns, per face: (status, column or None, distance, runner-up distance).
    `distance` is to the assigned learner, or to the nearest one; the runner-up is
    the next-nearest learner. Infinite entries mean "not a candidate".
    """
    faces, learners = matrix.shape
    out: list[tuple[FaceStatus, int | None, float | None, float | None]] = []
    nearest: list[tuple[float | None, float | None]] = []
    for i in range(faces):
        row = np.sort(matrix[i]) if learners else np.array([])
        best = float(row[0]) if learners and np.isfinite(row[0]) else None
        runner = float(row[1]) if learners > 1 and np.isfinite(row[1]) else None
        nearest.append((best, runner))
    if faces == 0:
        return out
    allowed = matrix <= threshold
    chosen: dict[int, int] = {}
    if learners and allowed.any():
        # Minimum total distance, where leaving a face unassigned costs `threshold`
        # (one private "nobody" column per face). Maximising the number of pairs
        # instead would give a face to its second-nearest learner just to pair up a
        # look-alike, and the margin check would then reject both.
        big = 1e6
        cost = np.full((faces, learners + faces), big)
        cost[:, :learners] = np.where(allowed, matrix, big)
        cost[np.arange(faces), learners + np.arange(faces)] = threshold
        for r, c in zip(*linear_sum_assignment(cost), strict=True):
            if c < learners and allowed[r, c]:
                chosen[int(r)] = int(c)
    for i in range(faces):
        best, runner = nearest[i]
        col = chosen.get(i)
        if col is None:
            close = best is not None and best <= threshold
            out.append((FaceStatus.ambiguous if close else FaceStatus.unknown, None, best, runner))
            continue
        d = float(matrix[i, col])
        others = np.delete(matrix[i], col)
        row_runner = float(others.min()) if others.size else _INF
        column = np.delete(matrix[:, col], i)
        rivals = column[column <= threshold]
        col_runner = float(rivals.min()) if rivals.size else _INF
        runner_d = row_runner if np.isfinite(row_runner) else None
        if row_runner - d < margin or col_runner - d < margin:
            out.append((FaceStatus.ambiguous, None, d, runner_d))
        else:
            out.append((FaceStatus.assigned, col, d, runner_d))
    return out


def iou(a: FaceBox, b: FaceBox) -> float:
    """Intersection over union of two boxes."""
    w = min(a.right, b.right) - max(a.left, b.left)
    h = min(a.bottom, b.bottom) - max(a.top, b.top)
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / float(a.area + b.area - inter)


class RollCaller:
    """Roll call with the models of a `DlibFaceEngine` (one copy per process)."""

    def __init__(self, engine: DlibFaceEngine) -> None:
        self.engine = engine
        # The engine's loaded models, shared rather than loaded a second time.
        self._detector = engine._detector
        self._sp5 = engine._sp5
        self._encoder = engine._encoder

    def detect(self, image: Image, params: RollCallParams) -> list[FaceBox]:
        """Every face in the frame (largest first), found at the classroom scale."""
        return self._detect(_grey(image), params)

    def _detect(self, grey: quality.Grey, params: RollCallParams) -> list[FaceBox]:
        scale = detect_scale(params.min_face_px)
        h, w = grey.shape[:2]
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        interp = cv2.INTER_LINEAR if scale > 1 else cv2.INTER_AREA
        small = cv2.resize(grey, size, interpolation=interp) if scale != 1.0 else grey
        rects, scores, _ = self._detector.run(small, 0, params.score_min)
        boxes = [
            FaceBox(
                left=round(r.left() / scale),
                top=round(r.top() / scale),
                right=round((r.right() + 1) / scale),
                bottom=round((r.bottom() + 1) / scale),
                score=round(float(sc), 4),
            )
            for r, sc in zip(rects, scores, strict=True)
        ]
        boxes.sort(key=lambda b: b.area, reverse=True)
        return boxes

    def call(
        self,
        frames: Sequence[Image],
        templates: Matrix,
        labels: Sequence[int],
        params: RollCallParams,
    ) -> RollCallResult:
        """Roll call over the frames of one camera (in time order) against the roster's
        templates (`labels[i]` is the learner of row i; a learner may have several)."""
        if not frames:
            raise ValueError("a roll call needs at least one frame")
        matrix = as_matrix(templates) if len(labels) else np.zeros((0, 128))
        gates = self.engine.settings.model_copy(
            update={"min_face_px": max(1, round(params.min_face_px * UNUSABLE_FRACTION))}
        )
        previous: tuple[RollCallFace, ...] = ()
        out: list[RollCallFrame] = []
        for image in frames:
            frame = self._frame(image, matrix, labels, params, gates, previous)
            out.append(frame)
            previous = frame.faces
        best: dict[int, Sighting] = {}
        for fi, frame in enumerate(out):
            for xi, face in enumerate(frame.faces):
                if face.status is not FaceStatus.assigned or face.label is None:
                    continue
                d = face.distance if face.distance is not None else _INF
                seen = best.get(face.label)
                if seen is None or d < seen.distance:
                    best[face.label] = Sighting(face.label, fi, xi, d)
        return RollCallResult(tuple(out), tuple(best[k] for k in sorted(best)))

    def _frame(
        self,
        image: Image,
        templates: Matrix,
        labels: Sequence[int],
        params: RollCallParams,
        gates: FaceSettings,
        previous: tuple[RollCallFace, ...],
    ) -> RollCallFrame:
        t = time.perf_counter()
        grey = _grey(image)
        boxes = self._detect(grey, params)
        detect_ms = _ms(t)
        h, w = grey.shape[:2]
        faces: list[RollCallFace | None] = [None] * len(boxes)
        # Carry identities of the previous frame to overlapping boxes, best overlap
        # first, each previous face at most once.
        identified = [p for p in previous if p.status is FaceStatus.assigned]
        pairs = sorted(
            (
                (iou(b, p.box), bi, pi)
                for bi, b in enumerate(boxes)
                for pi, p in enumerate(identified)
            ),
            reverse=True,
        )
        used_prev: set[int] = set()
        for overlap, bi, pi in pairs:
            if overlap < params.carry_iou:
                break
            if faces[bi] is not None or pi in used_prev:
                continue
            p = identified[pi]
            faces[bi] = RollCallFace(
                boxes[bi], FaceStatus.assigned, p.label, p.distance, p.runner_up, (), True
            )
            used_prev.add(pi)
        taken = {f.label for f in faces if f is not None and f.label is not None}
        t = time.perf_counter()
        todo: list[tuple[int, dlib.full_object_detection, tuple[QualityIssue, ...]]] = []
        for bi, box in enumerate(boxes):
            if faces[bi] is not None:
                continue
            shape = self._sp5(image, _rect(box))
            points = [(shape.part(k).x, shape.part(k).y) for k in range(shape.num_parts)]
            measures = quality.measure(grey, box, points)
            issues = quality.gates(measures, box, points, (h, w), gates)
            if any(i in _UNUSABLE for i in issues):
                faces[bi] = RollCallFace(box, FaceStatus.unusable, None, None, None, issues)
            else:
                todo.append((bi, shape, issues))
        landmarks_ms = _ms(t)
        t = time.perf_counter()
        vectors = np.zeros((len(todo), 128), dtype=np.float64)
        for k, (_, shape, _) in enumerate(todo):
            vectors[k] = np.asarray(
                self._encoder.compute_face_descriptor(image, shape, 1), dtype=np.float64
            )
        encode_ms = _ms(t)
        t = time.perf_counter()
        if todo:
            matrix, order = label_distances(vectors, templates, labels)
            free = np.array([lab not in taken for lab in order], dtype=bool)
            # Learners already present in this frame (carried) are not candidates for
            # another face, but a face close to one of them is not a stranger either.
            candidates = np.where(free[None, :], matrix, _INF)
            decided = assign(candidates, params.threshold, params.margin)
            for k, (bi, _, issues) in enumerate(todo):
                status, col, dist, runner = decided[k]
                label = order[col] if col is not None else None
                if status is FaceStatus.unknown and matrix.size:
                    nearest = float(matrix[k].min())
                    if nearest <= params.threshold:
                        status, dist = FaceStatus.ambiguous, nearest
                faces[bi] = RollCallFace(boxes[bi], status, label, dist, runner, issues)
        match_ms = _ms(t)
        done = tuple(f for f in faces if f is not None)
        assert len(done) == len(boxes)
        return RollCallFrame(
            w,
            h,
            done,
            len(todo),
            RollCallTimings(detect_ms, landmarks_ms, encode_ms, match_ms),
        )


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000.0


def _grey(image: Image) -> quality.Grey:
    return np.asarray(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), dtype=np.uint8)


def _rect(box: FaceBox) -> dlib.rectangle:
    return dlib.rectangle(box.left, box.top, box.right - 1, box.bottom - 1)
