"""Settings of liveness: passive checks and challenges."""

from __future__ import annotations

from typing import Self

from pydantic import Field, model_validator

from config.base import _Section


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
    challenge_first_check: bool = Field(
        True,
        description="The first check of a session, and the check that resumes it after the "
        "page came back, carry an active challenge: a photo or a replayed clip is stopped "
        "before it earns more than one check interval.",
    )
    challenge_rounds: int = Field(
        2,
        ge=1,
        le=5,
        description="Challenges in a row that clear a session where one is due (its first "
        "check, a resume, a liveness failure): each passed one is followed at once by "
        "another, of a different kind where there are several. A recording that happens "
        "to turn the asked way once is stopped by the next round, having earned at most "
        "the one check interval before it.",
    )
    challenge_min_interval_s: float = Field(
        300.0, ge=0, le=86_400, description="Least time between two challenges of a session."
    )
    replay_check: bool = Field(
        True,
        description="Refuse a check or sign-in frame that is the same picture as a frame kept "
        "earlier (an enrolment photo or a check's evidence) of any learner of the "
        "institution, re-encoded, cropped, scaled or noised (`replayed_frame`).",
    )
    replay_cache_s: float = Field(
        60.0,
        ge=0,
        le=3600,
        description="Seconds a worker keeps an institution's frame signatures before reading "
        "them again (its own new ones are added at once).",
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
