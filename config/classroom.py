"""Settings of classroom supervision: roll calls, cameras, leases."""

from __future__ import annotations

from pathlib import Path
from typing import Self

from pydantic import Field, IPvAnyNetwork, model_validator

from config.base import _Section


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
        description="RTSP transport of cameras read without a network policy (tcp survives "
        "lossy networks and firewalls best). Classroom cameras are read under the policy, "
        "always over TCP interleaved through the RTSP relay.",
    )
    camera_networks: tuple[IPvAnyNetwork, ...] = Field(
        (
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "fc00::/7",
        ),
        description="Private networks (CIDR) where cameras may be, checked after name "
        "resolution at registration and at every connection. Narrow it to the camera "
        "network of the site. Loopback and other private addresses are refused unless "
        "listed; link-local, cloud metadata, multicast and reserved addresses and the "
        "service's own ports always are.",
        validate_default=True,
    )
    camera_public_addresses: bool = Field(
        True,
        description="Accept cameras at public (globally routable) addresses.",
    )
    file_sources_dir: Path | None = Field(
        None,
        description="Folder whose video files an admin may register as camera sources "
        "(`file://` URLs inside it). Empty: file sources are refused.",
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
