"""Threshold calibration from labelled encodings: error rates over thresholds.

Pairs are ordered (reference, probe) comparisons between different images:
the reference is encoded as an enrolment template and the probe as a live
check encodes a frame, which is how the two meet in service. A genuine pair
shares an identity; an impostor pair does not. Distances use the metric of the
model that encoded both (`Metric`). Pure numpy, no I/O.

Per group (`group_pairs`, `group_rates`): images may carry a group label (the
`group=` token of a manifest's notes, `group_of`). A group's pairs are those whose
reference and probe both belong to it; cross-group pairs (reference in one
group, probe in another) are impostor pairs only, reported on their own.

The default threshold rule (`threshold_by_rule`), by which face.match_threshold
(0.53, dlib) and face.sface.match_threshold were derived: on each development
population, fit a normal distribution to the genuine distances and one to the
impostor distances; take the threshold at which the genuine fit gives 2.5% FNMR
(mean + 1.96 s.d.) and the one at which the impostor fit gives 0.05% FMR (mean -
3.29 s.d.). Over all populations, keep the largest genuine-side threshold and the
smallest impostor-side one (the hardest of each), and ship their midpoint. The
fits use every pair, not the tails, so the rule does not move to zero a set's
few worst pairs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from verification.types import Matrix, Metric, Vector

CROSS_GROUP = "cross-group"  # the label of impostor pairs between two groups
# Normal quantiles of the threshold rule: 2.5% one-sided (genuine), 0.05% (impostor).
Z_FNMR_2_5 = 1.959964
Z_FMR_0_05 = 3.290527


@dataclass(frozen=True, slots=True)
class PairDistances:
    genuine: Vector
    impostor: Vector


@dataclass(frozen=True, slots=True)
class RateRow:
    threshold: float
    false_non_matches: int
    genuine_pairs: int
    false_matches: int
    impostor_pairs: int

    @property
    def fnmr(self) -> float:
        return self.false_non_matches / self.genuine_pairs if self.genuine_pairs else 0.0

    @property
    def fmr(self) -> float:
        return self.false_matches / self.impostor_pairs if self.impostor_pairs else 0.0


def distance_matrix(references: Matrix, probes: Matrix, metric: Metric) -> Matrix:
    """Distances (n x m) of every reference row to every probe row under `metric`."""
    if metric is Metric.cosine:
        rn = references / np.maximum(np.linalg.norm(references, axis=1, keepdims=True), 1e-12)
        pn = probes / np.maximum(np.linalg.norm(probes, axis=1, keepdims=True), 1e-12)
        return np.asarray(1.0 - rn @ pn.T, dtype=np.float64)
    # |r - p|^2 = |r|^2 + |p|^2 - 2 r.p, clipped against rounding below zero.
    sq = (
        np.einsum("ij,ij->i", references, references)[:, None]
        + np.einsum("ij,ij->i", probes, probes)[None, :]
        - 2.0 * references @ probes.T
    )
    return np.asarray(np.sqrt(np.clip(sq, 0.0, None)), dtype=np.float64)


def pair_distances(
    identities: Sequence[str],
    references: Matrix,
    probes: Matrix,
    symmetric: bool = False,
    metric: Metric = Metric.euclidean,
) -> PairDistances:
    """Distances of every ordered pair (i as reference, j as probe), i != j.

    Row i of `references` and of `probes` encode the same image. With
    `symmetric=True` (references and probes encoded alike) each unordered pair
    is counted once.
    """
    n = len(identities)
    if references.shape[0] != n or probes.shape[0] != n:
        raise ValueError("one reference and one probe row per identity label are required")
    labels = np.asarray(identities)
    dist = distance_matrix(references, probes, metric)
    same = labels[:, None] == labels[None, :]
    mask = ~np.eye(n, dtype=bool)
    if symmetric:
        mask &= np.triu(np.ones((n, n), dtype=bool), k=1)
    return PairDistances(genuine=dist[mask & same], impostor=dist[mask & ~same])


def rate_at(pairs: PairDistances, threshold: float) -> RateRow:
    """Error counts at one threshold (a pair matches when distance <= threshold)."""
    return RateRow(
        threshold=threshold,
        false_non_matches=int(np.count_nonzero(pairs.genuine > threshold)),
        genuine_pairs=int(pairs.genuine.size),
        false_matches=int(np.count_nonzero(pairs.impostor <= threshold)),
        impostor_pairs=int(pairs.impostor.size),
    )


def rate_table(pairs: PairDistances, thresholds: Sequence[float]) -> list[RateRow]:
    return [rate_at(pairs, t) for t in thresholds]


def threshold_for_fmr(pairs: PairDistances, target_fmr: float) -> float:
    """The largest threshold whose false match rate does not exceed `target_fmr`.

    It lies halfway between the last impostor distance the target allows to
    match and the first it does not, so no impostor sits on the boundary.
    """
    if not 0.0 <= target_fmr < 1.0:
        raise ValueError("target FMR must be in [0, 1)")
    imp = np.sort(pairs.impostor)
    if imp.size == 0:
        raise ValueError("no impostor pairs: at least two identities are needed")
    allowed = int(np.floor(target_fmr * imp.size))
    upper = float(imp[allowed])
    lower = float(imp[allowed - 1]) if allowed > 0 else max(upper - 0.02, 0.0)
    return round((lower + upper) / 2.0, 4)


def fnmr_at_fmr(pairs: PairDistances, target_fmr: float) -> RateRow:
    """Error counts at `threshold_for_fmr(pairs, target_fmr)`: the FNMR a population
    pays for holding its false match rate to the target."""
    return rate_at(pairs, threshold_for_fmr(pairs, target_fmr))


# -- groups -------------------------------------------------------------------------


def group_of(notes: str) -> str | None:
    """The `group=` token of a manifest's notes (`; `-separated), or None."""
    for token in notes.split(";"):
        key, _, value = token.strip().partition("=")
        if key == "group" and value.strip():
            return value.strip()
    return None


def group_pairs(
    identities: Sequence[str],
    groups: Sequence[str | None],
    references: Matrix,
    probes: Matrix,
    metric: Metric = Metric.euclidean,
) -> dict[str, PairDistances]:
    """Ordered pairs per group, and the impostor pairs across two groups under
    `CROSS_GROUP` (present when there are at least two groups). Images without a
    group are left out of every group's pairs."""
    n = len(identities)
    if len(groups) != n or references.shape[0] != n or probes.shape[0] != n:
        raise ValueError("one group label, reference and probe row per identity are required")
    labels = np.asarray(identities)
    dist = distance_matrix(references, probes, metric)
    same = labels[:, None] == labels[None, :]
    off = ~np.eye(n, dtype=bool)
    names = sorted({g for g in groups if g is not None})
    grp = np.asarray([g if g is not None else "" for g in groups])
    out: dict[str, PairDistances] = {}
    for name in names:
        inside = grp == name
        m = off & inside[:, None] & inside[None, :]
        out[name] = PairDistances(genuine=dist[m & same], impostor=dist[m & ~same])
    if len(names) >= 2:
        labelled = grp != ""
        across = labelled[:, None] & labelled[None, :] & (grp[:, None] != grp[None, :])
        # An identity in two groups would be a labelling error; its pairs count as genuine.
        out[CROSS_GROUP] = PairDistances(genuine=dist[across & same], impostor=dist[across & ~same])
    return out


@dataclass(frozen=True, slots=True)
class GroupRates:
    """One group's error counts at the threshold in force, and at the threshold that
    holds its own FMR to the target (None without genuine or impostor pairs)."""

    group: str
    at_threshold: RateRow
    at_target: RateRow | None
    target_fmr: float


def group_rates(
    pairs: dict[str, PairDistances], threshold: float, target_fmr: float
) -> list[GroupRates]:
    """`GroupRates` for each entry of `group_pairs`' result, in its order."""
    out = []
    for name, p in pairs.items():
        target = fnmr_at_fmr(p, target_fmr) if p.genuine.size and p.impostor.size else None
        out.append(GroupRates(name, rate_at(p, threshold), target, target_fmr))
    return out


# -- the threshold rule -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NormalFit:
    """Normal fits of one population's distances and the thresholds they give."""

    population: str
    genuine_mean: float
    genuine_sd: float
    impostor_mean: float
    impostor_sd: float

    @property
    def genuine_threshold(self) -> float:
        """Where the genuine fit gives 2.5% FNMR."""
        return self.genuine_mean + Z_FNMR_2_5 * self.genuine_sd

    @property
    def impostor_threshold(self) -> float:
        """Where the impostor fit gives 0.05% FMR."""
        return self.impostor_mean - Z_FMR_0_05 * self.impostor_sd


def normal_fit(population: str, pairs: PairDistances) -> NormalFit:
    """Mean and standard deviation of the genuine and impostor distances."""
    if pairs.genuine.size < 2 or pairs.impostor.size < 2:
        raise ValueError(f"{population}: at least two genuine and two impostor pairs needed")
    return NormalFit(
        population,
        float(np.mean(pairs.genuine)),
        float(np.std(pairs.genuine, ddof=1)),
        float(np.mean(pairs.impostor)),
        float(np.std(pairs.impostor, ddof=1)),
    )


@dataclass(frozen=True, slots=True)
class RuleThreshold:
    """The threshold the rule gives, with the fits it came from."""

    threshold: float
    genuine_side: float  # largest genuine-side threshold over the populations
    impostor_side: float  # smallest impostor-side threshold over the populations
    fits: tuple[NormalFit, ...]


def threshold_by_rule(populations: dict[str, PairDistances]) -> RuleThreshold:
    """The shipped-default rule (see the module docstring) over the populations."""
    if not populations:
        raise ValueError("at least one population is needed")
    fits = tuple(normal_fit(name, p) for name, p in populations.items())
    g = max(f.genuine_threshold for f in fits)
    i = min(f.impostor_threshold for f in fits)
    return RuleThreshold(round((g + i) / 2.0, 2), g, i, fits)


def wilson_interval(errors: int, trials: int, z: float = 1.959964) -> tuple[float, float]:
    """95% (by default) Wilson score interval of a rate of `errors` in `trials`."""
    if trials <= 0:
        return (0.0, 1.0)
    p = errors / trials
    den = 1.0 + z * z / trials
    centre = (p + z * z / (2 * trials)) / den
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / den
    return (max(0.0, centre - half), min(1.0, centre + half))
