"""Settings of the supervision policy of online study."""

from __future__ import annotations

from typing import Self

from pydantic import Field, model_validator

from config.base import _Section


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
    signin_frames: int = Field(
        3,
        ge=2,
        le=8,
        description="Frames a sign-in sends as one burst: the identity check decides over "
        "them and passive liveness runs on them, so at least two.",
    )
    signin_frame_spacing_s: float = Field(
        0.7,
        gt=0,
        le=5,
        description="Seconds between the frames of a sign-in burst, as the learner's page "
        "takes them (the times passive liveness reads them at).",
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
