"""The dlib implementation of `FaceEngine`.

Detection runs dlib's HOG detector on a downscaled copy of the frame (boxes are
mapped back to the original), with a costlier second pass only when the first
finds nothing. Landmarks (5 points) and the 128-d ResNet encoding run on the
original pixels. Models load in the constructor: build one engine per process
(for example in a process pool's initializer), never at import.

The model is identified by the SHA-256 of the encoder's weights file, computed at
load; distances are Euclidean.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import cv2
import dlib
import numpy as np

from config import FaceSettings
from verification import quality
from verification.exceptions import EnrolmentRejected, ModelsUnavailable
from verification.matching import decide, nearest, own_templates
from verification.models import ModelFiles, file_sha256, locate_models
from verification.quality import Grey
from verification.types import (
    CheckKind,
    CheckResult,
    FaceBox,
    FaceEncoding,
    FaceModel,
    FrameResult,
    Image,
    Matrix,
    Metric,
    QualityIssue,
    QualityMeasures,
    TemplateSet,
    Timings,
    Vector,
    Verdict,
)

ENGINE_NAME = "dlib"

# Images at most this long on their longer side are tried once more, padded, when
# no face is found: tight crops (a face filling the picture, as in ID photos)
# leave the HOG window no margin.
TIGHT_CROP_MAX_SIDE = 400
TIGHT_CROP_PAD = 0.3
# `detect_near`: how far past a known face (in face widths) to look for it again,
# and the width its window is scaled to bring that face to. The HOG window is 80
# px; 100 leaves room for the face to shrink by a fifth (leaning back).
NEAR_MARGIN = 0.4
NEAR_FACE_PX = 100
# dlib's ResNet input: a 150x150 chip aligned on 5 landmarks, 25% padding.
CHIP_SIZE = 150
CHIP_PADDING = 0.25
# Classroom detection (`detect_all`): dlib's frontal HOG detector scans an 80x80
# window; measured on classroom-like frames (bench/rollcall_bench.py), it finds
# faces of about 64 px and more.
DETECTOR_MIN_FACE_PX = 64
MIN_SCALE, MAX_SCALE = 0.25, 4.0


def detect_scale(min_face_px: int) -> float:
    """Scale of the classroom detection copy that brings `min_face_px` faces to the
    HOG detector's size."""
    return min(max(DETECTOR_MIN_FACE_PX / float(min_face_px), MIN_SCALE), MAX_SCALE)


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000.0


class DlibFaceEngine:
    """Face detection, quality gates, encoding and 1:1 decisions with dlib."""

    def __init__(self, settings: FaceSettings, models: ModelFiles | None = None) -> None:
        """Load the models. An engine is made once per process (a worker, a pool
        process), so it also sets that process's OpenCV thread count."""
        self.settings = settings
        if settings.opencv_threads:
            cv2.setNumThreads(settings.opencv_threads)
        files = models or locate_models()
        try:
            self._detector = dlib.get_frontal_face_detector()
            self._sp5 = dlib.shape_predictor(str(files.landmarks_5))
            self._sp68 = dlib.shape_predictor(str(files.landmarks_68))
            self._encoder = dlib.face_recognition_model_v1(str(files.encoder))
        except RuntimeError as exc:  # dlib reports unreadable model files this way
            raise ModelsUnavailable(f"cannot load face models: {exc}") from exc
        self._model = FaceModel(ENGINE_NAME, file_sha256(files.encoder), Metric.euclidean)

    @property
    def model(self) -> FaceModel:
        """dlib's ResNet, identified by the SHA-256 of its weights; Euclidean distances."""
        return self._model

    @property
    def threshold(self) -> float:
        """The match threshold in force (`face.match_threshold`)."""
        return self.settings.match_threshold

    # -- detection -------------------------------------------------------

    def detect(self, image: Image) -> list[FaceBox]:
        """Every face in the frame, largest first, in original-frame coordinates."""
        return self._detect_grey(_grey(image))

    def _detect_grey(self, image: Grey) -> list[FaceBox]:
        # HOG on grey levels costs about 30% less than on RGB (one gradient per
        # pixel instead of the strongest of three) with the same detections.
        h, w = image.shape[:2]
        s = self.settings
        passes = [s.detect_width]
        if s.fallback_detect_width > s.detect_width and w > s.detect_width:
            passes.append(s.fallback_detect_width)
        for target in passes:
            boxes = self._detect_at(image, min(1.0, target / w), upsample=0)
            if boxes:
                return boxes
        if max(h, w) <= TIGHT_CROP_MAX_SIDE:
            return self._detect_padded(image)
        return []

    def detect_near(self, image: Image, near: FaceBox) -> list[FaceBox]:
        """Faces in a window around `near` (a face found in this frame or one moments
        before), largest first, in frame coordinates; [] when none is there.

        The window reaches `NEAR_MARGIN` face widths past each side of `near` and is
        scaled so that a face of its size is `NEAR_FACE_PX` wide, whatever the
        frame's size: several times fewer pixels for the detector than `detect` on
        the whole frame, most of all for a face close to the camera. Boxes differ
        from `detect`'s by a few pixels (another scale, another crop), so pass the
        same `near` for frames that are compared. A caller falls back to `detect`
        when this finds nothing (the face moved further)."""
        h, w = image.shape[:2]
        m = NEAR_MARGIN * max(near.width, near.height)
        x0, y0 = max(0, int(near.left - m)), max(0, int(near.top - m))
        x1, y1 = min(w, int(near.right + m) + 1), min(h, int(near.bottom + m) + 1)
        if x1 - x0 < NEAR_FACE_PX or y1 - y0 < NEAR_FACE_PX:
            return []
        grey = _grey(np.ascontiguousarray(image[y0:y1, x0:x1]))
        scale = min(1.0, NEAR_FACE_PX / max(1, near.width))
        return [
            FaceBox(b.left + x0, b.top + y0, b.right + x0, b.bottom + y0, b.score)
            for b in self._detect_at(grey, scale, upsample=0)
        ]

    def _detect_at(self, image: Grey, scale: float, upsample: int) -> list[FaceBox]:
        if scale < 1.0:
            h, w = image.shape[:2]
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        else:
            scale, small = 1.0, image
        rects, scores, _ = self._detector.run(small, upsample, self.settings.detection_score_min)
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

    def _detect_padded(self, image: Grey) -> list[FaceBox]:
        h, w = image.shape[:2]
        pad = round(max(h, w) * TIGHT_CROP_PAD)
        padded: Grey = np.asarray(
            cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE), dtype=np.uint8
        )
        found = self._detect_at(padded, 1.0, upsample=1)
        return [
            FaceBox(b.left - pad, b.top - pad, b.right - pad, b.bottom - pad, b.score)
            for b in found
        ]

    def detect_all(self, image: Image, min_face_px: int, score_min: float) -> list[FaceBox]:
        """Every face of at least about `min_face_px` (frame px) with a HOG score of at
        least `score_min`, largest first (classroom roll call): one pass on a grey copy
        scaled by `detect_scale`, where the naive pipeline doubles an RGB frame."""
        grey = _grey(image)
        scale = detect_scale(min_face_px)
        h, w = grey.shape[:2]
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        interp = cv2.INTER_LINEAR if scale > 1 else cv2.INTER_AREA
        small = cv2.resize(grey, size, interpolation=interp) if scale != 1.0 else grey
        rects, scores, _ = self._detector.run(small, 0, score_min)
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

    def landmarks(self, image: Image, box: FaceBox, points: int = 5) -> list[tuple[int, int]]:
        """5- or 68-point landmarks of one face, (x, y) in frame coordinates."""
        predictor = self._sp68 if points == 68 else self._sp5
        shape = predictor(image, _rect(box))
        return [(shape.part(i).x, shape.part(i).y) for i in range(shape.num_parts)]

    def measure_face(
        self, image: Image, box: FaceBox, occlusion: bool = False, grey: Grey | None = None
    ) -> tuple[QualityMeasures, list[tuple[int, int]]]:
        """Quality measures of one face and the 5 landmarks they used; the lower
        face's occlusion is measured when `occlusion` is set (identity, enrolment)."""
        points = self.landmarks(image, box, 5)
        g = grey if grey is not None else _grey(image)
        return self._measures(image, g, box, points, occlusion), points

    def _measures(
        self,
        image: Image,
        grey: Grey,
        box: FaceBox,
        points: list[tuple[int, int]],
        occlusion: bool,
    ) -> QualityMeasures:
        measures = quality.measure(grey, box, points)
        if not occlusion:
            return measures
        skin, uniformity = quality.occlusion(image, _eye_centres(points))
        return QualityMeasures(
            measures.face_width_px,
            measures.sharpness,
            measures.brightness,
            measures.edge_distance_px,
            None if skin is None else round(skin, 4),
            round(uniformity, 4),
        )

    def encode_faces(self, image: Image, boxes: Sequence[FaceBox]) -> Matrix:
        """One encoding per box (5-point landmarks, one pass each), rows in order."""
        out = np.zeros((len(boxes), 128), dtype=np.float64)
        for i, box in enumerate(boxes):
            out[i] = self._encode(image, self._sp5(image, _rect(box)), 1)
        return out

    # -- one frame ---------------------------------------------------------

    def presence(self, image: Image) -> FrameResult:
        """Is exactly one usable face there? No encoding."""
        return self._frame(image, CheckKind.presence, None)

    def identity(self, image: Image, templates: Matrix | TemplateSet) -> FrameResult:
        """Is the one usable face in the frame the learner of `templates` (1:1, any
        template)? Raises `TemplateModelMismatch` for another model's templates."""
        return self._frame(image, CheckKind.identity, own_templates(self._model, templates))

    def _frame(self, image: Image, kind: CheckKind, templates: Matrix | None) -> FrameResult:
        s = self.settings
        threshold = s.match_threshold if kind is CheckKind.identity else None
        t = time.perf_counter()
        grey = _grey(image)
        boxes = self._detect_grey(grey)
        detect_ms = _ms(t)
        if not boxes:
            return FrameResult(
                kind, Verdict.no_face, 0, None, None, (), None, threshold, None, Timings(detect_ms)
            )
        box = boxes[0]
        if len(boxes) > 1:
            return FrameResult(
                kind,
                Verdict.multiple_faces,
                len(boxes),
                box,
                None,
                (),
                None,
                threshold,
                None,
                Timings(detect_ms),
            )
        t = time.perf_counter()
        shape = self._sp5(image, _rect(box))
        points = [(shape.part(i).x, shape.part(i).y) for i in range(shape.num_parts)]
        landmarks_ms = _ms(t)
        t = time.perf_counter()
        measures, issues = self._quality(image, grey, box, points, templates is not None)
        quality_ms = _ms(t)
        if issues:
            return FrameResult(
                kind,
                Verdict.low_quality,
                1,
                box,
                measures,
                issues,
                None,
                threshold,
                None,
                Timings(detect_ms, landmarks_ms, quality_ms),
            )
        if templates is None:
            return FrameResult(
                kind,
                Verdict.present,
                1,
                box,
                measures,
                (),
                None,
                None,
                None,
                Timings(detect_ms, landmarks_ms, quality_ms),
            )
        t = time.perf_counter()
        vector = self._encode(image, shape, 1)
        encode_ms = _ms(t)
        t = time.perf_counter()
        index, distance = nearest(vector, templates)
        match_ms = _ms(t)
        assert threshold is not None
        verdict = Verdict.match if distance <= threshold else Verdict.mismatch
        return FrameResult(
            kind,
            verdict,
            1,
            box,
            measures,
            (),
            round(distance, 6),
            threshold,
            index,
            Timings(detect_ms, landmarks_ms, quality_ms, encode_ms, match_ms),
            encoding=vector,
        )

    def _quality(
        self,
        image: Image,
        grey: Grey,
        box: FaceBox,
        points: list[tuple[int, int]],
        occlusion: bool,
    ) -> tuple[QualityMeasures, tuple[QualityIssue, ...]]:
        measures = self._measures(image, grey, box, points, occlusion)
        return measures, quality.gates(measures, box, points, grey.shape[:2], self.settings)

    def _encode(self, image: Image, shape: dlib.full_object_detection, jitters: int) -> Vector:
        desc = self._encoder.compute_face_descriptor(image, shape, jitters)
        return np.asarray(desc, dtype=np.float64)

    # -- several frames ----------------------------------------------------

    def check(
        self,
        kind: CheckKind,
        frames: Sequence[Image],
        templates: Matrix | TemplateSet | None = None,
    ) -> CheckResult:
        """Decide one check over several frames (best of k), stopping at the first pass."""
        if kind is CheckKind.identity and templates is None:
            raise ValueError("an identity check needs the learner's templates")
        matrix = own_templates(self._model, templates) if templates is not None else None
        results: list[FrameResult] = []
        for image in frames:
            result = self._frame(image, kind, matrix if kind is CheckKind.identity else None)
            results.append(result)
            if result.passed:
                break
        return decide(kind, results, len(frames))

    # -- encodings -----------------------------------------------------

    def enrol(self, image: Image, jitters: int | None = None) -> FaceEncoding:
        """A template from an enrolment photo: exactly one face passing every gate
        (the occlusion gate included).

        Raises `EnrolmentRejected` naming the verdict and the failed gates.
        """
        grey = _grey(image)
        boxes = self._detect_grey(grey)
        if not boxes:
            raise EnrolmentRejected(Verdict.no_face.value, (), "no face found in the photo")
        if len(boxes) > 1:
            raise EnrolmentRejected(
                Verdict.multiple_faces.value, (), f"{len(boxes)} faces found; exactly one needed"
            )
        box = boxes[0]
        shape = self._sp5(image, _rect(box))
        points = [(shape.part(i).x, shape.part(i).y) for i in range(shape.num_parts)]
        measures, issues = self._quality(image, grey, box, points, True)
        if issues:
            raise EnrolmentRejected(
                Verdict.low_quality.value,
                tuple(i.value for i in issues),
                "photo fails quality gates: " + ", ".join(i.value for i in issues),
            )
        vector = self.template_vector(image, shape, jitters or self.settings.enrol_jitters)
        return FaceEncoding(box, vector, measures, ())

    def template_vector(
        self, image: Image, shape: dlib.full_object_detection, jitters: int
    ) -> Vector:
        """An enrolment template: the mean of the jittered encodings of the aligned
        face chip and of its mirror image. Averaging over jitter and mirroring makes
        the template less sensitive to the one photo's pose and crop; checks encode
        once (no jitter) because they run all day."""
        chip = dlib.get_face_chip(image, shape, size=CHIP_SIZE, padding=CHIP_PADDING)
        mirror = np.ascontiguousarray(chip[:, ::-1])
        a = np.asarray(self._encoder.compute_face_descriptor(chip, jitters), dtype=np.float64)
        b = np.asarray(self._encoder.compute_face_descriptor(mirror, jitters), dtype=np.float64)
        return (a + b) / 2.0

    def encode_all(self, image: Image, jitters: int = 1) -> list[FaceEncoding]:
        """Every detected face with its encoding and quality issues (roll call)."""
        out: list[FaceEncoding] = []
        grey = _grey(image)
        for box in self._detect_grey(grey):
            shape = self._sp5(image, _rect(box))
            points = [(shape.part(i).x, shape.part(i).y) for i in range(shape.num_parts)]
            measures, issues = self._quality(image, grey, box, points, True)
            out.append(FaceEncoding(box, self._encode(image, shape, jitters), measures, issues))
        return out

    def encode_largest(self, image: Image, template: bool = False) -> FaceEncoding | None:
        """The largest face's encoding with no quality gate (calibration), or None.

        `template=True` encodes it as enrolment does (jittered and mirrored);
        otherwise as a check does (one pass)."""
        grey = _grey(image)
        boxes = self._detect_grey(grey)
        if not boxes:
            return None
        box = boxes[0]
        shape = self._sp5(image, _rect(box))
        points = [(shape.part(i).x, shape.part(i).y) for i in range(shape.num_parts)]
        measures, issues = self._quality(image, grey, box, points, True)
        if template:
            vector = self.template_vector(image, shape, self.settings.enrol_jitters)
        else:
            vector = self._encode(image, shape, 1)
        return FaceEncoding(box, vector, measures, issues)


def _grey(image: Image) -> Grey:
    return np.asarray(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), dtype=np.uint8)


def _eye_centres(points: Sequence[tuple[int, int]]) -> list[tuple[float, float]]:
    """The two eye centres from dlib's 5 points (two corners per eye, then the nose)."""
    p = np.asarray(points[:4], dtype=np.float64)
    a, b = p[0:2].mean(axis=0), p[2:4].mean(axis=0)
    return [(float(a[0]), float(a[1])), (float(b[0]), float(b[1]))]


def _rect(box: FaceBox) -> dlib.rectangle:
    return dlib.rectangle(box.left, box.top, box.right - 1, box.bottom - 1)
