"""Roll call in the verification process pool: face work never runs on the event loop.

The job runs in a pool worker, on the face engine that the pool's
initializer built there (`supervisor.checks.pool`), and returns the roll call with the
frames to keep as evidence, re-encoded as JPEG. Which frames are kept:
`KEEP_ALL` (assessments: every sample) or `KEEP_REFERENCED` (training: the first
frame, which evidences absences, every frame a learner was found in, and every
frame with an unknown or ambiguous face).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from supervisor.checks import pool as pool_module
from supervisor.checks.pool import VerificationPool
from verification.imageio import encode_jpeg
from verification.rollcall import RollCaller
from verification.types import FaceStatus, Image, Matrix, RollCallParams, RollCallResult

KEEP_ALL: Final = "all"
KEEP_REFERENCED: Final = "referenced"


@dataclass(frozen=True, slots=True)
class RollCallOutcome:
    result: RollCallResult
    jpegs: tuple[bytes | None, ...]  # per frame; None when the frame is not kept


# -- worker side ----------------------------------------------------------------

_caller: RollCaller | None = None  # built on the worker's first roll call, from its engine


def frames_to_keep(result: RollCallResult, keep: str) -> set[int]:
    """Indices of the frames kept as evidence (see the module docstring)."""
    if keep == KEEP_ALL:
        return set(range(len(result.frames)))
    chosen = {0}
    chosen.update(s.frame_index for s in result.present)
    chosen.update(
        i
        for i, f in enumerate(result.frames)
        if f.count(FaceStatus.unknown) or f.count(FaceStatus.ambiguous)
    )
    return chosen


def _job_roll_call(
    frames: Sequence[Image],
    templates: Matrix,
    labels: Sequence[int],
    params: RollCallParams,
    keep: str,
) -> RollCallOutcome:
    global _caller
    engine = pool_module._engine
    assert engine is not None, "the pool initializer builds the engine"
    if _caller is None or _caller.engine is not engine:
        _caller = RollCaller(engine)
    result = _caller.call(frames, templates, labels, params)
    kept = frames_to_keep(result, keep)
    quality = pool_module._jpeg_quality
    jpegs = tuple(
        encode_jpeg(image, quality) if i in kept else None for i, image in enumerate(frames)
    )
    return RollCallOutcome(result, jpegs)


# -- event-loop side -----------------------------------------------------------


async def roll_call(
    pool: VerificationPool,
    frames: Sequence[Image],
    templates: Matrix,
    labels: Sequence[int],
    params: RollCallParams,
    keep: str,
) -> RollCallOutcome:
    """Run one camera's roll call in the pool. Raises `supervisor.checks.pool.Overloaded`
    when the pool is full (the caller records the roll call as deferred)."""
    # `_run` is the pool's bounded submission (it counts jobs in flight and sheds
    # past the bound), shared by every kind of job.
    outcome: RollCallOutcome = await pool._run(
        _job_roll_call, list(frames), templates, list(labels), params, keep
    )
    return outcome
