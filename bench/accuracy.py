"""Verification accuracy on a labelled set, beside face_recognition's plain defaults.

    .venv/bin/python bench/accuracy.py [--dataset ../shared/faces] [--processes 2]

Engine: what `supervisor calibrate` measures at the default threshold: each image
is encoded as an enrolment template (jittered and mirrored) and as a live check
encodes a frame; every ordered (reference, probe) pair of different images counts.
Baseline: face_recognition's defaults computed in the same run: HOG upsample 1 on
the full image, the largest face, one encoding per image, tolerance 0.6; every
unordered pair counts once (its distance is symmetric).
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import dlib
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from config import Settings  # noqa: E402
from supervisor.cli.face import encode_dataset, load_image_file, read_manifest  # noqa: E402
from verification.calibration import pair_distances, rate_at  # noqa: E402
from verification.models import locate_models  # noqa: E402

_naive: tuple[object, object, object] | None = None


def _init_naive() -> None:
    global _naive
    files = locate_models()
    _naive = (
        dlib.get_frontal_face_detector(),
        dlib.shape_predictor(str(files.landmarks_5)),
        dlib.face_recognition_model_v1(str(files.encoder)),
    )


def _naive_encode(path: Path) -> np.ndarray | None:
    assert _naive is not None
    det, sp, enc = _naive
    image = load_image_file(path, Settings())
    rects = det(image, 1)  # type: ignore[operator]
    if not rects:
        return None
    largest = max(rects, key=lambda r: r.area())
    return np.asarray(enc.compute_face_descriptor(image, sp(image, largest), 1))  # type: ignore[attr-defined]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--dataset", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "faces"
    )
    ap.add_argument("--processes", type=int, default=2)
    args = ap.parse_args()
    settings = Settings()
    rows = read_manifest(args.dataset)

    with ProcessPoolExecutor(args.processes, initializer=_init_naive) as pool:
        naive = list(pool.map(_naive_encode, [r.path for r in rows]))
    n_ids = [r.identity for r, v in zip(rows, naive, strict=True) if v is not None]
    n_vecs = np.array([v for v in naive if v is not None])
    base = rate_at(pair_distances(n_ids, n_vecs, n_vecs, symmetric=True), 0.6)
    base_failed = sum(v is None for v in naive)

    ids, refs, probes, failed = [], [], [], 0
    for row, result in encode_dataset(settings, rows, args.processes):
        if isinstance(result, str):
            failed += 1
            continue
        ids.append(row.identity)
        refs.append(result[0])
        probes.append(result[1])
    pairs = pair_distances(ids, np.array(refs), np.array(probes))
    ours = rate_at(pairs, settings.face.match_threshold)
    at_06 = rate_at(pairs, 0.6)

    print(f"dataset: {args.dataset} ({len(rows)} single-face images)")
    header = (
        f"{'pipeline':<44}{'thr':>6}{'genuine':>9}{'impostor':>10}"
        f"{'FNMR':>9}{'FMR':>9}{'no face':>9}"
    )
    print(header)
    for label, r, nf in (
        ("face_recognition defaults (baseline)", base, base_failed),
        ("engine, template vs check, default threshold", ours, failed),
        ("engine, template vs check, at 0.6", at_06, failed),
    ):
        print(
            f"{label:<44}{r.threshold:>6.2f}{r.genuine_pairs:>9}{r.impostor_pairs:>10}"
            f"{r.fnmr:>9.2%}{r.fmr:>9.3%}{nf:>9}"
        )
    print(
        f"  counts: baseline {base.false_non_matches} FNM / {base.false_matches} FM; "
        f"engine {ours.false_non_matches} FNM / {ours.false_matches} FM"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
