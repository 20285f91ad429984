"""Threshold calibration from labelled encodings: error rates over thresholds.

Pairs are ordered (reference, probe) comparisons between different images:
the reference is encoded as an enrolment template and the probe as a live
check encodes a frame, which is how the two meet in service. A genuine pair
shares an identity; an impostor pair does not. Pure numpy, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from verification.types import Matrix, Vector


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


def pair_distances(
    identities: Sequence[str],
    references: Matrix,
    probes: Matrix,
    symmetric: bool = False,
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
    # |r - p|^2 = |r|^2 + |p|^2 - 2 r.p, clipped against rounding below zero.
    sq = (
        np.einsum("ij,ij->i", references, references)[:, None]
        + np.einsum("ij,ij->i", probes, probes)[None, :]
        - 2.0 * references @ probes.T
    )
    dist = np.sqrt(np.clip(sq, 0.0, None))
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
