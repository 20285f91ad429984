"""When the server looks: random intervals between checks and roll calls.

Moments are drawn on the server from system randomness (the caller passes a
`secrets.SystemRandom` in service), so a client cannot predict them.
"""

from __future__ import annotations

import random


def draw_interval(rng: random.Random, low: float, mean: float, high: float) -> float:
    """A random interval in [low, high] seconds with the given mean (triangular).

    The mode is placed so that the mean is exact; where that is impossible the
    mode is clamped to the range.
    """
    mode = min(max(3 * mean - low - high, low), high)
    return rng.triangular(low, high, mode)
