"""The occlusion gate (`face_occluded`): false occlusions on uncovered faces and masks
caught, for every engine in the same run (issue 17).

    .venv/bin/python bench/occlusion_bench.py [--faces ../shared/faces]
        [--eastasia ../shared/faces-eastasia] [--processes 2] [--every 1]

Uncovered: every single-face image of both development sets (every `--every`-th),
and the packaged photos as webcam frames at face widths 100-260 px. Masked: the
same images with each mask style of `tests/verification/maskgen.py` drawn over the
lower face from dlib's 68 landmarks of the uncovered image (the landmarks come from
the dlib engine's detection, or the SFace engine's box where dlib finds no face).

Each image is encoded as a check encodes its frame (`encode_largest`, which applies
the occlusion measure to the largest face); "found" counts images where the engine
finds a face, "occluded" those where the gate fires. Rates are over found faces.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import zlib
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from config import FaceSettings  # noqa: E402
from config.settings import FaceEngineName  # noqa: E402
from tests import imagegen  # noqa: E402
from tests.verification import maskgen  # noqa: E402
from verification.calibration import wilson_interval  # noqa: E402
from verification.engines import make_engine  # noqa: E402
from verification.imageio import decode_image  # noqa: E402
from verification.protocols import FaceEngine  # noqa: E402
from verification.types import QualityIssue  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared"
Outcome = tuple[str, str, str, bool, bool, float | None, float | None]

_engines: dict[str, FaceEngine] = {}


def _init(names: list[str]) -> None:
    for n in names:
        _engines[n] = make_engine(FaceSettings(), FaceEngineName(n))


def _judge(name: str, engine: FaceEngine, image: np.ndarray, style: str) -> Outcome:
    enc = engine.encode_largest(image)
    if enc is None:
        return (name, engine.model.engine, style, False, False, None, None)
    occluded = QualityIssue.face_occluded in enc.issues
    q = enc.quality
    return (name, engine.model.engine, style, True, occluded, q.lower_skin, q.lower_uniformity)


def _one(item: tuple[str, Path | str]) -> list[Outcome]:
    name, source = item
    if isinstance(source, Path):
        image = decode_image(source.read_bytes(), max_pixels=50_000_000, max_side=20_000)
    else:
        who, width = source.split("@")
        photo = imagegen.astronaut() if who == "astronaut" else imagegen.grace_hopper()
        image = imagegen.webcam_frame(photo, face_width=int(width))
    out = [_judge(name, e, image, "none") for e in _engines.values()]
    # Landmarks to draw the mask with: dlib's, on dlib's box or else on the SFace box.
    boxes = []
    for key in ("dlib", "sface"):
        if key in _engines:
            boxes = _engines[key].detect(image) or _engines[key].detect_all(image, 40, 0.8)
            if boxes:
                break
    if not boxes:
        return out
    landmarker = _engines.get("dlib") or next(iter(_engines.values()))
    points = landmarker.landmarks(image, boxes[0], 68)
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    for style in maskgen.STYLES:
        masked = maskgen.draw_mask(image, points, style, rng)
        out += [_judge(name, e, masked, style.name) for e in _engines.values()]
    return out


def items(faces: Path, eastasia: Path, every: int) -> list[tuple[str, Path | str]]:
    out: list[tuple[str, Path | str]] = []
    for root in (faces, eastasia):
        with (root / "manifest.csv").open(newline="", encoding="utf-8") as fh:
            rows = [r for r in csv.DictReader(fh) if r["faces_expected"].strip() == "1"]
        for r in rows[::every]:
            if Path(r["path"]).suffix.lower() in (".jpg", ".jpeg", ".png"):
                out.append((f"{root.name}/{r['path']}", root / r["path"]))
    for width in (100, 140, 180, 220, 260):
        for who in ("astronaut", "hopper"):
            out.append((f"{who}@{width}", f"{who}@{width}"))
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--faces", type=Path, default=SHARED / "faces")
    ap.add_argument("--eastasia", type=Path, default=SHARED / "faces-eastasia")
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--every", type=int, default=1)
    ap.add_argument("--engines", default="dlib,sface")
    args = ap.parse_args()
    names = args.engines.split(",")
    work = items(args.faces, args.eastasia, args.every)
    with ProcessPoolExecutor(args.processes, initializer=_init, initargs=(names,)) as pool:
        results = [o for batch in pool.map(_one, work, chunksize=4) for o in batch]
    s = FaceSettings()
    print(
        f"images: {len(work)} uncovered (both development sets and the packaged photos), each "
        f"also under {len(maskgen.STYLES)} mask styles; gate: skin share < "
        f"{s.occlusion_skin_min} or uniformity > {s.occlusion_uniformity_max}"
    )
    tally: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    for _, engine, style, found, occluded, _, _ in results:
        t = tally[(engine, style)]
        t[0] += 1
        t[1] += int(found)
        t[2] += int(occluded)
    print("\n| engine | face | images | face found | gate fired (share of found) [95% CI] |")
    print("|---|---|---|---|---|")
    for engine in names:
        for style in ["none"] + [m.name for m in maskgen.STYLES]:
            n, found, occ = tally[(engine, style)]
            lo, hi = wilson_interval(occ, found)
            label = "uncovered" if style == "none" else f"mask {style}"
            rate = occ / found if found else 0.0
            print(
                f"| {engine} | {label} | {n} | {found} | {occ} ({rate:.1%}) [{lo:.1%}-{hi:.1%}] |"
            )
    for engine in names:
        clean = [r for r in results if r[1] == engine and r[2] == "none" and r[3]]
        skins = [r[5] for r in clean if r[5] is not None]
        unif = [r[6] for r in clean if r[6] is not None]
        fired = [r[0] for r in clean if r[4]]
        print(
            f"\n{engine}, uncovered faces: skin share min {min(skins):.3f} "
            f"(p1 {np.quantile(skins, 0.01):.3f}; {len(clean) - len(skins)} faces without "
            f"colour cue), uniformity max {max(unif):.3f} (p99 {np.quantile(unif, 0.99):.3f})"
        )
        if fired:
            print(f"  uncovered faces called occluded: {fired}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
