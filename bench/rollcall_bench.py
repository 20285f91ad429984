"""Roll-call CPU time for 1280x720 classroom frames with 10 faces against a roster of 40,
for every engine (dlib, SFace), against the naive pipeline in the same run; and
classrooms per core.

    taskset -c 0 .venv/bin/python bench/rollcall_bench.py [--faces ../shared/faces]
        [--frames 6] [--repeat 3] [--capture-seconds 10] [--engines dlib,sface]

Roster: every identity of the labelled set, enrolled from its first photo as the
service enrols with each engine (dlib: 10 jitters, photo and mirror; SFace: four
landmark scales and mirrors), plus Grace Hopper (packaged) - 40 learners. Each
engine uses its own thresholds (`FaceSettings.engine_thresholds`). The people in
the frames are the identities with a second, different photo that is not a tight
150-px crop; they are cut out of that second photo (located by dlib's detector,
the same scenes for every engine) with a margin and seated at 10 desks of an
empty room, faces 40 to 80 px wide.

Naive baseline: dlib's HOG detector on the full RGB frame upsampled once (as
face_recognition's `face_locations(img, 1)`), then the 128-d encoding of every
face and, for each face on its own, the nearest template within the threshold.
Roll call: `verification.rollcall.RollCaller` with each engine (detection on a copy
scaled for 40-px faces, masked, cut-off and too-small faces left unidentified,
one-to-one assignment with a margin; over several frames of one camera, a face at
the place of a face identified a moment before is not encoded again).

"Mis-assigned" counts faces given a learner who is not the person at that desk.
CPU time is process time on one core (the pool's worker runs one job at a time).
Classrooms per core = 1 / (CPU seconds per second per classroom): one camera per
classroom, one roll call of `frames_per_roll_call` frames per mean interval, the
evidence JPEGs of a training roll call, decoding those frames, and reading the
camera's stream between roll calls (measured on a 720p MJPEG camera at 15 fps
served by another process, and on a 720p H.264 stream at 25 fps).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import multiprocessing
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import av  # noqa: E402
import cv2  # noqa: E402
import dlib  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from capture.stream import StreamSource  # noqa: E402
from config import ClassroomSettings, FaceSettings  # noqa: E402
from config.settings import FaceEngineName  # noqa: E402
from tests import classgen, imagegen  # noqa: E402
from verification.dlib_engine import DlibFaceEngine  # noqa: E402
from verification.engines import make_engine  # noqa: E402
from verification.exceptions import EnrolmentRejected  # noqa: E402
from verification.imageio import decode_image, encode_jpeg  # noqa: E402
from verification.models import locate_models  # noqa: E402
from verification.protocols import FaceEngine  # noqa: E402
from verification.rollcall import RollCaller, detect_scale  # noqa: E402
from verification.sface_engine import ROLLCALL_FACE_PX  # noqa: E402
from verification.types import FaceStatus, RollCallParams  # noqa: E402

W, H = 1280, 720
SEATS = [(0.1 + 0.2 * (i % 5), 0.33 if i < 5 else 0.75) for i in range(10)]
FACE_SIZES = (40, 44, 48, 52, 56, 60, 64, 70, 76, 80)
# The naive baseline compares dlib encodings at dlib's threshold.
THRESHOLD = FaceSettings().match_threshold


def params_for(engine: FaceEngine, min_face_px: int | None = None) -> RollCallParams:
    """The roll call's parameters in the engine's own units, as the service builds them."""
    t = FaceSettings().engine_thresholds(FaceEngineName(engine.model.engine))
    return RollCallParams(
        t.match_threshold,
        t.identify_margin,
        min_face_px or ClassroomSettings().min_face_px,
        t.detection_score_min,
    )


def copy_scale(engine: FaceEngine, min_face_px: int) -> float:
    if engine.model.engine == FaceEngineName.sface.value:
        return min(max(ROLLCALL_FACE_PX / float(min_face_px), 0.25), 4.0)
    return detect_scale(min_face_px)


def load(path: Path) -> np.ndarray:
    return decode_image(path.read_bytes(), max_pixels=10**8, max_side=10**5)


def cpu_ms(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        t = time.process_time()
        result = fn()
        times.append((time.process_time() - t) * 1000)
    return statistics.median(times), result


# -- the benchmark set ---------------------------------------------------------------


def roster_and_people(
    faces: Path, engine: FaceEngine, seating: DlibFaceEngine
) -> tuple[list[str], np.ndarray, list[classgen.Person], list[str]]:
    """The roster enrolled with `engine`; the people cut out with `seating`'s detector
    (the same scenes for every engine)."""
    photos: dict[str, list[Path]] = {}
    with (faces / "manifest.csv").open() as fh:
        for row in csv.DictReader(fh):
            if row["faces_expected"] == "1" and row["identity"] not in (
                "group",
                "nonface",
                "video",
            ):
                photos.setdefault(row["identity"], []).append(faces / row["path"])
    names: list[str] = []
    vectors: list[np.ndarray] = []
    notes: list[str] = []
    for name in sorted(photos):
        first = sorted(photos[name], key=lambda p: int(p.stem) if p.stem.isdigit() else 0)[0]
        image = load(first)
        try:
            vec = engine.enrol(image).vector
        except EnrolmentRejected as exc:  # a tight crop: encode it as calibration does
            enc = engine.encode_largest(image, template=True)
            if enc is None:
                notes.append(f"{name}: not enrollable ({exc.verdict})")
                continue
            vec = enc.vector
        names.append(name)
        vectors.append(vec)
    names.append("grace_hopper")
    vectors.append(engine.enrol(imagegen.grace_hopper()).vector)
    people: list[classgen.Person] = []
    for name in names:
        if name == "grace_hopper":
            continue
        later = sorted(photos[name], key=lambda p: int(p.stem) if p.stem.isdigit() else 0)[1:]
        for path in later[:1]:
            image = load(path)
            if min(image.shape[:2]) < 300:
                continue  # tight 150-px crops are not people in a room
            try:
                people.append(classgen.person(name, image, seating))
            except ValueError:
                notes.append(f"{name}: no face found in {path.name}")
    return names, np.array(vectors), people, notes


def scene(
    people: list[classgen.Person], start: int
) -> tuple[np.ndarray, list[tuple[str, int, int, int]]]:
    """A room with 10 people; truth = (identity, face centre x, y, face width)."""
    frame = classgen.room()
    truth = []
    for i, (sx, sy) in enumerate(SEATS):
        p = people[(start + i) % len(people)]
        fw = FACE_SIZES[(start + i) % len(FACE_SIZES)]
        s = fw / p.face_width
        img = cv2.resize(p.portrait, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        ox, oy = round(sx * W - p.centre[0] * s), round(sy * H - p.centre[1] * s)
        ih, iw = img.shape[:2]
        x0, y0, x1, y1 = max(ox, 0), max(oy, 0), min(ox + iw, W), min(oy + ih, H)
        frame[y0:y1, x0:x1] = img[y0 - oy : y1 - oy, x0 - ox : x1 - ox]
        truth.append((p.name, round(sx * W), round(sy * H), fw))
    return frame, truth


def jitter(frame: np.ndarray, seed: int) -> np.ndarray:
    """The next frame of a camera a moment later: a pixel of movement and sensor noise."""
    rng = np.random.default_rng(seed)
    m = np.float32([[1, 0, rng.uniform(-1.5, 1.5)], [0, 1, rng.uniform(-1.5, 1.5)]])
    moved = cv2.warpAffine(frame, m, (W, H), borderMode=cv2.BORDER_REPLICATE)
    noisy = moved.astype(np.int16) + rng.integers(-3, 4, moved.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def who(truth: list[tuple[str, int, int, int]], cx: float, cy: float) -> str | None:
    for name, x, y, fw in truth:
        if abs(cx - x) <= 0.6 * fw and abs(cy - y) <= 0.6 * fw:
            return name
    return None


# -- the two pipelines ---------------------------------------------------------------


class Naive:
    def __init__(self, templates: np.ndarray, names: list[str]) -> None:
        files = locate_models()
        self.det = dlib.get_frontal_face_detector()
        self.sp = dlib.shape_predictor(str(files.landmarks_5))
        self.enc = dlib.face_recognition_model_v1(str(files.encoder))
        self.templates = templates
        self.names = names

    def __call__(self, image: np.ndarray) -> list[tuple[float, float, str | None]]:
        out = []
        for r in self.det(image, 1):
            v = np.asarray(self.enc.compute_face_descriptor(image, self.sp(image, r), 1))
            d = np.linalg.norm(self.templates - v, axis=1)
            i = int(np.argmin(d))
            label = self.names[i] if d[i] <= THRESHOLD else None
            out.append(((r.left() + r.right()) / 2, (r.top() + r.bottom()) / 2, label))
        return out


def score(
    frames: list[list[tuple[float, float, str | None]]], truth: list[tuple[str, int, int, int]]
) -> tuple[int, int, int, int]:
    """Over one roll call's frames: (faces detected at a desk in the first frame, learners
    identified in any frame, faces given the wrong learner, learners not identified)."""
    detected = sum(1 for cx, cy, _ in frames[0] if who(truth, cx, cy) is not None)
    got: set[str] = set()
    wrong: set[tuple[str | None, str]] = set()
    for found in frames:
        for cx, cy, label in found:
            if label is None:
                continue
            person = who(truth, cx, cy)
            if label == person:
                got.add(label)
            else:
                wrong.add((person, label))
    return detected, len(got), len(wrong), len({t[0] for t in truth} - got)


# -- capture costs -------------------------------------------------------------------


def _serve(frames: list[bytes], port: int) -> None:
    camera = classgen.MjpegCamera(frames, 15.0, port)
    camera.listen()
    time.sleep(3600)


def capture_cpu(url: str, seconds: float) -> float:
    """CPU seconds per second this process spends keeping a camera open (no samples)."""

    async def run() -> float:
        source = StreamSource("bench", url, ClassroomSettings(), lambda: datetime.now(UTC))
        await source.start()
        await source.next_frame(15)
        r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
        await asyncio.sleep(seconds)
        r1, t1 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
        received = source.status().stats.received
        await source.stop()
        cpu = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
        print(
            f"  {url.split(':')[0]} source: {received} packets read, {cpu / (t1 - t0):.4f} CPU s/s"
        )
        return cpu / (t1 - t0)

    return asyncio.run(run())


def h264_file(path: Path, frame: np.ndarray, seconds: int) -> Path:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.options = {"g": "50", "preset": "veryfast", "crf": "23"}
        for i in range(seconds * 25):
            img = jitter(frame, i)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def decode_ms(path: Path, repeat: int) -> tuple[float, float]:
    """(MJPEG frame, H.264 key frame) decode + RGB conversion, ms."""
    with av.open(str(path)) as c:
        packets = [p for p in c.demux(c.streams.video[0]) if p.size and p.is_keyframe][:repeat]
        ctx = c.streams.video[0].codec_context
        ctx.thread_count = 1

        def key() -> None:
            for p in packets[:1]:
                ctx.flush_buffers()
                for f in ctx.decode(p):
                    f.to_ndarray(format="rgb24")

        h264, _ = cpu_ms(key, repeat)
    jpeg = cv2.imencode(
        ".jpg", cv2.cvtColor(jitter(np.zeros((H, W, 3), np.uint8) + 120, 1), cv2.COLOR_RGB2BGR)
    )[1]
    mj = av.CodecContext.create("mjpeg", "r")
    packet = av.Packet(jpeg.tobytes())

    def mjpeg() -> None:
        for f in mj.decode(packet):
            f.to_ndarray(format="rgb24")

    m, _ = cpu_ms(mjpeg, repeat)
    return m, h264


def scale_sweep(
    caller: RollCaller, frames: list[np.ndarray], people: list[classgen.Person], repeat: int
) -> None:
    """Faces found per face width, by the scale of the detection copy (grey)."""
    print(
        f"\n{caller.engine.model.engine}: detection scale (copy of the 1280x720 frame) vs faces "
        "found at the desks"
    )
    sizes = sorted(set(FACE_SIZES))
    print("| scale | min_face_px | CPU ms | " + " | ".join(f"{w} px" for w in sizes) + " |")
    print("|---" * (3 + len(sizes)) + "|")
    for min_face in (64, 53, 46, 40, 32):
        params = params_for(caller.engine, min_face)
        found = dict.fromkeys(sizes, 0)
        total = dict.fromkeys(sizes, 0)
        times = []
        for k, frame in enumerate(frames):
            _, truth = scene(people, k * 3)
            ms, boxes = cpu_ms(
                lambda frame=frame, params=params: caller.detect(frame, params), repeat
            )
            times.append(ms)
            for _, x, y, fw in truth:
                total[fw] += 1
                centres = [((b.left + b.right) / 2, (b.top + b.bottom) / 2) for b in boxes]
                hit = any(abs(cx - x) <= 0.6 * fw and abs(cy - y) <= 0.6 * fw for cx, cy in centres)
                found[fw] += int(hit)
        cells = " | ".join(f"{found[w]}/{total[w]}" for w in sizes)
        scale = copy_scale(caller.engine, min_face)
        print(f"| {scale:.2f} | {min_face} | {statistics.mean(times):.0f} | {cells} |")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--faces", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "faces"
    )
    ap.add_argument("--frames", type=int, default=6)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--capture-seconds", type=float, default=10.0)
    ap.add_argument("--work", type=Path, default=Path("/tmp/rollcall-bench"))
    ap.add_argument("--engines", default="dlib,sface")
    args = ap.parse_args()
    if not (args.faces / "manifest.csv").is_file():
        print(f"the labelled set is needed: {args.faces}/manifest.csv not found", file=sys.stderr)
        return 2
    args.work.mkdir(parents=True, exist_ok=True)
    seating = DlibFaceEngine(FaceSettings())
    engines = {n: make_engine(FaceSettings(), FaceEngineName(n)) for n in args.engines.split(",")}
    rosters = {n: roster_and_people(args.faces, e, seating) for n, e in engines.items()}
    names, dlib_templates, people, _ = (
        rosters["dlib"] if "dlib" in rosters else roster_and_people(args.faces, seating, seating)
    )
    naive = Naive(dlib_templates, names)
    if len(people) < 10:
        print(f"only {len(people)} people can be seated; 10 are needed", file=sys.stderr)
        return 2
    print(f"roster: {len(names)} learners ({len(names) - 1} identities of the set + Grace Hopper)")
    print(f"people seated in the frames: {len(people)}: {', '.join(p.name for p in people)}")
    for n, (_, _, _, notes) in rosters.items():
        for note in notes:
            print(f"  note ({n}): {note}")

    keys = ["naive1", "naive3"] + [f"{n}{k}" for n in engines for k in (1, 3)]
    rows: dict[str, list[float]] = {k: [] for k in keys}
    tallies: dict[str, np.ndarray] = {k: np.zeros(4, int) for k in rows}
    stages = {n: np.zeros(4) for n in engines}
    callers = {n: RollCaller(e) for n, e in engines.items()}
    frames_ = []
    for k in range(args.frames):
        frame, truth = scene(people, k * 3)
        burst = [frame, jitter(frame, 100 + k), jitter(frame, 200 + k)]
        frames_.append(frame)
        runs: list[tuple[str, Callable[[], Any], list[str] | None]] = [
            ("naive1", lambda frame=frame: naive(frame), None),
            ("naive3", lambda burst=burst: [naive(f) for f in burst], None),
        ]
        for n, caller in callers.items():
            r_names, r_templates, _, _ = rosters[n]
            labels = list(range(len(r_names)))
            params = params_for(caller.engine)
            runs.append((
                f"{n}1",
                lambda c=caller, frame=frame, t=r_templates, lab=labels, p=params: c.call(
                    [frame], t, lab, p
                ),
                r_names,
            ))  # fmt: skip
            runs.append((
                f"{n}3",
                lambda c=caller, burst=burst, t=r_templates, lab=labels, p=params: c.call(
                    burst, t, lab, p
                ),
                r_names,
            ))  # fmt: skip
        for key, fn, r_names in runs:
            ms, result = cpu_ms(fn, args.repeat)
            rows[key].append(ms)
            if r_names is None:
                per_frame = result if key == "naive3" else [result]
            else:
                per_frame = []
                for fr in result.frames:
                    found = []
                    for f in fr.faces:
                        label = r_names[f.label] if f.status is FaceStatus.assigned else None
                        b = f.box
                        found.append(((b.left + b.right) / 2, (b.top + b.bottom) / 2, label))
                    per_frame.append(found)
                if key.endswith("1"):
                    t = result.timings
                    stages[key[:-1]] += [t.detect_ms, t.landmarks_ms, t.encode_ms, t.match_ms]
            tallies[key] += score(per_frame, truth)
    jpeg_ms, _ = cpu_ms(lambda: encode_jpeg(frames_[0], 85), args.repeat)
    for caller in callers.values():
        scale_sweep(caller, frames_, people, args.repeat)

    total_faces = 10 * args.frames
    print()
    print(f"{args.frames} frames 1280x720, 10 faces each ({FACE_SIZES[0]}-{FACE_SIZES[-1]} px), "
          f"roster {len(names)}, median of {args.repeat} runs, CPU ms on one core")  # fmt: skip
    print("| pipeline | CPU ms per roll call (mean) | share of naive | faces detected "
          "| learners identified | mis-assigned | learners not found |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    table = [("naive1", "naive, 1 frame (baseline)", "naive1")]
    table += [(f"{n}1", f"{n} roll call, 1 frame", "naive1") for n in engines]
    table += [("naive3", "naive, 3 frames (baseline)", "naive3")]
    table += [(f"{n}3", f"{n} roll call, 3 frames (default)", "naive3") for n in engines]
    for key, label, base in table:
        mean = statistics.mean(rows[key])
        share = sum(rows[key]) / sum(rows[base])
        det, ok, wrong, missed = tallies[key]
        print(f"| {label} | {mean:.0f} | {share:.0%} | {det}/{total_faces} | {ok}/{total_faces} "
              f"| {wrong} | {missed} |")  # fmt: skip
    for n, st in stages.items():
        st = st / args.frames
        print(f"{n} roll call, 1 frame, wall ms per stage: detect {st[0]:.0f}, landmarks+quality "
              f"{st[1]:.0f}, encode {st[2]:.0f}, match {st[3]:.1f}")  # fmt: skip

    print("\ncapture between roll calls (decoding on demand only):")
    mjpeg_frames = [
        cv2.imencode(".jpg", cv2.cvtColor(f, cv2.COLOR_RGB2BGR))[1].tobytes() for f in frames_
    ]
    port = classgen.free_port()
    server = multiprocessing.get_context("spawn").Process(
        target=_serve, args=(mjpeg_frames, port), daemon=True
    )
    server.start()
    time.sleep(2)
    try:
        mjpeg_idle = capture_cpu(f"http://127.0.0.1:{port}/stream.mjpg", args.capture_seconds)
    finally:
        server.terminate()
    video = h264_file(args.work / "h264.mp4", frames_[0], int(args.capture_seconds) + 6)
    h264_idle = capture_cpu(video.as_uri(), args.capture_seconds)
    mjpeg_dec, h264_dec = decode_ms(video, args.repeat)
    print(f"  decode + RGB of one sample: MJPEG {mjpeg_dec:.1f} ms, H.264 key frame "
          f"{h264_dec:.1f} ms; evidence JPEG {jpeg_ms:.1f} ms")  # fmt: skip

    s = ClassroomSettings()
    naive_roll = statistics.mean(rows["naive3"]) / 1000
    print("\n| engine | sampling | camera | CPU s per roll call | camera CPU s/s "
          "| classrooms per core | naive pipeline |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for n in engines:
        roll = statistics.mean(rows[f"{n}3"]) / 1000
        for mode, interval in (
            ("training", s.interval_mean_s),
            ("assessment", s.assessment_interval_mean_s),
        ):
            for cam, idle, dec in (
                ("MJPEG 15 fps", mjpeg_idle, mjpeg_dec),
                ("H.264 25 fps", h264_idle, h264_dec),
            ):
                extra = (3 * (dec + jpeg_ms)) / 1000
                per_s = (roll + extra) / interval + idle
                naive_per_s = (naive_roll + extra) / interval + idle
                print(f"| {n} | {mode}, mean {interval:.0f} s | {cam} | {roll + extra:.2f} "
                      f"| {idle:.4f} | {1 / per_s:.0f} | {1 / naive_per_s:.0f} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
