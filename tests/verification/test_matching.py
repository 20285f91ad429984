"""Pure matching functions: distances, 1:N search, identification, best of k."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from verification.matching import as_matrix, decide, distances, identify, nearest, search
from verification.types import CheckKind, FrameResult, Timings, Verdict


def _unit_rows(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    m = rng.normal(size=(n, 128))
    return m / np.linalg.norm(m, axis=1, keepdims=True) * 0.6


def test_distances_equal_numpy_norm() -> None:
    m = _unit_rows(50)
    v = _unit_rows(1, seed=1)[0]
    assert np.allclose(distances(v, m), np.linalg.norm(m - v, axis=1))


def test_search_finds_the_planted_template_among_ten_thousand() -> None:
    m = _unit_rows(10_000)
    probe = m[4321] + 0.01
    hits = search(probe, m, k=3)
    assert hits[0].index == 4321
    assert hits[0].distance < 0.2
    assert [h.distance for h in hits] == sorted(h.distance for h in hits)
    assert search(probe, m, k=3, max_distance=0.2)[0].index == 4321
    assert len(search(probe, m, k=3, max_distance=0.2)) == 1
    assert search(probe, np.zeros((0, 128))) == []


def test_nearest_over_several_templates() -> None:
    m = _unit_rows(3)
    assert nearest(m[2], m) == (2, 0.0)


def test_as_matrix_refuses_wrong_shapes() -> None:
    assert as_matrix(np.zeros(128)).shape == (1, 128)
    with pytest.raises(ValueError):
        as_matrix(np.zeros((2, 64)))


def test_identify_assigns_within_threshold_and_margin() -> None:
    m = _unit_rows(4)
    labels = [10, 10, 20, 30]
    result = identify(m[2] + 0.001, m, labels, threshold=0.5, margin=0.05)
    assert result.label == 20
    assert result.distance is not None and result.distance < 0.05


def test_identify_leaves_an_ambiguous_face_unassigned() -> None:
    m = _unit_rows(2)
    midpoint = (m[0] + m[1]) / 2
    result = identify(midpoint, m, [1, 2], threshold=2.0, margin=0.05)
    assert result.label is None and result.ambiguous


def test_identify_unknown_face() -> None:
    m = _unit_rows(3)
    stranger = _unit_rows(1, seed=9)[0]
    result = identify(stranger, m, [1, 2, 3], threshold=0.3, margin=0.05)
    assert result.label is None and not result.ambiguous


def _frame(verdict: Verdict, distance: float | None = None) -> FrameResult:
    return FrameResult(
        CheckKind.identity, verdict, 1, None, None, (), distance, 0.53, None, Timings()
    )


verdicts = st.sampled_from(list(Verdict))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(verdicts, st.floats(0, 1.5)), min_size=1, max_size=6))
def test_decide_passes_iff_some_frame_passes(frames: list[tuple[Verdict, float]]) -> None:
    results = [_frame(v, d) for v, d in frames]
    decision = decide(CheckKind.identity, results, len(results))
    assert decision.passed == any(v.passed for v, _ in frames)
    assert decision.verdict is results[decision.frame_index].verdict


def test_decide_prefers_a_mismatch_over_an_empty_frame() -> None:
    d = decide(
        CheckKind.identity,
        [_frame(Verdict.no_face), _frame(Verdict.mismatch, 0.8), _frame(Verdict.mismatch, 0.7)],
        3,
    )
    assert d.verdict is Verdict.mismatch and d.frame_index == 2
