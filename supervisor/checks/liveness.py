"""Liveness in the check pipeline: passive liveness over a check's frames, an active
challenge's outcome, and the frame fingerprints a session keeps between checks.

Passive liveness runs in the worker on every check's frames; its verdict, reasons
and measures become part of the check event (`supervisor.checks.verdict`). Frame
fingerprints (a very coarse face image) are kept only in Redis, per session, to
catch a looped video across checks; never in the ledger.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Protocol

from verification.liveness import DEFAULT_PARAMS, evaluate_challenge, observe, passive_liveness
from verification.protocols import FaceEngine
from verification.types import (
    Challenge,
    ChallengeKind,
    ChallengeResult,
    CheckResult,
    FrameFingerprint,
    Image,
    LivenessResult,
)


class FingerprintHistory(Protocol):
    """Where a session's frame fingerprints are kept between its checks (Redis)."""

    def load(self, session_id: str) -> list[FrameFingerprint]: ...

    def save(self, session_id: str, fingerprints: Sequence[FrameFingerprint]) -> None: ...


def assess(
    engine: FaceEngine,
    result: CheckResult,
    images: Sequence[Image],
    times: Sequence[float],
    *,
    session_id: str,
    base_s: float,
    passive: bool,
    challenge: ChallengeKind | None,
    challenge_time_limit_s: float,
    history: FingerprintHistory | None,
    reference_yaw_deg: float | None = None,
) -> tuple[LivenessResult | None, ChallengeResult | None]:
    """Passive liveness over a check's frames and, for a challenge, its outcome.

    `times` are the frames' seconds on one clock (for a challenge, from its prompt);
    frames without distinct increasing times count 1 s apart. Faces are looked for in
    one window around the face the check found (boxes from different detections differ
    by a few pixels, and so would the landmarks of two identical frames). `base_s`
    puts this check's fingerprints on the session's clock (the enqueue time).
    """
    if not passive and challenge is None:
        return None, None
    if len(times) != len(images) or any(b <= a for a, b in zip(times, times[1:], strict=False)):
        times = [float(i) for i in range(len(images))]
    anchor = next((f.box for f in result.frames if f.faces_found == 1), None)
    # No frame held one face: the check is `no_face` (or `multiple_faces`) on its own,
    # and there is no face to judge live or not. Run on an empty, unchanging scene (a
    # grey wall), passive liveness would call it a spoof ("looped", "too_few_faces"),
    # and a learner who walked away is not a spoofer.
    passive = passive and anchor is not None
    if not passive and challenge is None:
        return None, None
    frames = [
        observe(engine, image, t, near=anchor) for image, t in zip(images, times, strict=True)
    ]
    challenge_result = None
    if challenge is not None:
        asked = Challenge(challenge, 0.0, challenge_time_limit_s)
        params = replace(DEFAULT_PARAMS, challenge_time_limit_s=challenge_time_limit_s)
        challenge_result = evaluate_challenge(
            asked, frames, params, reference_yaw_deg=reference_yaw_deg
        )
    passive_result = None
    if passive and len(frames) >= 2:
        earlier = history.load(session_id) if history is not None else []
        stamped = [replace(f, t_s=base_s + f.t_s) for f in frames]
        passive_result = passive_liveness(stamped, DEFAULT_PARAMS, earlier)
        if history is not None and passive_result.fingerprints:
            history.save(session_id, passive_result.fingerprints)
    return passive_result, challenge_result


def fingerprints_to_json(fps: Iterable[FrameFingerprint]) -> list[str]:
    return [
        json.dumps(
            {
                "t_s": f.t_s,
                "w": f.frame_width,
                "h": f.frame_height,
                "block": f.block,
                "col": f.col,
                "row": f.row,
                "cols": f.cols,
                "rows": f.rows,
                "cells": base64.b64encode(f.cells).decode(),
            }
        )
        for f in fps
    ]


def fingerprints_from_json(items: Iterable[str | bytes]) -> list[FrameFingerprint]:
    """Parse stored fingerprints; malformed ones are skipped (data, never code)."""
    out: list[FrameFingerprint] = []
    for item in items:
        try:
            d = json.loads(item)
            out.append(
                FrameFingerprint(
                    float(d["t_s"]),
                    int(d["w"]),
                    int(d["h"]),
                    int(d["block"]),
                    int(d["col"]),
                    int(d["row"]),
                    int(d["cols"]),
                    int(d["rows"]),
                    base64.b64decode(d["cells"]),
                )
            )
        except (ValueError, KeyError, TypeError):
            continue
    out.sort(key=lambda f: f.t_s)
    return out
