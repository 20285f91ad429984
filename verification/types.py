"""Values that cross the verification boundary. Frozen; no cv2, dlib or web imports.

Images are RGB `uint8` arrays of shape (height, width, 3). Face encodings are
128-d float64 vectors from dlib's ResNet; distances are Euclidean between them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import numpy.typing as npt

Image = npt.NDArray[np.uint8]
Vector = npt.NDArray[np.float64]
Matrix = npt.NDArray[np.float64]


class CheckKind(StrEnum):
    presence = "presence"  # exactly one usable face; no encoding
    identity = "identity"  # 1:1 against the learner's templates


class Verdict(StrEnum):
    match = "match"
    mismatch = "mismatch"
    present = "present"  # a presence check passed (no identity decision made)
    no_face = "no_face"
    multiple_faces = "multiple_faces"
    low_quality = "low_quality"

    @property
    def passed(self) -> bool:
        return self in (Verdict.match, Verdict.present)


class QualityIssue(StrEnum):
    """Why a face was not usable, each with a reason a learner can act on."""

    face_too_small = "face_too_small"
    too_blurred = "too_blurred"
    too_dark = "too_dark"
    too_bright = "too_bright"
    face_cut_off = "face_cut_off"

    @property
    def advice(self) -> str:
        return _ADVICE[self]


_ADVICE = {
    QualityIssue.face_too_small: "Move closer to the camera.",
    QualityIssue.too_blurred: "Hold still and make sure the camera is in focus.",
    QualityIssue.too_dark: "Turn on a light or face a window.",
    QualityIssue.too_bright: "Move away from strong light behind or in front of you.",
    QualityIssue.face_cut_off: "Move so that your whole face is inside the picture.",
}


@dataclass(frozen=True, slots=True)
class FaceBox:
    """A face in original-frame pixel coordinates (may extend past the frame)."""

    left: int
    top: int
    right: int
    bottom: int
    score: float  # HOG detector confidence; higher is surer

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def area(self) -> int:
        return max(self.width, 0) * max(self.height, 0)


@dataclass(frozen=True, slots=True)
class QualityMeasures:
    face_width_px: int
    sharpness: float  # variance of the Laplacian of the face resized to 128x128 grey
    brightness: float  # mean grey level 0-255 of the face region
    edge_distance_px: int  # smallest distance of a landmark to the frame edge (<0: outside)


@dataclass(frozen=True, slots=True)
class Timings:
    """Wall milliseconds spent per stage (single-threaded, so close to CPU time)."""

    detect_ms: float = 0.0
    landmarks_ms: float = 0.0
    quality_ms: float = 0.0
    encode_ms: float = 0.0
    match_ms: float = 0.0

    @property
    def total_ms(self) -> float:
        return self.detect_ms + self.landmarks_ms + self.quality_ms + self.encode_ms + self.match_ms

    def __add__(self, other: Timings) -> Timings:
        return Timings(
            self.detect_ms + other.detect_ms,
            self.landmarks_ms + other.landmarks_ms,
            self.quality_ms + other.quality_ms,
            self.encode_ms + other.encode_ms,
            self.match_ms + other.match_ms,
        )


@dataclass(frozen=True, slots=True)
class FrameResult:
    """The verdict on one frame."""

    kind: CheckKind
    verdict: Verdict
    faces_found: int
    box: FaceBox | None
    quality: QualityMeasures | None
    issues: tuple[QualityIssue, ...]
    distance: float | None  # to the nearest template (identity checks only)
    threshold: float | None
    template_index: int | None  # which template was nearest
    timings: Timings

    @property
    def passed(self) -> bool:
        return self.verdict.passed


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The decision of one check over several frames (best of k).

    `frame_index` names the frame the decision rests on; `frames` holds every
    frame examined (evaluation stops early at the first passing frame).
    """

    kind: CheckKind
    verdict: Verdict
    frame_index: int
    frames: tuple[FrameResult, ...]
    frames_offered: int

    @property
    def passed(self) -> bool:
        return self.verdict.passed

    @property
    def decisive(self) -> FrameResult:
        return self.frames[self.frame_index]

    @property
    def distance(self) -> float | None:
        return self.decisive.distance

    @property
    def threshold(self) -> float | None:
        return self.decisive.threshold

    @property
    def issues(self) -> tuple[QualityIssue, ...]:
        return self.decisive.issues

    @property
    def timings(self) -> Timings:
        total = Timings()
        for f in self.frames:
            total = total + f.timings
        return total


@dataclass(frozen=True, slots=True)
class FaceEncoding:
    """One detected face with its 128-d encoding."""

    box: FaceBox
    vector: Vector
    quality: QualityMeasures
    issues: tuple[QualityIssue, ...] = ()


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One template found by 1:N search."""

    index: int  # row in the searched matrix
    distance: float


@dataclass(frozen=True, slots=True)
class Identification:
    """1:N identification of one face against labelled templates.

    `label` is None when the face matched nobody or was ambiguous (the best label
    did not beat the runner-up by the margin).
    """

    label: int | None
    distance: float | None
    runner_up_distance: float | None
    ambiguous: bool = False
    candidates: tuple[tuple[int, float], ...] = field(default=())
