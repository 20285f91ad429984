"""A check's verdict, decided once: the face verdict, then liveness, then the ledger event.

The face engine decides presence or identity over the frames (best of k). Passive
liveness and an active challenge can only fail a check whose face passed, never
pass one that failed: a `spoof` verdict, or a challenge not passed, turns the
verdict into `spoof`, `challenge_failed` or `challenge_timed_out`. The event then
carries the liveness measures and the challenge as typed records, rounded to 5
decimals (the ledger keeps what an inspector needs, not float noise).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from supervisor.checks.jobs import FrameStamp
from supervisor.ledger import events as ev
from verification.types import (
    ChallengeOutcome,
    ChallengeResult,
    CheckResult,
    LivenessResult,
    LivenessVerdict,
)

SPOOF = "spoof"
REPLAYED = "replayed_frame"
CHALLENGE_FAILED = "challenge_failed"
CHALLENGE_TIMED_OUT = "challenge_timed_out"


def _rounded(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: round(v, 5) if isinstance(v, float) else v for k, v in values.items()}


def liveness_record(result: LivenessResult) -> ev.LivenessRecord:
    """The ledger part of a passive-liveness result (never its fingerprints)."""
    measures = _rounded(dataclasses.asdict(result.measures))
    return ev.LivenessRecord(
        result.verdict.value,
        tuple(r.value for r in result.reasons),
        ev.LivenessMeasuresRecord(**measures),
    )


def challenge_record(result: ChallengeResult) -> ev.ChallengeRecord:
    body = _rounded(
        {
            f.name: getattr(result, f.name)
            for f in dataclasses.fields(result)
            if f.name not in ("kind", "outcome", "reasons")
        }
    )
    return ev.ChallengeRecord(
        result.kind.value, result.outcome.value, tuple(result.reasons), **body
    )


def judge(
    result: CheckResult,
    liveness: LivenessResult | None,
    challenge: ChallengeResult | None,
    replayed: bool = False,
) -> tuple[str, bool]:
    """The check's verdict and whether it passed, a replay and liveness applied."""
    verdict, passed = result.verdict.value, result.passed
    if passed and replayed:
        return REPLAYED, False
    if passed and liveness is not None and liveness.verdict is LivenessVerdict.spoof:
        verdict, passed = SPOOF, False
    if passed and challenge is not None and challenge.outcome is not ChallengeOutcome.passed:
        timed_out = challenge.outcome is ChallengeOutcome.timed_out
        verdict, passed = (CHALLENGE_TIMED_OUT if timed_out else CHALLENGE_FAILED), False
    return verdict, passed


def check_event(
    result: CheckResult,
    *,
    purpose: str,
    at: datetime,
    check_id: str | None = None,
    scheduled_at: datetime | None = None,
    evidence_sha256: str | None = None,
    evidence_error: str | None = None,
    liveness: LivenessResult | None = None,
    challenge: ChallengeResult | None = None,
    suspicion: tuple[str, ...] = (),
    stamp: FrameStamp | None = None,
    replay: ev.ReplayRecord | None = None,
) -> ev.CheckRecorded:
    """The ledger event of a decided check; `stamp` is the decisive frame's capture time,
    `replay` what it copies when it is a kept frame posted again."""
    frame = result.decisive
    verdict, passed = judge(result, liveness, challenge, replay is not None)
    return ev.CheckRecorded(
        check_id=check_id or uuid.uuid4().hex,
        check_kind=result.kind.value,
        purpose=purpose,
        verdict=verdict,
        passed=passed,
        at=at,
        distance=frame.distance,
        threshold=frame.threshold,
        issues=tuple(i.value for i in frame.issues),
        faces=frame.faces_found,
        frames=len(result.frames),
        evidence_sha256=evidence_sha256,
        scheduled_at=scheduled_at,
        liveness=liveness_record(liveness) if liveness is not None else None,
        challenge=challenge_record(challenge) if challenge is not None else None,
        suspicion=suspicion,
        evidence_error=evidence_error,
        captured_at=stamp.captured_at if stamp is not None else None,
        pts=stamp.pts if stamp is not None else None,
        time_base=stamp.time_base if stamp is not None else None,
        replay=replay,
    )
