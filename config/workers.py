"""Settings of the verification workers and their queue."""

from __future__ import annotations

from pydantic import Field

from config.base import _Section


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
