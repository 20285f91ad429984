"""Settings of subsidy standards and fraud signals."""

from __future__ import annotations

from typing import Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, model_validator

from config.base import _Section


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
    max_learners_per_address: int = Field(
        5,
        ge=1,
        le=10_000,
        description="Learners of whom more may not study online at once from one network "
        "address before a 'crowded_address' flag is raised (one room studying for many; "
        "raise it where a training room legitimately shares one address).",
    )
    client_retention_days: int = Field(
        180,
        ge=1,
        le=3650,
        description="Days a session's client address and device hash are kept (personal "
        "data: the evidence of a proxy-study shop), after which retention deletes them.",
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
    notice_days: int = Field(
        7,
        ge=1,
        le=90,
        description="Days an approved claim stays on the public notice (公示, "
        "`/public/notices`) before it may be paid; objections are received only then.",
    )
    claim_sample_rate: float = Field(
        0.1,
        ge=0,
        le=1,
        description="Base rate at which a claim draw samples submitted claims for "
        "verification when the draw names none; doubled per risk factor of the "
        "institution (supervisor/rules/claims.py).",
    )
    objections_per_hour: int = Field(
        10,
        ge=1,
        le=10_000,
        description="Objections to claims on notice accepted per client address per hour "
        "(the public form and API take no sign-in).",
    )
    dispatch_close_grace_days: float = Field(
        5.0,
        ge=0,
        le=366,
        description="Days after a period's end (month, quarter, year) after which its "
        "dispatch report is closed: computed once at first request, kept and sealed in "
        "the ledger; the bureau may close it earlier.",
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
