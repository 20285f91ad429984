"""CPU cost of a presence check, an identity check and an enrolment per 640x480 frame,
single core, for every engine (dlib, SFace), against the naive pipeline
(face_recognition's defaults) in the same run.

    taskset -c 0 .venv/bin/python bench/engine_speed.py [--faces ../shared/faces] [--repeat 3]

Naive baseline = `face_locations` (HOG, upsample 1, full frame) then `face_encodings`
(5-point landmarks, 1 jitter) of every face found, as most examples do. The frames are
webcam-like 640x480 images: every single-face photo of the labelled set fitted to
640x480, frames of its two talking-head videos, and the packaged test photos at face
widths of 100-260 px. "Lost" counts frames where the baseline found a face and the
engine did not. Enrolment is timed on the packaged photos and the labelled set's
single-face photos at their own size (what a learner uploads), once each.
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
from config.settings import FaceEngineName  # noqa: E402
from tests import imagegen  # noqa: E402
from verification.engines import make_engine  # noqa: E402
from verification.exceptions import EnrolmentRejected  # noqa: E402
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


def enrol_photos(faces: Path | None) -> list[np.ndarray]:
    out = [imagegen.grace_hopper(), imagegen.astronaut()]
    if faces is None:
        return out
    with (faces / "manifest.csv").open() as fh:
        for row in csv.DictReader(fh):
            p = faces / row["path"]
            if row["faces_expected"] == "1" and p.suffix == ".jpg":
                out.append(decode_image(p.read_bytes(), max_pixels=10**8, max_side=10**5))
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    default_faces = Path(__file__).resolve().parents[2] / "shared" / "faces"
    ap.add_argument("--faces", type=Path, default=default_faces)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--engines", default="dlib,sface")
    args = ap.parse_args()
    faces = args.faces if (args.faces / "manifest.csv").is_file() else None
    settings = FaceSettings()
    engines = {
        name: make_engine(settings, FaceEngineName(name)) for name in args.engines.split(",")
    }
    naive = Naive()
    # The naive pipeline compares dlib encodings: its template is a dlib one.
    naive_template = make_engine(settings, FaceEngineName.dlib).enrol(imagegen.grace_hopper())
    templates = {
        name: e.enrol(imagegen.grace_hopper()).vector[None, :] for name, e in engines.items()
    }
    items = frames(faces)
    base: list[float] = []
    base_found: list[bool] = []
    pres: dict[str, list[float]] = {n: [] for n in engines}
    ident: dict[str, list[float]] = {n: [] for n in engines}
    found: dict[str, list[int]] = {n: [] for n in engines}
    for _, frame in items:
        nb, (n_faces, _) = cpu_ms(
            lambda f=frame: naive.identity(f, naive_template.vector), args.repeat
        )  # type: ignore[misc]
        base.append(nb)
        base_found.append(n_faces >= 1)
        for name, e in engines.items():
            pr, presence = cpu_ms(lambda f=frame, e=e: e.presence(f), args.repeat)  # type: ignore[misc]
            idt, _ = cpu_ms(lambda f=frame, e=e, n=name: e.identity(f, templates[n]), args.repeat)  # type: ignore[misc]
            pres[name].append(pr)
            ident[name].append(idt)
            found[name].append(presence.faces_found)  # type: ignore[attr-defined]
    b = np.array(base)
    print(
        f"frames: {len(items)} (640x480; {'with' if faces else 'without'} ../shared/faces), "
        f"median of {args.repeat} runs each, CPU time, one core"
    )
    print(
        f"{'pipeline':<30}{'mean ms':>9}{'p50 ms':>9}{'p95 ms':>9}"
        f"{'vs naive':>10}{'frames w/ face':>16}{'lost':>6}"
    )
    print(
        f"{'naive identity (baseline)':<30}{b.mean():>9.1f}{np.median(b):>9.1f}"
        f"{np.quantile(b, 0.95):>9.1f}{1.0:>10.1%}{sum(base_found):>16}{'':>6}"
    )
    lost_names: dict[str, list[str]] = {}
    for name in engines:
        lost = [items[i][0] for i in range(len(items)) if base_found[i] and found[name][i] == 0]
        lost_names[name] = lost
        with_face = sum(1 for x in found[name] if x >= 1)
        for label, arr in (("presence check", pres[name]), ("identity check", ident[name])):
            a = np.array(arr)
            print(
                f"{name + ' ' + label:<30}{a.mean():>9.1f}{np.median(a):>9.1f}"
                f"{np.quantile(a, 0.95):>9.1f}{a.sum() / b.sum():>10.1%}{with_face:>16}"
                f"{len(lost):>6}"
            )
    for name, lost in lost_names.items():
        print(f"{name}: frames where the baseline found a face and the engine did not: {lost}")
    photos = enrol_photos(faces)
    print(f"\nenrolment, {len(photos)} photos at their own size, CPU ms per photo (one run each):")
    print(f"{'engine':<10}{'mean ms':>9}{'p50 ms':>9}{'p95 ms':>9}{'refused':>9}")
    for name, e in engines.items():
        times, refused = [], 0
        for photo in photos:
            t = time.process_time()
            try:
                e.enrol(photo)
            except EnrolmentRejected:
                refused += 1
            times.append((time.process_time() - t) * 1000)
        a = np.array(times)
        print(
            f"{name:<10}{a.mean():>9.1f}{np.median(a):>9.1f}"
            f"{np.quantile(a, 0.95):>9.1f}{refused:>9}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
