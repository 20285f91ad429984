"""CPU cost of a presence check and an identity check per 640x480 frame, single core,
against the naive pipeline (face_recognition's defaults) in the same run.

    taskset -c 0 .venv/bin/python bench/engine_speed.py [--faces ../shared/faces] [--repeat 3]

Naive baseline = `face_locations` (HOG, upsample 1, full frame) then `face_encodings`
(5-point landmarks, 1 jitter) of every face found, as most examples do. The frames are
webcam-like 640x480 images: every single-face photo of the labelled set fitted to
640x480, frames of its two talking-head videos, and the packaged test photos at face
widths of 100-260 px. "Lost" counts frames where the baseline found a face and the
engine did not.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import cv2  # noqa: E402
import dlib  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from config import FaceSettings  # noqa: E402
from tests import imagegen  # noqa: E402
from verification.dlib_engine import DlibFaceEngine  # noqa: E402
from verification.imageio import decode_image  # noqa: E402
from verification.models import locate_models  # noqa: E402

W, H = 640, 480


def fit(image: np.ndarray) -> np.ndarray:
    """Scale and centre-crop to fill 640x480, as a webcam frame."""
    h, w = image.shape[:2]
    s = max(W / w, H / h)
    r = cv2.resize(image, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
    y0, x0 = (r.shape[0] - H) // 2, (r.shape[1] - W) // 2
    return np.ascontiguousarray(r[y0 : y0 + H, x0 : x0 + W])


def letterbox(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    s = min(W / w, H / h)
    r = cv2.resize(image, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
    out = np.zeros((H, W, 3), np.uint8)
    y0, x0 = (H - r.shape[0]) // 2, (W - r.shape[1]) // 2
    out[y0 : y0 + r.shape[0], x0 : x0 + r.shape[1]] = r
    return out


def frames(faces: Path | None) -> list[tuple[str, np.ndarray]]:
    out: list[tuple[str, np.ndarray]] = []
    for fw in (100, 130, 160, 200, 260):
        out.append((f"hopper@{fw}", imagegen.webcam_frame(imagegen.grace_hopper(), fw)))
        out.append((f"astronaut@{fw}", imagegen.webcam_frame(imagegen.astronaut(), fw)))
    if faces is None:
        return out
    with (faces / "manifest.csv").open() as fh:
        for row in csv.DictReader(fh):
            p = faces / row["path"]
            if row["faces_expected"] == "1" and p.suffix == ".jpg":
                img = decode_image(p.read_bytes(), max_pixels=10**8, max_side=10**5)
                if min(img.shape[:2]) >= 300:  # tight 150-px crops are not webcam frames
                    out.append((row["path"], fit(img)))
            elif row["identity"] == "video" and row["path"] != "video/1.mp4":
                cap = cv2.VideoCapture(str(p))
                n = 0
                while True:
                    ok, bgr = cap.read()
                    if not ok:
                        break
                    if n % 20 == 0:
                        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                        out.append((f"{row['path']}#{n}", letterbox(rgb)))
                    n += 1
                cap.release()
    return out


class Naive:
    """face_recognition's defaults, on dlib directly (identical encodings)."""

    def __init__(self) -> None:
        files = locate_models()
        self.det = dlib.get_frontal_face_detector()
        self.sp = dlib.shape_predictor(str(files.landmarks_5))
        self.enc = dlib.face_recognition_model_v1(str(files.encoder))

    def identity(self, image: np.ndarray, template: np.ndarray) -> tuple[int, float | None]:
        rects = self.det(image, 1)
        best = None
        for r in rects:
            v = np.asarray(self.enc.compute_face_descriptor(image, self.sp(image, r), 1))
            d = float(np.linalg.norm(v - template))
            best = d if best is None else min(best, d)
        return len(rects), best


def cpu_ms(fn, repeat: int) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    times, result = [], None
    for _ in range(repeat):
        t = time.process_time()
        result = fn()
        times.append((time.process_time() - t) * 1000)
    return statistics.median(times), result


def main() -> int:
    ap = argparse.ArgumentParser()
    default_faces = Path(__file__).resolve().parents[2] / "shared" / "faces"
    ap.add_argument("--faces", type=Path, default=default_faces)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    faces = args.faces if (args.faces / "manifest.csv").is_file() else None
    engine = DlibFaceEngine(FaceSettings())
    naive = Naive()
    template = engine.enrol(imagegen.grace_hopper()).vector
    items = frames(faces)
    rows = []
    for name, frame in items:
        nb, (n_faces, _) = cpu_ms(lambda f=frame: naive.identity(f, template), args.repeat)  # type: ignore[misc]
        pr, presence = cpu_ms(lambda f=frame: engine.presence(f), args.repeat)  # type: ignore[misc]
        idt, identity = cpu_ms(lambda f=frame: engine.identity(f, template[None, :]), args.repeat)  # type: ignore[misc]
        rows.append((name, nb, pr, idt, n_faces, presence.faces_found, identity.faces_found))  # type: ignore[attr-defined]
    base = np.array([r[1] for r in rows])
    pres = np.array([r[2] for r in rows])
    ident = np.array([r[3] for r in rows])
    found_base = sum(1 for r in rows if r[4] >= 1)
    lost = [r[0] for r in rows if r[4] >= 1 and r[5] == 0]
    print(
        f"frames: {len(rows)} (640x480; {'with' if faces else 'without'} ../shared/faces), "
        f"median of {args.repeat} runs each, CPU time, one core"
    )
    print(
        f"{'pipeline':<28}{'mean ms':>9}{'p50 ms':>9}{'p95 ms':>9}"
        f"{'vs naive':>10}{'frames w/ face':>16}"
    )
    for label, arr, found in (
        ("naive identity (baseline)", base, found_base),
        ("engine presence check", pres, sum(1 for r in rows if r[5] >= 1)),
        ("engine identity check", ident, sum(1 for r in rows if r[6] >= 1)),
    ):
        print(
            f"{label:<28}{arr.mean():>9.1f}{np.median(arr):>9.1f}{np.quantile(arr, 0.95):>9.1f}"
            f"{arr.sum() / base.sum():>10.1%}{found:>16}"
        )
    print(f"frames where the baseline found a face and the engine did not: {len(lost)} {lost}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
