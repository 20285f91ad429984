"""Random check and roll-call moments."""

from __future__ import annotations

import random
import statistics

import pytest

from supervisor.rules.schedule import draw_interval


def test_intervals_are_drawn_with_the_configured_mean() -> None:
    rng = random.Random(5)
    draws = [draw_interval(rng, 300, 600, 900) for _ in range(4000)]
    assert min(draws) >= 300 and max(draws) <= 900
    assert statistics.mean(draws) == pytest.approx(600, rel=0.02)
    skewed = [draw_interval(rng, 60, 100, 180) for _ in range(4000)]
    assert statistics.mean(skewed) == pytest.approx(100, rel=0.03)
