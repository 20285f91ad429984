"""`supervisor verify` and `supervisor calibrate`: face checks from the command line.

Both run the configured face engine (`face.engine`), or the one `--engine` names, in
the units of its model (SFace: 1 - cosine; dlib: Euclidean).
"""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from config import FaceSettings, Settings
from config.settings import FaceEngineName
from verification.calibration import (
    fnmr_at_fmr,
    group_of,
    group_pairs,
    group_rates,
    pair_distances,
    rate_at,
    rate_table,
    threshold_for_fmr,
)
from verification.engines import make_engine, model_of
from verification.exceptions import EnrolmentRejected, ImageError
from verification.imageio import decode_image
from verification.matching import as_matrix
from verification.protocols import FaceEngine
from verification.types import CheckKind

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp"})


def load_image_file(path: Path, settings: Settings) -> np.ndarray:
    return decode_image(
        path.read_bytes(),
        max_pixels=settings.images.max_pixels,
        max_side=settings.images.max_side,
    )


def run_verify(settings: Settings, reference: Path, probes: list[Path]) -> int:
    """Print one JSON object per probe; exit 0 when all probes could be checked."""
    engine = make_engine(settings.face)
    try:
        template = engine.enrol(load_image_file(reference, settings))
    except (OSError, ImageError, EnrolmentRejected) as exc:
        print(f"reference {reference}: {exc}", file=sys.stderr)
        return 2
    status = 0
    for probe in probes:
        try:
            image = load_image_file(probe, settings)
        except (OSError, ImageError) as exc:
            print(json.dumps({"probe": str(probe), "verdict": "error", "error": str(exc)}))
            status = 1
            continue
        result = engine.check(CheckKind.identity, [image], as_matrix(template.vector))
        frame = result.decisive
        print(
            json.dumps(
                {
                    "probe": str(probe),
                    "verdict": result.verdict.value,
                    "distance": frame.distance,
                    "threshold": engine.threshold,
                    "engine": engine.model.engine,
                    "issues": [i.value for i in frame.issues],
                    "faces": frame.faces_found,
                }
            ),
            flush=True,
        )
    return status


@dataclass(frozen=True)
class ManifestRow:
    path: Path
    identity: str
    group: str | None = None  # the `group=` token of the row's notes, if any


def read_manifest(dataset: Path) -> list[ManifestRow]:
    """Single-face image rows of a manifest with columns path,identity,faces_expected."""
    manifest = dataset / "manifest.csv"
    if not manifest.is_file():
        raise SystemExit(f"error: {manifest} not found")
    with manifest.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = {"path", "identity", "faces_expected"} - set(reader.fieldnames or ())
        if missing:
            raise SystemExit(f"error: {manifest} lacks columns: {', '.join(sorted(missing))}")
        rows = []
        for row in reader:
            path = dataset / row["path"]
            if row["faces_expected"].strip() != "1" or path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            rows.append(
                ManifestRow(path, row["identity"].strip(), group_of(row.get("notes") or ""))
            )
    return rows


# One engine per worker process, built by the pool initializer.
_worker_engine: FaceEngine | None = None
_worker_settings: Settings | None = None


def _init_worker(settings: Settings) -> None:
    global _worker_engine, _worker_settings
    _worker_settings = settings
    _worker_engine = make_engine(settings.face)


def _encode_row(path: Path) -> tuple[np.ndarray, np.ndarray] | str:
    assert _worker_engine is not None and _worker_settings is not None
    try:
        image = load_image_file(path, _worker_settings)
    except (OSError, ImageError) as exc:
        return f"unreadable: {exc}"
    template = _worker_engine.encode_largest(image, template=True)
    probe = _worker_engine.encode_largest(image, template=False)
    if template is None or probe is None:
        return "no face found"
    return template.vector, probe.vector


def encode_dataset(
    settings: Settings, rows: list[ManifestRow], processes: int
) -> Iterator[tuple[ManifestRow, tuple[np.ndarray, np.ndarray] | str]]:
    with ProcessPoolExecutor(
        max_workers=processes, initializer=_init_worker, initargs=(settings,)
    ) as pool:
        results = pool.map(_encode_row, [r.path for r in rows])
        yield from zip(rows, results, strict=True)


def run_calibrate(
    settings: Settings,
    dataset: Path,
    threshold: float | None,
    target_fmr: float,
    processes: int | None,
    engine: FaceEngineName | None = None,
) -> int:
    """Error rates on a labelled folder, overall and per `group=` of the manifest's notes
    (with the impostor pairs across groups), at the threshold in force and at the
    threshold that holds the false match rate to `target_fmr`."""
    if engine is not None:
        settings = settings.model_copy(
            update={"face": settings.face.model_copy(update={"engine": engine})}
        )
    model = model_of(settings.face)
    rows = read_manifest(dataset)
    if not rows:
        print(f"error: no single-face images listed in {dataset / 'manifest.csv'}", file=sys.stderr)
        return 2
    ids: list[str] = []
    groups: list[str | None] = []
    refs: list[np.ndarray] = []
    probes: list[np.ndarray] = []
    failed: list[tuple[ManifestRow, str]] = []
    procs = processes or min(settings.server.verify_processes, os.cpu_count() or 1)
    for row, result in tqdm(
        encode_dataset(settings, rows, procs),
        total=len(rows),
        desc="encoding",
        unit="img",
        file=sys.stderr,
    ):
        if isinstance(result, str):
            failed.append((row, result))
            continue
        ids.append(row.identity)
        groups.append(row.group)
        refs.append(result[0])
        probes.append(result[1])
    for row, why in failed:
        print(f"failed to encode {row.path}: {why}", file=sys.stderr)
    if len(set(ids)) < 2:
        print("error: at least two identities with encodable images are needed", file=sys.stderr)
        return 2
    metric = model.metric
    references, probe_rows = np.array(refs), np.array(probes)
    pairs = pair_distances(ids, references, probe_rows, metric=metric)
    configured = settings.face.engine_thresholds().match_threshold
    in_force = configured if threshold is None else threshold
    grid = sorted({round(t, 2) for t in np.arange(0.40, 0.701, 0.02)} | {in_force})
    print(f"engine: {model.engine} ({model.key}, {metric.value} distances)")
    print(f"images encoded: {len(ids)}   failed to encode: {len(failed)}")
    print(
        f"genuine pairs: {pairs.genuine.size} (median distance {np.median(pairs.genuine):.3f}, "
        f"worst {pairs.genuine.max() if pairs.genuine.size else float('nan'):.3f})   "
        f"impostor pairs: {pairs.impostor.size} (median {np.median(pairs.impostor):.3f}, "
        f"closest {pairs.impostor.min():.3f})"
    )
    print(f"{'threshold':>9}  {'FNMR':>8} {'(count)':>12}  {'FMR':>8} {'(count)':>14}")
    for r in rate_table(pairs, grid):
        mark = "  <- in force" if r.threshold == in_force else ""
        fnm = f"({r.false_non_matches}/{r.genuine_pairs})"
        fm = f"({r.false_matches}/{r.impostor_pairs})"
        print(f"{r.threshold:>9.3f}  {r.fnmr:>8.2%} {fnm:>12}  {r.fmr:>8.3%} {fm:>14}{mark}")
    recommended = threshold_for_fmr(pairs, target_fmr)
    rec = rate_at(pairs, recommended)
    print(
        f"recommended threshold for a false match rate of at most {target_fmr:.3%}: "
        f"{recommended:.4f} (FNMR {rec.fnmr:.2%}, FMR {rec.fmr:.3%})"
    )
    target = fnmr_at_fmr(pairs, target_fmr)
    print(
        f"FNMR at a false match rate of at most {target_fmr:.3%}: {target.fnmr:.2%} "
        f"({target.false_non_matches}/{target.genuine_pairs}) at {target.threshold:.4f}"
    )
    by_group: dict[str, object] = {}
    if any(g is not None for g in groups):
        print(
            f"{'group':>14}  {'FNMR':>8} {'(count)':>12}  {'FMR':>8} {'(count)':>16}"
            f"  {'FNMR at target FMR':>20}"
        )
        for g in group_rates(group_pairs(ids, groups, references, probe_rows, metric),
                             in_force, target_fmr):  # fmt: skip
            a = g.at_threshold
            at = g.at_target
            fnm = f"({a.false_non_matches}/{a.genuine_pairs})"
            fm = f"({a.false_matches}/{a.impostor_pairs})"
            tgt = f"{at.fnmr:.2%} at {at.threshold:.3f}" if at is not None else "-"
            print(f"{g.group:>14}  {a.fnmr:>8.2%} {fnm:>12}  {a.fmr:>8.3%} {fm:>16}  {tgt:>20}")
            by_group[g.group] = {
                "genuine_pairs": a.genuine_pairs,
                "impostor_pairs": a.impostor_pairs,
                "false_non_matches": a.false_non_matches,
                "false_matches": a.false_matches,
                "fnmr": round(a.fnmr, 6),
                "fmr": round(a.fmr, 6),
                "fnmr_at_target_fmr": round(at.fnmr, 6) if at is not None else None,
                "threshold_at_target_fmr": at.threshold if at is not None else None,
            }
    final = rate_at(pairs, in_force)
    print(
        json.dumps(
            {
                "threshold": in_force,
                "genuine_pairs": final.genuine_pairs,
                "impostor_pairs": final.impostor_pairs,
                "fnmr": round(final.fnmr, 6),
                "fmr": round(final.fmr, 6),
                "failed_to_encode": len(failed),
                "engine": model.engine,
                "target_fmr": target_fmr,
                "fnmr_at_target_fmr": round(target.fnmr, 6),
                "groups": by_group,
            }
        )
    )
    return 0


def face_settings_with_threshold(face: FaceSettings, threshold: float | None) -> FaceSettings:
    """The face settings with the configured engine's match threshold overridden."""
    if threshold is None:
        return face
    if face.engine is FaceEngineName.sface:
        return face.model_copy(
            update={"sface": face.sface.model_copy(update={"match_threshold": threshold})}
        )
    return face.model_copy(update={"match_threshold": threshold})
