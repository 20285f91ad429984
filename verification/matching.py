"""Distances, 1:1 decisions over several templates and frames, and 1:N search.

Pure numpy. Encodings are 128-d float64 rows; the distance is the metric of the
model that made them (`Metric`): Euclidean (dlib, the default here) or 1 - cosine
(SFace). Both encodings of a distance must come from the same model.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from verification.exceptions import TemplateModelMismatch
from verification.types import (
    CheckKind,
    CheckResult,
    FaceModel,
    FrameResult,
    Identification,
    Matrix,
    Metric,
    SearchHit,
    TemplateSet,
    Vector,
    Verdict,
)

ENCODING_DIM = 128


def as_matrix(templates: Matrix | Sequence[Vector]) -> Matrix:
    """Stack templates into an (n, 128) float64 matrix, refusing any other shape."""
    m = np.asarray(templates, dtype=np.float64)
    if m.ndim == 1:
        m = m.reshape(1, -1)
    if m.ndim != 2 or m.shape[1] != ENCODING_DIM:
        raise ValueError(f"templates must be (n, {ENCODING_DIM}), got {m.shape}")
    return m


def own_templates(model: FaceModel, templates: Matrix | TemplateSet) -> Matrix:
    """The template matrix for an engine of `model`; raises `TemplateModelMismatch`
    for a `TemplateSet` of another model. A bare matrix is trusted to be `model`'s."""
    if isinstance(templates, TemplateSet):
        if templates.model != model:
            raise TemplateModelMismatch(model.key, templates.model.key)
        return as_matrix(templates.vectors)
    return as_matrix(templates)


def distances(vector: Vector, templates: Matrix, metric: Metric = Metric.euclidean) -> Vector:
    """Distance from one encoding to every row of `templates` under `metric`."""
    if metric is Metric.cosine:
        norms = np.linalg.norm(templates, axis=1) * float(np.linalg.norm(vector))
        cos = (templates @ vector) / np.maximum(norms, 1e-12)
        return np.asarray(1.0 - cos, dtype=np.float64)
    diff = templates - vector
    return np.sqrt(np.einsum("ij,ij->i", diff, diff))


def nearest(
    vector: Vector, templates: Matrix, metric: Metric = Metric.euclidean
) -> tuple[int, float]:
    """Index of and distance to the nearest template (the learner may have several)."""
    d = distances(vector, templates, metric)
    i = int(np.argmin(d))
    return i, float(d[i])


def search(
    vector: Vector,
    templates: Matrix,
    k: int = 5,
    max_distance: float | None = None,
    metric: Metric = Metric.euclidean,
) -> list[SearchHit]:
    """The `k` nearest templates (vectorised), optionally only those within `max_distance`."""
    if templates.shape[0] == 0:
        return []
    d = distances(vector, templates, metric)
    k = min(k, d.shape[0])
    idx = np.argpartition(d, k - 1)[:k]
    idx = idx[np.argsort(d[idx], kind="stable")]
    hits = [SearchHit(int(i), float(d[i])) for i in idx]
    if max_distance is not None:
        hits = [h for h in hits if h.distance <= max_distance]
    return hits


def identify(
    vector: Vector,
    templates: Matrix,
    labels: Sequence[int],
    threshold: float,
    margin: float,
    metric: Metric = Metric.euclidean,
) -> Identification:
    """Which label (learner) one face belongs to, or None.

    Each label's distance is its nearest template. The best label is accepted
    only within `threshold` and when the runner-up label is at least `margin`
    farther; otherwise the face is left unassigned (ambiguous), never guessed.
    """
    if len(labels) != templates.shape[0]:
        raise ValueError("one label per template row is required")
    if templates.shape[0] == 0:
        return Identification(None, None, None)
    d = distances(vector, templates, metric)
    per_label: dict[int, float] = {}
    for lab, dist in zip(labels, d.tolist(), strict=True):
        if dist < per_label.get(lab, np.inf):
            per_label[lab] = dist
    ranked = sorted(per_label.items(), key=lambda kv: kv[1])
    best_label, best = ranked[0]
    runner = ranked[1][1] if len(ranked) > 1 else None
    candidates = tuple((lab, round(dist, 6)) for lab, dist in ranked[:3])
    if best > threshold:
        return Identification(None, best, runner, False, candidates)
    if runner is not None and runner - best < margin:
        return Identification(None, best, runner, True, candidates)
    return Identification(best_label, best, runner, False, candidates)


# Failure verdicts ranked by how much they say about the learner: a visible but
# different face is the strongest evidence, an empty frame the weakest.
_FAILURE_RANK = {
    Verdict.mismatch: 0,
    Verdict.multiple_faces: 1,
    Verdict.low_quality: 2,
    Verdict.no_face: 3,
}


def decide(kind: CheckKind, frames: Sequence[FrameResult], frames_offered: int) -> CheckResult:
    """Best of k: a check passes when any examined frame passes.

    One blink or motion blur does not fail an honest learner; an impostor must
    fail every frame. For a failed check the decisive frame is the most telling
    failure (a mismatch over a blurred frame), nearest distance first.
    """
    if not frames:
        raise ValueError("a check needs at least one frame")
    passing = [i for i, f in enumerate(frames) if f.passed]
    if passing:
        best = min(passing, key=lambda i: frames[i].distance or 0.0)
        return CheckResult(kind, frames[best].verdict, best, tuple(frames), frames_offered)

    def rank(i: int) -> tuple[int, float]:
        f = frames[i]
        return (_FAILURE_RANK.get(f.verdict, 9), f.distance if f.distance is not None else np.inf)

    worst = min(range(len(frames)), key=rank)
    return CheckResult(kind, frames[worst].verdict, worst, tuple(frames), frames_offered)
