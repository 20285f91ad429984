"""Calibration: error rates per group and across groups, FNMR at a target FMR, and
the threshold rule; on exact synthetic distances and on a labelled folder of real
faces that the test writes and each engine encodes."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from tests import imagegen
from verification.calibration import (
    CROSS_GROUP,
    PairDistances,
    fnmr_at_fmr,
    group_of,
    group_pairs,
    group_rates,
    pair_distances,
    rate_at,
    threshold_by_rule,
    wilson_interval,
)
from verification.imageio import decode_image
from verification.protocols import FaceEngine
from verification.types import Metric


def test_group_of_reads_the_group_token_of_a_manifest_note() -> None:
    assert group_of("group=east_asian; sub=chinese; LFW deep-funneled") == "east_asian"
    assert group_of("sub=korean; group=other") == "other"
    assert group_of("downscaled from 1382x1868") is None
    assert group_of("") is None and group_of("group=; x") is None


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.normal(size=(n, 128))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_pairs_per_group_and_across_groups_are_counted_exactly() -> None:
    rng = np.random.default_rng(1)
    # Group a: three people with two photos each; group b: two people with two photos;
    # one photo without a group. Photos of one person are near each other.
    people = {"a1": "a", "a2": "a", "a3": "a", "b1": "b", "b2": "b"}
    centres = dict(zip(people, _unit(rng, len(people)), strict=True))
    ids, groups, rows = [], [], []
    for person, group in people.items():
        for _ in range(2):
            ids.append(person)
            groups.append(group)
            rows.append(centres[person] + 0.01 * rng.normal(size=128))
    ids.append("x")
    groups.append(None)
    rows.append(_unit(rng, 1)[0])
    refs = np.array(rows)
    probes = refs + 0.005 * rng.normal(size=refs.shape)
    pairs = group_pairs(ids, groups, refs, probes, Metric.cosine)
    assert list(pairs) == ["a", "b", CROSS_GROUP]
    # Ordered pairs of different photos: 6 photos in a, 4 in b.
    assert pairs["a"].genuine.size == 3 * 2 and pairs["a"].impostor.size == 6 * 5 - 6
    assert pairs["b"].genuine.size == 2 * 2 and pairs["b"].impostor.size == 4 * 3 - 4
    assert pairs[CROSS_GROUP].genuine.size == 0
    assert pairs[CROSS_GROUP].impostor.size == 2 * 6 * 4  # a as reference and b, and back
    rates = group_rates(pairs, threshold=0.3, target_fmr=0.0005)
    by_name = {r.group: r for r in rates}
    assert by_name["a"].at_threshold.false_non_matches == 0
    assert by_name["a"].at_threshold.false_matches == 0
    assert by_name[CROSS_GROUP].at_target is None  # no genuine pairs to pay an FNMR
    assert by_name["b"].at_target is not None and by_name["b"].at_target.fnmr == 0.0
    # The same distances as the ungrouped function gives.
    everyone = pair_distances(ids, refs, probes, metric=Metric.cosine)
    total = sum(p.impostor.size for p in pairs.values())
    assert everyone.impostor.size == total + 2 * 10  # and the ungrouped photo's pairs


def test_cosine_pair_distances_are_one_minus_the_cosine() -> None:
    refs = np.array([[1.0, 0.0], [0.0, 2.0]])
    probes = np.array([[2.0, 0.0], [1.0, 1.0]])
    pairs = pair_distances(["p", "q"], refs, probes, metric=Metric.cosine)
    assert pairs.impostor.tolist() == pytest.approx([1 - 1 / np.sqrt(2), 1.0])


def test_fnmr_at_a_target_fmr_lets_through_no_more_impostors_than_allowed() -> None:
    genuine = np.linspace(0.1, 0.6, 100)
    impostor = np.linspace(0.5, 1.5, 10_000)
    pairs = PairDistances(genuine, impostor)
    row = fnmr_at_fmr(pairs, 0.0005)
    assert row.false_matches <= 5 and row.fmr <= 0.0005
    assert row.false_non_matches == int(np.count_nonzero(genuine > row.threshold))
    assert rate_at(pairs, row.threshold) == row


def test_the_threshold_rule_takes_the_hardest_side_of_every_population() -> None:
    rng = np.random.default_rng(2)
    easy = PairDistances(rng.normal(0.30, 0.05, 4000), rng.normal(1.00, 0.05, 40_000))
    hard = PairDistances(rng.normal(0.40, 0.05, 4000), rng.normal(0.90, 0.08, 40_000))
    rule = threshold_by_rule({"easy": easy, "hard": hard})
    assert rule.genuine_side == pytest.approx(0.40 + 1.96 * 0.05, abs=0.01)
    assert rule.impostor_side == pytest.approx(0.90 - 3.29 * 0.08, abs=0.01)
    assert rule.threshold == pytest.approx((rule.genuine_side + rule.impostor_side) / 2, abs=0.006)
    assert [f.population for f in rule.fits] == ["easy", "hard"]


def test_wilson_interval_brackets_the_rate() -> None:
    lo, hi = wilson_interval(0, 9842)
    assert lo == 0.0 and 0.0002 < hi < 0.0005
    lo, hi = wilson_interval(4, 258)
    assert lo < 4 / 258 < hi


def _labelled_folder(root: Path) -> Path:
    """Two people of group `a` (four photos each, genuine variations) and one photo
    without a group, with a manifest like ../shared/faces-eastasia's."""
    rows = []
    for name, photo in (("astronaut", imagegen.astronaut()), ("hopper", imagegen.grace_hopper())):
        copies = [photo, *imagegen.augmented_copies(photo)[:3]]
        for i, copy in enumerate(copies):
            rel = f"{name}/{i}.jpg"
            (root / name).mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(imagegen.jpeg_bytes(copy))
            rows.append([rel, name, "1", "", "", "group=a; made by the test"])
    (root / "loose").mkdir()
    (root / "loose/1.jpg").write_bytes(imagegen.jpeg_bytes(imagegen.rotate(photo, 3)))
    rows.append(["loose/1.jpg", "loose", "1", "", "", "no group"])
    with (root / "manifest.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(
            ["path", "identity", "faces_expected", "source_repo", "source_path", "notes"]
        )
        writer.writerows(rows)
    return root


@pytest.mark.slow
def test_rates_per_group_on_a_labelled_folder(any_engine: FaceEngine, tmp_path: Path) -> None:
    root = _labelled_folder(tmp_path / "set")
    ids, groups, refs, probes = [], [], [], []
    with (root / "manifest.csv").open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            data = (root / row["path"]).read_bytes()
            image = decode_image(data, max_pixels=50_000_000, max_side=20_000)
            template = any_engine.encode_largest(image, template=True)
            probe = any_engine.encode_largest(image)
            assert template is not None and probe is not None
            ids.append(row["identity"])
            groups.append(group_of(row["notes"]))
            refs.append(template.vector)
            probes.append(probe.vector)
    pairs = group_pairs(ids, groups, np.array(refs), np.array(probes), any_engine.model.metric)
    assert list(pairs) == ["a"]  # one group: no cross-group pairs
    assert pairs["a"].genuine.size == 2 * 4 * 3 and pairs["a"].impostor.size == 2 * 4 * 4
    (rates,) = group_rates(pairs, any_engine.threshold, 0.0005)
    assert rates.at_threshold.false_non_matches == 0 and rates.at_threshold.false_matches == 0
    assert rates.at_target is not None
    assert float(pairs["a"].genuine.max()) < rates.at_target.threshold
    assert rates.at_target.threshold < float(pairs["a"].impostor.min())
