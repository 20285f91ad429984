"""Values that cross the verification boundary. Frozen; no cv2, dlib or web imports.

Images are RGB `uint8` arrays of shape (height, width, 3). Face encodings are
128-d float64 vectors; what a distance between two of them means depends on the
model that made them (`FaceModel`): Euclidean between dlib's ResNet encodings,
1 - cosine between SFace features (which the SFace engine stores L2-normalised).
Encodings of two different models are never compared.
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
    # The lower half of the face is covered (a mask, a scarf): identity checks and
    # enrolment only; a presence check does not need the mouth and chin.
    face_occluded = "face_occluded"

    @property
    def advice(self) -> str:
        return _ADVICE[self]


_ADVICE = {
    QualityIssue.face_too_small: "Move closer to the camera.",
    QualityIssue.too_blurred: "Hold still and make sure the camera is in focus.",
    QualityIssue.too_dark: "Turn on a light or face a window.",
    QualityIssue.too_bright: "Move away from strong light behind or in front of you.",
    QualityIssue.face_cut_off: "Move so that your whole face is inside the picture.",
    QualityIssue.face_occluded: "Please take off your mask.",
}


class Metric(StrEnum):
    """How the distance between two encodings of one model is measured."""

    euclidean = "euclidean"  # |a - b|, dlib's ResNet encodings
    cosine = "cosine"  # 1 - a.b / (|a| |b|), in [0, 2]; SFace features


@dataclass(frozen=True, slots=True)
class FaceModel:
    """Which model made an encoding: the engine's name and the SHA-256 (hex) of its
    recognition weights. Templates record it; encodings of two models never meet."""

    engine: str
    model_hash: str
    metric: Metric

    @property
    def key(self) -> str:
        """Short form for messages and logs: engine and the first 12 hex of the hash."""
        return f"{self.engine}:{self.model_hash[:12]}"


@dataclass(frozen=True, slots=True)
class TemplateSet:
    """A learner's templates (rows of `vectors`) with the model that made them.

    Engines refuse a set of another model (`TemplateModelMismatch`) instead of
    comparing across models; a bare matrix is taken to be the engine's own model.
    """

    model: FaceModel
    vectors: Matrix


@dataclass(frozen=True, slots=True)
class FaceBox:
    """A face in original-frame pixel coordinates (may extend past the frame).

    Both engines report a box of the same geometry (dlib HOG's: about brow to chin,
    ear to ear), so that size gates and classroom settings mean the same with
    either. `points` are the detector's own five landmarks when it has them
    (YuNet: the eyes on the image's left and right, the nose tip, the mouth
    corners on the image's left and right; frame px); None for dlib.
    """

    left: int
    top: int
    right: int
    bottom: int
    score: float  # detector confidence, higher is surer: HOG score (dlib), 0-1 (YuNet)
    points: tuple[tuple[float, float], ...] | None = field(default=None, compare=False, repr=False)

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
    # Occlusion of the lower face (verification/quality.py: `occlusion`), measured for
    # identity checks and enrolment only; None where not measured or not applicable.
    lower_skin: float | None = None  # share of skin-coloured pixels at mouth and chin, 0-1
    lower_uniformity: float | None = None  # share of mouth-and-chin pixels of one colour, 0-1


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
    # The face's 128-d encoding (identity checks that got that far; the engine's own
    # model, so distances to it use that model's metric), for callers
    # that compare it with other learners too; not part of the verdict.
    encoding: Vector | None = field(default=None, compare=False, repr=False)

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


# -- liveness (verification/liveness.py, verification/headpose.py) -------------
#
# Times are float seconds on one clock shared by the frames of a check and by a
# challenge (for example seconds since the session started, from the capture's
# timestamps); only differences between them matter.


@dataclass(frozen=True, slots=True)
class LivenessFrame:
    """One frame of a check as liveness sees it.

    `box` and `landmarks` (68 (x, y) points from `FaceEngine.landmarks(..., 68)`)
    are given for the frames the engine examined and None for frames passed only
    for their pixels (frozen and looped video are caught on every frame).
    Frames must be distinct decoded frames (distinct presentation timestamps):
    a transport that repeats its last frame during a stall would look frozen.
    """

    t_s: float
    image: Image
    box: FaceBox | None = None
    landmarks: tuple[tuple[int, int], ...] | None = None


@dataclass(frozen=True, slots=True)
class FrameFingerprint:
    """Block means of one frame's face region, to find the same frame again (a
    looped video) within a check and in later checks of the session.

    The frame is cut into `block` x `block` pixel cells; the fingerprint holds the
    mean grey level of the cells of one rectangle (`col`, `row`: its first cell;
    `cols` x `rows` cells), row-major, as little-endian uint16 in 1/16 grey
    levels. Fingerprints of the same frame size overlap wherever their rectangles
    do, whatever face box each was cut for. Kept in live session state only: it
    is a very coarse face image, so it never goes into the ledger or evidence.
    """

    t_s: float
    frame_width: int
    frame_height: int
    block: int
    col: int
    row: int
    cols: int
    rows: int
    cells: bytes


class LivenessVerdict(StrEnum):
    live = "live"  # natural non-rigid facial motion, and no sign of an attack
    spoof = "spoof"  # a sign of an attack (see the reasons)
    inconclusive = "inconclusive"  # neither: ask for an active challenge

    @property
    def passed(self) -> bool:
        return self is LivenessVerdict.live


class LivenessReason(StrEnum):
    """Why a verdict was reached; several may apply, in this order of weight."""

    frozen = "frozen"  # every frame of the check is the same picture
    looped = "looped"  # a moving picture returned exactly to an earlier frame
    rigid_motion = "rigid_motion"  # the face moved as one flat picture (a photo or screen)
    nonrigid_motion = "nonrigid_motion"  # the face changed shape: expression, blink, parallax
    too_still = "too_still"  # too little motion to tell a still person from a still photo
    too_blurred = "too_blurred"  # too soft to measure facial motion reliably
    moving_glare = "moving_glare"  # a reflection slid over the face: motion not trusted
    face_too_small = "face_too_small"  # eyes too close together to measure facial motion
    too_few_faces = "too_few_faces"  # fewer than two frames with a face
    too_few_points = "too_few_points"  # too little trackable texture on the face


@dataclass(frozen=True, slots=True)
class LivenessMeasures:
    """What passive liveness measured; lengths are fractions of the inter-ocular
    distance (IOD) unless a unit is named. None when the cue could not run."""

    frames: int  # frames offered
    face_frames: int  # frames with a face (box and 68 landmarks)
    span_s: float  # time from the first to the last frame
    iod_px: float | None  # mean inter-ocular distance in the frame, px
    sharpness_min: float | None  # lowest face sharpness (the engine's blur measure)
    motion: float | None  # largest mean landmark displacement between two face frames
    nonrigid: float | None  # largest residual motion not explained by one homography
    tracked_points: int | None  # fewest points tracked in a measured pair
    glare_moved: float | None  # largest share of the face where glare appeared or vanished
    pixel_change_max: float | None  # largest mean |grey difference| between frames, 0-255
    repeat_mad: float | None  # closest return to an earlier frame (looped), 0-255
    repeat_gap_s: float | None  # time between the two frames of that return
    history_matches: int  # frames equal to a fingerprint of an earlier check
    ear_min: float | None  # lowest eye aspect ratio seen (blink evidence; reported only)
    ear_max: float | None
    elapsed_ms: float  # wall time of passive liveness itself (detection excluded)


@dataclass(frozen=True, slots=True)
class LivenessResult:
    """The passive liveness decision over the frames of one check.

    `verdict`, `reasons` and `measures` belong in the check's ledger event;
    `fingerprints` (one per frame) belong in live session state only, to be
    passed back as history to later checks of the same session.
    """

    verdict: LivenessVerdict
    reasons: tuple[LivenessReason, ...]
    measures: LivenessMeasures
    fingerprints: tuple[FrameFingerprint, ...] = ()

    @property
    def passed(self) -> bool:
        return self.verdict.passed


@dataclass(frozen=True, slots=True)
class HeadPose:
    """Head orientation in degrees; signs as in verification/headpose.py:
    yaw > 0 toward the image's right, pitch > 0 up, roll > 0 clockwise."""

    yaw_deg: float
    pitch_deg: float
    roll_deg: float


class ChallengeKind(StrEnum):
    """An action asked of the learner. Left and right are the learner's own."""

    blink = "blink"
    turn_left = "turn_left"
    turn_right = "turn_right"
    look_up = "look_up"

    @property
    def prompt(self) -> str:
        return _PROMPTS[self]


_PROMPTS = {
    ChallengeKind.blink: "Blink once.",
    ChallengeKind.turn_left: "Turn your head to your left.",
    ChallengeKind.turn_right: "Turn your head to your right.",
    ChallengeKind.look_up: "Look up.",
}


@dataclass(frozen=True, slots=True)
class Challenge:
    """An active challenge drawn by the server, issued at `issued_at_s`; the
    action counts only if it is seen within `time_limit_s` after that."""

    kind: ChallengeKind
    issued_at_s: float
    time_limit_s: float

    @property
    def deadline_s(self) -> float:
        return self.issued_at_s + self.time_limit_s


class ChallengeOutcome(StrEnum):
    passed = "passed"  # the action was seen in time
    failed = "failed"  # a contrary action, or no usable face to judge
    timed_out = "timed_out"  # the action was not seen in time (late or never)


@dataclass(frozen=True, slots=True)
class ChallengeResult:
    """The outcome of one challenge with its measures. Angles in degrees, changes
    relative to the learner's pose at the prompt (the baseline)."""

    kind: ChallengeKind
    outcome: ChallengeOutcome
    reasons: tuple[str, ...]
    response_s: float | None  # prompt to the first frame showing the action (even if late)
    frames: int  # frames offered
    face_frames: int  # frames with a face after the prompt
    baseline_yaw_deg: float | None
    baseline_pitch_deg: float | None
    baseline_ear: float | None
    peak_yaw_change_deg: float | None  # most positive yaw change in time (image right)
    trough_yaw_change_deg: float | None  # most negative yaw change in time (image left)
    peak_pitch_change_deg: float | None  # most upward pitch change in time
    min_ear_ratio: float | None  # lowest EAR / baseline EAR in time

    @property
    def passed(self) -> bool:
        return self.outcome is ChallengeOutcome.passed


# -- classroom roll call (verification/rollcall.py) ----------------------------


class FaceStatus(StrEnum):
    """What roll call made of one face in a classroom frame."""

    assigned = "assigned"  # identified as one learner of the roster
    unknown = "unknown"  # matches nobody on the roster (beyond the threshold)
    ambiguous = "ambiguous"  # close to a learner but not decidable: left unassigned
    unusable = "unusable"  # too small or cut off to identify; counted, not identified


@dataclass(frozen=True, slots=True)
class RollCallParams:
    """Thresholds of one roll call, in the units of the engine that runs it (its
    distance metric and its detector's score: `FaceSettings.engine_thresholds`)."""

    threshold: float  # a face within this distance of a learner may be that learner
    margin: float  # ... only if no other learner, and no other face, is within margin
    min_face_px: int  # smallest face width (frame px) to find; sets the detection scale
    score_min: float  # detection score below which a detection is ignored
    carry_iou: float = 0.4  # box overlap that carries an identity to the next frame


@dataclass(frozen=True, slots=True)
class RollCallFace:
    """One face in one frame. `distance` is to the assigned learner, or to the
    nearest learner for an unknown or ambiguous face; `runner_up` to the next one."""

    box: FaceBox
    status: FaceStatus
    label: int | None
    distance: float | None
    runner_up: float | None
    issues: tuple[QualityIssue, ...] = ()
    carried: bool = False  # same place as an identified face of the previous frame


@dataclass(frozen=True, slots=True)
class RollCallTimings:
    """Wall milliseconds per stage of one frame (single-threaded)."""

    detect_ms: float = 0.0
    landmarks_ms: float = 0.0
    encode_ms: float = 0.0
    match_ms: float = 0.0

    @property
    def total_ms(self) -> float:
        return self.detect_ms + self.landmarks_ms + self.encode_ms + self.match_ms

    def __add__(self, other: RollCallTimings) -> RollCallTimings:
        return RollCallTimings(
            self.detect_ms + other.detect_ms,
            self.landmarks_ms + other.landmarks_ms,
            self.encode_ms + other.encode_ms,
            self.match_ms + other.match_ms,
        )


@dataclass(frozen=True, slots=True)
class RollCallFrame:
    width: int
    height: int
    faces: tuple[RollCallFace, ...]
    encoded: int  # faces encoded in this frame (carried and unusable faces are not)
    timings: RollCallTimings

    def count(self, status: FaceStatus) -> int:
        return sum(1 for f in self.faces if f.status is status)


@dataclass(frozen=True, slots=True)
class Sighting:
    """Where a learner was found: the frame and face, and the distance."""

    label: int
    frame_index: int
    face_index: int
    distance: float


@dataclass(frozen=True, slots=True)
class RollCallResult:
    """A roll call over one or more frames of one camera.

    A learner found in any frame is present (`present`, one sighting each, the
    nearest). Counts of faces are per frame, and the result reports the largest
    (the same people appear in every frame; a count over frames would repeat them).
    """

    frames: tuple[RollCallFrame, ...]
    present: tuple[Sighting, ...]

    def most(self, status: FaceStatus) -> int:
        return max((f.count(status) for f in self.frames), default=0)

    @property
    def faces(self) -> int:
        return max((len(f.faces) for f in self.frames), default=0)

    @property
    def labels(self) -> tuple[int, ...]:
        return tuple(s.label for s in self.present)

    @property
    def timings(self) -> RollCallTimings:
        total = RollCallTimings()
        for f in self.frames:
            total = total + f.timings
        return total


# -- replayed frames (verification/replay.py) -------------------------------------


@dataclass(frozen=True, slots=True)
class FrameSignature:
    """A compact signature of one frame's face, to recognise the frame again after
    re-encoding, noise, small crops, rescaling and light changes.

    `cells` holds GRID x GRID uint8 grey levels of the aligned, blurred inner face
    (row-major), stretched over the cells inside the frame; `inside` one bit per
    cell (numpy.packbits order). `iod_px` is the face's inter-ocular distance in
    the frame, px (diagnostic). Stored as bytes by `replay.encode_signature` (296
    bytes in format version 1). It is a very coarse face image: personal data, kept
    beside the evidence frame and deleted with it or with the learner's data.
    """

    version: int
    grid: int
    iod_px: float
    inside: bytes
    cells: bytes


class ReplayVerdict(StrEnum):
    replayed = "replayed"  # a (near-)copy of a stored frame
    distinct = "distinct"  # no stored frame is close enough


@dataclass(frozen=True, slots=True)
class ReplayMatch:
    """The replay decision for one new frame against stored signatures.

    `score` is the lowest exact score found (the share of a stored face's variance
    the best-aligned new frame leaves unexplained: 0 = the same pixels), `index`
    the bank row it belongs to; both None when no stored frame was close enough to
    be aligned. `examined` stored frames were aligned out of `compared`.
    """

    verdict: ReplayVerdict
    score: float | None
    index: int | None
    threshold: float
    examined: int
    compared: int
    elapsed_ms: float

    @property
    def replayed(self) -> bool:
        return self.verdict is ReplayVerdict.replayed
