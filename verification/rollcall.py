"""Roll call in a classroom frame: every face found, identified within the class roster.

Unlike a learner's check (one face, the single-learner fast path) a classroom frame
holds many small faces. Detection runs once, at the scale the engine needs to find
the smallest face to find (`RollCallParams.min_face_px`; `FaceEngine.detect_all`:
for dlib a grey copy at 1.6x for 40-px faces, where the naive pipeline doubles an
RGB frame). Faces that are cut off, too small or covered (a mask) are counted but
not identified. Every other face is encoded once and identified against the roster
as a whole (`assign`), with the engine's distance metric:

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
encoding (about 75 ms per face with dlib, 25 ms with SFace) dominates the cost.

The roster's templates must be of the engine's model (`TemplateSet` is checked;
a bare matrix is taken to be).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment  # type: ignore[import-untyped]

from config import FaceSettings
from verification import quality
from verification.dlib_engine import detect_scale
from verification.matching import distances, own_templates
from verification.protocols import FaceEngine
from verification.types import (
    FaceBox,
    FaceStatus,
    Image,
    Matrix,
    Metric,
    QualityIssue,
    RollCallFace,
    RollCallFrame,
    RollCallParams,
    RollCallResult,
    RollCallTimings,
    Sighting,
    TemplateSet,
)

__all__ = ["RollCaller", "assign", "detect_scale", "iou", "label_distances"]

# Faces this much smaller than min_face_px are counted but not identified: an
# encoding of a 25-px face says little about who it is.
UNUSABLE_FRACTION = 0.75
# Quality issues that make a face unusable for identification in a classroom. A
# masked face is not identified either: its encoding is mostly the mask's.
_UNUSABLE = (QualityIssue.face_cut_off, QualityIssue.face_too_small, QualityIssue.face_occluded)
_INF = float("inf")


def label_distances(
    vectors: Matrix,
    templates: Matrix,
    labels: Sequence[int],
    metric: Metric = Metric.euclidean,
) -> tuple[Matrix, list[int]]:
    """(faces x learners) distance matrix, each learner's distance being that of their
    nearest template, and the learners (labels) in column order."""
    if len(labels) != templates.shape[0]:
        raise ValueError("one label per template row is required")
    order = sorted(set(labels))
    column = {lab: j for j, lab in enumerate(order)}
    out = np.full((vectors.shape[0], len(order)), _INF, dtype=np.float64)
    for i in range(vectors.shape[0]):
        d = distances(vectors[i], templates, metric)
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
    """Roll call with the models of one `FaceEngine` (one copy per process)."""

    def __init__(self, engine: FaceEngine) -> None:
        self.engine = engine

    def detect(self, image: Image, params: RollCallParams) -> list[FaceBox]:
        """Every face in the frame (largest first), found at the classroom scale."""
        return self.engine.detect_all(image, params.min_face_px, params.score_min)

    def call(
        self,
        frames: Sequence[Image],
        templates: Matrix | TemplateSet,
        labels: Sequence[int],
        params: RollCallParams,
    ) -> RollCallResult:
        """Roll call over the frames of one camera (in time order) against the roster's
        templates (`labels[i]` is the learner of row i; a learner may have several)."""
        if not frames:
            raise ValueError("a roll call needs at least one frame")
        if len(labels):
            matrix = own_templates(self.engine.model, templates)
        else:
            matrix = np.zeros((0, 128))
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
        boxes = self.engine.detect_all(image, params.min_face_px, params.score_min)
        detect_ms = _ms(t)
        h, w = image.shape[:2]
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
        grey = _grey(image)
        todo: list[tuple[int, tuple[QualityIssue, ...]]] = []
        for bi, box in enumerate(boxes):
            if faces[bi] is not None:
                continue
            measures, points = self.engine.measure_face(image, box, occlusion=True, grey=grey)
            issues = quality.gates(measures, box, points, (h, w), gates)
            if any(i in _UNUSABLE for i in issues):
                faces[bi] = RollCallFace(box, FaceStatus.unusable, None, None, None, issues)
            else:
                todo.append((bi, issues))
        landmarks_ms = _ms(t)
        t = time.perf_counter()
        vectors = self.engine.encode_faces(image, [boxes[bi] for bi, _ in todo])
        encode_ms = _ms(t)
        t = time.perf_counter()
        if todo:
            matrix, order = label_distances(vectors, templates, labels, self.engine.model.metric)
            free = np.array([lab not in taken for lab in order], dtype=bool)
            # Learners already present in this frame (carried) are not candidates for
            # another face, but a face close to one of them is not a stranger either.
            candidates = np.where(free[None, :], matrix, _INF)
            decided = assign(candidates, params.threshold, params.margin)
            for k, (bi, issues) in enumerate(todo):
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
