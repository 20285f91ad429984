"""Settings of face detection, quality gates and matching (verification/)."""

from __future__ import annotations

from pydantic import Field

from config.base import _Section


class FaceSettings(_Section):
    """Face detection, quality gates and matching (verification/)."""

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
        description="Width in px of the downscaled copy used for the first detection pass; "
        "boxes are mapped back to the original frame.",
    )
    fallback_detect_width: int = Field(
        640,
        ge=80,
        le=4096,
        description="Width in px of the second detection pass, run only when the first "
        "finds no face (finds smaller faces at higher cost).",
    )
    detection_score_min: float = Field(
        0.3,
        ge=-1.0,
        le=3.0,
        description="Minimum HOG detector score for a detection to count as a face; weaker "
        "detections (patterns, badges) are ignored.",
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
        description="Euclidean distance between 128-d encodings at or below which a probe "
        "matches a template. Recalibrate on your population with `supervisor calibrate`.",
    )
    enrol_jitters: int = Field(
        10,
        ge=1,
        le=100,
        description="Random jitters averaged into an enrolment template, for the photo and its "
        "mirror image (cost grows linearly; checks always encode once).",
    )
    identify_margin: float = Field(
        0.06,
        ge=0.0,
        le=1.0,
        description="1:N identification: the best template must beat the next-best identity by "
        "at least this distance, otherwise the face is left unassigned.",
    )
    duplicate_threshold: float = Field(
        0.5,
        gt=0.0,
        lt=2.0,
        description="At enrolment, a face within this distance of another learner's template "
        "is refused as a duplicate identity.",
    )
