"""What the learner's browser reports about its camera and itself can only add suspicion.

Browser signals (camera label, track settings, a hidden page) never make a check
pass: a page can lie. They ask for a challenge and are recorded with the check.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

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
