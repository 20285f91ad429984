"""Verification accuracy per population, both engines in the same run (issue 17).

    .venv/bin/python bench/accuracy.py [--faces ../shared/faces]
        [--eastasia ../shared/faces-eastasia] [--processes 2] [--save enc.npz | --load enc.npz]

Each single-face image of the two development sets is encoded as `supervisor
calibrate` encodes it: as an enrolment template (the engine's `encode_largest(...,
template=True)`: dlib 10 jitters of the aligned face and its mirror; SFace four
landmark scales and mirrors) and as a live check encodes a frame (one pass).
Every ordered (reference = template, probe = check) pair of different images
counts. Populations: `../shared/faces` as a whole; each `group=` of
`../shared/faces-eastasia`; and its cross-group impostor pairs.

Printed per engine and population: the rates at the shipped default threshold
(with counts and 95% Wilson intervals), the FNMR at FMR <= 0.05%, and the
threshold rule of `verification.calibration.threshold_by_rule` applied to the
three populations (how the shipped defaults were derived). dlib is the baseline.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from config import FaceSettings  # noqa: E402
from config.settings import FaceEngineName  # noqa: E402
from verification.calibration import (  # noqa: E402
    CROSS_GROUP,
    PairDistances,
    RateRow,
    fnmr_at_fmr,
    group_of,
    group_pairs,
    pair_distances,
    rate_at,
    threshold_by_rule,
    wilson_interval,
)
from verification.engines import make_engine  # noqa: E402
from verification.imageio import decode_image  # noqa: E402
from verification.protocols import FaceEngine  # noqa: E402
from verification.types import Metric  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared"
SUFFIXES = {".jpg", ".jpeg", ".png"}
TARGET_FMR = 0.0005


@dataclass(frozen=True)
class Row:
    path: Path
    identity: str
    group: str | None


def read_rows(dataset: Path) -> list[Row]:
    """Single-face image rows of a manifest (path, identity, faces_expected, notes)."""
    with (dataset / "manifest.csv").open(newline="", encoding="utf-8") as fh:
        return [
            Row(dataset / r["path"], r["identity"].strip(), group_of(r.get("notes") or ""))
            for r in csv.DictReader(fh)
            if r["faces_expected"].strip() == "1" and Path(r["path"]).suffix.lower() in SUFFIXES
        ]


_engine: FaceEngine | None = None


def _init(engine: str) -> None:
    global _engine
    _engine = make_engine(FaceSettings(), FaceEngineName(engine))


def _encode(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    assert _engine is not None
    image = decode_image(path.read_bytes(), max_pixels=50_000_000, max_side=20_000)
    template = _engine.encode_largest(image, template=True)
    probe = _engine.encode_largest(image, template=False)
    if template is None or probe is None:
        return None
    return template.vector, probe.vector


def encode(engine: str, rows: Sequence[Row], processes: int) -> list[tuple[np.ndarray, ...] | None]:
    with ProcessPoolExecutor(processes, initializer=_init, initargs=(engine,)) as pool:
        return list(pool.map(_encode, [r.path for r in rows], chunksize=4))


def rates(label: str, r: RateRow, at_target: RateRow | None) -> str:
    lo, hi = wilson_interval(r.false_non_matches, r.genuine_pairs)
    flo, fhi = wilson_interval(r.false_matches, r.impostor_pairs)
    fnmr = (
        f"{r.fnmr:6.2%} ({r.false_non_matches:>3}/{r.genuine_pairs:<4}) [{lo:.1%}-{hi:.1%}]"
        if r.genuine_pairs
        else f"{'-':>30}"
    )
    fmr = f"{r.fmr:7.3%} ({r.false_matches:>3}/{r.impostor_pairs:<6}) [{flo:.3%}-{fhi:.3%}]"
    tgt = f"{at_target.fnmr:6.2%} (thr {at_target.threshold:.3f})" if at_target is not None else "-"
    return f"  {label:<22}{fnmr}  {fmr}  {tgt}"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--faces", type=Path, default=SHARED / "faces")
    ap.add_argument("--eastasia", type=Path, default=SHARED / "faces-eastasia")
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--engines", default="dlib,sface")
    ap.add_argument("--save", type=Path, help="save the encodings (npz) for a later --load")
    ap.add_argument("--load", type=Path, help="use encodings saved by --save")
    args = ap.parse_args()
    sets = {"faces": read_rows(args.faces), "faces-eastasia": read_rows(args.eastasia)}
    engines = args.engines.split(",")
    settings = FaceSettings()
    saved = dict(np.load(args.load, allow_pickle=False)) if args.load else {}
    to_save: dict[str, np.ndarray] = {}
    print(
        f"sets: faces {len(sets['faces'])} images, faces-eastasia "
        f"{len(sets['faces-eastasia'])} images; target FMR {TARGET_FMR:.2%}"
    )
    for engine in engines:
        name = FaceEngineName(engine)
        threshold = settings.engine_thresholds(name).match_threshold
        metric = Metric.cosine if name is FaceEngineName.sface else Metric.euclidean
        populations: dict[str, PairDistances] = {}
        print(f"\n== engine {engine}: threshold in force {threshold} ({metric.value})")
        header = (
            f"  {'population':<22}{'FNMR (count) [95% CI]':<32}"
            f"{'FMR (count) [95% CI]':<42}FNMR at FMR<=0.05%"
        )
        for set_name, rows in sets.items():
            key = f"{engine}:{set_name}"
            if f"{key}:t" in saved:
                refs, probes, ok = saved[f"{key}:t"], saved[f"{key}:p"], saved[f"{key}:ok"]
                elapsed = None
            else:
                t0 = time.perf_counter()
                enc = encode(engine, rows, args.processes)
                elapsed = time.perf_counter() - t0
                ok = np.array([e is not None for e in enc])
                refs = np.array([e[0] for e in enc if e is not None])
                probes = np.array([e[1] for e in enc if e is not None])
            to_save.update({f"{key}:t": refs, f"{key}:p": probes, f"{key}:ok": ok})
            kept = [r for r, good in zip(rows, ok, strict=True) if good]
            ids = [r.identity for r in kept]
            took = f", encoded in {elapsed:.0f} s wall" if elapsed is not None else ""
            print(f" {set_name}: {len(kept)} encoded, {len(rows) - len(kept)} without a face{took}")
            print(header)
            groups = [r.group for r in kept]
            if any(g is not None for g in groups):
                by_group = group_pairs(ids, groups, refs, probes, metric)
                for gname, pairs in by_group.items():
                    target = fnmr_at_fmr(pairs, TARGET_FMR) if gname != CROSS_GROUP else None
                    print(rates(gname, rate_at(pairs, threshold), target))
                    if gname != CROSS_GROUP:
                        populations[f"{set_name}:{gname}"] = pairs
            else:
                pairs = pair_distances(ids, refs, probes, metric=metric)
                print(rates("all", rate_at(pairs, threshold), fnmr_at_fmr(pairs, TARGET_FMR)))
                populations[set_name] = pairs
        rule = threshold_by_rule(populations)
        print(" threshold rule (normal fits; genuine side mean+1.96sd, impostor side mean-3.29sd):")
        for f in rule.fits:
            print(
                f"  {f.population:<28} genuine {f.genuine_mean:.3f}+-{f.genuine_sd:.3f} -> "
                f"{f.genuine_threshold:.3f}   impostor {f.impostor_mean:.3f}+-"
                f"{f.impostor_sd:.3f} -> {f.impostor_threshold:.3f}"
            )
        print(
            f"  rule: midpoint of max genuine side {rule.genuine_side:.3f} and min impostor "
            f"side {rule.impostor_side:.3f} = {rule.threshold:.2f} (in force: {threshold})"
        )
    if args.save:
        np.savez(args.save, **to_save)
    return 0


if __name__ == "__main__":
    sys.exit(main())
