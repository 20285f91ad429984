"""Liveness in the service: what goes into ledger events, what stays in Redis, and
what the browser's own signals can add.

Passive liveness runs in the worker on every check's frames; its verdict,
reasons and measures become part of the check event. Frame fingerprints (a very
coarse face image) are kept only in Redis, per session, to catch a looped video
across checks. Browser signals (camera label, track settings, a hidden page) can
only add suspicion: they never make a check pass.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from verification.types import ChallengeResult, FrameFingerprint, LivenessResult

# Camera names of common virtual cameras (case-insensitive substrings). A virtual
# camera can replay any video; a real one can be filmed too, so the list only
# raises suspicion and asks for a challenge.
VIRTUAL_CAMERA_PATTERNS = (
    "obs",
    "virtual",
    "manycam",
    "xsplit",
    "snap camera",
    "vcam",
    "splitcam",
    "camtwist",
    "droidcam",
    "iriun",
    "epoccam",
    "mmhmm",
    "youcam",
    "webcamoid",
    "fake",
    "v4l2loopback",
    "dummy",
)
_LABEL_RE = re.compile("|".join(re.escape(p) for p in VIRTUAL_CAMERA_PATTERNS), re.IGNORECASE)


def liveness_payload(result: LivenessResult) -> dict[str, Any]:
    """The ledger part of a passive-liveness result (no fingerprints)."""
    return {
        "verdict": result.verdict.value,
        "reasons": [r.value for r in result.reasons],
        "measures": _rounded(dataclasses.asdict(result.measures)),
    }


def challenge_payload(result: ChallengeResult) -> dict[str, Any]:
    body = _rounded(dataclasses.asdict(result))
    body["kind"] = result.kind.value
    body["outcome"] = result.outcome.value
    body["reasons"] = list(result.reasons)
    return body


def _rounded(d: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, float):
            out[k] = round(v, 5)
        elif isinstance(v, tuple | list):
            out[k] = [round(x, 5) if isinstance(x, float) else _plain(x) for x in v]
        else:
            out[k] = _plain(v)
    return out


def _plain(v: Any) -> Any:
    return v.value if hasattr(v, "value") else v


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


def suspicion_from_signals(signals: Mapping[str, Any]) -> tuple[str, ...]:
    """Suspicion reasons from what the page reported about its camera and itself.

    Only ever adds reasons; an absent or clean report clears nothing.
    """
    reasons: list[str] = []
    label = signals.get("label")
    if isinstance(label, str) and _LABEL_RE.search(label):
        reasons.append("virtual_camera")
    settings = signals.get("settings")
    if isinstance(settings, Mapping):
        rate = settings.get("frameRate")
        if isinstance(rate, int | float) and rate > 0 and rate < 5:
            reasons.append("camera_frame_rate_low")
    if signals.get("hidden") is True:
        reasons.append("page_hidden")
    return tuple(reasons)
